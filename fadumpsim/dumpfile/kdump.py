"""kdump-compressed dump files (makedumpfile's default output format), writer and reader.

Layout, as makedumpfile 1.6/1.7 writes it (diskdump_mod.h, write_kdump_header(),
write_kdump_pages_and_bitmap_cyclic()), all little endian for ppc64le::

    block 0                    struct disk_dump_header (464 bytes), "KDUMP   ", version 6
    block 1                    struct kdump_sub_header (104 bytes), then the ELF notes
                               copied from /proc/vmcore (offset_note/size_note; the
                               VMCOREINFO text inside them is offset_vmcoreinfo)
    block 1+sub_hdr_size       1st bitmap: pages present in memory (PT_LOADs)
    + bitmap_blocks/2          2nd bitmap: pages dumped after filtering
    block 1+sub+bitmap_blocks  struct page_desc (24 bytes) per 2nd-bitmap page, pfn order
    then                       page data (the shared zero page first when -d has bit 1)

A zero-filled page excluded by bit 1 stays in the 2nd bitmap and its descriptor points at
the one shared zero page, exactly as makedumpfile does; every other excluded page is
absent.  Everything streams: bitmaps are built chunk by chunk from extents (all-zero
chunks become file holes) and descriptors/data are written through bounded buffers.
"""

from __future__ import annotations

import bisect
import os
import re
import struct
import zlib
from array import array
from dataclasses import dataclass
from typing import IO, Any, Callable, Iterable, Iterator

from .elfcore import (
    EXCLUDE_COUNTERS,
    MAX_NOTE_BYTES,
    DumpFormatError,
    ParsedDump,
    WriteStats,
    build_notes,
    check_page_size,
    parse_notes,
    parse_vmcoreinfo,
)
from .image import KEEP, ZERO, VmcoreImage, create_dump_file, plan_range
from .pages import stamp_bytes, zero_page

KDUMP_SIGNATURE = b"KDUMP   "
HEADER_VERSION = 6
DUMP_DH_COMPRESSED_ZLIB = 0x1
DUMP_DH_COMPRESSED_LZO = 0x2
DUMP_DH_COMPRESSED_SNAPPY = 0x4
DUMP_DH_COMPRESSED_INCOMPLETE = 0x8
DUMP_DH_EXCLUDED_VMEMMAP = 0x10
DUMP_DH_COMPRESSED_ZSTD = 0x20
COMPRESSION_FLAGS = {
    "zlib": DUMP_DH_COMPRESSED_ZLIB,
    "lzo": DUMP_DH_COMPRESSED_LZO,
    "snappy": DUMP_DH_COMPRESSED_SNAPPY,
    "zstd": DUMP_DH_COMPRESSED_ZSTD,
    "none": 0,
}
_ANY_COMPRESSED = (DUMP_DH_COMPRESSED_ZLIB | DUMP_DH_COMPRESSED_LZO
                   | DUMP_DH_COMPRESSED_SNAPPY | DUMP_DH_COMPRESSED_ZSTD)
MAKEDUMPFILE_OPTION = {"zlib": "-c", "lzo": "-l", "snappy": "-p", "zstd": "-z", "none": ""}
_BINDING = {"lzo": "python-lzo", "snappy": "python-snappy", "zstd": "zstandard"}

HEADER = struct.Struct("<8si390s6xqqIiiIIIIIIi")  # 464 bytes, 64-bit layout
SUB_HEADER = struct.Struct("<QiiQQQQQQQQQQQ")  # 104 bytes
PAGE_DESC = struct.Struct("<QIIQ")  # offset, size, flags, page_flags
UTS_LEN = 65

_BITMAP_CHUNK = 1 << 20  # bytes of bitmap handled at once (8 Mi pfns)
#: runs of present memory a 1st bitmap may list: one per LMB at most on pseries (64TB of
#: 256MB LMBs); an alternating bitmap of a 2 MB file would otherwise cost > 1 GB of runs
MAX_MEMORY_RUNS = 262_144
_IO_CHUNK = 4 << 20


class CompressionUnavailable(RuntimeError):
    """The requested page compression has no importable Python binding here."""


# --- compression bindings ----------------------------------------------------------------


