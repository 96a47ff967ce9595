"""Dump files written from a simulated vmcore must open in real tools and read back right."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
import tracemalloc

import pytest

from fadumpsim.dumpfile import (
    DUMP_LEVEL_BITS,
    CompressionUnavailable,
    ContentExtent,
    CpuState,
    DumpFormatError,
    LoadRange,
    VmcoreImage,
    compression_available,
    decode_page,
    decode_stamp,
    inspect_dump,
    makedumpfile_report,
    open_dump,
    page_bytes,
    read_elf_vmcore,
    read_kdump_compressed,
    render_inspect,
    write_elf_vmcore,
    write_kdump_compressed,
)
from fadumpsim.dumpfile.pages import is_zero

PS = 65536
MB = 1 << 20
TB = 1 << 40
SWAPPER = 0xC000000001230000


def ext(a: int, b: int, klass: str, tag: str, base: int = 0, readable: bool = True) -> ContentExtent:
    return ContentExtent(a * MB, b * MB, klass, tag, base, readable)


def regs(cpu: int) -> tuple[int, ...]:
    r = [0xC000000000000000 + cpu * 0x1000 + i for i in range(48)]
    r[32] = 0xC000000000ABC000 + cpu * 4  # nip
    r[33] = 0x8000000000001033  # msr
    return tuple(r)


def make_image(*, unreadable: bool = False, ncpus: int = 3) -> VmcoreImage:
    """3 ranges, 832 pages of 64K, every class; optionally a hot-removed (unreadable) MB."""
    r2_tail = ((ext(18, 19, "kernel", "kernel:percpu"), ext(19, 20, "user", "user:gone", 0, False))
               if unreadable else (ext(18, 20, "kernel", "kernel:percpu"),))
    r1 = LoadRange(0, 8 * MB, (
        ext(0, 2, "kernel", "kernel:boot-image"), ext(2, 3, "user", "user:alloc-1"),
        ext(3, 4, "zero", ""), ext(4, 5, "cache", "cache:f1"), ext(5, 6, "free", ""),
        ext(6, 8, "kernel", "kernel:slab", 32)))
    r2 = LoadRange(16 * MB, 4 * MB, (
        ext(16, 17, "cache_private", "pc:1"), ext(17, 18, "kernel", "")) + r2_tail)
    r3 = LoadRange(64 * MB, 40 * MB, (
        ext(64, 80, "free", "free:x"), ext(80, 81, "kernel", "kernel:late"), ext(81, 104, "user", "user:big")))
    cpus = tuple(CpuState(i, regs(i)) for i in range(ncpus))
    return VmcoreImage("4.18.0-fadumpsim", PS, 1_530_000_000,
                       {"swapper_pg_dir": SWAPPER, "init_task": 0xC000000001500000},
                       cpus, 1, (r1, r2, r3))


def expected_excluded(image: VmcoreImage, level: int) -> dict[str, int]:
    """Independent reference: makedumpfile's per-class counters for a dump level."""
    out = {k: 0 for k in ("zero", "cache", "cache_private", "user", "free", "hwpoison", "offline")}
    for r in image.ranges:
        covered = 0
        for e in r.extents:
            n = (e.end - e.start) // PS
            covered += n
            if not e.readable:
                out["offline"] += n
            elif e.klass in ("cache", "cache_private", "user", "free") and level & DUMP_LEVEL_BITS[e.klass]:
                out[e.klass] += n
            elif e.tag == "" and level & 1:
                out["zero"] += n
        out["offline"] += r.size // PS - covered
    return out


@pytest.fixture(scope="module")
def image() -> VmcoreImage:
    return make_image()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, image: VmcoreImage) -> dict[str, str]:
    d = tmp_path_factory.mktemp("dumps")
    out = {
        "elf0": str(d / "vmcore.elf0"),
        "elf31": str(d / "vmcore.elf31"),
        "elf31m": str(d / "vmcore.elf31m"),
        "kd31": str(d / "vmcore.kd31"),
        "kd0": str(d / "vmcore.kd0"),
        "kd1": str(d / "vmcore.kd1"),
    }
    write_elf_vmcore(image, out["elf0"], dump_level=0)
    write_elf_vmcore(image, out["elf31"], dump_level=31)
    write_elf_vmcore(image, out["elf31m"], dump_level=31, layout="makedumpfile")
    write_kdump_compressed(image, out["kd31"], dump_level=31, compression="zlib")
    write_kdump_compressed(image, out["kd0"], dump_level=0, compression="none")
    write_kdump_compressed(image, out["kd1"], dump_level=1, compression="zlib")
    return out


