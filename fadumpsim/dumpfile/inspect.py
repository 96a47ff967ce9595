"""Inspect a dump file: what is in it, and (given the truth) whether it is right.

``inspect_dump`` detects the format by magic, lists header, notes and ranges, classifies
every page kept in the file from its identity stamp (in ``makedumpfile --mem-usage``
rows), and, given the crashed kernel's :class:`VmcoreImage`, counts pages that match,
pages with the wrong identity, pages the dump level should have kept but that are
missing, and pages excluded on purpose.  Absent pages are counted extent-wise; only
pages actually present in the file are read.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

from .elfcore import DumpFormatError, ElfDump, ParsedDump, PrStatus, read_elf_vmcore
from .image import (
    DUMP_LEVEL_BITS,
    KEEP,
    PAGE_CLASSES,
    ContentExtent,
    VmcoreImage,
    classify_extent,
)
from .kdump import KdumpDump, read_kdump_compressed
from .pages import decode_stamp, is_zero

MEM_USAGE_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("ZERO", "zero", "yes", "Pages filled with zero"),
    ("NON_PRI_CACHE", "cache", "yes", "Cache pages without private flag"),
    ("PRI_CACHE", "cache_private", "yes", "Cache pages with private flag"),
    ("USER", "user", "yes", "User process pages"),
    ("FREE", "free", "yes", "Free pages"),
    ("KERN_DATA", "kernel", "no", "Dumpable kernel data "),
)
_SAMPLES = 10


@dataclass
class RangeInfo:
    """A memory range of the dump (PT_LOAD, or a 1st-bitmap run) and how much is in the file."""

    start: int
    end: int
    pages: int
    present: int
    label: str = ""


@dataclass
class TruthComparison:
    """File versus truth, in pages.  ``lost`` is what the dump should hold but does not."""

    dump_level: int
    dump_level_inferred: bool
    matching: int = 0
    wrong: int = 0
    wrong_excluded: int = 0
    missing: int = 0
    excluded: int = 0
    unexpected: int = 0
    by_class: dict[str, dict[str, int]] = field(
        default_factory=lambda: {k: {"matching": 0, "wrong": 0, "missing": 0, "excluded": 0}
                                 for k in PAGE_CLASSES})
    samples: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.wrong + self.missing

    def lost_of(self, klass: str) -> int:
        c = self.by_class[klass]
        return c["wrong"] + c["missing"]

    def _sample(self, text: str) -> None:
        if len(self.samples) < _SAMPLES:
            self.samples.append(text)


@dataclass
class InspectReport:
    path: str
    format: str
    file_size: int
    page_size: int
    header: dict[str, Any]
    dump_level: int | None
    compression: str
    cpus: list[PrStatus]
    crashing_cpu: int | None
    vmcoreinfo: dict[str, str]
    ranges: list[RangeInfo]
    pages_in_memory: int
    pages_present: int
    page_classes: dict[str, int]
    shared_zero_pages: int = 0
    unknown_pages: int = 0
    truth: TruthComparison | None = None

    @property
    def pages_excluded(self) -> int:
        """Pages the dumped kernel had that the file does not hold."""
        return max(0, self.pages_in_memory - self.pages_present)


def open_dump(path: str | os.PathLike[str]) -> ParsedDump:
    """Open a dump file of either format, chosen by its magic bytes."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
    except OSError as exc:
        raise DumpFormatError(path, 0, f"cannot open ({exc.strerror})") from None
    if magic[:4] == b"\x7fELF":
        return read_elf_vmcore(path)
    if magic == b"KDUMP   ":
        return read_kdump_compressed(path)
    raise DumpFormatError(path, 0, f"unknown dump format (magic {magic!r})")


