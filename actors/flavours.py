"""Firmware flavours: what `ibm,configure-kernel-dump` checks, per platform.

Two platforms implement the PAPR call the kernel uses. Their differences decide whether
a bug is seen at registration or only after a crash, so they are modelled separately:

- `powervm` (default): PowerVM/PHYP as the 2018 kernel implies it (it only explains a
  -3 after the fact, so firmware must validate the sections against partition memory).
  PowerVM itself is closed: every rule here beyond the return codes the kernel handles
  is an assumption, listed as such in docs/firmware.md.
- `qemu`: QEMU's pseries emulation (hw/ppc/spapr_fadump.c, spapr_rtas.c, 2025), read
  from the source: no address or hole check at REGISTER, at most 10 sections, UNREGISTER
  refused while a dump is active, INVALIDATE without an active dump falling through to
  success, header status 0xC000 after every os-term, CPU state 32 + 1264 bytes per CPU.

Each rule is a small function of the firmware's state and the structure; the actor
(actors/firmware.py) keeps the state and calls them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from fadumpsim.actors.kernel.fwdump import INVALIDATE, REGISTER, UNREGISTER

FLAVOURS = ("powervm", "qemu")
DEFAULT_FLAVOUR = "powervm"

# PAPR return codes of ibm,configure-kernel-dump
RC_SUCCESS, RC_PARAM_ERROR = 0, -3
RC_ALREADY_REGISTERED, RC_DUMP_ACTIVE = -9, -10

MAX_SECTIONS = 10                   # FADUMP_MAX_SECTIONS (QEMU; the kernel's comment for PAPR)
SECTION_KEYS = frozenset(("type", "request", "error", "source", "length", "dumped", "destination"))
# header status after os-term (QEMU's FADUMP_STATUS_DUMP_PERFORMED | _TRIGGERED)
STATUS_PERFORMED, STATUS_TRIGGERED, STATUS_ERROR = 0x8000, 0x4000, 0x2000
# sizes of the structure as the kernel passes it (struct rtas_fadump_section_header / _section)
HEADER_BYTES, SECTION_BYTES = 40, 40
# QEMU's CPU state data: FadumpRegSaveAreaHeader (16) + 0xc padding + num_cpus (4), then
# FADUMP_PER_CPU_REG_ENTRIES (32 GPRs + 45 others + CPUSTRT/CPUEND = 79) x 16 bytes per CPU
QEMU_CPU_STATE_HEADER, QEMU_CPU_STATE_PER_CPU = 32, 79 * 16
# PowerVM: the simulator's long-standing assumption (not from a source; see docs/firmware.md)
POWERVM_CPU_STATE_HEADER, POWERVM_CPU_STATE_PER_CPU = 0x1000, 0x400


class FlavourError(ValueError):
    """An unknown flavour name."""


@dataclass(frozen=True)
class FirmwareState:
    """What a rule may look at: the registration, the active dump, the partition."""
    registered: bool
    dump_active: bool
    rma_size: int
    in_partition: Callable[[int, int], bool]


def check_flavour(name: Any) -> str:
    if name not in FLAVOURS:
        raise FlavourError(f"unknown firmware flavour {name!r} (expected {' or '.join(FLAVOURS)})")
    return name


def cpu_state_size(flavour: str, cpus: int) -> int:
    """`ibm,configure-kernel-dump-sizes` for CPU state data, and what os-term writes."""
    if flavour == "qemu":
        return QEMU_CPU_STATE_HEADER + QEMU_CPU_STATE_PER_CPU * cpus
    return POWERVM_CPU_STATE_HEADER + POWERVM_CPU_STATE_PER_CPU * cpus


def fdm_bytes(fdm: dict[str, Any]) -> int:
    """sizeof the structure the kernel passes: header plus its sections."""
    return HEADER_BYTES + SECTION_BYTES * len(fdm["sections"])


def _readable(fdm: Any) -> bool:
    """Can firmware read a header and every section (the dict analogue of a short buffer)?"""
    if not isinstance(fdm, dict) or not isinstance(fdm.get("sections"), list):
        return False
    return all(isinstance(s, dict) and s.keys() == SECTION_KEYS for s in fdm["sections"])


def register(flavour: str, st: FirmwareState, fdm: Any) -> int:
    """REGISTER: the return code; 0 means firmware now holds `fdm`."""
    if st.registered:
        return RC_ALREADY_REGISTERED
    if st.dump_active:
        return RC_DUMP_ACTIVE
    if not _readable(fdm):
        return RC_PARAM_ERROR
    if flavour == "qemu":
        return _register_qemu(st, fdm)
    return _register_powervm(st, fdm)


def _register_qemu(st: FirmwareState, fdm: dict[str, Any]) -> int:
    """do_fadump_register(): size and RMA placement of the buffer, version, section count.

    The kernel's structure is a static in its .bss, inside the RMA; `fdm["addr"]` (absent
    from what the kernel sends) lets a test place a forged one elsewhere.
    """
    addr = fdm.get("addr", 0x100000)
    if addr <= 0 or addr + fdm_bytes(fdm) > st.rma_size:
        return RC_PARAM_ERROR
    if fdm.get("version") != 1:
        return RC_PARAM_ERROR
    if len(fdm["sections"]) > MAX_SECTIONS:
        return RC_PARAM_ERROR
    return RC_SUCCESS            # no address, length or hole check: found only at os-term


def _register_powervm(st: FirmwareState, fdm: dict[str, Any]) -> int:
    """Structure, then every source and destination inside the partition (a hole is -3)."""
    secs = fdm["sections"]
    if fdm.get("version") != 1 or not secs or len(secs) > MAX_SECTIONS:
        return RC_PARAM_ERROR
    for s in secs:
        if not st.in_partition(s["source"], s["length"]) or \
                not st.in_partition(s["destination"], s["length"]):
            return RC_PARAM_ERROR
    return RC_SUCCESS


def unregister(flavour: str, st: FirmwareState) -> int:
    """UNREGISTER: refused while a dump is active (QEMU; PAPR's -10 assumed for PowerVM)."""
    return RC_DUMP_ACTIVE if st.dump_active else RC_SUCCESS


def invalidate(flavour: str, st: FirmwareState) -> tuple[int, bool]:
    """INVALIDATE: (return code, whether registration and active dump are cleared).

    QEMU stores -3 when no dump is active and then falls through to its common success
    exit, clearing both: the caller sees 0 (the review intended -3).
    """
    if st.dump_active:
        return RC_SUCCESS, True
    if flavour == "qemu":
        return RC_SUCCESS, True
    return RC_PARAM_ERROR, False


def final_status(flavour: str, hardware_error: bool) -> int:
    """The header's dump_status_flag handed to the capture kernel after os-term.

    QEMU ORs in DUMP_ERROR on a hardware copy failure, then overwrites the field with
    PERFORMED | TRIGGERED whatever happened. PowerVM is assumed to leave 0x2000 (the
    kernel's FADUMP_ERROR_FLAG, which it tests for) after a hardware failure, else 0.
    """
    if flavour == "qemu":
        return STATUS_PERFORMED | STATUS_TRIGGERED
    return STATUS_ERROR if hardware_error else 0


def configure_kernel_dump(flavour: str, st: FirmwareState, cmd: int,
                          fdm: Any) -> tuple[int, str | None]:
    """One call: (rc, what to do) with what in None, 'register', 'unregister', 'invalidate'."""
    if cmd == REGISTER:
        rc = register(flavour, st, fdm)
        return rc, "register" if rc == RC_SUCCESS else None
    if cmd == UNREGISTER:
        rc = unregister(flavour, st)
        return rc, "unregister" if rc == RC_SUCCESS else None
    if cmd == INVALIDATE:
        rc, clear = invalidate(flavour, st)
        return rc, "invalidate" if clear else None
    return RC_PARAM_ERROR, None