# --- page stamps and the data model ------------------------------------------------------


def test_page_stamp_roundtrip() -> None:
    p = page_bytes("user:alloc-7", 12345, PS, "user")
    assert len(p) == PS and p.startswith(b"FADUMPSIM\0")
    assert decode_page(p) == ("user:alloc-7", 12345)
    st = decode_stamp(p[:64])
    assert st is not None and (st.tag, st.index, st.klass) == ("user:alloc-7", 12345, "user")
    z = page_bytes("", 9, PS)
    assert z == bytes(PS) and decode_page(z) is None and is_zero(z)
    assert page_bytes("", 1, PS) is page_bytes("", 2, PS)  # cached zero filler
    assert decode_page(b"\x01" * 64) is None
    with pytest.raises(ValueError):
        ContentExtent(0, PS, "zero", "not-empty", 0)


def test_image_truth_helpers() -> None:
    img = make_image(unreadable=True)
    assert img.page_identity(6 * MB + 3 * PS) == ("kernel:slab", 35)
    assert img.page_identity(3 * MB) == ("", 0)
    assert img.page_identity(19 * MB) is None  # unreadable
    assert img.page_identity(10 * MB) is None  # hole between ranges
    assert img.page_class(81 * MB) == "user"
    assert img.max_pfn == 104 * MB // PS and img.total_pages == 832


# --- ELF: pyelftools, readelf, drgn ----------------------------------------------------


def test_elf_pyelftools(files: dict[str, str], image: VmcoreImage) -> None:
    from elftools.elf.elffile import ELFFile

    with open(files["elf0"], "rb") as f:
        elf = ELFFile(f)
        assert elf.little_endian and elf.elfclass == 64
        assert elf.header["e_type"] == "ET_CORE"
        assert elf.header["e_machine"] == "EM_PPC64"
        assert elf.header["e_flags"] == 2
        notes = [n for seg in elf.iter_segments() if seg["p_type"] == "PT_NOTE" for n in seg.iter_notes()]
        prstatus = [n for n in notes if n["n_type"] == "NT_PRSTATUS"]
        assert len(prstatus) == len(image.cpus)
        assert all(n["n_name"] == "CORE" and n["n_descsz"] == 504 for n in prstatus)
        vmci = [n for n in notes if n["n_name"] == "VMCOREINFO"]
        assert len(vmci) == 1
        desc = vmci[0]["n_desc"]
        text = desc if isinstance(desc, str) else desc.decode()
        keys = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        assert keys["OSRELEASE"] == "4.18.0-fadumpsim"
        assert keys["PAGESIZE"] == "65536"
        assert keys["SYMBOL(swapper_pg_dir)"] == "c000000001230000"
        assert keys["CRASHTIME"] == "1530000000"
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert [(s["p_paddr"], s["p_memsz"]) for s in loads] == [(r.paddr, r.size) for r in image.ranges]
        for s in loads:
            assert s["p_vaddr"] == 0xC000000000000000 + s["p_paddr"]
            assert s["p_filesz"] == s["p_memsz"] and s["p_flags"] == 7
            assert s["p_offset"] % PS == 0  # /proc/vmcore page-aligns the data
        first = loads[0].data()[:64]
        assert decode_page(first) == ("kernel:boot-image", 0)


def _readelf() -> str:
    path = shutil.which("readelf")
    if path is None:
        pytest.skip("readelf (binutils) is not installed: apt-get install -y binutils")
    return path


