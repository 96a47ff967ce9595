"""kdump-compressed file size is the format's floor plus the kept pages, never per partition page.

The file is parsed here with a few struct calls written from makedumpfile's
diskdump_mod.h (not with the writer's reader), and bytes are counted, not time:

    file = (1 + sub_hdr_size + bitmap_blocks) blocks   header, notes, 2 bitmaps
         + 24 bytes per page set in the 2nd bitmap     page descriptors
         + the descriptors' data                       kept pages (+ one shared zero page)

A page excluded by its class (-d 16: free, never-used memory) has no bit in the 2nd
bitmap and no descriptor, whatever the partition size.
"""
from __future__ import annotations

import os
import struct
import zlib

import pytest

from fadumpsim.dumpfile import ContentExtent, CpuState, LoadRange, VmcoreImage, write_kdump_compressed

PS = 65536
MB = 1 << 20
GB = 1 << 30
TB = 1 << 40


def image(size: int, kept_mb: int, zero_mb: int = 0) -> VmcoreImage:
    """`kept_mb` of kernel pages, then `zero_mb` of zero-content pages, the rest free."""
    exts = [ContentExtent(0, kept_mb * MB, "kernel", "kernel:text", 0)]
    at = kept_mb * MB
    if zero_mb:
        exts.append(ContentExtent(at, at + zero_mb * MB, "zero", "", 0))
        at += zero_mb * MB
    exts.append(ContentExtent(at, size, "free", "", 0))
    return VmcoreImage("4.18.0-fadumpsim", PS, 1, {"swapper_pg_dir": 0xC000000001230000},
                       (CpuState(0, tuple(range(48))),), 0, (LoadRange(0, size, tuple(exts)),))


def parse(path: str) -> dict[str, int]:
    """Sizes of a kdump-compressed file from its own headers (diskdump_mod.h layout)."""
    with open(path, "rb") as f:
        hdr = f.read(464)
        sig, version = struct.unpack_from("<8si", hdr, 0)
        assert sig == b"KDUMP   " and version == 6
        # after signature, header_version, utsname (6*65 + 6 pad) and timestamp (2*8):
        status, block_size, sub_hdr_size, bitmap_blocks, max_mapnr = struct.unpack_from(
            "<IiiII", hdr, 8 + 4 + 390 + 6 + 16)
        f.seek(block_size)
        max_mapnr_64 = struct.unpack_from("<Q", f.read(104), 96)[0]
        bitmap_off = (1 + sub_hdr_size) * block_size
        half = bitmap_blocks * block_size // 2
        f.seek(bitmap_off + half)
        dumpable = 0
        left = half
        while left:
            chunk = f.read(min(left, 16 * MB))
            dumpable += int.from_bytes(chunk, "little").bit_count()
            left -= len(chunk)
        desc_off = (1 + sub_hdr_size + bitmap_blocks) * block_size
        f.seek(desc_off)
        descs = [struct.unpack_from("<QIIQ", f.read(24)) for _ in range(min(dumpable, 4096))]
    return {"block_size": block_size, "bitmap_bytes": 2 * half, "max_mapnr": max_mapnr_64,
            "dumpable": dumpable, "desc_off": desc_off, "status": status,
            "file": os.path.getsize(path), "descs": descs}


@pytest.fixture(scope="module")
def sizes(tmp_path_factory) -> dict[tuple[int, int], dict[str, int]]:
    d = tmp_path_factory.mktemp("dsize")
    out = {}
    for size in (8 * GB, TB, 4 * TB):
        for kept in (64, 256):
            p = str(d / f"{size}-{kept}.kdump")
            write_kdump_compressed(image(size, kept), p, dump_level=31, compression="zlib")
            out[(size, kept)] = parse(p)
            os.unlink(p)
    return out