def _compressor(method: str) -> Callable[[bytes | bytearray], bytes] | None:
    """Per-page compressor at makedumpfile's speed settings; None for 'none'."""
    if method == "none":
        return None
    if method == "zlib":
        return lambda b: zlib.compress(b, 1)  # Z_BEST_SPEED, as makedumpfile
    if method == "lzo":
        try:
            import lzo  # type: ignore[import-not-found]
        except ImportError:
            lzo = None
        if lzo is not None and hasattr(lzo, "compress"):
            return lambda b: lzo.compress(bytes(b), 1, False)  # lzo1x_1, no header
    elif method == "snappy":
        try:
            import snappy  # type: ignore[import-not-found]
        except ImportError:
            snappy = None
        # "snappy" on PyPI is also a 3-manifold package: require the codec API
        if snappy is not None and hasattr(snappy, "compress") and hasattr(snappy, "uncompress"):
            return lambda b: snappy.compress(bytes(b))
    elif method == "zstd":
        zc = _zstd_module()
        if zc is not None:
            return zc[0]
    else:
        raise ValueError(f"unknown compression {method!r} (zlib, lzo, snappy, zstd, none)")
    raise CompressionUnavailable(
        f"makedumpfile: {method} compression is not available in this build "
        f"(install {_BINDING[method]})")


def _zstd_module() -> tuple[Callable[[Any], bytes], Callable[[bytes, int], bytes]] | None:
    try:
        import zstandard  # type: ignore[import-not-found]

        cctx = zstandard.ZstdCompressor(level=1)
        dctx = zstandard.ZstdDecompressor()

        def zdec(d: bytes, n: int) -> bytes:
            # the frame header may claim any size: refuse before zstandard allocates it
            if zstandard.frame_content_size(d) not in (n, -1):
                raise ValueError("frame content size is not one page")
            return dctx.decompress(d, max_output_size=n)

        return (lambda b: cctx.compress(bytes(b)), zdec)
    except ImportError:
        pass
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python >= 3.14

        return (lambda b: zstd.compress(bytes(b), level=1),
                lambda d, n: zstd.ZstdDecompressor().decompress(d, max_length=n))
    except ImportError:
        return None


def _snappy_length(d: bytes) -> int:
    """Uncompressed length from a raw snappy block's varint preamble (-1 if malformed)."""
    n = shift = 0
    for i, byte in enumerate(d[:5]):
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return n
        shift += 7
    return -1


def _decompressor(method: str) -> Callable[[bytes, int], bytes] | None:
    if method == "lzo":
        try:
            import lzo  # type: ignore[import-not-found]

            return lambda d, n: lzo.decompress(d, False, n)
        except ImportError:
            return None
    if method == "snappy":
        try:
            import snappy  # type: ignore[import-not-found]

            if hasattr(snappy, "uncompress"):
                def sdec(d: bytes, n: int) -> bytes:
                    if _snappy_length(d) != n:  # bound the allocation the block asks for
                        raise ValueError("snappy block does not decode to one page")
                    return bytes(snappy.uncompress(d))

                return sdec
        except ImportError:
            pass
        return None
    if method == "zstd":
        zm = _zstd_module()
        return None if zm is None else zm[1]
    return None


def compression_available(method: str) -> bool:
    """True when pages can be written with ``method`` here."""
    try:
        _compressor(method)
        return True
    except CompressionUnavailable:
        return False


# --- bitmaps ---------------------------------------------------------------------------


def _set_bits(buf: bytearray, a: int, b: int) -> None:
    """Set bits [a, b) of buf (bit i = byte i>>3, bit i&7, LSB first)."""
    if a >= b:
        return
    ab, bb = a >> 3, (b - 1) >> 3
    if ab == bb:
        buf[ab] |= ((1 << (b - a)) - 1) << (a & 7)
        return
    buf[ab] |= (0xFF << (a & 7)) & 0xFF
    if bb > ab + 1:
        buf[ab + 1:bb] = b"\xff" * (bb - ab - 1)
    buf[bb] |= (1 << (((b - 1) & 7) + 1)) - 1


