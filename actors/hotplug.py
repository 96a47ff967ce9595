"""The memory hotplug manager: drmgr, the pseries DLPAR sequence, and udev.

Owns the DLPAR operation (which LMBs it has taken, which are in transit) and the
kdump-utils udev rule. It drives the kernel one step per event and never reads
kernel state: it asks. DLPAR holds the kernel's device-hotplug lock for the whole
operation and does not take fadump_mutex, as in the 2018 kernel.
"""
from __future__ import annotations

from typing import Any, Generator

from fadumpsim.actors import errno
from fadumpsim.actors.commands import parse_command
from fadumpsim.actors.kdump_udev import MainlineUdevRules
from fadumpsim.actors.ops import Call, OpActor, Step
from fadumpsim.events.envelope import Event

DRC_BASE = 0x80000000
PR = "pseries-hotplug-mem: "
#: kdumpctl reload's initrd rebuild: steps and virtual time per step (ns)
REBUILD_STEPS = ("mkdumprd: collect modules", "mkdumprd: dracut --hostonly", "mkdumprd: install initrd")
REBUILD_STEP_NS = 2_000_000_000


class Hotplug(MainlineUdevRules, OpActor):
    op_prefix = "h"

    def __init__(self, name: str, machine: Any, udev_rule: str | bool = "none") -> None:
        super().__init__(name)
        self.machine = machine
        if isinstance(udev_rule, bool):  # udev_reload = true: the 2018 rule
            udev_rule = "try-restart-2018" if udev_rule else "none"
        self.udev_rule = udev_rule
        self.in_transit: list[int] = []   # LMBs between the kernel and firmware
        self.udev_log: list[list[Any]] = []
        self.reloads = 0

    def printk(self, msg: str) -> None:
        self.send("kernel", "hp.printk", {"level": 6, "msg": PR + msg})

    # -- drmgr -------------------------------------------------------------------------------
    def on_cmd_run(self, ev: Event) -> None:
        cmd = parse_command("hotplug", ev.payload["command"])
        if cmd["action"] == "remove" and cmd["count"]:
            gen = self.remove_by_count(cmd["count"])
        elif cmd["action"] == "remove":
            gen = self.remove_by_index(cmd["drc_index"])
        else:
            gen = self.add_by_count(cmd["count"])

        def drmgr() -> Generator[Any, Any, None]:
            rc = yield from gen
            out = "Validating Memory DLPAR capability...yes.\n"
            if rc:
                self.send(ev.src, "cmd.result", {
                    "index": ev.payload["index"], "stdout": out, "exit": 1,
                    "stderr": f"drmgr: write to /sys/kernel/dlpar failed: {errno.strerror(rc)}\n"})
            else:
                self.send(ev.src, "cmd.result", {"index": ev.payload["index"], "stdout": out,
                                                 "stderr": "", "exit": 0})
        self.start_op("drmgr", drmgr(), command=ev.payload["command"])

    def _lock(self) -> Generator[Any, Any, None]:
        yield Call("kernel", "hp.lock", {}, "hp.locked")

    def _unlock(self) -> Generator[Any, Any, None]:
        """unlock_device_hotplug(), acknowledged: the hotplug->kernel channel is FIFO, so
        every printk of the operation is in the kernel log before drmgr returns."""
        yield Call("kernel", "hp.unlock", {}, "hp.unlocked")

    def remove_by_count(self, n: int) -> Generator[Any, Any, int]:
        """dlpar_memory_remove_by_count()."""
        yield from self._lock()
        self.printk(f"Attempting to hot-remove {n} LMB(s)")
        r = yield Call("kernel", "hp.count_removable", {"want": n}, "hp.removable_count")
        if r["count"] < n:
            self.printk(f"Not enough LMBs available ({r['count']} of {n}) to satisfy request")
            yield from self._unlock()
            return -errno.EINVAL
        removed: list[int] = []
        lmb = 0
        while len(removed) < n:
            r = yield Call("kernel", "hp.is_removable", {"lmb": lmb, "exact": False}, "hp.removable")
            if not r["removable"]:
                break
            lmb = r["lmb"]
            rc = yield from self._remove_lmb(lmb)
            if rc == 0:
                removed.append(lmb)
            lmb += 1
        if len(removed) != n:
            self.printk("Memory hot-remove failed, adding LMB's back")
            for l in removed:
                yield Call("kernel", "hp.add_memory", {"lmb": l}, "hp.done")
                self.in_transit.remove(l)
            yield from self._unlock()
            return -errno.EINVAL
        for l in removed:
            yield Call("firmware", "dlpar.release_drc", {"drc_index": DRC_BASE + l}, "dlpar.drc_result")
            self.in_transit.remove(l)
            self.printk(f"Memory at {l * self.machine.lmb_size:x} was hot-removed")
        yield from self._unlock()
        return 0

    def _remove_lmb(self, lmb: int) -> Generator[Any, Any, int]:
        """dlpar_remove_lmb() after lmb_is_removable(): offline, then remove_memory."""
        r = yield Call("kernel", "hp.offline", {"lmb": lmb}, "hp.offlined")
        if r["rc"]:
            return r["rc"]
        self.in_transit.append(lmb)
        yield Call("kernel", "hp.remove_memory", {"lmb": lmb}, "hp.done")
        return 0

    def remove_by_index(self, drc: int) -> Generator[Any, Any, int]:
        """dlpar_memory_remove_by_index()."""
        yield from self._lock()
        self.printk(f"Attempting to hot-remove LMB, drc index {drc:x}")
        lmb = drc - DRC_BASE
        r = yield Call("kernel", "hp.is_removable", {"lmb": lmb, "exact": True}, "hp.removable")
        if r["why"] == "no such LMB":
            self.printk(f"Failed to find LMB, drc index {drc:x}")  # invalid index: -EINVAL
            yield from self._unlock()
            return -errno.EINVAL
        rc = -errno.EINVAL
        if r["removable"]:
            rc = yield from self._remove_lmb(lmb)
        base = lmb * self.machine.lmb_size
        if rc == 0:
            yield Call("firmware", "dlpar.release_drc", {"drc_index": drc}, "dlpar.drc_result")
            self.in_transit.remove(lmb)
            self.printk(f"Memory at {base:x} was hot-removed")
        else:
            self.printk(f"Failed to hot-remove memory at {base:x}")
        yield from self._unlock()
        return rc

    def add_by_count(self, n: int) -> Generator[Any, Any, int]:
        """dlpar_memory_add_by_count()."""
        yield from self._lock()
        self.printk(f"Attempting to hot-add {n} LMB(s)")
        t = yield Call("kernel", "hp.lmbs", {}, "hp.lmb_table")
        free = [f + i for f, c, a in t["lmbs"] if not a for i in range(c)]
        if len(free) < n:
            self.printk(f"Not enough LMBs available ({len(free)} of {n}) to satisfy request")
            yield from self._unlock()
            return -errno.EINVAL
        added: list[int] = []
        for lmb in free:
            self.in_transit.append(lmb)  # from here until the kernel has it
            r = yield Call("firmware", "dlpar.acquire_drc", {"drc_index": DRC_BASE + lmb},
                           "dlpar.drc_result")
            if r["rc"]:
                self.in_transit.remove(lmb)
                continue
            yield Call("kernel", "hp.add_memory", {"lmb": lmb}, "hp.done")
            self.in_transit.remove(lmb)
            added.append(lmb)
            if len(added) == n:
                break
        if len(added) != n:
            self.printk("Memory hot-add failed, removing any added LMBs")
            for lmb in added:
                rc = yield from self._remove_lmb(lmb)
                if rc == 0:
                    yield Call("firmware", "dlpar.release_drc", {"drc_index": DRC_BASE + lmb},
                               "dlpar.drc_result")
                    self.in_transit.remove(lmb)
            yield from self._unlock()
            return -errno.EINVAL
        for lmb in added:
            self.printk(f"Memory at {lmb * self.machine.lmb_size:x} (drc index "
                        f"{DRC_BASE + lmb:x}) was hot-added")
        yield from self._unlock()
        return 0

    # -- udev -------------------------------------------------------------------------------------
    def on_uevent(self, ev: Event) -> None:
        p = ev.payload
        self.udev_log.append([ev.seq, f"memory{p['lmb']}: {p['action']}"])
        if self.udev_rule == "try-restart-2018":
            self.reloads += 1
            self.start_op("kdumpctl-reload", self.kdumpctl_reload(p["action"], p["lmb"]))
        elif self.udev_rule == "reload-throttled-2018":
            self.start_op("kdump-udev-throttler", self.rule_reload_throttled())
        elif self.udev_rule == "hotplug-ready-2024":
            self.start_op("98-kexec.rules", self.rule_hotplug_ready())

    def kdumpctl_reload(self, action: str, lmb: int) -> Generator[Any, Any, None]:
        """2018 kdump-utils rule: echo 0, rebuild the initrd (several steps), echo 1."""
        r = yield Call("kernel", "hp.sysfs_write",
                       {"path": "/sys/kernel/fadump_registered", "value": "0"}, "hp.sysfs_result")
        self.udev_log.append([self._current.seq, f"kdumpctl: echo 0 -> {r['rc']}"])
        for i, _what in enumerate(REBUILD_STEPS):
            yield Step("udev.rebuild", {"step": i + 1}, delay=REBUILD_STEP_NS)
        r = yield Call("kernel", "hp.sysfs_write",
                       {"path": "/sys/kernel/fadump_registered", "value": "1"}, "hp.sysfs_result")
        self.udev_log.append([self._current.seq, f"kdumpctl: echo 1 -> {r['rc']}"])

    def on_udev_rebuild(self, ev: Event) -> None:
        self.resume(ev)

    def snapshot(self) -> dict[str, Any]:
        s = {"in_transit": list(self.in_transit), "udev_log": self.udev_log[-20:],
             "reloads": self.reloads}
        s.update(self.ops_snapshot())
        return s