def test_file_is_bitmaps_plus_kept_pages(sizes) -> None:
    for (size, kept), s in sizes.items():
        pfns = size // PS
        assert s["max_mapnr"] == pfns
        # two bitmaps of one bit per page, rounded up to whole blocks: the format's floor
        assert s["bitmap_bytes"] == 2 * -(-pfns // (8 * PS)) * PS
        # only the kept pages are in the 2nd bitmap and have a descriptor
        assert s["dumpable"] == kept * MB // PS
        data = s["file"] - s["desc_off"] - 24 * s["dumpable"]
        assert 0 < data < s["dumpable"] * 600  # a stamped 64K page deflates to ~400 bytes
        for off, size_, flags, _ in s["descs"]:
            assert flags == 1 and s["desc_off"] + 24 * s["dumpable"] <= off < s["file"]


def test_kept_page_bytes_do_not_depend_on_partition_size(sizes) -> None:
    """Same kept pages on 8 GB, 1 TB and 4 TB: descriptors and data are the same bytes
    count; only the bitmaps grow (1 bit per partition page)."""
    for kept in (64, 256):
        tails = {s["file"] - s["desc_off"] for (size, k), s in sizes.items() if k == kept}
        assert len(tails) == 1, tails
    # and 4x the kept pages costs 4x the descriptors and 3-5x the data
    small, big = sizes[(TB, 64)], sizes[(TB, 256)]
    assert big["dumpable"] == 4 * small["dumpable"]
    data = [s["file"] - s["desc_off"] - 24 * s["dumpable"] for s in (small, big)]
    assert 3 * data[0] < data[1] < 5 * data[0]


def test_4tb_compressed_dump_is_under_64mb(sizes) -> None:
    s = sizes[(4 * TB, 256)]
    assert s["file"] <= 64 * MB
    assert s["bitmap_bytes"] == 16 * MB  # 2 x 64 Mi pages / 8


def test_zero_pages_share_one_page_but_keep_a_descriptor(tmp_path) -> None:
    """makedumpfile -d 1 (write_kdump_pages_cyclic): a zero-filled page stays in the 2nd
    bitmap and its descriptor points at the one zero page written first; a free page
    (-d 16) has neither."""
    p = str(tmp_path / "z.kdump")
    write_kdump_compressed(image(8 * GB, 64, zero_mb=128), p, dump_level=31)
    s = parse(p)
    assert s["dumpable"] == (64 + 128) * MB // PS
    zero_descs = [d for d in s["descs"] if d[2] == 0]
    assert len(zero_descs) == 128 * MB // PS and len({d[0] for d in zero_descs}) == 1
    off, size_, _, _ = zero_descs[0]
    with open(p, "rb") as f:
        f.seek(off)
        assert size_ == PS and f.read(PS) == bytes(PS)
    kernel = [d for d in s["descs"] if d[2] == 1]
    with open(p, "rb") as f:
        f.seek(kernel[5][0])
        page = zlib.decompress(f.read(kernel[5][1]))
    assert len(page) == PS and page.startswith(b"FADUMPSIM\0")


def test_dry_run_sizes_a_run_of_pages_at_once(tmp_path, monkeypatch) -> None:
    """makedumpfile's "Write bytes" comes from a dry run (path None) of the writer; on a
    4 TB partition with 64 GB of kept kernel pages (a million pages) it must stamp a
    page per extent run, not per page -- and give the size of the file it would write."""
    from fadumpsim.dumpfile import kdump
    calls = []
    real = kdump.stamp_bytes
    monkeypatch.setattr(kdump, "stamp_bytes", lambda *a: calls.append(a) or real(*a))
    big = write_kdump_compressed(image(4 * TB, 64 * 1024), None, dump_level=31,
                                 compression="zlib")
    assert big.pages_written == 64 * GB // PS
    assert len(calls) <= 2, len(calls)
    # the same sizing, checked against the bytes of a written file (small image)
    calls.clear()
    dry = write_kdump_compressed(image(8 * GB, 256), None, dump_level=31)
    p = tmp_path / "k.kdump"
    st = write_kdump_compressed(image(8 * GB, 256), str(p), dump_level=31)
    assert dry.bytes_written == st.bytes_written == p.stat().st_size
    assert len(calls) >= 256 * MB // PS  # the real file: every kept page has its stamp


def test_dry_run_of_zero_pages_builds_no_descriptors(monkeypatch) -> None:
    """-d 1 without bit 16 keeps never-used memory as zero pages: 128 Mi descriptors on
    8 TB. The dry run counts them without building their 3 GiB of descriptors."""
    from fadumpsim.dumpfile import kdump
    built = []
    real = kdump._Sink.write
    monkeypatch.setattr(kdump._Sink, "write", lambda self, b: built.append(len(b)) or real(self, b))
    st = write_kdump_compressed(image(8 * TB, 64, zero_mb=8 * 1024 * 1024 - 128), None,
                                dump_level=1, compression="zlib")
    assert st.pages_zero_shared == (8 * TB - 64 * MB) // PS  # free is zero content at -d 1
    assert sum(built) <= 24 * 64 * MB // PS, sum(built)
