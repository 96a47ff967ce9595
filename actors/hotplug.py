"""The memory hotplug manager: drmgr, the pseries DLPAR sequence, and udev.

Owns the DLPAR operation (which LMBs it has taken, which are in transit) and the
udev rule (actors/udev.py). It drives the kernel one step per event and never reads
kernel state: it asks. DLPAR holds the kernel's device-hotplug lock for the whole
operation and does not take fadump_mutex, as in the 2018 kernel.

Everything here runs on the production kernel (the pseries DLPAR code in the kernel,
drmgr, udev, systemd and kdumpctl in its userspace), so it dies with it: the kernel
makes the RTAS calls that assign or release an LMB (they travel kernel -> firmware,
on the channel os-term uses, so none reaches firmware after the crash) and, when it
crashes, sends `hp.crashed`; from then on this actor ends every operation and
handles nothing.
"""
from __future__ import annotations

from typing import Any, Generator

from fadumpsim.actors import errno
from fadumpsim.actors.commands import parse_command
from fadumpsim.actors.ops import Call, OpActor
from fadumpsim.actors.udev import UdevConfig, make_rule
from fadumpsim.events.envelope import Event

DRC_BASE = 0x80000000
PR = "pseries-hotplug-mem: "


class Hotplug(OpActor):
    op_prefix = "h"

    def __init__(self, name: str, machine: Any, udev: UdevConfig | None = None) -> None:
        super().__init__(name)
        self.machine = machine
        self.in_transit: list[int] = []   # LMBs between the kernel and firmware
        self.udev_log: list[list[Any]] = []
        self.udev = make_rule(self, udev or UdevConfig())
        self.dead = False

    def deliver(self, event: Event) -> None:
        if self.dead:
            return  # the kernel it ran on crashed: drmgr, udev and kdumpctl are gone
        super().deliver(event)

    def on_hp_crashed(self, ev: Event) -> None:
        """The production kernel crashed: every DLPAR operation, the drmgr waiting on it,
        and any kdump.service job end here, unanswered (their shells died too)."""
        self.dead = True
        self.ops.clear()
        self.locks.clear()

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
            yield Call("kernel", "dlpar.release_drc", {"drc_index": DRC_BASE + l}, "dlpar.drc_result")
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
        # an index not in the drmem table is -EINVAL like a non-removable LMB, with the same
        # message (2018 prints the base of the loop cursor, one past the table; we print
        # the base the index names). There is no "Failed to find LMB" message.
        rc = -errno.EINVAL
        if r["removable"]:
            rc = yield from self._remove_lmb(lmb)
        base = lmb * self.machine.lmb_size
        if rc == 0:
            yield Call("kernel", "dlpar.release_drc", {"drc_index": drc}, "dlpar.drc_result")
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
        if len(free) < n:  # 2018 add-by-count's pre-check fails silently
            yield from self._unlock()
            return -errno.EINVAL
        added: list[int] = []
        for lmb in free:
            self.in_transit.append(lmb)  # from here until the kernel has it
            r = yield Call("kernel", "dlpar.acquire_drc", {"drc_index": DRC_BASE + lmb},
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
                    yield Call("kernel", "dlpar.release_drc", {"drc_index": DRC_BASE + lmb},
                               "dlpar.drc_result")
                    self.in_transit.remove(lmb)
            yield from self._unlock()
            return -errno.EINVAL
        for lmb in added:
            self.printk(f"Memory at {lmb * self.machine.lmb_size:x} (drc index "
                        f"{DRC_BASE + lmb:x}) was hot-added")
        yield from self._unlock()
        return 0

    # -- udev ---------------------------------------------------------------------------------------
    def on_uevent(self, ev: Event) -> None:
        p = ev.payload
        self.udev_log.append([ev.seq, f"memory{p['lmb']}: {p['action']}"])
        self.udev.on_uevent(p["action"], p["lmb"])

    def on_udev_rebuild(self, ev: Event) -> None:
        self.resume(ev)

    def on_udev_settle(self, ev: Event) -> None:
        self.resume(ev)

    def snapshot(self) -> dict[str, Any]:
        s = {"dead": self.dead, "in_transit": list(self.in_transit),
             "udev_log": self.udev_log[-20:],
             "udev": self.udev.snapshot()}
        s.update(self.ops_snapshot())
        return s
