"""ELF64 vmcore writer and reader, plus what both dump formats share.

``write_elf_vmcore`` produces what ``cp /proc/vmcore`` (dump level 0) or
``makedumpfile -E -d N`` (dump level N) would have saved in the capture kernel: an
ET_CORE file for ppc64le with one PT_NOTE (NT_PRSTATUS per CPU, VMCOREINFO) and PT_LOADs
with physical addresses.  The kdump-compressed format embeds the same ELF notes, so note
building/parsing, the error type, the write statistics and makedumpfile's closing report
live here too.
"""

from __future__ import annotations

import bisect
import os
import struct
from array import array
from dataclasses import dataclass, field
from typing import IO, Any, Iterable, Iterator

from .image import (
    KEEP,
    KERNEL_VADDR_BASE,
    UNREADABLE,
    PageRun,
    VmcoreImage,
    create_dump_file,
    plan_range,
)
from .pages import stamp_bytes

# --- ELF constants ---------------------------------------------------------------------
ET_CORE = 4
EM_PPC64 = 21
PT_LOAD = 1
PT_NOTE = 4
PF_RWX = 7
NT_PRSTATUS = 1
PN_XNUM = 0xFFFF
EF_PPC64_ABI_V2 = 2
EHDR_SIZE = 64
PHDR_SIZE = 56
SHDR_SIZE = 64
PRSTATUS_SIZE = 504
PR_REG_OFFSET = 112
ELF_NGREG = 48
PFN_EXCLUDED = 256
"""makedumpfile -E keeps excluded runs shorter than this inside a PT_LOAD."""
SIGSEGV = 11

MAX_NOTE_BYTES = 64 << 20
"""Readers refuse note areas larger than this (real ones are < 1 MiB)."""
MIN_PAGE_SIZE = 4096
MAX_PAGE_SIZE = 1 << 20
_WRITE_CHUNK = 8 << 20

EXCLUDE_COUNTERS: tuple[str, ...] = (
    "zero", "cache", "cache_private", "user", "free", "hwpoison", "offline",
)


class DumpFormatError(Exception):
    """A dump file is malformed or truncated; str() is one line: 'PATH: cause at byte N'."""

    def __init__(self, path: str | os.PathLike[str], offset: int, cause: str) -> None:
        self.path = os.fspath(path)
        self.offset = int(offset)
        self.cause = cause
        super().__init__(f"{self.path}: {cause} at byte {self.offset}")


# --- write statistics and makedumpfile's closing report ----------------------------------


@dataclass
class WriteStats:
    """What a writer did, in makedumpfile's terms (page counts are pages of page_size)."""

    path: str
    format: str
    dump_level: int
    compression: str
    page_size: int
    max_mapnr: int
    pages_total: int
    pages_written: int
    pages_excluded: dict[str, int]
    bytes_written: int
    pages_zero_shared: int = 0
    pages_elf_excluded: int | None = None
    segments: int = 0
    cache_hit: int = 0
    cache_miss: int = 0

    @property
    def excluded_total(self) -> int:
        return sum(self.pages_excluded.values())

    @property
    def pages_remaining(self) -> int:
        return self.pages_total - self.excluded_total

    @property
    def memory_hole(self) -> int:
        return self.max_mapnr - self.pages_total


