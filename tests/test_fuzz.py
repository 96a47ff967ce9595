"""Fuzzing the inputs an adversary controls (hardening issue): scenarios, logs, dump files
and command-line arguments.

Every example asserts the contract: an exit code in {0, 1, 2, 3}, no traceback (no
exception escapes `cli.main`), bounded memory (tracemalloc peak) and no file written
outside the paths the command names. Example counts are bounded and derandomized so
CI is deterministic and the whole module stays well under a minute.
"""
from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fadumpsim import cli, scenario

FUZZ = settings(max_examples=40, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
EXIT_CODES = {0, 1, 2, 3}
MEMORY_LIMIT = 256 << 20


def run_cli(capsys, *args: object) -> tuple[int, str]:
    try:
        cli.main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    else:  # pragma: no cover - main always exits
        code = 0
    _out, err = capsys.readouterr()
    return code, err


def files_under(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def bounded(fn):
    """Call fn() and assert its peak traced memory stays under MEMORY_LIMIT."""
    tracemalloc.start()
    try:
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"peak {peak} bytes"
    return out


# -- scenarios --------------------------------------------------------------------------------
KEYS = st.sampled_from(list(scenario.TOP_KEYS) + list(scenario.MACHINE_KEYS) +
                       list(scenario.EXPECT_KEYS) + ["x", "run", "actor", "after"])
SIZES = st.one_of(st.integers(min_value=-(1 << 70), max_value=1 << 70),
                  st.from_regex(r"\A[0-9]{1,25}[KMGTPEkmgtpe]?\Z"),
                  st.sampled_from(["8G", "16M", "0", "64T", "65T", "99999999999E", "1000000TB"]))
LEAF = st.one_of(SIZES, st.booleans(), st.text(max_size=20), st.floats(allow_nan=True))
VALUE = st.recursive(LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(KEYS, inner, max_size=4)),
                     max_leaves=12)
COMMANDS = st.sampled_from([
    "free -m", "inject rtas {n}", "inject rtas -2 {n}", "drmgr -c mem -r -q {n}",
    "drmgr -c mem -r -s {n}", "makedumpfile -d {n} /proc/vmcore /var/crash/x",
    "makedumpfile /proc/vmcore ../{n}", "cp /proc/vmcore /{n}/..", "sim alloc user {n}",
    "echo 1 > /sys/kernel/fadump_registered", "echo c > /proc/sysrq-trigger"])


@st.composite
def scenario_data(draw) -> dict:
    d: dict = {"name": draw(st.sampled_from(["f", "f", "f", "", 7]))}
    machine_sizes = st.one_of(st.sampled_from(["8G", "1000000TB", "64T", "128T", "99999999999E",
                                               0, "16M", "4K", 1 << 80]), SIZES)
    d["machine"] = draw(st.dictionaries(st.sampled_from(["memory", "max_memory", "lmb_size"]),
                                        machine_sizes, max_size=2))
    scripts = []
    for i in range(draw(st.integers(0, 3))):
        cmds = [c.format(n=draw(st.one_of(st.integers(-(1 << 70), 1 << 70),
                                          st.sampled_from(["x", "0x80000003", "9" * 30]))))
                for c in draw(st.lists(COMMANDS, min_size=1, max_size=3))]
        scripts.append({"name": f"s{i}", "actor": draw(st.sampled_from(
            ["kernel", "capture", "hotplug", "firmware", "bmc"])), "run": cmds})
    if scripts:
        d["script"] = scripts
    if draw(st.booleans()):
        d["expect"] = draw(st.dictionaries(st.sampled_from(scenario.EXPECT_KEYS), VALUE, max_size=3))
    return d


@FUZZ
@given(data=scenario_data())
def test_fuzz_scenarios_load_or_refuse_in_one_line(data):
    try:
        sc = bounded(lambda: scenario.Scenario(data, source="<fuzz>"))
    except scenario.ScenarioError as e:
        assert "\n" not in str(e) and str(e).startswith("<fuzz>: ")
        return
    assert sc.machine.max_memory <= 1 << 51


@FUZZ
@given(text=st.one_of(st.text(max_size=200),
                      st.builds(lambda n, s: "name = 'x'\ndescription = " + "[" * n + s + "]" * n,
                                st.integers(0, 2000), st.sampled_from(["", "1", "'a'"])),
                      st.builds(lambda n: "name = 'x'\n[machine]\ncpus = " + "9" * n,
                                st.integers(1, 6000))))
def test_fuzz_toml_text(text):
    try:
        scenario.loads(text, "<fuzz>")
    except scenario.ScenarioError as e:
        assert "\n" not in str(e).strip() or "invalid TOML" in str(e)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A good log of the story run and two small dump files (kdump-compressed and ELF of
    the same 48 pages), the seeds of the byte-level fuzzers."""
    from fadumpsim.dumpfile import (ContentExtent, CpuState, LoadRange, VmcoreImage,
                                    write_elf_vmcore, write_kdump_compressed)
    d = tmp_path_factory.mktemp("corpus")
    code = None
    try:
        cli.main(["run", "--log", str(d / "good.fadlog"), "-q"])
    except SystemExit as e:
        code = e.code
    assert code == 0
    ps = 4096
    image = VmcoreImage("4.18.0-fadumpsim", ps, 0, {"swapper_pg_dir": 0xC000000001230000},
                        (CpuState(0, tuple(range(48))),), 0, (
                            LoadRange(0, 32 * ps, (ContentExtent(0, 16 * ps, "kernel", "k:a", 0),
                                                   ContentExtent(16 * ps, 32 * ps, "user", "u:b", 0))),
                            LoadRange(64 * ps, 16 * ps, (ContentExtent(64 * ps, 80 * ps, "free", "", 0),))))
    write_kdump_compressed(image, d / "k.vmcore", dump_level=1, compression="zlib")
    write_elf_vmcore(image, d / "e.vmcore", dump_level=0)
    return {"log": (d / "good.fadlog").read_bytes(), "kdump": (d / "k.vmcore").read_bytes(),
            "elf": (d / "e.vmcore").read_bytes()}


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        b[pos % len(b)] = val
    if cut is not None:
        b = b[:cut % (len(b) + 1)]
    return bytes(b)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 24), st.integers(0, 255)), max_size=6)
CUT = st.one_of(st.none(), st.integers(0, 1 << 24))


@FUZZ
@given(edits=EDITS, cut=CUT, cmd=st.sampled_from(["replay", "show", "show-jsonl", "state", "diff"]))
def test_fuzz_logs(tmp_path_factory, capsys, corpus, edits, cut, cmd):
    d = tmp_path_factory.mktemp("log")
    p = d / "f.fadlog"
    p.write_bytes(mutate(corpus["log"], edits, cut))
    before = files_under(d)
    args = {"replay": ["replay", p], "show": ["show", p],
            "show-jsonl": ["show", p, "--format", "jsonl"], "state": ["state", p, "--at", "5"],
            "diff": ["diff", p, p]}[cmd]
    code, err = bounded(lambda: run_cli(capsys, *args))
    assert code in EXIT_CODES, err
    assert "internal error" not in err, err
    if code in (2, 3):
        assert err.strip(), "a refusal names the problem"
    assert files_under(d) == before


def _rewrite(src: bytes, d: Path, header_key: str | None, header_val, rec_i: int, drop: bool,
             payload_val) -> Path:
    """A CRC-valid log whose header field or one event's payload was changed."""
    from fadumpsim.events.logfile import LogReader, LogWriter
    good = d / "good.fadlog"
    good.write_bytes(src)
    r = LogReader(str(good))
    h, recs = r.header, r.records()
    if header_key is not None:
        h[header_key] = header_val
    rec = recs[rec_i % len(recs)]
    if rec[7]:
        k = sorted(rec[7])[0]
        if drop:
            del rec[7][k]
        else:
            rec[7][k] = payload_val
    p = d / "s.fadlog"
    w = LogWriter(str(p), h)
    for x in recs:
        w.append(x)
    w.close(r.trailer or {})
    good.unlink()
    return p


@FUZZ
@given(header_key=st.sampled_from([None, "scenario", "seed", "max_events", "strategy"]),
       header_val=VALUE, rec_i=st.integers(0, 40), drop=st.booleans(), payload_val=VALUE,
       cmd=st.sampled_from(["replay", "show", "state", "minimize"]))
def test_fuzz_crc_valid_logs(tmp_path_factory, capsys, corpus, header_key, header_val, rec_i,
                             drop, payload_val, cmd):
    d = tmp_path_factory.mktemp("slog")
    try:
        p = _rewrite(corpus["log"], d, header_key, header_val, rec_i, drop, payload_val)
    except (ValueError, TypeError, OverflowError):
        return  # the writer itself refuses what msgpack cannot hold
    before = files_under(d)
    args = {"replay": ["replay", p], "show": ["show", p, "--format", "jsonl"],
            "state": ["state", p, "--at", "3"], "minimize": ["minimize", p, "-o", d / "m.fadlog"]}[cmd]
    code, err = bounded(lambda: run_cli(capsys, *args))
    assert code in EXIT_CODES, err
    assert "internal error" not in err, err
    assert files_under(d) - before <= {"m.fadlog"}


@FUZZ
@given(edits=EDITS, cut=CUT, kind=st.sampled_from(["kdump", "elf"]))
def test_fuzz_dump_files(tmp_path_factory, capsys, corpus, edits, cut, kind):
    d = tmp_path_factory.mktemp("dump")
    p = d / "vmcore"
    p.write_bytes(mutate(corpus[kind], edits, cut))
    code, err = bounded(lambda: run_cli(capsys, "inspect", p))
    assert code in EXIT_CODES, err
    assert "internal error" not in err, err
    assert files_under(d) == {"vmcore"}


OPTIONS = st.sampled_from([
    ["--seed", "18446744073709551616"], ["--seed", "-1"], ["--seed", "7"],
    ["--strategy", "random"], ["--strategy", "bogus"], ["--log", "x.fadlog"],
    ["--log", "in.toml"], ["--log", "afile/sub.fadlog"], ["--dump-dir", "dd"],
    ["--dump-dir", "afile"], ["--dump-dir", "afile/sub"], ["--json"], ["-q"], ["--depth", "0"],
    ["in.toml"], ["/dev/zero"], ["rfc-v6-stroy"], ["x.fadlog"]])
ARGS = st.builds(lambda cmd, opts: [cmd] + [a for o in opts for a in o],
                 st.sampled_from(["run", "run", "run", "replay", "show", "state", "inspect"]),
                 st.lists(OPTIONS, max_size=3))


@settings(max_examples=40, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(args=ARGS)
def test_fuzz_cli_arguments(tmp_path_factory, capsys, args):
    d = tmp_path_factory.mktemp("cli")
    (d / "in.toml").write_text('name = "in"\n')
    (d / "afile").write_text("x")
    outside = d.parent / f"{d.name}-outside"
    outside.mkdir()
    old = os.getcwd()
    os.chdir(d)
    try:
        code, err = run_cli(capsys, *args)
    finally:
        os.chdir(old)
    assert code in EXIT_CODES | {130}, err
    assert "internal error" not in err and "Traceback" not in err, err
    assert (d / "in.toml").read_text() == 'name = "in"\n' and (d / "afile").read_text() == "x"
    assert list(outside.iterdir()) == []
