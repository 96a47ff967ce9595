"""Input data model: the memory of a crashed kernel as /proc/vmcore would expose it.

The capture-kernel code builds a :class:`VmcoreImage` from the simulator's interval
maps; the writers in this package turn it into real dump files.  Everything is described
by *extents* (runs of pages sharing one content identity) so that a terabyte range costs
one object, never one Python object per page.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator, NamedTuple

PAGE_CLASSES: tuple[str, ...] = ("zero", "cache", "cache_private", "user", "free", "kernel")
"""Page classes in makedumpfile's order; ``kernel`` is never excluded."""

DUMP_LEVEL_BITS: dict[str, int] = {"zero": 1, "cache": 2, "cache_private": 4, "user": 8, "free": 16}
"""makedumpfile ``-d`` bits per excludable class."""

MAX_DUMP_LEVEL = 31

_STAMP_HEADER = 21  # pages.STAMP_HEADER_SIZE (magic, index, class, tag length)

KERNEL_VADDR_BASE = 0xC000000000000000
"""ppc64 linear map: PT_LOAD p_vaddr = KERNEL_VADDR_BASE + p_paddr."""


@dataclass(frozen=True)
class ContentExtent:
    """A run of pages with one content identity (tag, base..base+n-1)."""

    start: int
    end: int
    klass: str
    tag: str
    base: int
    readable: bool = True

    def __post_init__(self) -> None:
        if self.klass not in PAGE_CLASSES:
            raise ValueError(f"unknown page class {self.klass!r}")
        if self.end <= self.start:
            raise ValueError(f"empty extent [{self.start:#x}, {self.end:#x})")
        if self.klass == "zero" and self.tag:
            raise ValueError("an extent of class 'zero' must have tag '' (all-zero content)")
        if self.base < 0:
            raise ValueError("extent base must be >= 0")

    def pages(self, page_size: int) -> int:
        """Number of pages in the extent."""
        return (self.end - self.start) // page_size


@dataclass(frozen=True)
class CpuState:
    """Registers of one online CPU at the crash (ppc64 ``pt_regs`` order, 48 u64)."""

    cpu: int
    regs: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.regs) != 48:
            raise ValueError(f"cpu {self.cpu}: need 48 registers, got {len(self.regs)}")


REG_NAMES: tuple[str, ...] = tuple(f"gpr{i}" for i in range(32)) + (
    "nip", "msr", "orig_gpr3", "ctr", "link", "xer", "ccr", "softe",
    "trap", "dar", "dsisr", "result", "pad0", "pad1", "pad2", "pad3",
)
"""Names of the 48 ``pr_reg`` slots (the last four are padding in ``pt_regs``)."""


@dataclass(frozen=True)
class LoadRange:
    """One PT_LOAD of /proc/vmcore: [paddr, paddr+size) and its content extents."""

    paddr: int
    size: int
    extents: tuple[ContentExtent, ...]

    @property
    def end(self) -> int:
        return self.paddr + self.size