def test_readelf_lists_notes_and_loads(files: dict[str, str], image: VmcoreImage) -> None:
    out = subprocess.run([_readelf(), "-n", "-l", "-W", files["elf0"]], check=True,
                         capture_output=True, text=True).stdout
    assert "CORE (Core file)" in out
    assert out.count("NT_PRSTATUS") == len(image.cpus)
    assert "VMCOREINFO" in out
    loads = [line.split() for line in out.splitlines() if line.strip().startswith("LOAD")]
    assert [(int(f[3], 16), int(f[5], 16)) for f in loads] == [(r.paddr, r.size) for r in image.ranges]
    assert all(f[6] == "RWE" for f in loads)
    hdr = subprocess.run([_readelf(), "-h", files["elf31"]], check=True, capture_output=True, text=True).stdout
    assert "PowerPC64" in hdr and "little endian" in hdr


def _drgn_program(path: str):  # type: ignore[no-untyped-def]
    drgn = pytest.importorskip("drgn")
    prog = drgn.Program(drgn.Platform(drgn.Architecture.PPC64,
                                      drgn.PlatformFlags.IS_LITTLE_ENDIAN | drgn.PlatformFlags.IS_64_BIT))
    prog.set_core_dump(path)
    return drgn, prog


def _drgn_page(drgn, prog, addr: int):  # type: ignore[no-untyped-def]
    try:
        data = prog.read(addr, PS, True)
    except drgn.FaultError:
        return "excluded"
    return decode_page(data) if not is_zero(data) else "zero"


def _check_drgn_pages(path: str, image: VmcoreImage, level: int) -> None:
    drgn, prog = _drgn_program(path)
    assert prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL
    for r in image.ranges:
        for e in r.extents:
            for addr in (e.start, e.end - PS):
                got = _drgn_page(drgn, prog, addr)
                kept = not (e.klass in ("cache", "cache_private", "user", "free")
                            and level & DUMP_LEVEL_BITS[e.klass])
                if not e.readable:
                    assert got == "excluded"
                elif not kept:
                    assert got == "excluded", (hex(addr), e.klass, got)
                elif e.tag == "":
                    # kdump keeps excluded zero pages as the shared zero page; ELF drops them
                    assert got in ("zero", "excluded") and (got == "zero" or level & 1)
                else:
                    assert got == image.page_identity(addr), (hex(addr), got)


@pytest.mark.parametrize("key,level", [("elf0", 0), ("elf31", 31)])
def test_drgn_opens_elf(files: dict[str, str], image: VmcoreImage, key: str, level: int) -> None:
    _check_drgn_pages(files[key], image, level)


@pytest.mark.parametrize("key,level", [("kd31", 31), ("kd0", 0), ("kd1", 1)])
def test_drgn_opens_kdump(files: dict[str, str], image: VmcoreImage, key: str, level: int) -> None:
    _check_drgn_pages(files[key], image, level)
    drgn, prog = _drgn_program(files[key])
    if level & 1:  # shared zero page: readable as zeros, not absent
        assert prog.read(3 * MB, PS, True) == bytes(PS)


def test_drgn_unreadable_extent_absent(tmp_path, ) -> None:  # type: ignore[no-untyped-def]
    img = make_image(unreadable=True)
    e, k = str(tmp_path / "u.elf"), str(tmp_path / "u.kdump")
    st = write_elf_vmcore(img, e, dump_level=0)
    assert st.pages_excluded["offline"] == 16
    write_kdump_compressed(img, k, dump_level=0)
    for path in (e, k):
        drgn, prog = _drgn_program(path)
        with pytest.raises(drgn.FaultError):
            prog.read(19 * MB, 8, True)
        assert decode_page(prog.read(18 * MB, 64, True)) == ("kernel:percpu", 0)
    with read_elf_vmcore(e) as d:  # PT_LOAD split around the hot-removed MB
        assert [(s.paddr, s.memsz) for s in d.loads][1] == (16 * MB, 3 * MB)
    with read_kdump_compressed(k) as d:  # listed in memory (1st bitmap), not dumped
        assert (16 * MB, 20 * MB) in list(d.memory_runs())
        assert d.read_page(19 * MB) is None


