"""Mainline fadump after 2018 (profile `upstream`), each step revertable.

Follows arch/powerpc/kernel/fadump.c and platforms/pseries/rtas-fadump.c as of
2024 (docs/profiles.md lists the steps and their messages):

- sizing: PAGE_ALIGN(fadump_calculate_reserve_size()) with the 320MB
  RTAS_FADUMP_MIN_BOOT_MEM (no RMA term), CMA alignment, at most 7 boot-memory
  regions, `boot_mem_top`; first-fit placement in free memblock above it;
- `cma` (2019): the boot-memory-sized head of the area becomes a CMA area
  (zone Normal, never offlinable); `fadump=nocma` keeps it reserved;
- `reregister` (2019): `echo 1` while registered unregisters and registers again;
- `boot-register`: setup_fadump() registers at boot;
- `hotplug-ready` (2024): the ELF core header is built by the capture kernel from
  its own memblock (the LMBs assigned at crash time); `/sys/kernel/fadump/
  hotplug_ready` reads 1. Reverted, the header is built at registration (2019-2023).

Messages carry the prefix of the file that prints them: `fadump: ` (fadump.c)
and `rtas fadump: ` (rtas-fadump.c).
"""
from __future__ import annotations

from typing import Any, Generator

from fadumpsim.actors import errno
from fadumpsim.actors.kernel.fwdump import (CPU_STATE_DATA, CRASH_INFO_MAGIC, REAL_MODE_REGION,
                                            REGISTER, UNREGISTER, INVALIDATE, make_fdm, section)
from fadumpsim.actors.kernel.sizing import MAX_BOOT_MEM_RATIO, PAGEBLOCK, align_up, area_size
from fadumpsim.actors.sizes import MB

FADUMP = "fadump: "
RTAS = "rtas fadump: "
RTAS_FADUMP_MIN_BOOT_MEM = 320 * MB    # 0x14000000: no RMA term since 2019
FADUMP_MAX_MEM_REGS = 7
CMA_MIN_ALIGNMENT = PAGEBLOCK          # CMA_MIN_ALIGNMENT_BYTES with 64K pages
#: sizeof(struct fadump_crash_info_header), version 1: magic, version, crashing_cpu,
#: vmcoreinfo_raddr/size, elfcorehdr_addr/size, pt_regs, cpu_mask (NR_CPUS=2048)
CRASH_INFO_HDR_V1 = 8 + 4 + 4 + 8 + 8 + 8 + 8 + 384 + 256


def parse_fadump_param(cmdline: str, cma: bool) -> tuple[bool, bool]:
    """early_fadump_param(): (enabled, nocma). `nocma` exists only with CMA (2019);
    `nonmovable` never reached mainline, so it leaves fadump disabled."""
    enabled = nocma = False
    for word in cmdline.split():
        key, _, val = word.partition("=")
        if key != "fadump":
            continue
        if val.startswith("on"):
            enabled = True
        elif val.startswith("off"):
            enabled = False
        elif cma and val.startswith("nocma"):
            enabled, nocma = True, True
    return enabled, nocma


