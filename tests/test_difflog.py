"""`diff` aligned by causal identity and `state` with hex, --changed and the memory map."""
from __future__ import annotations

import json

from click.testing import CliRunner

from fadumpsim.api import record
from fadumpsim.cli import cli
from fadumpsim.difflog import compare
from fadumpsim.events.logfile import LogReader
from fadumpsim.replay.constraints import Constraint, ConstraintStrategy
from fadumpsim.scenario import Scenario, load

CAT = "cat /sys/kernel/fadump_enabled"
CRASH_AFTER_ECHO0 = [Constraint(("hotplug", "kernel", "hp.sysfs_write", 1),
                                ("crash", "kernel", "cmd.run", 2))]


def two_scripts() -> Scenario:
    return Scenario.build("two", script=[{"name": "a", "actor": "kernel", "run": [CAT, CAT]},
                                         {"name": "b", "actor": "kernel", "run": [CAT]}])


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_commuted_runs_align_completely_and_name_the_swapped_decision(tmp_path):
    a, b = tmp_path / "a.fadlog", tmp_path / "b.fadlog"
    record(two_scripts(), str(a))
    record(two_scripts(), str(b), strategy=ConstraintStrategy([Constraint(
        ("b", "kernel", "cmd.run", 1), ("a", "kernel", "cmd.run", 1))]))
    ra, rb = LogReader(str(a)).records(), LogReader(str(b)).records()
    assert ra != rb and [r[4] for r in ra] != [r[4] for r in rb] or ra[5:] != rb[5:]
    d = compare(ra, rb)
    assert not d.identical and d.only_a == [] and d.only_b == [] and d.payload == []
    assert d.first_outcome is None and d.moved
    r = invoke("diff", a, b)
    assert r.exit_code == 1
    assert "first difference in outcome: none" in r.stdout
    assert "ordering decisions that differ (1)" in r.stdout
    assert f"'{CAT}' from b" in r.stdout or f"'{CAT}' from a" in r.stdout


def test_diff_reports_the_decision_and_the_first_outcome_difference(tmp_path):
    a, b = tmp_path / "a.fadlog", tmp_path / "b.fadlog"
    sc = load("udev-reload-race")
    record(sc, str(a))
    record(sc, str(b), strategy=ConstraintStrategy(CRASH_AFTER_ECHO0))
    r = invoke("diff", a, b)
    assert r.exit_code == 1
    out = r.stdout
    assert "A: " in out and ", pass" in out and ", fail" in out and "outcome: A pass, B fail" in out
    assert "kernel handled cmd.run 'echo c > /proc/sysrq-trigger' from crash" in out
    assert "before" in out and "in A, after them in B" in out
    # in A the kernel crashed before answering drmgr's LMB table query: B has it, A not
    assert "first difference in outcome:" in out and "hp.lmb_table" in out \
        and "(no such delivery in A)" in out
    assert invoke("diff", a, a).exit_code == 0


def test_state_hex_changed_and_memory_map(tmp_path):
    log = tmp_path / "w.fadlog"
    record(load("udev-reload-race"), str(log), strategy=ConstraintStrategy(CRASH_AFTER_ECHO0))
    recs = LogReader(str(log)).records()
    unreg = next(r[0] for r in recs if r[4] == "rtas.configure_kernel_dump" and r[7]["cmd"] == 2)
    r = invoke("state", log, "--at", unreg - 1)
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert max(len(x) for x in lines) <= 110
    assert "boot_memory_size: 0x24000000" in r.stdout and "603979776" not in r.stdout
    i = lines.index(next(x for x in lines if x.startswith("memory map (kernel")))
    rows = lines[i + 2:]
    movable = next(x for x in rows if "Movable" in x)
    assert "LMB 2-4" in movable and "0x024000000-0x047ffffff" in movable \
        and "fadump area" in movable and "registered" in movable
    assert any("boot memory" in x and "LMB 0" in x for x in rows)
    assert any(x.strip().startswith("LMB 33-63") and " - " in x for x in rows)
    # what the UNREGISTER delivery changed: firmware's registration, and the map shows it
    c = invoke("state", log, "--at", unreg, "--changed")
    assert "[firmware] changed by #" in c.stdout and "registered" in c.stdout
    assert "[kernel] changed" not in c.stdout
    after = c.stdout.split("memory map")[1]
    assert "registered" not in after and "fadump area" in after
    j = json.loads(invoke("state", log, "--at", unreg, "--changed", "--json").stdout)
    assert {"at", "actors", "memory_map", "changed"} <= set(j)
    assert "firmware" in j["changed"] and "kernel" not in j["changed"]
    assert j["memory_map"][0]["lmbs"] == [0, 0]
    assert invoke("state", log, "--at", 0, "--changed").exit_code == 2