def test_makedumpfile_elf_layout(files: dict[str, str], image: VmcoreImage) -> None:
    """-E keeps excluded runs < 256 pages in place; longer ones become p_memsz tails."""
    with read_elf_vmcore(files["elf31m"]) as d:
        segs = [(s.paddr, s.memsz, s.filesz) for s in d.loads]
        assert segs[0] == (0, 8 * MB, 8 * MB)  # user/zero/cache/free < 256 pages: kept
        assert (64 * MB, 16 * MB, 0) in segs  # 256 free pages: really excluded
        assert decode_page(d.read_page(2 * MB)) == ("user:alloc-1", 0)
        assert d.read_page(64 * MB) is None and d.read_page(90 * MB) is None
    drgn, prog = _drgn_program(files["elf31m"])
    assert prog.read(90 * MB, 16, True) == bytes(16)  # drgn zero-fills p_memsz tails


# --- kdump-compressed structure ----------------------------------------------------------


def test_kdump_header_and_layout(files: dict[str, str], image: VmcoreImage) -> None:
    with open(files["kd31"], "rb") as f:
        raw = f.read(3 * PS)
    assert raw[:8] == b"KDUMP   "
    with read_kdump_compressed(files["kd31"]) as d:
        h, sh = d.header, d.sub_header
        assert h["header_version"] == 6 and h["block_size"] == PS
        assert h["utsname"]["release"] == "4.18.0-fadumpsim" and h["utsname"]["machine"] == "ppc64le"
        assert h["status"] == 0x1 and d.compression == "zlib"
        assert h["nr_cpus"] == 3 and h["current_cpu"] == 1 and h["timestamp"] == 1530000000
        assert h["sub_hdr_size"] == 1 and h["bitmap_blocks"] == 2
        assert sh["dump_level"] == 31 and sh["max_mapnr_64"] == h["max_mapnr"] == 1664
        assert sh["offset_note"] == PS + 104 and sh["size_note"] > 0
        assert raw[sh["offset_vmcoreinfo"]:sh["offset_vmcoreinfo"] + 10] == b"OSRELEASE="
        assert d.vmcoreinfo["SYMBOL(swapper_pg_dir)"] == "c000000001230000"
        assert [p.cpu for p in d.prstatus] == [0, 1, 2] and d.crashing_cpu == 1
        assert d.prstatus[1].nip == regs(1)[32] and d.prstatus[1].regs == regs(1)
        assert d.pages_present == 112 + 32  # kernel pages + zero pages via the shared page
        assert d.desc_off == 4 * PS and d.data_off == 4 * PS + 24 * 144
        assert d.is_shared_zero(17 * MB) and not d.is_shared_zero(0)
        assert decode_page(d.read_page(80 * MB)) == ("kernel:late", 0)
        for addr, klass in ((0, "kernel"), (80 * MB + 5 * PS, "kernel"), (7 * MB, "kernel")):
            tag, idx = image.page_identity(addr)  # type: ignore[misc]
            assert d.read_page(addr) == page_bytes(tag, idx, PS, klass)  # exact bytes
        assert d.read_page(81 * MB) is None
        pd = d.page_desc(0)
        assert pd is not None and pd.flags == 0x1 and pd.size < 1000  # stamp pages compress well


def test_byte_identical(tmp_path, image: VmcoreImage) -> None:  # type: ignore[no-untyped-def]
    for name, fn in (("e", lambda p: write_elf_vmcore(image, p, dump_level=31)),
                     ("k", lambda p: write_kdump_compressed(image, p, dump_level=31)),
                     ("k0", lambda p: write_kdump_compressed(image, p, dump_level=0, compression="none"))):
        a, b = tmp_path / f"{name}.a", tmp_path / f"{name}.b"
        fn(str(a))
        fn(str(b))
        assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("level", [0, 1, 2, 4, 8, 16, 17, 24, 31])