def inspect_dump(
    path: str | os.PathLike[str],
    truth: VmcoreImage | None = None,
    *,
    dump_level: int | None = None,
) -> InspectReport:
    """Describe a dump file; with ``truth``, compare every present page with it.

    ``dump_level`` tells which pages were filtered on purpose.  kdump files record it; for
    an ELF file (which does not) it is inferred from the truth when not given: a class
    whose pages are absent counts as filtered (kernel pages never are).
    """
    with open_dump(path) as d:
        return _inspect(d, truth, dump_level)


def _inspect(d: ParsedDump, truth: VmcoreImage | None, dump_level: int | None) -> InspectReport:
    ps = d.page_size
    present = list(d.present_runs())
    memory = list(d.memory_runs())
    ranges: list[RangeInfo] = []
    if isinstance(d, ElfDump):
        for s in d.loads:
            end = s.paddr + s.memsz
            ranges.append(RangeInfo(s.paddr, end, s.memsz // ps, _overlap(present, s.paddr, end) // ps,
                                    f"PT_LOAD[{s.index}] off {s.offset:#x} filesz {s.filesz:#x}"))
    else:
        for a, b in memory:
            ranges.append(RangeInfo(a, b, (b - a) // ps, _overlap(present, a, b) // ps, "1st bitmap"))

    classes = {k: 0 for k in PAGE_CLASSES}
    unknown = shared = 0
    cmp: TruthComparison | None = None
    level = d.dump_level if dump_level is None else dump_level
    absent: list[tuple[int, int, ContentExtent]] = []
    if truth is not None:
        if truth.page_size != ps:
            raise ValueError(f"truth page size {truth.page_size} != file page size {ps}")
        absent = list(_absent_pieces(truth, present))
        inferred = level is None
        if level is None:
            level = 0
            for _, _, e in absent:
                action, counter = classify_extent(e, 31)
                if action != KEEP and counter in DUMP_LEVEL_BITS:
                    level |= DUMP_LEVEL_BITS[counter]
        cmp = TruthComparison(level, inferred)

    for a, b in present:
        for s, e, ext in (_truth_pieces(truth, a, b) if truth is not None else [(a, b, None)]):
            for addr in range(s, e, ps):
                head, is_shared = _head(d, addr)
                st = None if is_shared else decode_stamp(head)
                if is_shared:
                    klass, got = "zero", ("", None)
                elif st is not None:
                    klass, got = st.klass, (st.tag, st.index)
                else:
                    page = d.read_page(addr) if len(head) < ps else head
                    if page is not None and is_zero(page):
                        klass, got = "zero", ("", None)
                    else:
                        klass, got = "", ("?", None)
                        unknown += 1
                if klass:
                    classes[klass] += 1
                shared += is_shared
                if cmp is None:
                    continue
                if ext is None or not ext.readable:
                    cmp.unexpected += 1
                    cmp._sample(f"unexpected page at {addr:#x}: the crashed kernel had no readable page there")
                    continue
                want = (ext.tag, ext.base + (addr - ext.start) // ps)
                ok = got == want or (not ext.tag and got[0] == "")
                action, _ = classify_extent(ext, level or 0)
                if ok:
                    cmp.matching += 1
                    cmp.by_class[ext.klass]["matching"] += 1
                elif action == KEEP:
                    cmp.wrong += 1
                    cmp.by_class[ext.klass]["wrong"] += 1
                    cmp._sample(f"wrong page at {addr:#x} ({ext.klass}): expected {_ident(want)}, found {_ident(got)}")
                else:
                    cmp.wrong_excluded += 1

    if cmp is not None:
        for a, b, e in absent:
            n = (b - a) // ps
            action, _ = classify_extent(e, cmp.dump_level)
            if action == KEEP:
                cmp.missing += n
                cmp.by_class[e.klass]["missing"] += n
                cmp._sample(f"missing [{a:#x}, {b:#x}) {e.klass} {e.tag or '(zero)'}: {n} pages")
            else:
                cmp.excluded += n
                cmp.by_class[e.klass]["excluded"] += n

    header = dict(d.header)
    if isinstance(d, KdumpDump):
        header["sub_header"] = dict(d.sub_header)
    return InspectReport(
        path=d.path, format=d.format, file_size=d.file_size, page_size=ps, header=header,
        dump_level=level, compression=d.compression, cpus=list(d.prstatus),
        crashing_cpu=d.crashing_cpu, vmcoreinfo=dict(d.vmcoreinfo), ranges=ranges,
        pages_in_memory=sum(b - a for a, b in memory) // ps,
        pages_present=sum(b - a for a, b in present) // ps,
        page_classes=classes, shared_zero_pages=shared, unknown_pages=unknown, truth=cmp,
    )


def _head(d: ParsedDump, addr: int) -> tuple[bytes, bool]:
    """First bytes of a present page, and whether it is kdump's shared zero page."""
    if isinstance(d, KdumpDump):
        pd = d.page_desc(addr)
        if pd is not None:
            shared = bool(d.dump_level and d.dump_level & 1 and pd.offset == d.data_off and pd.flags == 0)
            return d._decode(pd, 128), shared
    else:
        head = d.read_page_head(addr, 128)
        if head is not None:
            return head, False
    raise DumpFormatError(d.path, 0, f"page {addr:#x} is listed as present but cannot be located")


def _ident(x: tuple[str, int | None]) -> str:
    tag, idx = x
    if tag == "":
        return "zero page"
    if tag == "?":
        return "unstamped data"
    return f"{tag}#{idx}"


def _overlap(runs: list[tuple[int, int]], a: int, b: int) -> int:
    """Bytes of [a, b) covered by sorted disjoint runs."""
    i = max(bisect.bisect_right(runs, (a, a)) - 1, 0)
    total = 0
    while i < len(runs) and runs[i][0] < b:
        s, e = runs[i]
        total += max(0, min(e, b) - max(s, a))
        i += 1
    return total


def _truth_pieces(truth: VmcoreImage, a: int, b: int) -> Iterator[tuple[int, int, ContentExtent | None]]:
    """[a, b) cut at truth extent boundaries, each piece with its extent (None = hole)."""
    pos = a
    while pos < b:
        e = truth.extent_at(pos)
        if e is not None:
            end = min(b, e.end)
            yield pos, end, e
            pos = end
            continue
        nxt = _next_extent_start(truth, pos)
        end = min(b, nxt if nxt is not None else b)
        yield pos, end, None
        pos = end


def _next_extent_start(truth: VmcoreImage, pos: int) -> int | None:
    """Start of the first extent above pos (ranges are sorted and disjoint)."""
    range_starts, rs, ext_starts = truth._range_index
    i = max(bisect.bisect_right(range_starts, pos) - 1, 0)
    for j in range(i, len(rs)):
        k = bisect.bisect_right(ext_starts[j], pos)
        if k < len(ext_starts[j]):
            return ext_starts[j][k]
    return None


def _absent_pieces(truth: VmcoreImage, present: list[tuple[int, int]]) -> Iterator[tuple[int, int, ContentExtent]]:
    """Parts of readable truth extents not covered by the file's present runs."""
    starts = [s for s, _ in present]
    for _, e in truth.iter_extents():
        if not e.readable:
            continue
        pos = e.start
        i = max(bisect.bisect_right(starts, pos) - 1, 0)
        while pos < e.end:
            while i < len(present) and present[i][1] <= pos:
                i += 1
            if i >= len(present) or present[i][0] >= e.end:
                yield pos, e.end, e
                break
            s, t = present[i]
            if s > pos:
                yield pos, s, e
            pos = t


# --- rendering ---------------------------------------------------------------------------


def render_inspect(report: InspectReport) -> str:
    """Human-readable text of an InspectReport (stable, for transcripts and tests)."""
    r = report
    out: list[str] = [f"dump file     : {r.path} ({r.file_size} bytes)"]
    h = r.header
    if r.format == "elf":
        out.append(f"format        : ELF64 core, e_machine {h.get('e_machine')} (EM_PPC64=21), "
                   f"e_flags {h.get('e_flags')}, {h.get('ei_data')} endian, {h.get('e_phnum')} program headers")
    else:
        uts = h.get("utsname", {})
        out.append(f"format        : kdump-compressed ({h.get('signature')!r}, header version "
                   f"{h.get('header_version')}), compression {r.compression}")
        out.append(f"utsname       : {uts.get('sysname')} {uts.get('nodename')} {uts.get('release')} "
                   f"{uts.get('version')} {uts.get('machine')}")
        out.append(f"header        : block_size {h.get('block_size')} sub_hdr_size {h.get('sub_hdr_size')} "
                   f"bitmap_blocks {h.get('bitmap_blocks')} max_mapnr {h['sub_header'].get('max_mapnr_64')} "
                   f"nr_cpus {h.get('nr_cpus')} current_cpu {h.get('current_cpu')} timestamp {h.get('timestamp')}")
    lvl = "unknown" if r.dump_level is None else str(r.dump_level)
    if r.truth is not None and r.truth.dump_level_inferred:
        lvl += " (inferred from truth)"
    out.append(f"page size     : {r.page_size}    dump level: {lvl}")
    out.append(f"cpus          : {len(r.cpus)} NT_PRSTATUS notes"
               + ("" if r.crashing_cpu is None else f", crashing cpu {r.crashing_cpu}"))
    for p in r.cpus:
        mark = " *" if p.cpu == r.crashing_cpu else ""
        out.append(f"  cpu {p.cpu:<4} pid {p.pid:<5} nip {p.nip:#018x} msr {p.msr:#018x} lr {p.link:#018x}{mark}")
    out.append("vmcoreinfo    :")
    for k, v in r.vmcoreinfo.items():
        out.append(f"  {k}={v}")
    out.append(f"ranges        : {len(r.ranges)}")
    for g in r.ranges[:64]:
        out.append(f"  [{g.start:#014x}, {g.end:#014x}) {g.pages:>10} pages {g.present:>10} in file  {g.label}")
    if len(r.ranges) > 64:
        out.append(f"  ... {len(r.ranges) - 64} more")
    out.append("")
    out.append("TYPE\t\tPAGES\t\t\tEXCLUDABLE\tDESCRIPTION")
    out.append("----------------------------------------------------------------------")
    for name, klass, excl, desc in MEM_USAGE_ROWS:
        tabs = "\t\t" if len(name) < 8 else "\t"
        out.append(f"{name}{tabs}{r.page_classes.get(klass, 0):<16}\t{excl}\t\t{desc}")
    out.append("")
    out.append(f"pages in memory        : {r.pages_in_memory}")
    out.append(f"pages in file          : {r.pages_present}"
               + (f" ({r.shared_zero_pages} as the shared zero page)" if r.shared_zero_pages else ""))
    out.append(f"pages excluded         : {r.pages_excluded}")
    if r.unknown_pages:
        out.append(f"unstamped pages        : {r.unknown_pages}")
    t = r.truth
    if t is not None:
        out.append("")
        out.append(f"truth comparison (dump level {t.dump_level}):")
        out.append(f"  matching {t.matching}  wrong {t.wrong}  missing {t.missing}  excluded {t.excluded}"
                   f"  wrong-but-excluded {t.wrong_excluded}  unexpected {t.unexpected}  lost {t.lost}")
        for klass in PAGE_CLASSES:
            c = t.by_class[klass]
            if any(c.values()):
                out.append(f"  {klass:<14} matching {c['matching']:<8} wrong {c['wrong']:<8} "
                           f"missing {c['missing']:<8} excluded {c['excluded']}")
        for s in t.samples:
            out.append(f"  ! {s}")
    return "\n".join(out) + "\n"