# -- coverage without noise ---------------------------------------------------------------------
def test_coverage_gaps_are_only_pairs_that_could_reorder():
    from fadumpsim.api import explore
    from fadumpsim.replay.coverage import RACED, OrderCoverage, run_pairs
    # k gets a (from x, cause 0), then b (from y, sent by delivery #1 -> caused by a): causal;
    # then c from z (cause 0): it raced a and b
    p = run_pairs([("k", "a", 0, "x"), ("y", "go", 1, "k"), ("k", "b", 2, "y"),
                   ("k", "c", 0, "z")])
    assert ("k", "a", "b") in p and ("k", "a", "b", RACED) not in p
    assert ("k", "a", "c", RACED) in p and ("k", "b", "c", RACED) in p
    cov = OrderCoverage()
    cov.add(p)
    assert cov.gaps() == [("k", "a", "c"), ("k", "b", "c")]
    assert ("k", "a", "b") in cov.causal()
    # a complete exhaustive search reverses every race: nothing is left as a gap, while
    # dozens of pairs are seen in one order only because one causes the other
    full = explore(load("udev-reload-window"), "exhaustive", schedules=2000)
    assert full.complete and full.coverage.gaps() == [] and len(full.coverage.causal()) > 20
    # one FIFO-like random schedule leaves real gaps (e.g. the udev write vs the crash)
    one = explore(load("udev-reload-window"), "random", schedules=1)
    assert one.coverage.gaps() and set(one.coverage.gaps()) <= set(one.coverage.one_order())
    assert one.to_json()["coverage"]["causal"] == len(one.coverage.causal())


def test_memory_map_rows_match_a_per_page_brute_force_and_stay_few_at_64tb(tmp_path):
    from fadumpsim.api import state_at
    from fadumpsim.memmap import memory_map
    log = tmp_path / "s.fadlog"
    record(load("hotplug-protect-reverted"), str(log))
    recs = LogReader(str(log)).records()
    # the release reaching firmware (the kernel makes the RTAS call: hotplug -> kernel -> firmware)
    rel = next(r[0] for r in recs if r[4] == "dlpar.release_drc" and r[3] == "firmware")
    snaps = state_at(str(log), rel)
    lmb = 256 << 20
    rows = memory_map(snaps, lmb)
    k, fw = snaps["kernel"], snaps["firmware"]
    fd = k["fw_dump"]
    step = 16 << 20                     # probe every 16MB: all boundaries here are aligned to it
    end = rows[-1].end
    assigned = {s + i for s, n, a in fw["lmb_runs"] if a for i in range(n)}
    inside = lambda a, rs: any(s <= a < e for s, e in rs)  # noqa: E731
    for addr in range(0, end, step):
        row = next(r for r in rows if r.start <= addr < r.end)
        assert row.assigned == (addr // lmb in assigned), hex(addr)
        assert row.present == inside(addr, k["memblock_memory"]), hex(addr)
        assert (row.zone == "Movable") == (row.present and inside(addr, [k["movable"]]))
        s0 = fd["reserve_dump_area_start"]
        assert ("fadump area" in row.areas) == (s0 <= addr < s0 + fd["reserve_dump_area_size"])
        assert ("boot memory" in row.areas) == (addr < fd["boot_memory_size"])
    # LMB 3 was released: firmware no longer assigns it though it is in the fadump area
    gone = next(r for r in rows if r.first_lmb == 3)
    assert not gone.assigned and "fadump area" in gone.areas
    big = tmp_path / "big.toml"
    big.write_text('name = "big"\n[machine]\nmemory = "64TB"\n[[script]]\nname = "k"\n'
                   'actor = "kernel"\nrun = ["echo 1 > /sys/kernel/fadump_registered"]\n')
    blog = tmp_path / "big.fadlog"
    r = record(load(str(big)), str(blog))
    brows = memory_map(state_at(str(blog), r.events), lmb)
    assert len(brows) <= 12 and brows[-1].last_lmb == 524287
