"""Every event type of the simulation, its payload fields and its schema version.

This is the one place to look up what travels between actors. `check_payload` is
called on every send: a payload must carry exactly the declared fields, which keeps
the log compact (payloads are stored positionally in declaration order) and lets an
old log be refused when a schema moves on (the header records `event_schema`, a
digest of every type's version and field order, see docs/log-format.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EventType:
    name: str
    fields: frozenset[str]
    version: int
    doc: str
    order: tuple[str, ...] = ()  # declaration order: the log stores payloads positionally


_TYPES: dict[str, EventType] = {}


def _t(name: str, fields: str, doc: str, version: int = 1) -> None:
    _TYPES[name] = EventType(name, frozenset(fields.split()), version, doc, tuple(fields.split()))


# --- run control and scripts -------------------------------------------------------
_t("sim.power_on", "", "the run starts: firmware powers the partition on")
_t("script.start", "", "the script's actor is up (booted); the script may run its first command")
_t("script.done", "script", "a script this one waits for (`after`) has finished")
_t("cmd.run", "index command", "a script asks its actor to run one shell command")
_t("cmd.result", "index stdout stderr exit", "the command's output and exit status")

# --- firmware <-> kernels ----------------------------------------------------------------
_t("fw.boot", "dt ram boot", "firmware boots a kernel: device tree, RAM content extents kept across reset, boot count")
_t("rtas.configure_kernel_dump", "op cmd fdm", "RTAS ibm,configure-kernel-dump REGISTER(1)/UNREGISTER(2)/INVALIDATE(3)")
_t("rtas.return", "op status", "the RTAS call's return code")
_t("rtas.os_term", "ram crash", "ibm,os-term after a crash: RAM content and crash info travel to firmware")

# --- DLPAR (hotplug manager <-> firmware / kernel) ------------------------------------
_t("dlpar.acquire_drc", "op drc_index", "hotplug manager -> kernel -> firmware (the kernel makes the RTAS call): assign an LMB to the partition")
_t("dlpar.release_drc", "op drc_index", "hotplug manager -> kernel -> firmware (the kernel makes the RTAS call): give an LMB back")
_t("dlpar.drc_result", "op drc_index rc", "firmware -> kernel -> hotplug manager: firmware's answer to acquire/release")
_t("hp.lock", "op", "lock_device_hotplug(): wait for the kernel's device-hotplug lock")
_t("hp.locked", "op", "the device-hotplug lock is held by this operation")
_t("hp.unlock", "op", "unlock_device_hotplug()")
_t("hp.unlocked", "op", "the kernel released the device-hotplug lock (after every earlier printk)")
_t("hp.lmbs", "op", "ask the kernel for its drmem LMB table (base, assigned, node)")
_t("hp.lmb_table", "op lmbs", "the kernel's drmem LMB table: [[lmb, assigned], ...] runs")
_t("hp.count_removable", "op want", "remove-by-count pre-check: count removable LMBs, up to `want`")
_t("hp.removable_count", "op count", "the kernel's count of removable LMBs")
_t("hp.is_removable", "op lmb exact", "lmb_is_removable(): `exact` asks about one LMB, else find the first removable LMB at or after `lmb`")
_t("hp.removable", "op lmb removable why", "the kernel's answer")
_t("hp.offline", "op lmb", "dlpar_offline_lmb(): offline the LMB, migrating its movable pages in batches")
_t("hp.offlined", "op lmb rc", "offline finished (rc 0) or failed (-EBUSY, -ENOMEM)")
_t("hp.remove_memory", "op lmb", "remove_memory()+memblock_remove() of an offlined LMB")
_t("hp.add_memory", "op lmb", "add_memory()+memblock_add() and online of an LMB firmware assigned")
_t("hp.done", "op lmb rc", "the kernel finished remove_memory/add_memory for that LMB")
_t("hp.printk", "level msg", "a kernel log line of the pseries DLPAR code (it runs in the kernel)")
_t("hp.sysfs_write", "op path value", "kdumpctl (run by the udev rule via systemd) writing a sysfs file")
_t("hp.sysfs_result", "op rc", "result of that write (0 or -errno)")
_t("hp.sysfs_read", "op path", "kdumpctl (check_current_status) or a udev rule reading a sysfs file")
_t("hp.sysfs_value", "op value", "what that read returned (null: this kernel has no such file)")
_t("hp.crashed", "", "the production kernel crashed: its DLPAR operations, drmgr, udev and kdumpctl die with it")
_t("mm.migrate_batch", "op", "kernel continuation: migrate the next batch of pages off an LMB being offlined")
_t("uevent", "action lmb", "kernel memory block uevent (online/offline) to udev")
_t("udev.rebuild", "op step", "kdumpctl start continuation: one step of check_rebuild / the initrd rebuild (timer)")
_t("udev.settle", "op", "kdump-udev-throttler continuation: `sleep 1 && udevadm settle` (timer)")

# --- kernel continuations -----------------------------------------------------------------
_t("fadump.retry", "op", "RTAS busy: retry the configure-kernel-dump call after the busy delay (timer)")
_t("lock.wake", "op lock", "a released kernel lock wakes its next waiting operation")


# The simulator's own schema, frozen here: types a test or tool registers later may be
# sent, but never change what a log header records.
_SIM_SCHEMA: dict[str, int] = {t.name: t.version for t in _TYPES.values()}
_SIM_ORDER: dict[str, tuple[str, ...]] = {t.name: t.order for t in _TYPES.values()}


def known(name: str) -> bool:
    return name in _TYPES


def get(name: str) -> EventType:
    return _TYPES[name]


def all_types() -> list[EventType]:
    """Every type, in declaration order (stable, used by docs and the log header)."""
    return list(_TYPES.values())


def schema_versions() -> dict[str, int]:
    """The version of every type the simulator itself declares."""
    return dict(_SIM_SCHEMA)


def wire_schema() -> dict[str, tuple[str, ...]]:
    """type -> payload field order, for the simulator's own types (frozen at import).

    The log stores these payloads as positional arrays in this order; the log
    header records a digest of this table and of the versions (events/codec.py).
    """
    return dict(_SIM_ORDER)


class PayloadError(ValueError):
    pass


def check_payload(name: str, payload: dict[str, Any]) -> None:
    """Refuse an unknown type or a payload whose keys differ from the declaration."""
    t = _TYPES.get(name)
    if t is None:
        raise PayloadError(f"unknown event type {name!r}")
    if payload.keys() != t.fields:
        raise PayloadError(
            f"{name}: payload fields {sorted(payload)} != declared {sorted(t.fields)}")
