"""Dump files written by a run: real tools open them and their pages match the truth."""
import pytest

from fadumpsim import scenario
from fadumpsim.dumpfile import decode_page
from fadumpsim import api
from fadumpsim.replay import replayer


def _run(tmp_path, name):
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "dumps"
    res = api.record(scenario.load(name), str(tmp_path / "r.fadlog"), dump_dir=str(out),
                          keep_sched=True)
    return res, out


def test_kdump_compressed_opens_in_drgn_and_matches_truth(tmp_path):
    drgn = pytest.importorskip("drgn")
    res, out = _run(tmp_path, "rfc-v6-story")
    path = out / "var" / "crash" / "vmcore"
    prog = drgn.Program(drgn.Platform(drgn.Architecture.PPC64,
                                      drgn.PlatformFlags.IS_LITTLE_ENDIAN | drgn.PlatformFlags.IS_64_BIT))
    prog.set_core_dump(str(path))
    truth = res.sched.actors["kernel"].crash_truth
    ps = truth.ps
    checked = 0
    for s, e, k, t, b in truth.all():
        addr = s  # first page of every extent
        if k == "kernel":
            assert decode_page(prog.read(addr, ps, True))[:2] == (t, b)
            checked += 1
        elif k == "user":      # -d 31 excludes user pages: reported excluded, not wrong
            with pytest.raises(drgn.FaultError):
                prog.read(addr, ps, True)
    assert checked >= 3


def test_cp_vmcore_is_elf_core_readelf_and_pyelftools(tmp_path):
    from elftools.elf.elffile import ELFFile
    res, out = _run(tmp_path, "user-pages-lost-d0")
    path = out / "var" / "crash" / "vmcore"
    with open(path, "rb") as f:
        elf = ELFFile(f)
        assert elf["e_type"] == "ET_CORE" and elf["e_machine"] == "EM_PPC64"
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert loads[0]["p_paddr"] == 0 and loads[0]["p_vaddr"] == 0xC000000000000000
        notes = [n for s in elf.iter_segments() if s["p_type"] == "PT_NOTE" for n in s.iter_notes()]
        assert sum(n["n_type"] == "NT_PRSTATUS" for n in notes) == 8


def test_same_run_gives_byte_identical_dump_files(tmp_path):
    _r1, a = _run(tmp_path / "a", "rfc-v6-story")
    _r2, b = _run(tmp_path / "b", "rfc-v6-story")
    fa, fb = a / "var/crash/vmcore", b / "var/crash/vmcore"
    assert fa.read_bytes() == fb.read_bytes()
    assert not list(a.rglob("*.partial"))


def test_inspect_cli_against_log(tmp_path):
    import subprocess
    import sys
    res, out = _run(tmp_path, "rfc-v6-story")
    r = subprocess.run([sys.executable, "-m", "fadumpsim.cli", "inspect",
                        str(out / "var/crash/vmcore"), "--log", str(tmp_path / "r.fadlog")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "KDUMP" in r.stdout and "truth comparison" in r.stdout and "wrong 0" in r.stdout
    bad = tmp_path / "bad"
    bad.write_bytes(b"KDUMP   " + b"\0" * 10)
    r = subprocess.run([sys.executable, "-m", "fadumpsim.cli", "inspect", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def test_dump_dir_does_not_change_the_log(tmp_path):
    from fadumpsim.events.logfile import read_log
    a = tmp_path / "a.fadlog"
    b = tmp_path / "b.fadlog"
    api.record(scenario.load("rfc-v6-story"), str(a), dump_dir=str(tmp_path / "d"))
    api.record(scenario.load("rfc-v6-story"), str(b))
    assert read_log(a)[1] == read_log(b)[1]