def reserve_size(crashkernel: int | None, system_ram: int, log: list[str]) -> int:
    """fadump_calculate_reserve_size(): crashkernel= (capped at 25%), else 5% in
    256MB steps, at least RTAS_FADUMP_MIN_BOOT_MEM."""
    if crashkernel:
        size, max_size = crashkernel, system_ram // MAX_BOOT_MEM_RATIO
        if size > max_size:
            size = max_size
            log.append(f"{FADUMP}Adjusted boot memory size to {size >> 20}MB")
        return size
    size = (system_ram // 20) & ~0x0FFFFFFF
    return size if size > RTAS_FADUMP_MIN_BOOT_MEM else RTAS_FADUMP_MIN_BOOT_MEM


def boot_mem_regions(regions: list[tuple[int, int]], boot_memory_size: int
                     ) -> tuple[list[list[int]] | None, int]:
    """fadump_get_boot_mem_regions(): the memblock pieces holding the first
    `boot_memory_size` bytes (None past FADUMP_MAX_MEM_REGS) and boot_mem_top."""
    out: list[list[int]] = []
    need, hole, last_end = boot_memory_size, 0, 0
    for s, e in regions:
        hole += s - last_end
        take = min(e - s, need)
        out.append([s, take])
        need -= take
        last_end = e
        if need == 0:
            break
    top = boot_memory_size + hole
    return (out if len(out) <= FADUMP_MAX_MEM_REGS else None), top


def crash_ranges(regions: list[tuple[int, int]], boot_mem_top: int, boot_memory_size: int,
                 area: tuple[int, int]) -> list[list[int]]:
    """fadump_populate_elfcorehdr(): boot memory first (read from its copy), then every
    memblock range above boot_mem_top without the fadump reserved area."""
    out = [[0, boot_memory_size]]
    ra_s, ra_e = area
    for s, e in regions:
        if s < boot_mem_top:
            if e <= boot_mem_top:
                continue
            s = boot_mem_top
        for a, b in ((s, min(e, ra_s)), (max(s, ra_e), e)) if s < ra_e and ra_s < e else ((s, e),):
            if a < b:
                out.append([a, b])
    return out


class UpstreamMixin:
    """fadump.c / rtas-fadump.c of mainline, as methods of the kernel actor."""

    def upstream(self, step: str | None = None) -> bool:
        return self.cfg.profile == "upstream" and (step is None or self.cfg.mainline(step))

    def fadump_area_size(self) -> int:
        """get_fadump_area_size(): with the 2024 header no ELF headers live in the area."""
        fw, mm = self.fw, self.mm
        if not self.upstream("hotplug-ready"):
            return area_size(fw.boot_memory_size, fw.cpu_state_data_size, fw.hpte_region_size,
                             len(mm.memory_regions()), mm.ps)
        size = align_up(fw.cpu_state_data_size + fw.hpte_region_size, mm.ps)
        size += fw.boot_memory_size + CRASH_INFO_HDR_V1
        return align_up(size, mm.ps)  # memblock_reserve() rounds nothing; pages do

    # -- boot -----------------------------------------------------------------------------------
    def upstream_reserve_mem(self) -> int:
        """fadump_reserve_mem(): 1 when fadump reserved memory, 0 otherwise."""
        fw, mm, log = self.fw, self.mm, self.printk
        enabled, fw.nocma = parse_fadump_param(self.cfg.cmdline, self.upstream("cma"))
        fw.fadump_enabled = enabled
        if not enabled or not fw.fadump_supported:
            return 0
        if fw.fdm_active is not None:
            self._upstream_reserve_crash_area()
            return 1
        lines: list[str] = []
        bms = align_up(reserve_size(self.params.crashkernel, mm.phys_mem_size(), lines), mm.ps)
        self.print_cmdline_warnings()  # parse_crashkernel() ran
        for line in lines:
            log(line)
        if self.upstream("cma") and not fw.nocma:
            bms = align_up(bms, CMA_MIN_ALIGNMENT)
        fw.boot_memory_size = bms
        if bms < RTAS_FADUMP_MIN_BOOT_MEM:
            log(f"{FADUMP}Can't enable fadump with boot memory size ({bms:#x}) less than "
                f"{RTAS_FADUMP_MIN_BOOT_MEM:#x}")
            return self._upstream_disable()
        regs, top = boot_mem_regions(mm.memory_regions(), bms)
        if regs is None:
            log(f"{FADUMP}Too many holes in boot memory area to enable fadump")
            return self._upstream_disable()
        fw.boot_mem_regions, fw.boot_mem_top = regs, align_up(top, mm.ps)
        size = self.fadump_area_size()
        base = self._locate_reserve_mem(fw.boot_mem_top, size)
        if base is None or base + size > mm.end_of_dram():
            log(f"{FADUMP}Failed to find memory chunk for reservation!")
            return self._upstream_disable()
        mm.reserve(base, base + size)
        mm.pages.assign(base, base + size, "reserved", "fadump:area", 0)
        fw.reserve_dump_area_start, fw.reserve_dump_area_size = base, size
        log(f"{FADUMP}Reserved {size >> 20}MB of memory at {base:#016x} "
            f"(System RAM: {mm.phys_mem_size() >> 20}MB)")
        fw.fdm = make_fdm(base, fw.cpu_state_data_size, fw.hpte_region_size, bms)
        return 1

    def _upstream_disable(self) -> int:
        self.fw.fadump_enabled = False
        self.fw.reserve_dump_area_size = 0
        return 0

    def _locate_reserve_mem(self, base: int, size: int) -> int | None:
        """fadump_locate_reserve_mem(): first fit among free memblock ranges at or
        above `base` (at boot, free pages are exactly the unreserved memory)."""
        ps = self.mm.ps
        free: list[list[int]] = []
        for s, e, k, _t, _b in self.mm.pages.pieces(0, 1 << 62):
            if k != "free":
                continue
            if free and free[-1][1] == s:
                free[-1][1] = e
            else:
                free.append([s, e])
        for s, e in free:
            if s > base:
                base = align_up(s, ps)
            if e > base and e - base >= size:
                return base
        return None

    def _upstream_reserve_crash_area(self) -> None:
        """Capture kernel: rtas_fadump_get_config() then fadump_reserve_crash_area()."""
        fw, mm, log = self.fw, self.mm, self.printk
        log(f"{RTAS}Firmware-assisted dump is active.")
        rmr = section(fw.fdm_active, REAL_MODE_REGION)
        fw.boot_memory_size = fw.boot_mem_top = rmr["length"]
        fw.boot_mem_regions = [[rmr["source"], rmr["length"]]]
        log(f"{FADUMP}Firmware-assisted dump is active.")
        base, end = fw.boot_mem_top, mm.end_of_dram()
        for s, e in mm.memory_regions():
            if e < base:
                continue
            s = max(s, base)
            log(f"{FADUMP}Reserving {(e - s) >> 20}MB of memory at {s:#016x} "
                "for preserving crash data")
            for a, b, _k, _t, _b in list(mm.pages.pieces(s, e)):
                mm.pages.assign(a, b, "reserved", "oldmem", 0)
        mm.reserve(base, end)
        fw.reserve_dump_area_start, fw.reserve_dump_area_size = base, end - base
        fw.fadumphdr_addr = rmr["destination"] + rmr["length"]

    def fadump_cma_init(self) -> None:
        """fadump_cma_init(): the boot-memory-sized head of the area becomes CMA."""
        fw, mm = self.fw, self.mm
        if not self.upstream("cma") or not fw.fadump_enabled or fw.nocma or fw.dump_active \
                or not fw.reserve_dump_area_size or not fw.boot_memory_size:
            return
        base, size = fw.reserve_dump_area_start, fw.boot_memory_size
        # cma_init_reserved_mem(): aligned, reserved, within one zone/node
        if base % CMA_MIN_ALIGNMENT or size % CMA_MIN_ALIGNMENT or \
                not mm.is_region_reserved(base, size) or not mm.is_region_memory(base, size) or \
                self.machine.node_of(base) != self.machine.node_of(base + size - 1):
            self.printk(f"{FADUMP}Failed to init cma area for firmware-assisted dump,"
                        f"{-errno.EINVAL}")
            return
        mm.cma = (base, base + size)
        mm.pages.assign(base, base + size, "free")
        fw.cma = True
        self.printk(f"{FADUMP}Initialized {size:#x} bytes cma area at {base >> 20}MB from "
                    f"{fw.reserve_dump_area_size:#x} bytes of memory reserved for "
                    "firmware-assisted dump")

    def setup_fadump(self) -> Generator[Any, Any, None]:
        """setup_fadump(): register at boot (a subsys initcall, before userspace)."""
        fw = self.fw
        if self.upstream("boot-register") and fw.fadump_enabled and not fw.dump_active \
                and fw.reserve_dump_area_size:
            yield from self.upstream_register_fadump()

    # -- registration -------------------------------------------------------------------------
    def upstream_register_fadump(self) -> Generator[Any, Any, int]:
        """register_fadump() + rtas_fadump_register()."""
        fw, mm = self.fw, self.mm
        if not fw.reserve_dump_area_size or fw.fdm is None:
            return -errno.ENODEV
        rmr = section(fw.fdm, REAL_MODE_REGION)
        addr = fw.fadumphdr_addr = rmr["destination"] + rmr["length"]
        fw.registrations += 1
        ranges = None  # 2024: the capture kernel builds the ELF core header
        if not self.upstream("hotplug-ready"):
            ranges = crash_ranges(mm.memory_regions(), fw.boot_mem_top, fw.boot_memory_size,
                                  fw.reserved_area())
            fw.crash_memory_ranges = ranges
        self.blobs[addr] = {"magic": CRASH_INFO_MAGIC, "elfcorehdr": 0 if ranges is None else addr + 4096,
                            "crashing_cpu": -1, "regs": [], "online": [], "ranges": ranges,
                            "generation": fw.registrations}
        rc = yield from self._rtas_configure(REGISTER, fw.fdm)
        log = self.printk
        if rc == 0:
            log(f"{RTAS}Registration is successful!")
            fw.dump_registered = True
            return 0
        if rc == -1:
            log(f"{RTAS}Failed to register. Hardware Error({rc}).")
            return -errno.EIO
        if rc == -3:
            if not all(self._contiguous(s, s + n) for s, n in fw.boot_mem_regions):
                log(f"{RTAS}Can't have holes in boot memory area.")
            elif not self.is_reserved_memory_area_contiguous():
                log(f"{RTAS}Can't have holes in reserved memory area.")
            log(f"{RTAS}Failed to register. Parameter Error({rc}).")
            return -errno.EINVAL
        if rc == -9:
            log(f"{RTAS}Already registered!")
            fw.dump_registered = True
            return -errno.EEXIST
        log(f"{RTAS}Failed to register. Unknown Error({rc}).")
        return -errno.EIO

    def upstream_unregister(self) -> Generator[Any, Any, int]:
        rc = yield from self._rtas_configure(UNREGISTER, self.fw.fdm)
        if rc:
            self.printk(f"{RTAS}Failed to un-register - unexpected error({rc}).")
            return -errno.EIO
        self.fw.dump_registered = False
        return 0

    def upstream_invalidate(self) -> Generator[Any, Any, int]:
        rc = yield from self._rtas_configure(INVALIDATE, self.fw.fdm_active)
        if rc:
            self.printk(f"{RTAS}Failed to invalidate - unexpected error ({rc}).")
            return -errno.EIO
        self.fw.dump_active = False
        self.fw.fdm_active = None
        return 0

    # -- capture --------------------------------------------------------------------------------
    def capture_elfcorehdr(self, hdr: dict[str, Any]) -> dict[str, Any]:
        """process_fadump(): a version-1 header gets its ELF core header here, from this
        kernel's memblock, i.e. the LMBs firmware assigned at the crash."""
        if hdr.get("ranges") is not None:
            return hdr
        fw = self.fw
        cpu = section(fw.fdm_active, CPU_STATE_DATA)
        ra_s = cpu["destination"]
        ra = (ra_s, ra_s + self.fadump_area_size())
        return dict(hdr, ranges=crash_ranges(self.mm.memory_regions(), fw.boot_mem_top,
                                             fw.boot_memory_size, ra))

    def release_messages(self, old: tuple[int, int], keep: tuple[int, int]) -> None:
        """fadump_release_memory(): one line per range given back."""
        if not self.upstream():
            return
        for s, e in self.mm.memory_regions():
            s, e = max(s, old[0]), min(e, old[1])
            for a, b in ((s, min(e, keep[0])), (max(s, keep[1]), e)):
                if a < b:
                    self.printk(f"{FADUMP}freeing reserved memory ({a:#x} - {b:#x})")

    def upstream_sysfs_exists(self, name: str) -> bool:
        """fadump_init_files() runs whenever fadump is supported, enabled or not (unlike
        2018): /sys/kernel/fadump/* and the old-name links exist; release_mem only while
        a dump was active at boot, hotplug_ready only with the 2024 step."""
        if name == "release_mem":
            return self.release_mem_created
        if name == "hotplug_ready":
            return self.upstream("hotplug-ready")
        return self.fw.fadump_supported

    def fadump_sysfs_show(self, name: str) -> str | None:
        """/sys/kernel/fadump/{mem_reserved,hotplug_ready}; None where the file does not
        exist (before mainline, and hotplug_ready before 2024)."""
        if not self.upstream():
            return None
        if name == "mem_reserved":
            return f"{self.fw.reserve_dump_area_size}\n"
        if name == "hotplug_ready" and self.upstream("hotplug-ready"):
            return "1\n"
        return None

    def is_upstream_fadump_memory_area(self, addr: int, size: int) -> bool:
        """is_fadump_memory_area(): registered, and in the reserved area or at or below
        boot_mem_top (`addr <= boot_mem_top`, as the source writes it)."""
        fw = self.fw
        if not fw.dump_registered or not size:
            return False
        d_start, d_end = fw.reserved_area()
        if addr + size > d_start and addr <= d_end:
            return True
        return addr <= fw.boot_mem_top