def _write_bitmap(fd: int, offset: int, nbytes: int, runs: Iterable[tuple[int, int]]) -> None:
    """Write a bitmap of nbytes at offset from sorted pfn runs; untouched chunks stay holes."""
    bits_per_chunk = _BITMAP_CHUNK * 8
    buf = bytearray(_BITMAP_CHUNK)
    cur = -1
    lo = hi = 0

    def flush() -> None:
        nonlocal lo, hi
        if cur >= 0 and hi > lo:
            start = cur * _BITMAP_CHUNK
            end = min(_BITMAP_CHUNK, nbytes - start)
            os.pwrite(fd, memoryview(buf)[lo:min(hi, end)], offset + start + lo)
            buf[lo:hi] = bytes(hi - lo)
        lo = hi = 0

    for s, e in runs:
        e = min(e, nbytes * 8)
        while s < e:
            ci = s // bits_per_chunk
            if ci != cur:
                flush()
                cur = ci
                lo, hi = _BITMAP_CHUNK, 0
            base = ci * bits_per_chunk
            ce = min(e, base + bits_per_chunk)
            _set_bits(buf, s - base, ce - base)
            lo = min(lo, (s - base) >> 3)
            hi = max(hi, ((ce - base - 1) >> 3) + 1)
            s = ce
    flush()


_NONZERO = re.compile(rb"[^\x00]+")
_FF = b"\xff" * 4096


def bit_runs(chunk: bytes, base: int) -> Iterator[tuple[int, int]]:
    """[start, end) runs of set bits in chunk, numbered from ``base`` (may touch)."""
    for m in _NONZERO.finditer(chunk):
        s, e = m.span()
        for ps in range(s, e, 4096):
            piece = chunk[ps:min(e, ps + 4096)]
            pos = base + ps * 8
            if piece == _FF[:len(piece)]:
                yield pos, pos + len(piece) * 8
                continue
            # bit-twiddle 64 bytes at a time: shifting a 4096-byte int per run made a
            # fragmented bitmap quadratic in the piece size
            for q in range(0, len(piece), 64):
                x = int.from_bytes(piece[q:q + 64], "little")
                p = pos + q * 8
                while x:
                    low = (x & -x).bit_length() - 1
                    x >>= low
                    p += low
                    ones = (x ^ (x + 1)).bit_length() - 1
                    yield p, p + ones
                    x >>= ones
                    p += ones


