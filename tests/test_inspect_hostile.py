"""`inspect` on hostile dump files is linear (hardening issue): an ELF with 65,534
overlapping PT_LOADs must not walk back over every segment for every page."""
from __future__ import annotations

import struct

from fadumpsim.dumpfile import (ContentExtent, CpuState, LoadRange, VmcoreImage, inspect_dump,
                                write_elf_vmcore)
from fadumpsim.dumpfile.elfcore import ElfDump, read_elf_vmcore

PS = 4096
PAGES = 1000


def _elf_with_many_loads(path, n_headers: int = 65534) -> int:
    """A real vmcore of PAGES kernel pages, its program header table replaced by one
    holding the original headers plus tiny data-less PT_LOADs up to n_headers in all
    (each starts inside the big segment, so a walk-back would visit all of them)."""
    image = VmcoreImage("4.18.0-fadumpsim", PS, 0, {"swapper_pg_dir": 0xC000000001230000},
                        (CpuState(0, tuple(range(48))),), 0,
                        (LoadRange(0, PAGES * PS,
                                   (ContentExtent(0, PAGES * PS, "kernel", "kernel:k", 0),)),))
    write_elf_vmcore(image, path, dump_level=0)
    raw = bytearray(path.read_bytes())
    e_phoff, = struct.unpack_from("<Q", raw, 0x20)
    e_phentsize, e_phnum = struct.unpack_from("<HH", raw, 0x36)
    phdrs = raw[e_phoff:e_phoff + e_phentsize * e_phnum]
    extra = n_headers - e_phnum
    tiny = b"".join(struct.pack("<IIQQQQQQ", 1, 7, 0, 0, (1 + k % (PAGES - 1)) * PS, 0, PS, 0)
                    for k in range(extra))
    new_off = len(raw)
    raw += phdrs + tiny
    struct.pack_into("<Q", raw, 0x20, new_off)
    struct.pack_into("<H", raw, 0x38, n_headers)
    path.write_bytes(bytes(raw))
    return extra


def test_elf_with_65534_overlapping_loads_is_inspected_in_near_linear_time(tmp_path):
    path = tmp_path / "many.vmcore"
    extra = _elf_with_many_loads(path)
    d = read_elf_vmcore(str(path))
    assert isinstance(d, ElfDump) and len(d.loads) == extra + 1
    # count the work of locating every page: at most one segment looked at per page
    class Counting(list):
        n = 0

        def __getitem__(self, i):
            Counting.n += 1
            return super().__getitem__(i)
    d._by_paddr = Counting(d._by_paddr)
    located = [d._locate(a * PS) for a in range(PAGES)]
    assert all(o is not None for o in located)
    assert Counting.n <= PAGES, f"{Counting.n} segment visits for {PAGES} pages"
    rep = inspect_dump(str(path))
    assert rep.pages_present == PAGES and rep.page_classes["kernel"] == PAGES


def test_kdump_with_an_alternating_first_bitmap_is_refused_in_bounded_memory(tmp_path):
    """A small file whose 1st bitmap alternates bits would list millions of memory runs:
    refused with one clear error, in bounded memory and time."""
    import pytest

    from fadumpsim.dumpfile import (CpuState, DumpFormatError, LoadRange, VmcoreImage,
                                    write_kdump_compressed)
    from fadumpsim.dumpfile.image import ContentExtent as Extent
    from fadumpsim.dumpfile.kdump import MAX_MEMORY_RUNS, read_kdump_compressed
    ps = 4096
    size = 3 << 30  # 786,432 pages: a 96 KiB 1st bitmap
    img = VmcoreImage("4.18.0-fadumpsim", ps, 1_530_000_000, {"swapper_pg_dir": 0, "init_task": 0},
                      (CpuState(0, tuple([0] * 48)),), 0,
                      (LoadRange(0, size, (Extent(0, size, "free", "", 0, True),)),))
    path = tmp_path / "vmcore"
    write_kdump_compressed(img, path, dump_level=31, compression="zlib")
    with read_kdump_compressed(path) as d:
        off, nbytes = d.bitmap1_off, d.bitmap_bytes
    assert nbytes * 4 > MAX_MEMORY_RUNS
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(b"\x55" * nbytes)
    with pytest.raises(DumpFormatError, match="more than 262,144 runs"):
        with read_kdump_compressed(path) as d:
            list(d.memory_runs())
    # the CLI, in a process whose address space is capped at 1 GiB: one line, exit 2
    import resource
    import subprocess
    import sys

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    r = subprocess.run([sys.executable, "-m", "fadumpsim.cli", "inspect", str(path)],
                       capture_output=True, text=True, preexec_fn=cap, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "more than 262,144 runs" in r.stderr and r.stderr.count("\n") == 1
