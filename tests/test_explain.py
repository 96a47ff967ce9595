"""Verdicts that explain (fadumpsim/explain.py): each violation names its causes."""
from __future__ import annotations

import json

from click.testing import CliRunner

from fadumpsim import sim
from fadumpsim.cli import cli
from fadumpsim.explain import explain_violation
from fadumpsim.replay.constraints import Constraint, ConstraintStrategy
from fadumpsim.scenario import load

from tests.test_explore import protect


def run_with_records(sc, **kw):
    recs: list = []
    return sim.run(sc, sink=recs.append, **kw), recs


def test_dump_armed_names_who_unregistered_and_when():
    res, recs = run_with_records(load("udev-reload-window"))
    v = next(v for v in res.violations if v["invariant"] == "dump-armed")
    e = explain_violation(v, recs)
    echo0 = next(r[0] for r in recs if r[4] == "hp.sysfs_write" and r[7]["value"] == "0")
    unreg = next(r[0] for r in recs if r[4] == "rtas.configure_kernel_dump" and r[7]["cmd"] == 2)
    who = next(b for b in e["because"] if b["seq"] == echo0)
    assert "udev rule's `echo 0 > /sys/kernel/fadump_registered`" in who["text"]
    assert f"UNREGISTER sent at #{echo0}, reached firmware at #{unreg}" in who["text"]
    # kdumpctl dies with the crashed kernel (hp.crashed): its `echo 1` is never written
    assert not [r for r in recs if r[4] == "hp.sysfs_write" and r[7]["value"] == "1"]
    assert "it never wrote again: the crash came first" in who["text"]
    assert e["because"][-1]["seq"] == v["seq"] and "the crash" in e["because"][-1]["text"]
    assert f"#{echo0}" in e["explanation"]


def test_dump_armed_names_the_operation_in_flight_at_the_crash():
    sc = load("udev-reload-race")
    res, recs = run_with_records(sc, strategy=ConstraintStrategy([Constraint(
        ("hotplug", "kernel", "hp.sysfs_write", 1), ("crash", "kernel", "cmd.run", 2))]))
    v = next(v for v in res.violations if v["invariant"] == "dump-armed")
    last = explain_violation(v, recs)["because"][-1]["text"]
    assert "while in flight" in last and "`echo 0 > /sys/kernel/fadump_registered`" in last \
        and "not finished" in last


def test_reserved_area_names_the_lmb_and_the_registration_it_raced():
    res, recs = run_with_records(protect(revert=False, concurrent=True),
                                 strategy=ConstraintStrategy([Constraint(
                                     ("hotplug", "kernel", "hp.is_removable", 1),
                                     ("firmware", "kernel", "rtas.return", 1))]))
    v = next(v for v in res.violations if v["invariant"] == "reserved-area-intact")
    b = explain_violation(v, recs)["because"]
    texts = [x["text"] for x in b]
    assert "REGISTER reached firmware" in texts[0] and "heard back only at" in texts[0]
    assert "lmb_is_removable(LMB 3)" in texts[1] and "while REGISTER was in flight" in texts[1]
    assert "LMB 3 left the partition" in texts[-1] and b[-1]["seq"] == v["seq"]


def test_unknown_invariants_get_the_generic_cause_chain():
    res, recs = run_with_records(load("udev-reload-window"))
    v = {"invariant": "liveness", "message": "someone waits forever", "seq": 20}
    e = explain_violation(v, recs)
    assert e["because"][0]["seq"] == 20 and e["invariant"] == "liveness"
    assert [b["seq"] for b in e["because"][1:]] == [recs[19][5]] + \
        [b["seq"] for b in e["because"][2:]]
    assert explain_violation({"invariant": "x", "message": "", "seq": 0}, recs)["because"] == []


def test_run_json_and_text_carry_the_explanation(tmp_path):
    r = CliRunner().invoke(cli, ["run", "udev-reload-window", "--json", "--log",
                                 str(tmp_path / "w.fadlog")])
    v = json.loads(r.stdout)["violations"][0]
    assert v["because"] and "udev rule" in v["explanation"]
    r = CliRunner().invoke(cli, ["run", "udev-reload-window", "-q", "--log",
                                 str(tmp_path / "w2.fadlog")])
    assert "because #" in r.stdout and "unregistered fadump" in r.stdout