def test_dump_level_counts(tmp_path, image: VmcoreImage, level: int) -> None:  # type: ignore[no-untyped-def]
    st = write_kdump_compressed(image, str(tmp_path / "k"), dump_level=level)
    se = write_elf_vmcore(image, str(tmp_path / "e"), dump_level=level)
    want = expected_excluded(image, level)
    assert st.pages_excluded == want and se.pages_excluded == want
    assert st.pages_total == se.pages_total == 832
    kept = 832 - sum(want.values())
    assert st.pages_written == se.pages_written == kept
    assert st.pages_zero_shared == want["zero"]
    with read_kdump_compressed(str(tmp_path / "k")) as d:
        assert d.pages_present == kept + want["zero"]
    with read_elf_vmcore(str(tmp_path / "e")) as d:
        assert d.pages_present == kept


def test_level_31_counts_and_report(tmp_path, image: VmcoreImage) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "vmcore")
    st = write_kdump_compressed(image, path, dump_level=31)
    assert st.pages_excluded == {"zero": 32, "cache": 16, "cache_private": 16, "user": 384,
                                 "free": 272, "hwpoison": 0, "offline": 0}
    assert st.bytes_written == os.path.getsize(path)
    lines = makedumpfile_report(st)
    assert lines[:12] == [
        "Original pages  : 0x0000000000000340",
        "  Excluded pages   : 0x00000000000002d0",
        "    Pages filled with zero  : 0x0000000000000020",
        "    Non-private cache pages : 0x0000000000000010",
        "    Private cache pages     : 0x0000000000000010",
        "    User process data pages : 0x0000000000000180",
        "    Free pages              : 0x0000000000000110",
        "    Hwpoison pages          : 0x0000000000000000",
        "    Offline pages           : 0x0000000000000000",
        "  Remaining pages  : 0x0000000000000070",
        "  (The number of pages is reduced to 13%.)",
        "Memory Hole     : 0x0000000000000340",
    ]
    assert lines[12:] == [
        "--------------------------------------------------",
        "Total pages     : 0x0000000000000680",
        f"Write bytes     : {st.bytes_written}",
        "",
        "Cache hit: 0, miss: 0",
        "",
        f"The dumpfile is saved to {path}.",
        "",
        "makedumpfile Completed.",
    ]
    elf = makedumpfile_report(write_elf_vmcore(image, str(tmp_path / "e"), dump_level=31, layout="makedumpfile"))
    # r1 and r2 have only short excluded runs (kept); r3 drops 256 free + 368 user pages
    assert elf[2] == "     in ELF format : 0x0000000000000270"
    assert elf[11] == "     in ELF format : 0x00000000000000d0"
    assert elf[12] == "  (The number of pages is reduced to 25%.)"


# --- inspect -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["elf0", "elf31", "elf31m", "kd31", "kd0", "kd1"])
def test_inspect_matches_truth(files: dict[str, str], image: VmcoreImage, key: str) -> None:
    rep = inspect_dump(files[key], image)
    t = rep.truth
    assert t is not None
    assert t.lost == 0 and t.wrong == 0 and t.missing == 0 and t.unexpected == 0
    assert t.matching == rep.pages_present
    assert t.matching + t.excluded == 832
    assert rep.crashing_cpu == 1 and len(rep.cpus) == 3
    assert rep.vmcoreinfo["OSRELEASE"] == "4.18.0-fadumpsim"
    if key in ("elf31", "kd31"):
        assert t.dump_level == 31
        assert rep.page_classes["kernel"] == 112 and rep.page_classes["user"] == 0
        assert t.by_class["user"]["excluded"] == 384
    text = render_inspect(rep)
    assert "TYPE\t\tPAGES\t\t\tEXCLUDABLE\tDESCRIPTION" in text
    assert re.search(r"^KERN_DATA\t\d+\s+\tno\t\tDumpable kernel data", text, re.M)


