"""The kernel's fadump: reservation at boot, ZONE_MOVABLE, registration, crash.

Everything here runs inside the kernel actor. Multi-step operations are generators
driven by actors/ops.py: `register_fadump()` builds the crash memory ranges from
memblock *now*, writes the crash info header and the ELF core header description
into the reserved area, then waits for firmware's RTAS answer while the kernel
keeps handling other events.
"""
from __future__ import annotations

from typing import Any, Generator

from fadumpsim.actors import errno
from fadumpsim.actors.kernel.fwdump import (BUSY_CODES, CRASH_INFO_MAGIC, INVALIDATE, REAL_MODE_REGION,
                                  REGISTER, UNREGISTER, busy_delay_ns, make_fdm, section)
from fadumpsim.actors.kernel.sizing import PAGEBLOCK, align_up, area_size, calculate_reserve_size
from fadumpsim.actors.kernel.sysfs import kstrtoint
from fadumpsim.actors.ops import Acquire, Call, Step

RMA_START = 0
#: fadump.c's `#define pr_fmt(fmt) "fadump: " fmt`: every pr_info/pr_err/pr_warn carries it;
#: its bare printk(KERN_*) lines do not (the 2018 source mixes both; see `pr` below)
PR_FMT = "fadump: "


class FadumpMixin:
    """fadump.c, as methods of the kernel actor."""

    def pr(self, msg: str) -> None:
        """pr_info/pr_err/pr_warn of fadump.c: the line gets pr_fmt's `fadump: `.
        `self.printk` is the bare printk(KERN_*) of the same file (no prefix)."""
        self.printk(PR_FMT + msg)

    # -- boot ---------------------------------------------------------------------------
    def fadump_reserve_mem(self) -> int:
        """fadump_reserve_mem(): size, place and reserve the area (or the crash area);
        1 when fadump reserved memory, 0 otherwise (then the kdump path runs)."""
        if self.cfg.profile == "upstream":
            return self.upstream_reserve_mem()
        fw, mm, log = self.fw, self.mm, self.printk  # log: bare printk; self.pr: pr_*()
        p = self.params
        fw.fadump_enabled, fw.nonmovable = p.enabled, p.nonmovable and self.cfg.has("zone-movable")
        if self.cfg.profile == "classic" or not self.cfg.has("zone-movable"):
            # without the series there is no fadump=nonmovable: early_fadump_param
            # does not know it, fadump stays disabled
            if p.nonmovable:
                fw.fadump_enabled = False
        if not fw.fadump_enabled or not fw.fadump_supported:
            return 0
        if fw.fdm_active is not None:
            fw.boot_memory_size = section(fw.fdm_active, REAL_MODE_REGION)["length"]
        else:
            lines: list[str] = []
            bms = calculate_reserve_size(p, mm.phys_mem_size(), self.machine.rma_size, lines,
                                         end_of_dram=mm.end_of_dram())
            self.print_cmdline_warnings()  # parse_crashkernel() ran
            for line in lines:
                self.pr(line)
            if self.cfg.has("zone-movable"):
                # RFC 2/4, in fadump_reserve_mem()'s else-branch: unconditional, so
                # fadump=nonmovable crashkernel=300M gives 304MB
                bms = align_up(bms, PAGEBLOCK)
            fw.boot_memory_size = bms
        # mem=: reserve the area beyond the limit and raise the limit by the area size
        end = mm.end_of_dram()
        if self.memory_limit and self.memory_limit < end:
            size = area_size(fw.boot_memory_size, fw.cpu_state_data_size, fw.hpte_region_size,
                             len(mm.memory_regions()), mm.ps)
            self.memory_limit = self.memory_limit + size if self.memory_limit + size < end else end
            log(f"Adjusted memory_limit for firmware-assisted dump, now {self.memory_limit:#016x}")
        memory_boundary = self.memory_limit or end
        if fw.fdm_active is not None:
            log("Firmware-assisted dump is active.")
            base = fw.boot_memory_size
            size = memory_boundary - base
            mm.reserve(base, memory_boundary)
            for s, e, k, _t, _b in list(mm.pages.pieces(base, memory_boundary)):
                mm.pages.assign(s, e, "reserved", "oldmem", 0)
            log(f"Reserved {size >> 20}MB of memory at {base >> 20}MB for saving crash dump")
            rmr = section(fw.fdm_active, REAL_MODE_REGION)
            fw.fadumphdr_addr = rmr["destination"] + rmr["length"]
        else:
            size = area_size(fw.boot_memory_size, fw.cpu_state_data_size, fw.hpte_region_size,
                             len(mm.memory_regions()), mm.ps)
            base = fw.boot_memory_size
            while base <= memory_boundary - size:
                if mm.is_region_memory(base, size) and not mm.is_region_reserved(base, size):
                    break
                base += size
            if base > memory_boundary - size:
                self.pr("Failed to reserve memory")
                return 0
            mm.reserve(base, base + size)
            for s, e, _k, _t, _b in list(mm.pages.pieces(base, base + size)):
                mm.pages.assign(s, e, "reserved", "fadump:area", 0)
            self.pr(f"Reserved {size >> 20}MB of memory at {base >> 20}MB for firmware-assisted dump "
                f"(System RAM: {mm.phys_mem_size() >> 20}MB)")
        fw.reserve_dump_area_start, fw.reserve_dump_area_size = base, size
        if fw.fdm_active is None:
            fw.fdm = make_fdm(base, fw.cpu_state_data_size, fw.hpte_region_size, fw.boot_memory_size)
        return 1

    def fadump_init_reserved_mem(self) -> None:
        """RFC 2/4 fadump_init_reserved_mem(): mark the boot-memory-sized head movable."""
        fw = self.fw
        if self.cfg.profile == "upstream":
            return self.fadump_cma_init()
        if not self.cfg.has("zone-movable") or not fw.fadump_enabled or fw.nonmovable \
                or fw.dump_active or not fw.reserve_dump_area_size:
            return
        base, size = fw.reserve_dump_area_start, fw.boot_memory_size
        if not size:
            return
        rc = self.zone_movable_init_reserved_mem(base, size)
        if rc:
            self.pr(f"Failed to init zone movable area for firmware-assisted dump,{rc}")
            return
        fw.zone_movable = True
        self.pr(f"Initialized {size:#x} bytes as zone movable area at {base >> 20}MB from "
                    f"{fw.reserve_dump_area_size:#x} bytes of memory reserved for firmware-assisted dump")

    def zone_movable_init_reserved_mem(self, base: int, size: int) -> int:
        """RFC 1/4: every failure case returns -EINVAL, as the patch does."""
        mm = self.mm
        if not size or not mm.is_region_reserved(base, size):
            return -errno.EINVAL
        if base % PAGEBLOCK or size % PAGEBLOCK:
            return -errno.EINVAL
        # zone_movable_activate_area(): every pfn valid and in the first pfn's zone
        if not mm.is_region_memory(base, size) or \
                self.machine.node_of(base) != self.machine.node_of(base + size - 1):
            self.printk("Zone movable could not be activated")  # mm/page_alloc.c: no pr_fmt
            return -errno.EINVAL
        mm.movable = (base, base + size)
        for s, e, _k, _t, _b in list(mm.pages.pieces(base, base + size)):
            mm.pages.assign(s, e, "free")
        return 0

    # -- sysfs --------------------------------------------------------------------------------
    def fadump_register_store(self, value: str) -> Generator[Any, Any, int]:
        """fadump_register_store(): returns 0 or -errno (the shell prints it)."""
        fw = self.fw
        if not fw.fadump_enabled or fw.fdm_active is not None:
            return -errno.EPERM
        rc, val = kstrtoint(value, 0)  # mid-2018: kstrtoint(buf, 0, &input) or -EINVAL
        if rc:
            return -errno.EINVAL
        yield Acquire("fadump_mutex")
        if self.cfg.hotplug_lock:
            yield Acquire("device_hotplug")
        ret = 0
        if val == 0:
            if fw.dump_registered:
                yield from self.fadump_unregister_dump()
        elif val == 1:
            if fw.dump_registered and self.cfg.mainline("reregister"):
                yield from self.fadump_unregister_dump()  # 2019: re-register in one write
            if fw.dump_registered:
                ret = -errno.EEXIST
            else:
                ret = yield from self.register_fadump()
        else:
            ret = -errno.EINVAL
        return ret

    def _rtas_configure(self, cmd: int, fdm: dict[str, Any]) -> Generator[Any, Any, int]:
        """rtas_call(ibm,configure-kernel-dump) with the busy-retry loop."""
        while True:
            reply = yield Call("firmware", "rtas.configure_kernel_dump",
                               {"cmd": cmd, "fdm": fdm}, "rtas.return")
            rc = reply["status"]
            if rc in BUSY_CODES:
                yield Step("fadump.retry", delay=busy_delay_ns(rc))
                continue
            return rc

    def register_fadump(self) -> Generator[Any, Any, int]:
        if self.cfg.profile == "upstream":
            return (yield from self.upstream_register_fadump())
        fw, mm = self.fw, self.mm
        if not fw.reserve_dump_area_size or fw.fdm is None:
            return -errno.ENODEV
        # fadump_setup_crash_memory_ranges(): from memblock, now
        ranges = [[RMA_START, fw.boot_memory_size]]
        ra_s, ra_e = fw.reserved_area()
        for s, e in mm.memory_regions():
            if s < fw.boot_memory_size:
                if e > fw.boot_memory_size:
                    s = fw.boot_memory_size
                else:
                    continue
            # fadump_exclude_reserved_area()
            if s < ra_e and ra_s < e:
                if s < ra_s:
                    ranges.append([s, ra_s])
                if ra_e < e:
                    ranges.append([ra_e, e])
            else:
                ranges.append([s, e])
        fw.crash_memory_ranges = ranges
        rmr = section(fw.fdm, REAL_MODE_REGION)
        addr = rmr["destination"] + rmr["length"]
        fw.fadumphdr_addr = addr
        fw.registrations += 1
        # init_fadump_header() + fadump_create_elfcore_headers(): into the reserved area
        self.blobs[addr] = {"magic": CRASH_INFO_MAGIC, "elfcorehdr": addr + 4096,
                            "crashing_cpu": -1, "regs": [], "online": [],
                            "ranges": [list(r) for r in ranges], "generation": fw.registrations}
        rc = yield from self._rtas_configure(REGISTER, fw.fdm)
        if rc == 0:
            self.printk("firmware-assisted kernel dump registration is successful")
            fw.dump_registered = True
            return 0
        if rc == -1:
            self.printk("Failed to register firmware-assisted kernel dump. Hardware Error(-1).")
            return -errno.EIO
        if rc == -3:
            if not self.is_boot_memory_area_contiguous():
                self.pr("Can't have holes in boot memory area while registering fadump")
            elif self.cfg.has("hole-message") and not self.is_reserved_memory_area_contiguous():
                self.pr("Can't have holes in reserved memory area while registering fadump")
            self.printk("Failed to register firmware-assisted kernel dump. Parameter Error(-3).")
            return -errno.EINVAL
        if rc == -9:
            self.printk("firmware-assisted kernel dump is already  registered.")
            fw.dump_registered = True
            return -errno.EEXIST
        self.pr(f"Failed to register. Unknown Error({rc}).")
        return -errno.EIO

    def _contiguous(self, d_start: int, d_end: int) -> bool:
        """Walk memblock.memory: is [d_start, d_end) covered without a hole?"""
        for s, e in self.mm.memory_regions():
            start, end = max(d_start, s), min(d_end, e)
            if d_start < end:
                if start > d_start:
                    return False
                if end == d_end:
                    return True
                d_start = end
        return False

    def is_boot_memory_area_contiguous(self) -> bool:
        return self._contiguous(RMA_START, self.fw.boot_memory_size)

    def is_reserved_memory_area_contiguous(self) -> bool:
        s, e = self.fw.reserved_area()
        return self._contiguous(s, e)

    def fadump_unregister_dump(self) -> Generator[Any, Any, int]:
        if self.cfg.profile == "upstream":
            return (yield from self.upstream_unregister())
        rc = yield from self._rtas_configure(UNREGISTER, self.fw.fdm)
        if rc:
            self.printk(f"Failed to un-register firmware-assisted dump. unexpected error({rc}).")
            return rc
        self.fw.dump_registered = False
        return 0

    def fadump_invalidate_dump(self) -> Generator[Any, Any, int]:
        if self.cfg.profile == "upstream":
            return (yield from self.upstream_invalidate())
        rc = yield from self._rtas_configure(INVALIDATE, self.fw.fdm_active)
        if rc:
            self.pr("Failed to invalidate firmware-assisted dump registration. "
                        f"Unexpected error ({rc}).")
            return rc
        self.fw.dump_active = False
        self.fw.fdm_active = None
        return 0

    def fadump_invalidate_release_mem(self) -> Generator[Any, Any, None]:
        """Invalidate the dump, then give the crash-time reservation back (not the area)."""
        fw, mm = self.fw, self.mm
        yield Acquire("fadump_mutex")
        if not fw.dump_active or fw.fdm_active is None:
            return
        dest = section(fw.fdm_active, 0x0001)["destination"]
        self.vmcore = None
        yield from self.fadump_invalidate_dump()
        old_s, old_e = fw.reserved_area()
        fw.reserve_dump_area_start = dest
        fw.reserve_dump_area_size = self.fadump_area_size()
        ra_s, ra_e = fw.reserved_area()
        self.release_messages((old_s, old_e), (ra_s, ra_e))
        # fadump_release_memory(): everything but the new reserved area goes back,
        # into the kernel zone (ZONE_MOVABLE only at the next fresh boot)
        mm.reserved = [r for r in mm.reserved if not (r[0] == old_s and r[1] == old_e)]
        mm.reserve(ra_s, ra_e)
        for s, e, k, _t, _b in list(mm.pages.pieces(old_s, old_e)):
            if k != "reserved":
                continue
            for a, b in ((s, min(e, ra_s)), (max(s, ra_e), e)):
                if a < b:
                    mm.pages.assign(a, b, "free")
            if max(s, ra_s) < min(e, ra_e):
                mm.pages.assign(max(s, ra_s), min(e, ra_e), "reserved", "fadump:area", 0)
        fw.fdm = make_fdm(ra_s, fw.cpu_state_data_size, fw.hpte_region_size, fw.boot_memory_size)
        fw.fadumphdr_addr = 0