@dataclass(frozen=True)
class VmcoreImage:
    """Everything a dump file needs: notes, VMCOREINFO and the memory ranges."""

    osrelease: str
    page_size: int
    crash_time: int
    symbols: dict[str, int]
    cpus: tuple[CpuState, ...]
    crashing_cpu: int
    ranges: tuple[LoadRange, ...]
    nodename: str = "fadumpsim"
    machine: str = "ppc64le"
    version: str = "#1 SMP"
    phys_base: int = 0
    extra_vmcoreinfo: tuple[str, ...] = field(default=())

    def validate(self) -> None:
        """Raise ValueError unless ranges/extents are page aligned, sorted and disjoint.

        Writers rely on pfn order (bitmaps, PT_LOAD splitting) so a bad image must fail
        before a byte is written.
        """
        ps = self.page_size
        if ps <= 0 or ps & (ps - 1):
            raise ValueError(f"page size {ps} is not a power of two")
        if "swapper_pg_dir" not in self.symbols:
            raise ValueError("symbols must contain swapper_pg_dir (drgn needs it)")
        if not self.cpus:
            raise ValueError("at least one CPU is needed")
        prev_end = -1
        for r in self.ranges:
            if r.paddr % ps or r.size % ps or r.size <= 0:
                raise ValueError(f"range {r.paddr:#x}+{r.size:#x} is not page aligned")
            if r.paddr < prev_end:
                raise ValueError(f"range {r.paddr:#x} overlaps or is out of order")
            prev_end = r.end
            pos = r.paddr
            for e in r.extents:
                if _STAMP_HEADER + len(e.tag.encode()) > ps:
                    raise ValueError(f"tag {e.tag[:40]!r}... does not fit in a {ps}-byte page stamp")
                if e.start % ps or e.end % ps:
                    raise ValueError(f"extent [{e.start:#x},{e.end:#x}) is not page aligned")
                if e.start < pos or e.end > r.end:
                    raise ValueError(
                        f"extent [{e.start:#x},{e.end:#x}) out of order or outside range {r.paddr:#x}"
                    )
                pos = e.end

    @property
    def max_pfn(self) -> int:
        """One past the highest pfn of any range (makedumpfile's max_mapnr)."""
        return max((r.end for r in self.ranges), default=0) // self.page_size

    @property
    def total_pages(self) -> int:
        return sum(r.size for r in self.ranges) // self.page_size

    @cached_property
    def _range_index(self) -> tuple[list[int], list[LoadRange], list[list[int]]]:
        rs = sorted(self.ranges, key=lambda r: r.paddr)
        return [r.paddr for r in rs], rs, [[e.start for e in r.extents] for r in rs]

    def extent_at(self, paddr: int) -> ContentExtent | None:
        """The extent covering paddr (readable or not), or None for holes."""
        starts, rs, ext_starts = self._range_index
        i = bisect.bisect_right(starts, paddr) - 1
        if i < 0 or paddr >= rs[i].end:
            return None
        j = bisect.bisect_right(ext_starts[i], paddr) - 1
        if j < 0:
            return None
        e = rs[i].extents[j]
        return e if paddr < e.end else None

    def page_identity(self, paddr: int) -> tuple[str, int] | None:
        """Truth helper: (tag, index) of the page at paddr; None if absent or unreadable."""
        e = self.extent_at(paddr)
        if e is None or not e.readable:
            return None
        return e.tag, e.base + (paddr - paddr % self.page_size - e.start) // self.page_size

    def page_class(self, paddr: int) -> str | None:
        """Truth helper: page class at paddr (None for holes)."""
        e = self.extent_at(paddr)
        return None if e is None else e.klass

    def iter_extents(self) -> Iterator[tuple[LoadRange, ContentExtent]]:
        for r in self.ranges:
            for e in r.extents:
                yield r, e

    def vmcoreinfo_text(self) -> str:
        """The VMCOREINFO note text (KEY=value lines), as the kernel formats it."""
        lines = [f"OSRELEASE={self.osrelease}", f"PAGESIZE={self.page_size}"]
        # swapper_pg_dir first: drgn and crash look it up; order otherwise follows the dict.
        lines.append(f"SYMBOL(swapper_pg_dir)={self.symbols['swapper_pg_dir']:x}")
        for name, value in self.symbols.items():
            if name != "swapper_pg_dir":
                lines.append(f"SYMBOL({name})={value:x}")
        lines.extend(self.extra_vmcoreinfo)
        lines.append(f"CRASHTIME={self.crash_time}")
        return "\n".join(lines) + "\n"


# --- dump-level planning (shared by both writers) -------------------------------------

KEEP = "keep"
"""Page content goes into the file."""
ZERO = "zero"
"""Zero-content page excluded by dump-level bit 1 (kdump: shared zero page; ELF: absent)."""
EXCLUDE = "exclude"
"""Page excluded by its class bit (absent from the file)."""
UNREADABLE = "unreadable"
"""Listed in /proc/vmcore but cannot be read (hot-removed); absent, counted as offline."""


class PageRun(NamedTuple):
    """A run of pages that one dump level treats alike.

    ``counter`` is the makedumpfile counter the run adds to when excluded (``zero``,
    ``cache``, ``cache_private``, ``user``, ``free``, ``offline``) or the page class when
    kept.  ``extent`` is None only for gaps between extents (unreadable).
    """

    start: int
    end: int
    action: str
    counter: str
    extent: ContentExtent | None


def classify_extent(e: ContentExtent, dump_level: int) -> tuple[str, str]:
    """(action, counter) for every page of ``e`` at ``dump_level``.

    makedumpfile excludes by page flags first (cache, private cache, user, free, from
    mem_map) and only then looks for zero-filled content among the remaining pages, so
    a zero-content user page under -d 31 counts as a user page, under -d 1 as a zero page.
    """
    if not e.readable:
        return UNREADABLE, "offline"
    if e.klass not in ("zero", "kernel") and dump_level & DUMP_LEVEL_BITS[e.klass]:
        return EXCLUDE, e.klass
    if not e.tag and dump_level & DUMP_LEVEL_BITS["zero"]:
        return ZERO, "zero"
    return KEEP, e.klass


def plan_range(r: LoadRange, dump_level: int) -> Iterator[PageRun]:
    """Runs covering [r.paddr, r.end) in address order; gaps become unreadable runs."""
    pos = r.paddr
    for e in r.extents:
        if e.start > pos:
            yield PageRun(pos, e.start, UNREADABLE, "offline", None)
        action, counter = classify_extent(e, dump_level)
        yield PageRun(e.start, e.end, action, counter, e)
        pos = e.end
    if pos < r.end:
        yield PageRun(pos, r.end, UNREADABLE, "offline", None)


def create_dump_file(path: "str | os.PathLike[str]", exclusive: bool = False) -> int:
    """Open `path` for writing a dump. `exclusive`: a new file only, never through a
    symlink (O_CREAT|O_EXCL|O_NOFOLLOW), for the `.partial` name a writer renames into
    place; otherwise create or truncate, like makedumpfile's own open()."""
    flags = os.O_WRONLY | os.O_CREAT
    flags |= (os.O_EXCL | os.O_NOFOLLOW) if exclusive else os.O_TRUNC
    return os.open(path, flags, 0o644)
