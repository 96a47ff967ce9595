"""The kernel side of pseries DLPAR memory: lmb_is_removable, offline, remove, add.

The hotplug manager (actors/hotplug.py) drives these one step per event. Offlining
migrates movable pages in batches, each its own `mm.migrate_batch` event, so a
registration, a crash or a sysfs write can land between two batches.
"""
from __future__ import annotations

from typing import Any, Generator

from fadumpsim.actors import errno
from fadumpsim.actors.kernel.mm import OutOfMemory
from fadumpsim.actors.lmbs import flag_runs
from fadumpsim.actors.ops import Acquire, Expect, Step

RMA_START = 0


class DlparMixin:
    # -- queries -------------------------------------------------------------------------------
    def lmb_range(self, lmb: int) -> tuple[int, int]:
        size = self.machine.lmb_size
        return lmb * size, (lmb + 1) * size

    def is_fadump_memory_area(self, addr: int, size: int) -> bool:
        """RFC 4/4 is_fadump_memory_area() (or is_fadump_boot_memory_area() without it)."""
        fw = self.fw
        if self.cfg.profile == "upstream":
            return self.is_upstream_fadump_memory_area(addr, size)
        if not fw.dump_registered:
            return False
        if self.cfg.has("hotplug-protect"):
            d_start, d_end = fw.reserved_area()
            if addr + size > d_start and addr <= d_end:
                return True
        return addr + size > RMA_START and addr <= fw.boot_memory_size

    def lmb_is_removable(self, lmb: int) -> tuple[bool, str]:
        ok, why, _next = self._lmb_removable(lmb)
        return ok, why

    def _lmb_removable(self, lmb: int) -> tuple[bool, str, int]:
        """lmb_is_removable() and the first LMB a scan need ask next: every LMB below it
        overlaps what made this one unremovable (an unmovable extent, a CMA area)."""
        if not self.drmem[lmb]:
            return False, "not assigned", lmb + 1
        s, e = self.lmb_range(lmb)
        if self.is_fadump_memory_area(s, e - s):
            return False, "fadump area", lmb + 1
        until = self.mm.unremovable_until(s, e)
        if until is not None:
            return False, "unmovable pages", max(lmb + 1, until // self.machine.lmb_size)
        return True, "", lmb + 1

    def fadump_area_end(self, lmb: int) -> int:
        """The first LMB after the run of fadump-area LMBs that `lmb` lies in (lmb + 1 when
        unknown). The 2018 predicate `addr + size > start and addr <= end` holds exactly for
        LMB indices [start // L, end // L + 1), so a scan can jump over a registered
        area's 13,000 LMBs (64TB) instead of asking each one (same answers, tested)."""
        fw = self.fw
        if not fw.dump_registered:
            return lmb + 1
        L = self.machine.lmb_size
        if self.cfg.profile == "upstream":
            # mainline: the reserved area, and `addr <= boot_mem_top` (the same index range)
            areas = [(RMA_START, fw.boot_mem_top), fw.reserved_area()]
        else:
            areas = [(RMA_START, fw.boot_memory_size)]
            if self.cfg.has("hotplug-protect"):
                areas.append(fw.reserved_area())
        end = lmb + 1
        for a, b in areas:
            if a // L <= lmb < b // L + 1:
                end = max(end, b // L + 1)
        return end

    def removable_lmbs(self, start: int = 0) -> Generator[int, None, None]:
        """Assigned LMBs from `start` on that lmb_is_removable() accepts, in order."""
        drmem, n, i = self.drmem, len(self.drmem), max(start, 0)
        while i < n:
            if drmem[i]:
                ok, why, nxt = self._lmb_removable(i)
                if ok:
                    yield i
                elif why == "fadump area":
                    i = self.fadump_area_end(i)
                    continue
                i = nxt
                continue
            i += 1

    # -- handlers ---------------------------------------------------------------------------------
    def on_hp_lock(self, ev: Any) -> None:
        hp_op = ev.payload["op"]

        def hold() -> Generator[Any, Any, None]:
            yield Acquire("device_hotplug")
            self.send(ev.src, "hp.locked", {"op": hp_op})
            yield Expect("hp.unlock")

        op = self.start_op("lock_device_hotplug", hold(), hp_op=hp_op)
        self.hp_lock_ops[hp_op] = op.id

    def on_hp_unlock(self, ev: Any) -> None:
        kop = self.hp_lock_ops.pop(ev.payload["op"], None)
        if kop is not None and kop in self.ops:
            op = self.ops[kop]
            op.waiting = ""
            self._advance(op, None)
        self.send(ev.src, "hp.unlocked", {"op": ev.payload["op"]})

    def on_hp_printk(self, ev: Any) -> None:
        self.printk(ev.payload["msg"])

    def on_hp_count_removable(self, ev: Any) -> None:
        want, n = ev.payload["want"], 0
        for _lmb in self.removable_lmbs():
            n += 1
            if n == want:
                break
        self.send(ev.src, "hp.removable_count", {"op": ev.payload["op"], "count": n})

    def on_hp_is_removable(self, ev: Any) -> None:
        p = ev.payload
        lmb, found, why = p["lmb"], False, "no such LMB"
        if p["exact"]:
            if 0 <= lmb < len(self.drmem):
                found, why = self.lmb_is_removable(lmb)
        else:
            why = "none left"
            nxt = next(self.removable_lmbs(lmb), -1)
            if nxt >= 0:
                lmb, found, why = nxt, True, ""
            else:
                lmb = -1
        self.send(ev.src, "hp.removable", {"op": p["op"], "lmb": lmb, "removable": found,
                                           "why": why})

    def on_hp_offline(self, ev: Any) -> None:
        self.start_op("offline_pages", self.offline_lmb(ev.src, ev.payload["op"], ev.payload["lmb"]))

    def offline_lmb(self, src: str, hp_op: str, lmb: int) -> Generator[Any, Any, None]:
        """device_offline() -> offline_pages(): isolate, migrate in batches, offline."""
        s, e = self.lmb_range(lmb)
        mm = self.mm
        rc = 0
        if not mm.single_zone(s, e):
            rc = -errno.EINVAL
        elif not mm.section_removable(s, e):
            rc = -errno.EBUSY  # start_isolate_page_range(): unmovable pages
        else:
            mm.isolated.append((s, e))
            try:
                while True:
                    try:
                        _moved, done = mm.migrate_batch(s, e)
                    except OutOfMemory:
                        rc = -errno.EBUSY
                        break
                    if done:
                        break
                    yield Step("mm.migrate_batch")
                    if not mm.section_removable(s, e):  # something unmovable landed
                        rc = -errno.EBUSY
                        break
            finally:
                mm.isolated.remove((s, e))
        # a failure's "memory offlining [mem ...] failed" is pr_debug in __offline_pages():
        # not in a default dmesg, so not in this log
        if not rc:
            mm.set_offline(s, e)
            self.send("hotplug", "uevent", {"action": "offline", "lmb": lmb})
        self.send(src, "hp.offlined", {"op": hp_op, "lmb": lmb, "rc": rc})

    def on_mm_migrate_batch(self, ev: Any) -> None:
        self.resume(ev)

    def on_hp_remove_memory(self, ev: Any) -> None:
        lmb = ev.payload["lmb"]
        s, e = self.lmb_range(lmb)
        self.mm.remove(s, e)
        self.drmem[lmb] = 0
        self.send(ev.src, "hp.done", {"op": ev.payload["op"], "lmb": lmb, "rc": 0})

    def on_hp_add_memory(self, ev: Any) -> None:
        lmb = ev.payload["lmb"]
        s, e = self.lmb_range(lmb)
        if self.mm.pages.covered(s, e):
            self.mm.set_online(s, e)  # rollback of an offlined, not yet removed LMB
        else:
            self.mm.add(s, e)
        self.drmem[lmb] = 1
        self.send("hotplug", "uevent", {"action": "online", "lmb": lmb})
        self.send(ev.src, "hp.done", {"op": ev.payload["op"], "lmb": lmb, "rc": 0})

    # -- RTAS calls of dlpar_acquire_drc()/dlpar_release_drc(), made by the kernel ----------------
    def on_dlpar_acquire_drc(self, ev: Any) -> None:
        self.send("firmware", "dlpar.acquire_drc", dict(ev.payload))

    def on_dlpar_release_drc(self, ev: Any) -> None:
        self.send("firmware", "dlpar.release_drc", dict(ev.payload))

    def on_dlpar_drc_result(self, ev: Any) -> None:
        self.send("hotplug", "dlpar.drc_result", dict(ev.payload))

    def on_hp_lmbs(self, ev: Any) -> None:
        self.send(ev.src, "hp.lmb_table", {"op": ev.payload["op"], "lmbs": flag_runs(self.drmem)})

    def on_hp_sysfs_write(self, ev: Any) -> None:
        p = ev.payload
        src = ev.src

        def write() -> Generator[Any, Any, None]:
            rc = yield from self.fadump_register_store(p["value"] + "\n")  # kdumpctl's echo
            self.send(src, "hp.sysfs_result", {"op": p["op"], "rc": rc})

        self.start_op("fadump_register_store", write(), by="udev")

    def on_hp_sysfs_read(self, ev: Any) -> None:
        """kdumpctl's check_current_status (cat fadump_registered) and the 2024 udev rule's
        reads (fadump_enabled, fadump/hotplug_ready); value None: no such file."""
        path = ev.payload["path"]
        name = path.rsplit("/", 1)[1].removeprefix("fadump_")
        value: str | None = None
        if self.sysfs_file_exists(name, path):
            value = {"registered": f"{int(self.fw.dump_registered)}\n",
                     "enabled": f"{int(self.fw.fadump_enabled)}\n"}.get(name) \
                or self.fadump_sysfs_show(name)
        self.send(ev.src, "hp.sysfs_value", {"op": ev.payload["op"], "value": value})