def makedumpfile_report(stats: WriteStats, *, offline_line: bool = True) -> list[str]:
    """The closing lines makedumpfile prints (print_report() and main()), one per item.

    offline_line: the "Offline pages" line exists from makedumpfile 1.6.5 (2018-11-22);
    a 2018 makedumpfile does not print it.
    """
    x = stats.pages_excluded
    original = stats.pages_total
    excluded = stats.excluded_total
    lines = [
        f"Original pages  : 0x{original:016x}",
        f"  Excluded pages   : 0x{excluded:016x}",
    ]
    elf = stats.format == "elf" and stats.pages_elf_excluded is not None
    if elf:
        lines.append(f"     in ELF format : 0x{stats.pages_elf_excluded:016x}")
    lines += [
        f"    Pages filled with zero  : 0x{x.get('zero', 0):016x}",
        f"    Non-private cache pages : 0x{x.get('cache', 0):016x}",
        f"    Private cache pages     : 0x{x.get('cache_private', 0):016x}",
        f"    User process data pages : 0x{x.get('user', 0):016x}",
        f"    Free pages              : 0x{x.get('free', 0):016x}",
        f"    Hwpoison pages          : 0x{x.get('hwpoison', 0):016x}",
    ]
    if offline_line:
        lines.append(f"    Offline pages           : 0x{x.get('offline', 0):016x}")
    lines += [
        f"  Remaining pages  : 0x{original - excluded:016x}",
    ]
    if elf:
        assert stats.pages_elf_excluded is not None
        lines.append(f"     in ELF format : 0x{original - stats.pages_elf_excluded:016x}")
        excluded = stats.pages_elf_excluded
    if original:
        lines.append(f"  (The number of pages is reduced to {(original - excluded) * 100 // original}%.)")
    lines += [
        f"Memory Hole     : 0x{stats.memory_hole:016x}",
        "--------------------------------------------------",
        f"Total pages     : 0x{stats.max_mapnr:016x}",
        f"Write bytes     : {stats.bytes_written}",
        "",
    ]
    hit, miss = stats.cache_hit, stats.cache_miss
    cache = f"Cache hit: {hit}, miss: {miss}"
    if hit + miss:
        cache += f", hit rate: {100.0 * hit / (hit + miss):.1f}%"
    lines += [cache, "", f"The dumpfile is saved to {stats.path}.", "", "makedumpfile Completed."]
    return lines


# --- ELF notes -------------------------------------------------------------------------


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    n = name + b"\0"
    return (
        struct.pack("<III", len(n), len(desc), ntype)
        + n + bytes(-len(n) % 4)
        + desc + bytes(-len(desc) % 4)
    )


def prstatus_desc(cpu: int, regs: Iterable[int], *, crashing: bool) -> bytes:
    """A 504-byte ppc64 elf_prstatus.

    fadump leaves pr_pid 0; we store cpu+1 so a reader can tell CPUs apart, and mark the
    crashing CPU with pr_cursig = SIGSEGV so the file alone names it.
    """
    b = bytearray(PRSTATUS_SIZE)
    if crashing:
        struct.pack_into("<iii", b, 0, SIGSEGV, 0, 0)
        struct.pack_into("<h", b, 12, SIGSEGV)
    struct.pack_into("<i", b, 32, cpu + 1)
    struct.pack_into(f"<{ELF_NGREG}Q", b, PR_REG_OFFSET, *(r & 0xFFFFFFFFFFFFFFFF for r in regs))
    return bytes(b)


@dataclass(frozen=True)
class NotesBlob:
    data: bytes
    vmcoreinfo_offset: int  # offset of the VMCOREINFO descriptor within data
    vmcoreinfo_size: int


def build_notes(image: VmcoreImage) -> NotesBlob:
    """CPU NT_PRSTATUS notes in CPU order, then VMCOREINFO (as /proc/vmcore merges them)."""
    parts = [
        _note(b"CORE", NT_PRSTATUS,
              prstatus_desc(c.cpu, c.regs, crashing=c.cpu == image.crashing_cpu))
        for c in sorted(image.cpus, key=lambda c: c.cpu)
    ]
    head = b"".join(parts)
    text = image.vmcoreinfo_text().encode()
    vm_note = _note(b"VMCOREINFO", 0, text)
    # Nhdr (12) + "VMCOREINFO\0" padded to 12
    return NotesBlob(head + vm_note, len(head) + 12 + 12, len(text))


@dataclass(frozen=True)
class PrStatus:
    """One NT_PRSTATUS note as read back."""

    index: int
    pid: int
    cursig: int
    regs: tuple[int, ...]

    @property
    def cpu(self) -> int:
        """CPU number: pid-1 for files we write, the note index when pid is 0 (real fadump)."""
        return self.pid - 1 if self.pid > 0 else self.index

    @property
    def nip(self) -> int:
        return self.regs[32]

    @property
    def msr(self) -> int:
        return self.regs[33]

    @property
    def link(self) -> int:
        return self.regs[36]


@dataclass
class ParsedNotes:
    prstatus: list[PrStatus] = field(default_factory=list)
    vmcoreinfo_text: str = ""
    vmcoreinfo: dict[str, str] = field(default_factory=dict)
    vmcoreinfo_offset: int | None = None
    other: list[tuple[str, int, int]] = field(default_factory=list)  # (name, type, descsz)