def test_inspect_finds_wrong_and_missing(files: dict[str, str], image: VmcoreImage) -> None:
    r1 = image.ranges[0]
    bad_extents = (ContentExtent(0, 2 * MB, "kernel", "kernel:other", 0),) + r1.extents[1:]
    liar = dataclasses.replace(image, ranges=(LoadRange(0, 8 * MB, bad_extents),) + image.ranges[1:])
    t = inspect_dump(files["kd31"], liar).truth
    assert t is not None and t.wrong == 32 and t.by_class["kernel"]["wrong"] == 32 and t.missing == 0
    assert any("expected kernel:other#0, found kernel:boot-image#0" in s for s in t.samples)
    # the same -d 31 file judged as if the dump level had been 0: user pages are missing
    t0 = inspect_dump(files["kd31"], image, dump_level=0).truth
    assert t0 is not None and t0.by_class["user"]["missing"] == 384 and t0.lost_of("user") == 384
    assert t0.lost_of("kernel") == 0
    # without truth the file alone still classifies its pages
    rep = inspect_dump(files["kd0"])
    assert rep.truth is None and rep.page_classes["user"] == 384 and rep.page_classes["zero"] == 48


# --- malformed files ---------------------------------------------------------------------


def _exercise(path: str) -> None:
    with open_dump(path) as d:
        for a, b in list(d.present_runs()):
            for x in range(a, b, d.page_size):
                d.read_page(x)


def _assert_format_error(path: str, offset: int | None = None) -> DumpFormatError:
    with pytest.raises(DumpFormatError) as ei:
        _exercise(path)
        inspect_dump(path)
    err = ei.value
    s = str(err)
    assert "\n" not in s and s.startswith(f"{path}: ") and s.endswith(f" at byte {err.offset}")
    if offset is not None:
        assert err.offset == offset, s
    return err


