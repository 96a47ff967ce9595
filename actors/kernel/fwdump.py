"""`struct fw_dump` and the dump memory structure (`struct fadump_mem_struct`).

The kernel's fadump bookkeeping, kept as plain values so that it can be snapshot
and compared. Section types and the structure layout follow PAPR / the 2018 kernel.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CPU_STATE_DATA = 0x0001
HPTE_REGION = 0x0002
REAL_MODE_REGION = 0x0011

REGISTER, UNREGISTER, INVALIDATE = 1, 2, 3
ERROR_FLAG = 0x2000           # header status: the dump is not valid
SRC_ERROR, DST_ERROR = 0x4000, 0x1000  # section error_flags (QEMU's values)
CRASH_INFO_MAGIC = "FADMPINF"

BUSY_CODES = (-2,) + tuple(range(9900, 9906))


def busy_delay_ns(rc: int) -> int:
    """rtas_busy_delay_time(): -2 -> 1ms, 990x -> 10**x ms, else 0."""
    if rc == -2:
        return 1_000_000
    if 9900 <= rc <= 9905:
        return 10 ** (rc - 9900) * 1_000_000
    return 0


def make_fdm(base: int, cpu_size: int, hpte_size: int, boot_memory_size: int) -> dict[str, Any]:
    """init_fadump_mem_struct(): the three sections, destinations packed from `base`."""
    cpu_dst = base
    hpte_dst = cpu_dst + cpu_size
    rmr_dst = hpte_dst + hpte_size
    return {
        "version": 1,
        "status": 0,
        "sections": [
            {"type": CPU_STATE_DATA, "request": 1, "error": 0, "source": 0,
             "length": cpu_size, "dumped": 0, "destination": cpu_dst},
            {"type": HPTE_REGION, "request": 1, "error": 0, "source": 0,
             "length": hpte_size, "dumped": 0, "destination": hpte_dst},
            {"type": REAL_MODE_REGION, "request": 1, "error": 0, "source": 0,
             "length": boot_memory_size, "dumped": 0, "destination": rmr_dst},
        ],
    }


def section(fdm: dict[str, Any], typ: int) -> dict[str, Any]:
    for s in fdm["sections"]:
        if s["type"] == typ:
            return s
    raise KeyError(typ)


@dataclass
class FwDump:
    """The kernel's `fw_dump` (2018 field names where there is one)."""
    fadump_supported: bool = True
    fadump_enabled: bool = False
    nonmovable: bool = False
    dump_active: bool = False
    dump_registered: bool = False
    boot_memory_size: int = 0
    reserve_dump_area_start: int = 0
    reserve_dump_area_size: int = 0
    cpu_state_data_size: int = 0
    hpte_region_size: int = 0
    fadumphdr_addr: int = 0
    fdm: dict[str, Any] | None = None            # what this kernel registers
    fdm_active: dict[str, Any] | None = None     # ibm,kernel-dump from the device tree
    crash_memory_ranges: list[list[int]] = field(default_factory=list)
    zone_movable: bool = False                   # ZONE_MOVABLE activated over the area
    # mainline (profile upstream) fields
    nocma: bool = False                          # fadump=nocma
    boot_mem_top: int = 0                        # end of boot memory including holes
    boot_mem_regions: list[list[int]] = field(default_factory=list)
    cma: bool = False                            # the fadump CMA area is active
    registrations: int = 0

    def reserved_area(self) -> tuple[int, int]:
        return self.reserve_dump_area_start, self.reserve_dump_area_start + self.reserve_dump_area_size

    def snapshot(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}
