"""The kernel's memory view: memblock, zones, and every page's class, as extents.

Owned by one kernel actor. Placement is deterministic and follows the zonelists of
a 2018 ppc64 kernel closely enough for hotplug to matter: kernel allocations come
from the kernel zone (never ZONE_MOVABLE) bottom-up, so kernel data concentrates in
low memory; user and page-cache allocations prefer ZONE_MOVABLE, then the kernel
zone top-down. Boot-time memory (kernel image, RTAS, PACAs and stacks, memmap) is
laid out as docs/memory-model.md explains.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from fadumpsim.actors.machine import Machine
from fadumpsim.actors.pagemap import PageMap
from fadumpsim.actors.sizes import MB

KERNEL_IMAGE = 32 * MB       # text, data, bss at physical 0
RTAS_SIZE = 16 * MB          # instantiated by firmware at the top of the RMA
BOOT_MISC = 2 * MB + 448 * 1024  # PACAs, emergency stacks, device tree, log buffer (in the RMA)
STRUCT_PAGE_SIZE = 64        # memmap: one struct page per page
MIGRATE_BATCH_PAGES = 256    # NR_OFFLINE_AT_ONCE_PAGES: pages per migration batch

MOVABLE_CLASSES = ("user", "cache")
MANAGED_CLASSES = ("free", "kernel", "user", "cache")
#: tag of the memory mem= leaves out of memblock (actors/kernel/mm.py enforce_memory_limit)
MEM_LIMIT_TAG = "mem=limit"


class OutOfMemory(Exception):
    pass


@dataclass
class Alloc:
    tag: str
    klass: str
    size: int


@dataclass
class KernelMM:
    machine: Machine
    pages: PageMap = field(init=False)
    reserved: list[list[int]] = field(default_factory=list)   # memblock.reserved [start, end)
    boot_kernel_bytes: int = 0        # PageReserved kernel memory (never managed)
    movable: tuple[int, int] | None = None   # ZONE_MOVABLE span
    cma: tuple[int, int] | None = None       # a CMA area (zone Normal, movable pages only)
    isolated: list[tuple[int, int]] = field(default_factory=list)
    allocs: list[Alloc] = field(default_factory=list)
    alloc_seq: int = 0

    def __post_init__(self) -> None:
        self.pages = PageMap(self.machine.page_size)

    # -- layout queries ----------------------------------------------------------------
    @property
    def ps(self) -> int:
        return self.machine.page_size

    def memory_regions(self) -> list[tuple[int, int]]:
        """memblock.memory: the merged present ranges (offline LMBs included; memory
        beyond mem= is not memblock memory)."""
        out: list[tuple[int, int]] = []
        for s, e, _k, t, _b in self.pages.all():
            if t == MEM_LIMIT_TAG:
                continue
            if out and out[-1][1] == s:
                out[-1] = (out[-1][0], e)
            else:
                out.append((s, e))
        return out

    def phys_mem_size(self) -> int:
        return sum(e - s for s, e in self.memory_regions())

    def end_of_dram(self) -> int:
        return self.pages.ends[-1] if len(self.pages) else 0

    def is_region_memory(self, start: int, size: int) -> bool:
        return self.pages.covered(start, start + size) == size

    def is_region_reserved(self, start: int, size: int) -> bool:
        """memblock_is_region_reserved(): does [start, start+size) overlap a reservation?"""
        end = start + size
        return any(s < end and start < e for s, e in self.reserved)

    def zone_of(self, addr: int) -> str:
        mv = self.movable
        return "Movable" if mv is not None and mv[0] <= addr < mv[1] else "Normal"

    def reserve(self, start: int, end: int) -> None:
        self.reserved.append([start, end])
        self.reserved.sort()

    # -- boot ----------------------------------------------------------------------------
    def boot_present(self, ranges: list[tuple[int, int]]) -> None:
        """memblock_add() of every assigned LMB range: all free to begin with."""
        for s, e in ranges:
            self.pages.assign(s, e, "free")

    def enforce_memory_limit(self, limit: int) -> int:
        """memblock_enforce_memory_limit(): memblock keeps the first `limit` bytes of memory.

        The LMBs beyond stay assigned by firmware (and in drmem), so their pages stay in
        the page map, as reserved with MEM_LIMIT_TAG: not memblock memory, not managed,
        not dumped. Returns the address the limit cut at (end of DRAM when nothing was cut).
        """
        total, cut = 0, None
        for s, e in self.memory_regions():
            if total + (e - s) >= limit:
                cut = s + (limit - total)
                break
            total += e - s
        end = self.end_of_dram()
        if cut is None or cut >= end:
            return end
        for s, e, _k, _t, _b in list(self.pages.pieces(cut, end)):
            self.pages.assign(s, e, "reserved", MEM_LIMIT_TAG, 0)
        self.reserved = [[a, min(b, cut)] for a, b in self.reserved if a < cut]
        return cut

    def boot_reserve_kernel(self, start: int, end: int, tag: str) -> None:
        """Boot-time kernel memory: memblock-reserved, PageReserved, never managed."""
        self.reserve(start, end)
        self.pages.assign(start, end, "kernel", tag, 0)
        self.boot_kernel_bytes += end - start

    def boot_reserve_other(self, start: int, end: int, tag: str) -> None:
        self.reserve(start, end)
        self.pages.assign(start, end, "reserved", tag, 0)

    def memblock_alloc_top_down(self, size: int, limit_lo: int, limit_hi: int) -> int:
        """memblock_alloc_range() top-down: the highest free range that fits.

        During boot every memblock reservation has a non-free class, so free pieces are
        exactly the unreserved memory.
        """
        for s, e, k, _t, _b in self.pages.pieces_reversed(limit_lo, limit_hi):
            if k == "free" and e - s >= size:
                return e - size
        raise OutOfMemory(f"memblock: cannot allocate {size >> 20}MB")

    # -- statistics ------------------------------------------------------------------------
    def by_class(self) -> dict[str, int]:
        return self.pages.bytes_by_class()

    def managed_bytes(self) -> int:
        c = self.by_class()
        return sum(c.get(k, 0) for k in MANAGED_CLASSES) - self.boot_kernel_bytes

    def meminfo(self) -> dict[str, int]:
        c = self.by_class()
        total = self.managed_bytes()
        free = c.get("free", 0)
        cache = c.get("cache", 0)
        return {"total": total, "free": free, "cache": cache, "used": total - free - cache,
                "available": free + cache}

    # -- allocation --------------------------------------------------------------------------
    def _free_pieces(self, klass: str) -> Iterator[tuple[int, int]]:
        """Free ranges in allocation order for `klass` (zonelist order)."""
        mv = self.movable or self.cma   # movable pages go there first; kernel pages never
        iso = self.isolated

        def usable(s: int, e: int) -> Iterator[tuple[int, int]]:
            for a, b in iso:  # isolated LMBs (being offlined) never receive pages
                if a < e and s < b:
                    if s < a:
                        yield from usable(s, a)
                    if b < e:
                        yield from usable(b, e)
                    return
            yield s, e

        def normal(reverse: bool) -> Iterator[tuple[int, int]]:
            src = self.pages.pieces_reversed(0, 1 << 62) if reverse else self.pages.pieces(0, 1 << 62)
            for s, e, k, _t, _b in src:
                if k != "free":
                    continue
                parts = [(s, e)]
                if mv is not None and mv[0] < e and s < mv[1]:
                    parts = [(s, min(e, mv[0])), (max(s, mv[1]), e)]
                    parts = [(a, b) for a, b in parts if a < b]
                    if reverse:
                        parts.reverse()
                for a, b in parts:
                    yield from (reversed(list(usable(a, b))) if reverse else usable(a, b))

        if klass == "kernel":
            yield from normal(False)
            return
        if mv is not None:
            for s, e, k, _t, _b in self.pages.pieces(mv[0], mv[1]):
                if k == "free":
                    yield from usable(s, e)
        yield from normal(True)

    def alloc(self, klass: str, size: int, tag: str | None = None) -> str:
        """Allocate `size` bytes of `klass`; returns the allocation's content tag."""
        ps = self.ps
        size = (size + ps - 1) // ps * ps
        if tag is None:
            self.alloc_seq += 1
            tag = f"{klass}:a{self.alloc_seq}"
        plan = self._place(klass, size)
        if plan is None:
            raise OutOfMemory(f"cannot allocate {size >> 20}MB of {klass} memory")
        base = 0
        for s, e in plan:
            self.pages.assign(s, e, klass, tag, base)
            base += (e - s) // ps
        self.allocs.append(Alloc(tag, klass, size))
        return tag

    def _place(self, klass: str, size: int) -> list[tuple[int, int]] | None:
        plan: list[tuple[int, int]] = []
        need = size
        reverse_normal = klass != "kernel"
        mv = self.movable or self.cma
        for s, e in self._free_pieces(klass):
            take = min(need, e - s)
            in_movable = mv is not None and mv[0] <= s < mv[1]
            if reverse_normal and not in_movable:
                plan.append((e - take, e))
            else:
                plan.append((s, s + take))
            need -= take
            if need == 0:
                return plan
        return None

    def free(self, klass: str, size: int) -> int:
        """Free up to `size` bytes of the newest `klass` allocations; returns bytes freed."""
        ps = self.ps
        want = (size + ps - 1) // ps * ps
        freed = 0
        while want > freed:
            idx = next((i for i in range(len(self.allocs) - 1, -1, -1)
                        if self.allocs[i].klass == klass), None)
            if idx is None:
                break
            a = self.allocs[idx]
            ext = [(s, e, b) for s, e, k, t, b in self.pages.all() if t == a.tag]
            # free from the allocation's highest page index down
            ext.sort(key=lambda x: x[2], reverse=True)
            for s, e, _b in ext:
                if want - freed <= 0:
                    break
                n = min(e - s, want - freed)
                self.pages.assign(e - n, e, "free")
                freed += n
                a.size -= n
            if a.size <= 0:
                self.allocs.pop(idx)
        return freed

    # -- hotplug -------------------------------------------------------------------------------
    def lmb_classes(self, start: int, end: int) -> dict[str, int]:
        return self.pages.bytes_by_class(start, end)

    def section_removable(self, start: int, end: int) -> bool:
        """is_mem_section_removable(): every pageblock free or movable, none reserved.

        PageReserved memory (boot allocations, the part of the fadump area that is
        not ZONE_MOVABLE) has class kernel or reserved, so the classes say it all.
        """
        return self.unremovable_until(start, end) is None

    def unremovable_until(self, start: int, end: int) -> int | None:
        """None when [start, end) is removable (section_removable), else an address up
        to which every range overlapping the blocker is unremovable too: the end of the
        unmovable extent or CMA area that blocks it (`end` for a hole). A scan for
        removable LMBs jumps there instead of asking each LMB of a 2TB kernel extent."""
        if self.pages.covered(start, end) != end - start:
            return end
        if self.cma is not None and self.cma[0] < end and start < self.cma[1]:
            return self.cma[1]  # has_unmovable_pages(): CMA pageblocks are never offlined
        for _s, _e, k, _t, _b in self.pages.pieces(start, end):
            if k not in ("free", "user", "cache"):
                i = self.pages._first(_s)   # the whole extent, not the clipped piece
                return max(self.pages.ends[i], end)
        return None

    def single_zone(self, start: int, end: int) -> bool:
        """test_pages_in_a_zone(): offline_pages refuses a range spanning two zones."""
        return self.zone_of(start) == self.zone_of(end - 1) and \
            self.machine.node_of(start) == self.machine.node_of(end - 1)

    def migrate_batch(self, start: int, end: int) -> tuple[int, bool]:
        """Migrate up to one batch of movable pages out of [start, end).

        Returns (bytes moved, done). Raises OutOfMemory when no room is left elsewhere.
        """
        budget = MIGRATE_BATCH_PAGES * self.ps
        moved = 0
        for s, e, k, t, b in list(self.pages.pieces(start, end)):
            if k not in MOVABLE_CLASSES:
                continue
            n = min(e - s, budget - moved)
            plan = self._place(k, n)
            if plan is None:
                raise OutOfMemory("no room to migrate movable pages")
            off = b
            for ds, de in plan:
                self.pages.assign(ds, de, k, t, off)
                off += (de - ds) // self.ps
            self.pages.assign(s, s + n, "free")
            moved += n
            if moved >= budget:
                break
        left = any(k in MOVABLE_CLASSES for _s, _e, k, _t, _b in self.pages.pieces(start, end))
        return moved, not left

    def set_offline(self, start: int, end: int) -> None:
        self.pages.assign(start, end, "offline")

    def set_online(self, start: int, end: int) -> None:
        self.pages.assign(start, end, "free")

    def remove(self, start: int, end: int) -> None:
        """remove_memory() + memblock_remove()."""
        self.pages.remove(start, end)
        keep = []
        for s, e in self.reserved:
            if s < end and start < e:
                if s < start:
                    keep.append([s, start])
                if end < e:
                    keep.append([end, e])
            else:
                keep.append([s, e])
        self.reserved = keep

    def add(self, start: int, end: int) -> None:
        """memblock_add() + add_memory() + online_pages()."""
        self.pages.assign(start, end, "free")
