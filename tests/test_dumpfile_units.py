"""Small facts of the dump-file writer and readers, checked against the file's own bytes
or an independent parser (pyelftools); fast, so they come first in the mutation check's
dumpfiles area.

* the ELF identification is what the kernel's /proc/vmcore header says (ELFOSABI_NONE);
* the stats name the file as a string ("" for a dry run);
* a VMCOREINFO offset points at that text in the file; a too-small NT_PRSTATUS note is
  refused at the file offset of its own header;
* makedumpfile's report: the "Offline pages" line (makedumpfile >= 1.6.5) and the
  reduction percentage;
* a compression whose Python binding is missing is unavailable, not an error.
"""
from __future__ import annotations

import struct
import sys

import pytest

from fadumpsim.dumpfile import (ContentExtent, CpuState, DumpFormatError, LoadRange,
                                VmcoreImage, compression_available, makedumpfile_report,
                                read_elf_vmcore, write_elf_vmcore, write_kdump_compressed)

PS = 65536
MB = 1 << 20


def _image(ncpus: int = 2) -> VmcoreImage:
    """16 MB: 4 MB kernel, 4 MB user, 4 MB free, 2 MB kernel, 2 MB hot-removed (unreadable)."""
    ext = (ContentExtent(0, 4 * MB, "kernel", "kernel:a", 0),
           ContentExtent(4 * MB, 8 * MB, "user", "user:b", 0),
           ContentExtent(8 * MB, 12 * MB, "free", "", 0),
           ContentExtent(12 * MB, 14 * MB, "kernel", "kernel:c", 0),
           ContentExtent(14 * MB, 16 * MB, "user", "user:gone", 0, False))
    cpus = tuple(CpuState(i, tuple(range(48))) for i in range(ncpus))
    return VmcoreImage("4.18.0-fadumpsim", PS, 1_530_000_000, {"swapper_pg_dir": 0xC000000001230000},
                       cpus, 0, (LoadRange(0, 16 * MB, ext),))


def test_elf_identification_is_the_kernels(tmp_path):
    from elftools.elf.elffile import ELFFile
    path = tmp_path / "vmcore"
    write_elf_vmcore(_image(), path)
    with open(path, "rb") as f:
        ident = ELFFile(f).header["e_ident"]
    assert (ident["EI_CLASS"], ident["EI_DATA"], ident["EI_VERSION"], ident["EI_OSABI"],
            ident["EI_ABIVERSION"]) == ("ELFCLASS64", "ELFDATA2LSB", "EV_CURRENT",
                                        "ELFOSABI_SYSV", 0)


def test_stats_name_the_file_as_a_string(tmp_path):
    path = tmp_path / "vmcore"
    assert write_elf_vmcore(_image(), path).path == str(path)
    assert write_elf_vmcore(_image(), None).path == ""


def test_vmcoreinfo_offset_points_at_its_text(tmp_path):
    path = tmp_path / "vmcore"
    write_elf_vmcore(_image(), path)
    d = read_elf_vmcore(path)
    text = d.notes.vmcoreinfo_text.encode()
    assert text.startswith(b"OSRELEASE=4.18.0-fadumpsim")
    off = d.notes.vmcoreinfo_offset
    assert path.read_bytes()[off:off + len(text)] == text


def test_a_too_small_prstatus_note_is_refused_at_its_own_offset(tmp_path):
    path = tmp_path / "vmcore"
    write_elf_vmcore(_image(ncpus=2), path)
    data = bytearray(path.read_bytes())
    head = struct.pack("<III", 5, 504, 1) + b"CORE\0\0\0\0"      # the note header of CPU 1
    first = data.find(head)
    second = data.find(head, first + 1)
    assert 0 < first < second
    data[second + 4:second + 8] = struct.pack("<I", 8)           # descsz 8
    path.write_bytes(bytes(data))
    with pytest.raises(DumpFormatError) as e:
        read_elf_vmcore(path)
    assert e.value.offset == second and "NT_PRSTATUS note too small (8 bytes)" in str(e.value)


def test_makedumpfile_report_offline_line_and_reduction():
    stats = write_kdump_compressed(_image(), None, dump_level=8)    # user pages excluded
    # 256 pages: 64 user (excluded), 32 hot-removed (offline), 160 kept
    assert stats.pages_total == 256
    lines = makedumpfile_report(stats, offline_line=True)
    assert "    Offline pages           : 0x0000000000000020" in lines
    assert "    User process data pages : 0x0000000000000040" in lines
    assert "  (The number of pages is reduced to 62%.)" in lines     # 160 * 100 // 256
    assert not any("Offline pages" in line for line in makedumpfile_report(stats,
                                                                           offline_line=False))


def test_a_compression_without_its_binding_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "lzo", None)      # `import lzo` raises ImportError
    assert compression_available("lzo") is False
    assert compression_available("zlib") is True and compression_available("none") is True


def test_segments_are_the_elf_files_pt_loads_and_none_for_kdump(tmp_path):
    from elftools.elf.elffile import ELFFile
    path = tmp_path / "vmcore"
    st = write_elf_vmcore(_image(), path, dump_level=31)
    with open(path, "rb") as f:
        loads = [s for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD"]
    assert st.segments == len(loads) >= 2            # the excluded user pages split the range
    assert write_kdump_compressed(_image(), None, dump_level=31).segments == 0


def test_a_note_whose_descriptor_ends_the_note_area_is_read():
    from fadumpsim.dumpfile.elfcore import parse_notes
    note = struct.pack("<III", 5, 8, 0x1234) + b"CORE\0\0\0\0" + b"12345678"
    parsed = parse_notes("x", note, 100)
    assert parsed.other == [("CORE", 0x1234, 8)]
    with pytest.raises(DumpFormatError) as e:        # one byte short: runs past the area
        parse_notes("x", note[:-1], 100)
    assert e.value.offset == 100 and "runs past the note area" in str(e.value)


def test_an_elf_dump_counts_its_pages_in_memory_and_in_the_file(tmp_path):
    path = tmp_path / "vmcore"
    write_elf_vmcore(_image(), path)
    # 16 MB less the hot-removed 2 MB at its end, which no PT_LOAD describes
    assert read_elf_vmcore(path).pages_in_memory == 224
    write_elf_vmcore(_image(), path, dump_level=31)          # kernel pages only: 4 + 2 MB
    assert read_elf_vmcore(path).pages_in_memory == 96


def test_an_extent_counts_its_pages():
    assert ContentExtent(4 * MB, 8 * MB, "user", "user:b", 0).pages(PS) == 64
    assert ContentExtent(0, PS, "kernel", "k", 0).pages(PS) == 1


def test_an_installed_lzo_binding_compresses_lzo1x_1_without_a_header(monkeypatch):
    from types import SimpleNamespace
    from fadumpsim.dumpfile import kdump
    calls = []
    fake = SimpleNamespace(compress=lambda b, level, header: calls.append((level, header)) or b"z")
    monkeypatch.setitem(sys.modules, "lzo", fake)
    assert compression_available("lzo") is True
    assert kdump._compressor("lzo")(bytearray(8)) == b"z" and calls == [(1, False)]