def parse_vmcoreinfo(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def parse_notes(path: str, buf: bytes, base: int, endian: str = "<") -> ParsedNotes:
    """Parse an ELF note area; ``base`` is its file offset (for error positions)."""
    out = ParsedNotes()
    pos = 0
    nhdr = struct.Struct(endian + "III")
    while pos + 12 <= len(buf):
        namesz, descsz, ntype = nhdr.unpack_from(buf, pos)
        if namesz == 0 and descsz == 0 and ntype == 0:
            break  # zero padding at the end of the note area
        name_off = pos + 12
        desc_off = name_off + namesz + (-namesz % 4)
        end = desc_off + descsz + (-descsz % 4)
        if desc_off + descsz > len(buf):
            raise DumpFormatError(path, base + pos, f"note ({namesz}, {descsz}) runs past the note area")
        name = buf[name_off:name_off + namesz].rstrip(b"\0").decode("ascii", "replace")
        desc = buf[desc_off:desc_off + descsz]
        if name == "CORE" and ntype == NT_PRSTATUS:
            if descsz < PR_REG_OFFSET + 8 * ELF_NGREG:
                raise DumpFormatError(path, base + pos, f"NT_PRSTATUS note too small ({descsz} bytes)")
            cursig = struct.unpack_from(endian + "h", desc, 12)[0]
            pid = struct.unpack_from(endian + "i", desc, 32)[0]
            regs = struct.unpack_from(f"{endian}{ELF_NGREG}Q", desc, PR_REG_OFFSET)
            out.prstatus.append(PrStatus(len(out.prstatus), pid, cursig, tuple(regs)))
        elif name == "VMCOREINFO":
            out.vmcoreinfo_text = desc.decode("utf-8", "replace").rstrip("\0")
            out.vmcoreinfo = parse_vmcoreinfo(out.vmcoreinfo_text)
            out.vmcoreinfo_offset = base + desc_off
        else:
            out.other.append((name, ntype, descsz))
        pos = end
    return out


# --- the parsed-dump interface shared by both readers -------------------------------------


class ParsedDump:
    """A dump file opened for reading: header, notes, and page access by physical address.

    Use as a context manager (or call close()).  ``read_page`` returns the page bytes or
    None when the page is not in the file (excluded, unreadable, or outside memory).
    """

    format: str = "?"

    def __init__(self, path: str, f: IO[bytes], size: int) -> None:
        self.path = path
        self._f = f
        self.file_size = size
        self.page_size = 0
        self.header: dict[str, Any] = {}
        self.notes = ParsedNotes()
        self.dump_level: int | None = None
        self.compression = "none"

    # context management
    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "ParsedDump":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # notes convenience
    @property
    def prstatus(self) -> list[PrStatus]:
        return self.notes.prstatus

    @property
    def vmcoreinfo(self) -> dict[str, str]:
        return self.notes.vmcoreinfo

    @property
    def crashing_cpu(self) -> int | None:
        """The CPU whose note carries a signal (our writers mark the crashing CPU so)."""
        for p in self.notes.prstatus:
            if p.cursig:
                return p.cpu
        return None

    # reading helpers
    def _pread(self, offset: int, size: int, what: str) -> bytes:
        if offset < 0 or size < 0 or offset + size > self.file_size:
            raise DumpFormatError(self.path, min(max(offset, 0), self.file_size),
                                  f"{what} ({size} bytes at {offset}) extends past end of file (size {self.file_size})")
        self._f.seek(offset)
        data = self._f.read(size)
        if len(data) != size:
            raise DumpFormatError(self.path, offset + len(data), f"short read of {what}")
        return data

    # to be provided by subclasses
    def memory_runs(self) -> Iterator[tuple[int, int]]:
        """[start, end) physical ranges the dumped kernel had (what /proc/vmcore listed)."""
        raise NotImplementedError

    def present_runs(self) -> Iterator[tuple[int, int]]:
        """[start, end) physical ranges whose pages can be read from the file, sorted."""
        raise NotImplementedError

    def read_page(self, paddr: int) -> bytes | None:
        raise NotImplementedError

    def read_page_head(self, paddr: int, n: int = 128) -> bytes | None:
        """The first n bytes of a page (cheap for compressed pages)."""
        page = self.read_page(paddr)
        return None if page is None else page[:n]

    def is_shared_zero(self, paddr: int) -> bool:
        """kdump only: page stored as makedumpfile's shared zero page (excluded zero page)."""
        return False

    @property
    def pages_present(self) -> int:
        return sum(e - s for s, e in self.present_runs()) // self.page_size

    @property
    def pages_in_memory(self) -> int:
        return sum(e - s for s, e in self.memory_runs()) // self.page_size


def check_page_size(path: str, value: Any, offset: int) -> int:
    try:
        ps = int(value)
    except (TypeError, ValueError):
        raise DumpFormatError(path, offset, f"bad page size {value!r}") from None
    if ps < MIN_PAGE_SIZE or ps > MAX_PAGE_SIZE or ps & (ps - 1):
        raise DumpFormatError(path, offset, f"bad page size {ps}")
    return ps


# --- ELF writer ------------------------------------------------------------------------


@dataclass
class _Segment:
    paddr: int
    memsz: int
    filesz: int
    pieces: list[PageRun]  # runs whose content fills [paddr, paddr+filesz), in order
    offset: int = 0


def _elf_segments(image: VmcoreImage, dump_level: int, layout: str) -> list[_Segment]:
    """PT_LOADs for the image, extent-wise.

    ``split``: every excluded or unreadable run is cut out; PT_LOADs cover only pages in the
    file (p_memsz == p_filesz), so readers fault on excluded pages.
    ``makedumpfile``: makedumpfile -E's rule: excluded runs shorter than 256 pages stay in
    the segment with their content; longer runs end the segment as a p_memsz > p_filesz
    tail (drgn reads such tails as zeros).  Unreadable runs always cut (no data to write).
    """
    threshold = PFN_EXCLUDED * image.page_size if layout == "makedumpfile" else 1
    tails = layout == "makedumpfile"
    segs: list[_Segment] = []
    for r in image.ranges:
        seg_start = file_end = r.paddr
        pieces: list[PageRun] = []
        pending: list[PageRun] = []
        for run in plan_range(r, dump_level):
            if run.action != KEEP:  # ELF excludes zero pages like any other excluded page
                pending.append(run)
                continue
            if pending:
                pend_bytes = run.start - pending[0].start
                if pend_bytes < threshold and all(p.action != UNREADABLE for p in pending):
                    pieces.extend(pending)
                else:
                    if tails:
                        segs.append(_Segment(seg_start, run.start - seg_start, file_end - seg_start, pieces))
                    elif file_end > seg_start:
                        segs.append(_Segment(seg_start, file_end - seg_start, file_end - seg_start, pieces))
                    seg_start = run.start
                    pieces = []
                pending = []
            pieces.append(run)
            file_end = run.end
        if tails:
            segs.append(_Segment(seg_start, r.end - seg_start, file_end - seg_start, pieces))
        elif file_end > seg_start:
            segs.append(_Segment(seg_start, file_end - seg_start, file_end - seg_start, pieces))
    return segs


class _PageWriter:
    """Streams stamped pages to a file as stamps plus holes.

    A simulated page is its stamp followed by zeros, so only the stamp is written and the
    zero tail is left as a file hole: the bytes read back are identical, while the cost
    (time and disk) follows the number of pages, not their size.
    """

    def __init__(self, fd: int, offset: int, page_size: int) -> None:
        self.fd = fd
        self.pos = offset
        self.ps = page_size

    def zero_pages(self, count: int) -> None:
        self.pos += count * self.ps

    def stamped_pages(self, tag: str, first: int, count: int, klass: str) -> None:
        if not tag:
            self.zero_pages(count)
            return
        ps, fd = self.ps, self.fd
        for i in range(count):
            os.pwrite(fd, stamp_bytes(tag, first + i, klass), self.pos)
            self.pos += ps


def write_run_pages(w: _PageWriter, run: PageRun, start: int, end: int, page_size: int) -> None:
    """Write the content of [start, end) of ``run`` (which must have an extent)."""
    e = run.extent
    assert e is not None
    w.stamped_pages(e.tag, e.base + (start - e.start) // page_size, (end - start) // page_size, e.klass)


def write_elf_vmcore(
    image: VmcoreImage,
    path: str | os.PathLike[str] | None,
    *,
    dump_level: int = 0,
    layout: str = "split",
    exclusive: bool = False,
) -> WriteStats:
    """Write an ELF64 vmcore: ``cp /proc/vmcore`` at level 0, ``makedumpfile -E -d N`` above.

    Pages excluded by ``dump_level`` and unreadable (hot-removed) pages are absent: the
    PT_LOADs are split around them (``layout="split"``), or laid out exactly as makedumpfile
    -E does (``layout="makedumpfile"``, see ``_elf_segments``).  Streams extent by extent.
    With path None nothing is written; the stats are those of the file it would write.
    """
    if not 0 <= dump_level <= 31:
        raise ValueError(f"dump level {dump_level} out of range 0..31")
    if layout not in ("split", "makedumpfile"):
        raise ValueError(f"unknown ELF layout {layout!r}")
    image.validate()
    ps = image.page_size
    path = os.fspath(path) if path is not None else ""
    notes = build_notes(image)
    segs = _elf_segments(image, dump_level, layout)

    phnum = 1 + len(segs)
    xnum = phnum >= PN_XNUM
    hdr_end = EHDR_SIZE + PHDR_SIZE * phnum + (SHDR_SIZE if xnum else 0)
    note_off = hdr_end
    data_off = note_off + len(notes.data)
    if dump_level == 0:  # /proc/vmcore (so cp) page-aligns the memory data
        data_off += -data_off % ps
    cur = data_off
    for s in segs:
        s.offset = cur if (s.filesz or layout == "split") else 0
        cur += s.filesz
    total = cur

    ehdr = struct.pack(
        "<4sBBBBB7sHHIQQQIHHHHHH",
        b"\x7fELF", 2, 1, 1, 0, 0, bytes(7),
        ET_CORE, EM_PPC64, 1, 0, EHDR_SIZE, (EHDR_SIZE + PHDR_SIZE * phnum) if xnum else 0,
        EF_PPC64_ABI_V2, EHDR_SIZE, PHDR_SIZE, PN_XNUM if xnum else phnum,
        SHDR_SIZE if xnum else 0, 1 if xnum else 0, 0,
    )
    phdr = struct.Struct("<IIQQQQQQ")
    # counters, extent-wise
    excluded = {k: 0 for k in EXCLUDE_COUNTERS}
    for r in image.ranges:
        for run in plan_range(r, dump_level):
            if run.action != KEEP:
                excluded[run.counter] += (run.end - run.start) // ps
    in_file = sum(s.filesz for s in segs) // ps

    if path:
        _write_elf_file(path, ehdr, phdr, segs, note_off, notes, xnum, phnum, data_off, ps, total,
                        exclusive)
    total_pages = image.total_pages
    return WriteStats(
        path=path, format="elf", dump_level=dump_level, compression="none", page_size=ps,
        max_mapnr=image.max_pfn, pages_total=total_pages, pages_written=in_file,
        pages_excluded=excluded, bytes_written=total,
        pages_elf_excluded=total_pages - in_file, segments=len(segs),
    )


def _write_elf_file(path: str, ehdr: bytes, phdr: struct.Struct, segs: list[Any], note_off: int,
                    notes: Any, xnum: bool, phnum: int, data_off: int, ps: int,
                    total: int, exclusive: bool = False) -> None:
    with os.fdopen(create_dump_file(path, exclusive), "wb") as f:
        f.write(ehdr)
        f.write(phdr.pack(PT_NOTE, 0, note_off, 0, 0, len(notes.data), len(notes.data), 0))
        hdr = bytearray()
        for s in segs:
            hdr += phdr.pack(PT_LOAD, PF_RWX, s.offset, KERNEL_VADDR_BASE + s.paddr, s.paddr,
                             s.filesz, s.memsz, 0)
            if len(hdr) >= _WRITE_CHUNK:
                f.write(hdr)
                hdr.clear()
        f.write(hdr)
        if xnum:
            f.write(struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 1, 0, phnum, 0, 0))
        f.write(notes.data)
        f.flush()
        w = _PageWriter(f.fileno(), data_off, ps)
        for s in segs:
            end = s.paddr + s.filesz
            for run in s.pieces:
                a, b = max(run.start, s.paddr), min(run.end, end)
                if a < b:
                    write_run_pages(w, run, a, b, ps)
        f.truncate(total)


# --- ELF reader ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSegment:
    """One PT_LOAD as read back."""

    index: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int
    flags: int


class ElfDump(ParsedDump):
    """An ELF vmcore opened by :func:`read_elf_vmcore`."""

    format = "elf"

    def __init__(self, path: str, f: IO[bytes], size: int) -> None:
        super().__init__(path, f, size)
        self.loads: list[LoadSegment] = []
        self._starts: array[int] = array("Q")
        self._by_paddr: list[LoadSegment] = []
        self._maxend: array[int] = array("Q")

    def _index(self) -> None:
        self._by_paddr = sorted(self.loads, key=lambda s: s.paddr)
        self._starts = array("Q", (s.paddr for s in self._by_paddr))
        self._maxend = array("Q")
        m = 0
        for s in self._by_paddr:
            m = max(m, s.paddr + s.filesz)
            self._maxend.append(m)
        # Disjoint whole-page pieces of file data, each from one segment (where hand-made
        # segments overlap, the one starting first keeps the overlap): a page is located
        # with one bisect, so 65,534 overlapping PT_LOADs cost O(n log n), never O(n^2).
        ps = self.page_size
        self._piece_starts: array[int] = array("Q")
        self._piece_ends: array[int] = array("Q")
        self._piece_segs: list[LoadSegment] = []
        covered = 0
        for s in self._by_paddr:
            a = max(s.paddr + (-s.paddr % ps), covered)
            b = (s.paddr + s.filesz) // ps * ps
            if b > a:
                self._piece_starts.append(a)
                self._piece_ends.append(b)
                self._piece_segs.append(s)
                covered = b

    def memory_runs(self) -> Iterator[tuple[int, int]]:
        return _merge((s.paddr, s.paddr + s.memsz) for s in self._by_paddr if s.memsz)

    def present_runs(self) -> Iterator[tuple[int, int]]:
        """Whole pages only: a page is present when its bytes all lie within a p_filesz."""
        ps = self.page_size
        runs = []
        for s in self._by_paddr:
            a = s.paddr + (-s.paddr % ps)
            b = (s.paddr + s.filesz) // ps * ps
            if b > a:
                runs.append((a, b))
        return _merge(runs)

    def _locate(self, paddr: int) -> int | None:
        """File offset of the page at paddr, or None if no PT_LOAD holds its data."""
        a = paddr - paddr % self.page_size
        i = bisect.bisect_right(self._piece_starts, a) - 1
        if i < 0 or a >= self._piece_ends[i]:
            return None
        s = self._piece_segs[i]
        return s.offset + (a - s.paddr)

    def read_page(self, paddr: int) -> bytes | None:
        off = self._locate(paddr)
        return None if off is None else self._pread(off, self.page_size, "page data")

    def read_page_head(self, paddr: int, n: int = 128) -> bytes | None:
        off = self._locate(paddr)
        return None if off is None else self._pread(off, min(n, self.page_size), "page data")


def _merge(runs: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    cur: tuple[int, int] | None = None
    for a, b in sorted(runs):
        if cur is None:
            cur = (a, b)
        elif a <= cur[1]:
            cur = (cur[0], max(cur[1], b))
        else:
            yield cur
            cur = (a, b)
    if cur is not None:
        yield cur


def read_elf_vmcore(path: str | os.PathLike[str]) -> ElfDump:
    """Open and validate an ELF vmcore; raises DumpFormatError for anything malformed."""
    path = os.fspath(path)
    f = open(path, "rb")
    try:
        size = os.fstat(f.fileno()).st_size
        d = ElfDump(path, f, size)
        _parse_elf(d)
        return d
    except DumpFormatError:
        f.close()
        raise
    except (struct.error, ValueError, IndexError, OverflowError, MemoryError) as exc:
        f.close()
        raise DumpFormatError(path, 0, f"malformed ELF core ({type(exc).__name__}: {exc})") from None


def _parse_elf(d: ElfDump) -> None:
    path, size = d.path, d.file_size
    if size < EHDR_SIZE:
        raise DumpFormatError(path, size, f"truncated ELF header (file is {size} bytes)")
    eh = d._pread(0, EHDR_SIZE, "ELF header")
    if eh[:4] != b"\x7fELF":
        raise DumpFormatError(path, 0, "not an ELF file (bad magic)")
    if eh[4] != 2:
        raise DumpFormatError(path, 4, f"not ELF64 (EI_CLASS {eh[4]})")
    if eh[5] not in (1, 2):
        raise DumpFormatError(path, 5, f"bad EI_DATA {eh[5]}")
    en = "<" if eh[5] == 1 else ">"
    (e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize,
     e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from(en + "HHIQQQIHHHHHH", eh, 16)
    if e_type != ET_CORE:
        raise DumpFormatError(path, 16, f"not a core file (e_type {e_type})")
    if e_phentsize != PHDR_SIZE:
        raise DumpFormatError(path, 54, f"bad e_phentsize {e_phentsize}")
    phnum = e_phnum
    if e_phnum == PN_XNUM:
        if e_shoff == 0 or e_shoff + SHDR_SIZE > size:
            raise DumpFormatError(path, 40, "PN_XNUM without a readable section header 0")
        sh = d._pread(e_shoff, SHDR_SIZE, "section header 0")
        phnum = struct.unpack_from(en + "I", sh, 44)[0]
    if phnum == 0:
        raise DumpFormatError(path, 56, "no program headers")
    if e_phoff < EHDR_SIZE or e_phoff + phnum * PHDR_SIZE > size:
        raise DumpFormatError(path, min(size, e_phoff + phnum * PHDR_SIZE) if e_phoff >= EHDR_SIZE else 32,
                              f"program headers ({phnum} at {e_phoff}) extend past end of file")
    d.header = {
        "e_type": e_type, "e_machine": e_machine, "e_version": e_version, "e_flags": e_flags,
        "e_phoff": e_phoff, "e_phnum": phnum, "ei_data": "little" if en == "<" else "big",
    }
    ph = struct.Struct(en + "IIQQQQQQ")
    note_parts: list[tuple[int, bytes]] = []
    note_total = 0
    for i in range(phnum):
        at = e_phoff + i * PHDR_SIZE
        p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align = ph.unpack(
            d._pread(at, PHDR_SIZE, "program header"))
        if p_type == PT_NOTE:
            if p_filesz > MAX_NOTE_BYTES or note_total + p_filesz > MAX_NOTE_BYTES:
                raise DumpFormatError(path, at + 32, f"PT_NOTE too large ({p_filesz} bytes)")
            if p_offset + p_filesz > size:
                raise DumpFormatError(path, size, f"PT_NOTE [{p_offset}, {p_offset + p_filesz}) extends past end of file")
            note_parts.append((p_offset, d._pread(p_offset, p_filesz, "PT_NOTE")))
            note_total += p_filesz
        elif p_type == PT_LOAD:
            if p_filesz > p_memsz:
                raise DumpFormatError(path, at + 32, f"PT_LOAD[{i}] p_filesz {p_filesz:#x} > p_memsz {p_memsz:#x}")
            if p_filesz and p_offset + p_filesz > size:
                raise DumpFormatError(path, size, f"PT_LOAD[{i}] data [{p_offset:#x}, {p_offset + p_filesz:#x}) extends past end of file")
            if p_paddr + p_memsz >= 1 << 64:
                raise DumpFormatError(path, at + 24, f"PT_LOAD[{i}] wraps the address space")
            d.loads.append(LoadSegment(i, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags))
    if not note_parts:
        raise DumpFormatError(path, e_phoff, "no PT_NOTE segment")
    for off, buf in note_parts:
        parsed = parse_notes(path, buf, off, en)
        d.notes.prstatus.extend(
            PrStatus(len(d.notes.prstatus) + p.index, p.pid, p.cursig, p.regs) for p in parsed.prstatus)
        if parsed.vmcoreinfo_text:
            d.notes.vmcoreinfo_text = parsed.vmcoreinfo_text
            d.notes.vmcoreinfo = parsed.vmcoreinfo
            d.notes.vmcoreinfo_offset = parsed.vmcoreinfo_offset
        d.notes.other.extend(parsed.other)
    if "PAGESIZE" not in d.notes.vmcoreinfo:
        raise DumpFormatError(path, note_parts[0][0], "no VMCOREINFO PAGESIZE (cannot address pages)")
    d.page_size = check_page_size(path, d.notes.vmcoreinfo["PAGESIZE"], d.notes.vmcoreinfo_offset or 0)
    d._index()