@pytest.mark.parametrize("key", ["elf31", "kd31", "kd0"])
def test_truncated_files(tmp_path, files: dict[str, str], key: str) -> None:  # type: ignore[no-untyped-def]
    data = open(files[key], "rb").read()
    for cut in (0, 10, 63, 200, 463, PS + 50, 2 * PS + 7, 4 * PS + 100, len(data) // 2, len(data) - 1):
        if cut >= len(data):
            continue
        p = str(tmp_path / f"cut{cut}")
        with open(p, "wb") as f:
            f.write(data[:cut])
        err = _assert_format_error(p)
        assert 0 <= err.offset <= cut


def test_flipped_header_bytes(tmp_path, files: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    def mutate(key: str, at: int, value: bytes) -> str:
        b = bytearray(open(files[key], "rb").read())
        b[at:at + len(value)] = value
        p = str(tmp_path / f"{key}-{at}")
        with open(p, "wb") as f:
            f.write(b)
        return p

    _assert_format_error(mutate("kd31", 0, b"X"), 0)  # signature
    _assert_format_error(mutate("kd31", 428, b"\x00\x30\x00\x00"), 428)  # block_size 0x3000
    _assert_format_error(mutate("kd31", 8, b"\x00\x00\x00\x00"), 8)  # header_version 0
    _assert_format_error(mutate("kd31", 436, b"\x03"), 436)  # odd bitmap_blocks
    _assert_format_error(mutate("kd31", PS + 96, b"\xff\xff\xff\xff\xff"))  # max_mapnr_64 huge
    _assert_format_error(mutate("elf31", 0, b"\x7fELG"), 0)
    _assert_format_error(mutate("elf31", 16, b"\x02"), 16)  # ET_EXEC
    _assert_format_error(mutate("elf31", 54, b"\x20"), 54)  # e_phentsize
    with read_kdump_compressed(files["kd31"]) as d:
        pd = d.page_desc(0)
        assert pd is not None
    _assert_format_error(mutate("kd31", pd.offset + 2, b"\xde\xad\xbe\xef"), pd.offset)  # zlib data
    _assert_format_error(mutate("kd31", d.desc_off + 8, b"\xff\xff\x01"), d.desc_off + 8)  # size > page
    _assert_format_error(mutate("kd31", d.desc_off + 8, b"\xff\xff"), d.desc_off)  # data past EOF


# --- scale, compression ------------------------------------------------------------------


def test_huge_sparse_image_is_cheap(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """64 TB of address space (2**30 pfns), 6 MB kept: extent-wise, bounded memory."""
    ext64 = (ContentExtent(0, 4 * MB, "kernel", "kernel:boot-image", 0),
             ContentExtent(4 * MB, 32 * TB, "free", "", 0),
             ContentExtent(32 * TB, 32 * TB + 2 * MB, "kernel", "kernel:hi", 0),
             ContentExtent(32 * TB + 2 * MB, 64 * TB, "user", "user:huge", 0))
    img = VmcoreImage("4.18.0-fadumpsim", PS, 1, {"swapper_pg_dir": SWAPPER},
                      (CpuState(0, regs(0)),), 0, (LoadRange(0, 64 * TB, ext64),))
    k, e = str(tmp_path / "big.kdump"), str(tmp_path / "big.elf")
    t0 = time.perf_counter()
    tracemalloc.start()
    sk = write_kdump_compressed(img, k, dump_level=31)
    se = write_elf_vmcore(img, e, dump_level=31)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert time.perf_counter() - t0 < 5
    assert peak < 64 * MB, peak
    assert sk.pages_written == se.pages_written == 96 and sk.max_mapnr == 1 << 30
    assert se.bytes_written < 8 * MB
    with read_kdump_compressed(k) as d:
        assert decode_page(d.read_page(32 * TB + PS)) == ("kernel:hi", 1)
        assert d.read_page(40 * TB) is None
    rep = inspect_dump(e, img)
    assert rep.truth is not None and rep.truth.matching == 96 and rep.truth.lost == 0
    assert time.perf_counter() - t0 < 10
    os.unlink(k)  # 128 MiB of 1st bitmap: do not leave it in pytest's kept temp dirs
    os.unlink(e)


def test_compression_unavailable(tmp_path, image: VmcoreImage, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    for mod in ("lzo", "snappy", "zstandard", "compression", "compression.zstd"):
        monkeypatch.setitem(sys.modules, mod, None)  # make the import fail
    for method, binding in (("lzo", "python-lzo"), ("snappy", "python-snappy"), ("zstd", "zstandard")):
        with pytest.raises(CompressionUnavailable) as ei:
            write_kdump_compressed(image, str(tmp_path / method), compression=method)
        assert str(ei.value) == (f"makedumpfile: {method} compression is not available "
                                 f"in this build (install {binding})")
    with pytest.raises(ValueError):
        write_kdump_compressed(image, str(tmp_path / "x"), compression="gzip")


@pytest.mark.parametrize("method", ["zstd", "snappy", "lzo"])
def test_optional_compression_roundtrip(tmp_path, image: VmcoreImage, method: str) -> None:  # type: ignore[no-untyped-def]
    if not compression_available(method):
        pytest.skip(f"{method} binding not installed")
    path = str(tmp_path / method)
    write_kdump_compressed(image, path, dump_level=31, compression=method)
    with read_kdump_compressed(path) as d:
        assert d.compression == method
        assert decode_page(d.read_page(0)) == ("kernel:boot-image", 0)
    _check_drgn_pages(path, image, 31)


def test_many_segments_use_pn_xnum(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """>= 65535 program headers: e_phnum = PN_XNUM and the count in section header 0."""
    from elftools.elf.elffile import ELFFile

    ps, n = 4096, 131100  # alternate kept/excluded single pages: 65550 PT_LOADs
    exts = tuple(ContentExtent(i * ps, (i + 1) * ps, "kernel" if i % 2 == 0 else "user",
                               "k" if i % 2 == 0 else "u", i) for i in range(n))
    img = VmcoreImage("4.18.0-fadumpsim", ps, 1, {"swapper_pg_dir": SWAPPER},
                      (CpuState(0, regs(0)),), 0, (LoadRange(0, n * ps, exts),))
    path = str(tmp_path / "xnum.elf")
    st = write_elf_vmcore(img, path, dump_level=31)
    assert st.segments == 65550
    with open(path, "rb") as f:
        assert int.from_bytes(f.read(64)[56:58], "little") == 0xFFFF
        assert ELFFile(f).num_segments() == 65551
    with read_elf_vmcore(path) as d:
        assert len(d.loads) == 65550 and d.header["e_phnum"] == 65551
        assert decode_page(d.read_page(120000 * ps)) == ("k", 120000)
        assert d.read_page(ps) is None
    drgn, prog = _drgn_program(path)
    assert decode_page(prog.read(120000 * ps, 64, True)) == ("k", 120000)