def _merge_runs(runs: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    cur_s = cur_e = -1
    for s, e in runs:
        if s == cur_e:
            cur_e = e
            continue
        if cur_e > cur_s:
            yield cur_s, cur_e
        cur_s, cur_e = s, e
    if cur_e > cur_s:
        yield cur_s, cur_e


# --- writer ----------------------------------------------------------------------------


def _uts(s: str) -> bytes:
    return s.encode()[:UTS_LEN - 1].ljust(UTS_LEN, b"\0")


class _Sink:
    """Buffered positional writes to one region of the file."""

    def __init__(self, fd: int | None, offset: int) -> None:
        self.fd = fd  # None: count only (a dry run)
        self.pos = offset
        self.buf = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.buf += data
        if len(self.buf) >= _IO_CHUNK:
            self.flush()

    def skip(self, n: int) -> None:
        """Advance over n zero bytes without writing them (file hole)."""
        self.flush()
        self.pos += n

    def flush(self) -> None:
        if self.buf:
            if self.fd is not None:
                os.pwrite(self.fd, self.buf, self.pos)
            self.pos += len(self.buf)
            self.buf.clear()


def write_kdump_compressed(
    image: VmcoreImage,
    path: str | os.PathLike[str] | None,
    *,
    dump_level: int = 31,
    compression: str = "zlib",
    exclusive: bool = False,
) -> WriteStats:
    """``makedumpfile [-c|-l|-p|-z] -d LEVEL /proc/vmcore PATH`` for a simulated vmcore.

    compression: "zlib" (-c), "lzo" (-l), "snappy" (-p), "zstd" (-z) or "none" (no
    option). A page is stored uncompressed (flags 0) when compression does not shrink it.
    Raises CompressionUnavailable when the binding for lzo/snappy/zstd is missing.
    With path None nothing is written: the returned stats (bytes_written included) are
    those of the file this call would write (makedumpfile's report without a host file).
    """
    if not 0 <= dump_level <= 31:
        raise ValueError(f"dump level {dump_level} out of range 0..31")
    if compression not in COMPRESSION_FLAGS:
        raise ValueError(f"unknown compression {compression!r} (zlib, lzo, snappy, zstd, none)")
    compress = _compressor(compression)
    flag = COMPRESSION_FLAGS[compression]
    image.validate()
    path = os.fspath(path) if path is not None else ""
    ps = image.page_size
    max_mapnr = image.max_pfn
    notes = build_notes(image)

    # pass 1, extent-wise: counters and the number of page descriptors
    excluded = {k: 0 for k in EXCLUDE_COUNTERS}
    num_dumpable = 0
    for r in image.ranges:
        for run in plan_range(r, dump_level):
            n = (run.end - run.start) // ps
            if run.action in (KEEP, ZERO):
                num_dumpable += n
            if run.action != KEEP:
                excluded[run.counter] += n

    sub_hdr_size = -(-(SUB_HEADER.size + len(notes.data)) // ps)
    blocks_per_bitmap = max(1, -(-max_mapnr // (8 * ps)))
    bitmap_blocks = 2 * blocks_per_bitmap
    offset_bitmap1 = (1 + sub_hdr_size) * ps
    bitmap_bytes = blocks_per_bitmap * ps
    desc_off = (1 + sub_hdr_size + bitmap_blocks) * ps
    data_off = desc_off + PAGE_DESC.size * num_dumpable

    header = HEADER.pack(
        KDUMP_SIGNATURE, HEADER_VERSION,
        b"".join(_uts(s) for s in ("Linux", image.nodename, image.osrelease, image.version,
                                   image.machine, "(none)")),
        image.crash_time, 0,
        COMPRESSION_FLAGS[compression], ps, sub_hdr_size, bitmap_blocks,
        min(max_mapnr, 0xFFFFFFFF), 0, 0, 0, image.crashing_cpu, len(image.cpus),
    )
    offset_note = ps + SUB_HEADER.size
    sub = SUB_HEADER.pack(
        image.phys_base, dump_level, 0, 0, 0,
        offset_note + notes.vmcoreinfo_offset, notes.vmcoreinfo_size,
        offset_note, len(notes.data), 0, 0, 0, 0, max_mapnr,
    )

    written = 0
    zero_shared = 0
    fd = create_dump_file(path, exclusive) if path else None
    try:
        if fd is not None:
            os.pwrite(fd, header, 0)
            os.pwrite(fd, sub + notes.data, ps)
            mem_runs = _merge_runs((r.paddr // ps, r.end // ps) for r in image.ranges)
            _write_bitmap(fd, offset_bitmap1, bitmap_bytes, mem_runs)
            dump_runs = _merge_runs(
                (run.start // ps, run.end // ps)
                for r in image.ranges for run in plan_range(r, dump_level)
                if run.action in (KEEP, ZERO))
            _write_bitmap(fd, offset_bitmap1 + bitmap_bytes, bitmap_bytes, dump_runs)

        descs = _Sink(fd, desc_off)
        data = _Sink(fd, data_off)
        pos = data_off
        pd_zero = b""
        if dump_level & 1:  # makedumpfile writes the shared zero page first
            pd_zero = PAGE_DESC.pack(pos, ps, 0, 0)
            data.skip(ps)
            pos += ps
        zero_cache: tuple[int, int, bytes | None] | None = None  # encoded zero page
        fast = _ZlibStampPage(ps) if compression == "zlib" else None
        page = bytearray(ps)
        for r in image.ranges:
            for run in plan_range(r, dump_level):
                n = (run.end - run.start) // ps
                if run.action == ZERO:
                    zero_shared += n
                    if fd is None:  # dry run: descriptors take no data bytes
                        continue
                    for k in range(0, n, 65536):
                        descs.write(pd_zero * min(65536, n - k))
                    continue
                if run.action != KEEP:
                    continue
                e = run.extent
                assert e is not None
                first = e.base + (run.start - e.start) // ps
                written += n
                if not e.tag:  # zero content kept (no zero bit): compress once
                    if zero_cache is None:
                        zero_cache = _encode(compress, flag, zero_page(ps), ps, b"")
                    flags, size, blob = zero_cache
                    if fd is None:  # dry run: sizes only
                        pos += n * size
                        continue
                    for _ in range(n):
                        descs.write(PAGE_DESC.pack(pos, size, flags, 0))
                        if blob is None:
                            data.skip(ps)
                        else:
                            data.write(blob)
                        pos += size
                    continue
                if fd is None and compress is None:  # dry run, raw pages: sizes only
                    pos += n * ps
                    continue
                if fd is None and fast is not None:  # dry run, zlib: one size per run
                    size = fast.size(stamp_bytes(e.tag, first, e.klass))
                    pos += n * (size if size < ps else ps)
                    continue
                for i in range(n):
                    st = stamp_bytes(e.tag, first + i, e.klass)
                    page[:len(st)] = st
                    flags, size, blob = _encode(compress, flag, page, ps, st, fast)
                    page[:len(st)] = bytes(len(st))
                    descs.write(PAGE_DESC.pack(pos, size, flags, 0))
                    if flags:
                        assert blob is not None
                        data.write(blob)
                    else:  # raw page: stamp, then a hole for the zero tail
                        data.write(st)
                        data.skip(ps - len(st))
                    pos += size
        descs.flush()
        data.flush()
        if fd is not None:
            os.ftruncate(fd, pos)
    finally:
        if fd is not None:
            os.close(fd)

    return WriteStats(
        path=path, format="kdump", dump_level=dump_level, compression=compression,
        page_size=ps, max_mapnr=max_mapnr, pages_total=image.total_pages,
        pages_written=written, pages_excluded=excluded, bytes_written=pos,
        pages_zero_shared=zero_shared,
    )


class _ZlibStampPage:
    """zlib stream of a stamped page (stamp + zeros) in O(stamp) time, of a size that
    depends on the stamp's length only.

    Deflating 64 KiB of zeros for every page would dominate a dump's write time, and a
    size that depends on the page index (as deflating the stamp would) makes the dry
    run that prints makedumpfile's "Write bytes" walk every kept page: 2 million pages
    for a 128 GB kernel on an 8 TB partition.  So the stamp goes into a stored deflate
    block (byte aligned, 5 bytes of header) followed by a cached, independently
    deflated zero tail; the adler32 of the zeros is arithmetic.  Any zlib reader
    inflates it to exactly the page bytes, and every page of an extent has the same
    size (`size`), so the writer sizes a run of pages with one multiplication.
    """

    HEADER = b"\x78\x01"  # deflate, 32K window, level 1 (as zlib.compress(data, 1))
    STORED = 5            # BFINAL=0 BTYPE=00 byte, LEN, NLEN

    def __init__(self, page_size: int) -> None:
        self.ps = page_size
        self.tails: dict[int, bytes] = {}

    def _tail(self, n: int) -> bytes:
        tail = self.tails.get(n)
        if tail is None:
            c = zlib.compressobj(1, zlib.DEFLATED, -15)
            tail = c.compress(zero_page(self.ps)[:n]) + c.flush(zlib.Z_FINISH)
            self.tails[n] = tail
        return tail

    def size(self, stamp: bytes) -> int:
        """len(self(stamp)): a function of len(stamp) alone."""
        return (len(self.HEADER) + self.STORED + len(stamp)
                + len(self._tail(self.ps - len(stamp))) + 4)

    def __call__(self, stamp: bytes) -> bytes:
        n = self.ps - len(stamp)
        head = b"\x00" + struct.pack("<HH", len(stamp), len(stamp) ^ 0xFFFF) + stamp
        a = zlib.adler32(stamp)
        s1, s2 = a & 0xFFFF, (a >> 16) & 0xFFFF
        s2 = (s2 + n * s1) % 65521  # adler32 extended over n zero bytes
        return self.HEADER + head + self._tail(n) + ((s2 << 16) | s1).to_bytes(4, "big")


def _encode(compress: Callable[[Any], bytes] | None, flag: int, page: bytes | bytearray,
            ps: int, stamp: bytes, fast: _ZlibStampPage | None = None) -> tuple[int, int, bytes | None]:
    """(flags, size, data) for one page = stamp + zeros.

    Uncompressed pages return just the stamp (data None for the zero page): the writer
    leaves the zero tail as a file hole.
    """
    if compress is not None:
        out = fast(stamp) if fast is not None and stamp else compress(page)
        if len(out) < ps:
            return flag, len(out), out
    return 0, ps, stamp or None


# --- reader ----------------------------------------------------------------------------

_COMPRESSION_NAMES = (
    (DUMP_DH_COMPRESSED_ZLIB, "zlib"), (DUMP_DH_COMPRESSED_LZO, "lzo"),
    (DUMP_DH_COMPRESSED_SNAPPY, "snappy"), (DUMP_DH_COMPRESSED_ZSTD, "zstd"),
)


@dataclass(frozen=True)
class PageDesc:
    """One struct page_desc as read back."""

    offset: int
    size: int
    flags: int
    page_flags: int


class KdumpDump(ParsedDump):
    """A kdump-compressed file opened by :func:`read_kdump_compressed`."""

    format = "kdump"

    def __init__(self, path: str, f: IO[bytes], size: int) -> None:
        super().__init__(path, f, size)
        self.sub_header: dict[str, Any] = {}
        self.max_mapnr = 0
        self.num_dumpable = 0
        self.bitmap1_off = 0
        self.bitmap_bytes = 0
        self.desc_off = 0
        self.data_off = 0
        self._en = "<"
        # 2nd-bitmap runs: pfn starts/ends and index of the first descriptor of each run
        self._starts: array[int] = array("Q")
        self._ends: array[int] = array("Q")
        self._first: array[int] = array("Q")
        self._mem: list[tuple[int, int]] | None = None

    # bitmaps -----------------------------------------------------------------------
    def _bitmap_runs(self, offset: int) -> Iterator[tuple[int, int]]:
        """Merged pfn runs of one bitmap, streamed in chunks, clipped to max_mapnr."""
        total = min(self.bitmap_bytes, -(-self.max_mapnr // 8))
        zero = zero_page(_BITMAP_CHUNK)

        def raw() -> Iterator[tuple[int, int]]:
            for start in range(0, total, _BITMAP_CHUNK):
                n = min(_BITMAP_CHUNK, total - start)
                chunk = self._pread(offset + start, n, "page bitmap")
                if chunk == zero[:n]:
                    continue
                for s, e in bit_runs(chunk, start * 8):
                    if s >= self.max_mapnr:
                        return
                    yield s, min(e, self.max_mapnr)

        return _merge_runs(raw())

    def _load_dump_bitmap(self) -> None:
        limit = (self.file_size - self.desc_off) // PAGE_DESC.size if self.file_size > self.desc_off else 0
        count = 0
        for s, e in self._bitmap_runs(self.bitmap1_off + self.bitmap_bytes):
            self._starts.append(s)
            self._ends.append(e)
            self._first.append(count)
            count += e - s
            if count > limit:
                raise DumpFormatError(
                    self.path, self.file_size,
                    f"2nd bitmap names more pages ({count}+) than the file has page descriptors for ({limit})")
        self.num_dumpable = count
        self.data_off = self.desc_off + count * PAGE_DESC.size

    def memory_runs(self) -> Iterator[tuple[int, int]]:
        if self._mem is None:
            ps = self.page_size
            mem: list[tuple[int, int]] = []
            for s, e in self._bitmap_runs(self.bitmap1_off):
                if len(mem) >= MAX_MEMORY_RUNS:  # bounded memory on a hostile bitmap
                    raise DumpFormatError(
                        self.path, self.bitmap1_off,
                        f"1st bitmap lists more than {MAX_MEMORY_RUNS:,} runs of memory "
                        "(a pseries partition has at most 262,144 LMBs)")
                mem.append((s * ps, e * ps))
            self._mem = mem
        return iter(self._mem)

    def present_runs(self) -> Iterator[tuple[int, int]]:
        ps = self.page_size
        return ((s * ps, e * ps) for s, e in zip(self._starts, self._ends))

    @property
    def pages_present(self) -> int:
        return self.num_dumpable

    # pages ---------------------------------------------------------------------------
    def page_desc(self, paddr: int) -> PageDesc | None:
        """The page descriptor for paddr, or None when the page is not dumped."""
        pfn = paddr // self.page_size
        i = bisect.bisect_right(self._starts, pfn) - 1
        if i < 0 or pfn >= self._ends[i]:
            return None
        at = self.desc_off + (self._first[i] + pfn - self._starts[i]) * PAGE_DESC.size
        off, size, flags, page_flags = struct.unpack(
            self._en + "QIIQ", self._pread(at, PAGE_DESC.size, "page descriptor"))
        ps = self.page_size
        if flags & _ANY_COMPRESSED:
            if size == 0 or size > ps:
                raise DumpFormatError(self.path, at + 8, f"bad compressed size {size} for pfn {pfn:#x}")
        elif size != ps:
            raise DumpFormatError(self.path, at + 8, f"uncompressed page of size {size} (expected {ps}) for pfn {pfn:#x}")
        if off < self.desc_off or off + size > self.file_size:
            raise DumpFormatError(self.path, at, f"descriptor of pfn {pfn:#x} points at data [{off}, "
                                  f"{off + size}) outside the page data area (file size {self.file_size})")
        return PageDesc(off, size, flags, page_flags)

    def _decode(self, pd: PageDesc, limit: int) -> bytes:
        ps = self.page_size
        if not pd.flags & _ANY_COMPRESSED:
            return self._pread(pd.offset, min(limit, pd.size), "page data")
        raw = self._pread(pd.offset, pd.size, "page data")
        if pd.flags & DUMP_DH_COMPRESSED_ZLIB:
            try:
                d = zlib.decompressobj()
                out = d.decompress(raw, limit)
                if limit >= ps:
                    if len(out) != ps or d.unconsumed_tail or (not d.eof and d.flush(1)):
                        raise DumpFormatError(self.path, pd.offset, f"zlib page decompresses to {len(out)}+ bytes, not {ps}")
                elif len(out) < limit:
                    raise DumpFormatError(self.path, pd.offset, "zlib page data too short")
                return out
            except zlib.error as exc:
                raise DumpFormatError(self.path, pd.offset, f"zlib page data corrupt ({exc})") from None
        method = next((name for bit, name in _COMPRESSION_NAMES if pd.flags & bit), "?")
        dec = _decompressor(method)
        if dec is None:
            raise DumpFormatError(self.path, pd.offset,
                                  f"page compressed with {method}; install {_BINDING.get(method, method)} to read it")
        try:
            out = dec(raw, ps)
        except Exception as exc:  # binding-specific error types
            raise DumpFormatError(self.path, pd.offset, f"{method} page data corrupt ({exc})") from None
        if len(out) != ps:
            raise DumpFormatError(self.path, pd.offset, f"{method} page decompresses to {len(out)} bytes, not {ps}")
        return out[:limit]

    def read_page(self, paddr: int) -> bytes | None:
        pd = self.page_desc(paddr)
        return None if pd is None else self._decode(pd, self.page_size)

    def read_page_head(self, paddr: int, n: int = 128) -> bytes | None:
        pd = self.page_desc(paddr)
        return None if pd is None else self._decode(pd, min(n, self.page_size))

    def is_shared_zero(self, paddr: int) -> bool:
        if self.dump_level is None or not self.dump_level & 1:
            return False
        pd = self.page_desc(paddr)
        return pd is not None and pd.offset == self.data_off and pd.flags == 0


def read_kdump_compressed(path: str | os.PathLike[str]) -> KdumpDump:
    """Open and validate a kdump-compressed file; raises DumpFormatError when malformed."""
    path = os.fspath(path)
    f = open(path, "rb")
    try:
        d = KdumpDump(path, f, os.fstat(f.fileno()).st_size)
        _parse_kdump(d)
        return d
    except DumpFormatError:
        f.close()
        raise
    except (struct.error, ValueError, IndexError, OverflowError, MemoryError, UnicodeError) as exc:
        f.close()
        raise DumpFormatError(path, 0, f"malformed kdump file ({type(exc).__name__}: {exc})") from None


def _parse_kdump(d: KdumpDump) -> None:
    path, size = d.path, d.file_size
    if size < HEADER.size:
        raise DumpFormatError(path, size, f"truncated disk_dump_header (file is {size} bytes)")
    raw = d._pread(0, HEADER.size, "disk_dump_header")
    if raw[:8] != KDUMP_SIGNATURE:
        raise DumpFormatError(path, 0, f"not a kdump-compressed file (signature {raw[:8]!r})")
    # byte order: the one that gives a sane block size (as libkdumpfile decides)
    for en in ("<", ">"):
        bs = struct.unpack_from(en + "i", raw, 428)[0]
        if 4096 <= bs <= (1 << 20) and not bs & (bs - 1):
            break
    else:
        raise DumpFormatError(path, 428, f"bad block_size {struct.unpack_from('<i', raw, 428)[0]}")
    d._en = en
    (sig, version, uts, tv_sec, tv_usec, status, block_size, sub_hdr_size, bitmap_blocks,
     max_mapnr32, total_ram_blocks, device_blocks, written_blocks, current_cpu,
     nr_cpus) = struct.unpack(en + HEADER.format[1:], raw)
    ps = check_page_size(path, block_size, 428)
    d.page_size = ps
    if not 1 <= version <= 64:
        raise DumpFormatError(path, 8, f"unsupported header_version {version}")
    if sub_hdr_size < 1:
        raise DumpFormatError(path, 432, f"bad sub_hdr_size {sub_hdr_size}")
    if bitmap_blocks < 2 or bitmap_blocks % 2:
        raise DumpFormatError(path, 436, f"bad bitmap_blocks {bitmap_blocks} (two bitmaps expected)")
    names = ("sysname", "nodename", "release", "version", "machine", "domainname")
    utsname = {n: uts[i * UTS_LEN:(i + 1) * UTS_LEN].split(b"\0", 1)[0].decode("utf-8", "replace")
               for i, n in enumerate(names)}
    d.compression = next((name for bit, name in _COMPRESSION_NAMES if status & bit), "none")
    d.header = {
        "signature": sig.decode("ascii", "replace"), "header_version": version, "utsname": utsname,
        "timestamp": tv_sec, "timestamp_usec": tv_usec, "status": status, "block_size": block_size,
        "sub_hdr_size": sub_hdr_size, "bitmap_blocks": bitmap_blocks, "max_mapnr": max_mapnr32,
        "total_ram_blocks": total_ram_blocks, "device_blocks": device_blocks,
        "written_blocks": written_blocks, "current_cpu": current_cpu, "nr_cpus": nr_cpus,
        "byte_order": "little" if en == "<" else "big",
    }
    meta_end = (1 + sub_hdr_size) * ps
    if meta_end > size:
        raise DumpFormatError(path, size, f"sub header area (to {meta_end}) extends past end of file")
    sub = struct.unpack(en + SUB_HEADER.format[1:], d._pread(ps, SUB_HEADER.size, "kdump_sub_header"))
    (phys_base, dump_level, split, start_pfn, end_pfn, off_vmci, size_vmci, off_note, size_note,
     off_erase, size_erase, start_pfn_64, end_pfn_64, max_mapnr_64) = sub
    d.sub_header = dict(zip(
        ("phys_base", "dump_level", "split", "start_pfn", "end_pfn", "offset_vmcoreinfo",
         "size_vmcoreinfo", "offset_note", "size_note", "offset_eraseinfo", "size_eraseinfo",
         "start_pfn_64", "end_pfn_64", "max_mapnr_64"), sub))
    if not 0 <= dump_level <= 31:
        raise DumpFormatError(path, ps + 8, f"bad dump_level {dump_level}")
    if split:
        raise DumpFormatError(path, ps + 12, "split dump files (--split) are not supported")
    d.dump_level = dump_level
    d.max_mapnr = max_mapnr_64 if version >= 6 else max_mapnr32
    half = bitmap_blocks // 2 * ps
    if d.max_mapnr > half * 8:
        raise DumpFormatError(path, ps + 96 if version >= 6 else 440,
                              f"max_mapnr {d.max_mapnr} needs more than the {half * 8} bits of a bitmap")
    d.bitmap1_off = meta_end
    d.bitmap_bytes = half
    d.desc_off = meta_end + bitmap_blocks * ps
    if d.desc_off > size:
        raise DumpFormatError(path, size, f"bitmaps (to {d.desc_off}) extend past end of file")
    if version >= 4 and size_note:
        if size_note > MAX_NOTE_BYTES:
            raise DumpFormatError(path, ps + 56, f"note area too large ({size_note} bytes)")
        if off_note < ps or off_note + size_note > size:
            raise DumpFormatError(path, min(size, off_note + size_note), f"notes [{off_note}, {off_note + size_note}) outside the file")
        d.notes = parse_notes(path, d._pread(off_note, size_note, "ELF notes"), off_note, en)
    if not d.notes.vmcoreinfo and version >= 3 and size_vmci:
        if size_vmci > MAX_NOTE_BYTES or off_vmci + size_vmci > size:
            raise DumpFormatError(path, ps + 32, f"bad VMCOREINFO location [{off_vmci}, +{size_vmci})")
        d.notes.vmcoreinfo_text = d._pread(off_vmci, size_vmci, "VMCOREINFO").decode("utf-8", "replace")
        d.notes.vmcoreinfo = parse_vmcoreinfo(d.notes.vmcoreinfo_text)
        d.notes.vmcoreinfo_offset = off_vmci
    d._load_dump_bitmap()
