"""Causal minimization (replay/minimize.py, replay/constraints.py, replay/causal.py),
constraint texts (fadumpsim/explain.py) and pinned regression scenarios ([schedule]).

A toy actor system with a known unique minimal answer checks the search itself; the
library's udev window and the registration/DLPAR race under the full RFC series check
the constraint sets a kernel engineer reads.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fadumpsim.api import minimize, record, replay
from fadumpsim.cli import cli
from fadumpsim.events import types
from fadumpsim.replay.actor import SimActor
from fadumpsim.replay.causal import HappensBefore
from fadumpsim.replay.constraints import (Constraint, ConstraintStrategy, delivery_ids)
from fadumpsim.replay.minimize import causal_minimize, constraint_signature, initial_constraints
from fadumpsim.replay.runtime import Scheduler
from fadumpsim.replay.strategies import FifoStrategy, make_strategy
from fadumpsim.scenario import ScenarioError, load, loads
from fadumpsim import sim

from tests.test_explore import protect

# -- a toy system whose minimal answer is known ------------------------------------------------
if not types.known("toy.go"):
    types._t("toy.go", "", "toy: start sending")
    types._t("toy.tag", "tag", "toy: one tagged message to the recorder")


class Src(SimActor):
    def __init__(self, name: str, tags: list[str]) -> None:
        super().__init__(name)
        self.tags = tags

    def on_toy_go(self, ev: Any) -> None:
        for t in self.tags:
            self.send("r", "toy.tag", {"tag": t})


class Rec(SimActor):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.order: list[str] = []

    def on_toy_tag(self, ev: Any) -> None:
        self.order.append(ev.payload["tag"])


@dataclass
class Outcome:
    events: int
    trace: list
    violations: list
    order: str
    expectations: list = field(default_factory=list)
    dump: dict = field(default_factory=lambda: {"status": "-"})
    failure: str | None = None
    log: str | None = None
    sched: Any = None

    @property
    def unexpected_violations(self) -> list:
        return self.violations

    @property
    def ok(self) -> bool:
        return not self.violations


class Toy:
    """Sources c, b, a (a sends a1 then a2 on one channel) all send to recorder r.
    FIFO order is c b a1 a2 (passes). Failure "x": a2 before b before c. Failure "y"
    (another way): b before c without being x. The unique minimal constraint set for
    x is {a2 < b, b < c}; {b < c} alone fails as y and must not be accepted, and
    {a1 < b, b < c} does not give x: which message of the channel matters."""

    name = "toy"
    data: dict = {}
    source = "<toy>"
    actor_names = ("r",)
    default_max_events = 100

    @property
    def factory(self) -> Any:
        return lambda d, s: Toy()

    def run(self, *, seed: int = 0, strategy: Any = "fifo", sink: Any = None, observers=(),
            on_deliver: Any = None, max_events: Any = None, keep_sched: bool = False,
            dump_dir: Any = None) -> Outcome:
        strat = make_strategy(strategy, seed) if isinstance(strategy, str) else strategy
        s = Scheduler(strat, sink=sink, observers=observers)
        s.on_deliver = on_deliver
        s.spawn(Rec, "r")
        for name, tags in (("c", ["c"]), ("b", ["b"]), ("a", ["a1", "a2"])):
            s.spawn(Src, name, tags)
        s.wire()
        for name in ("c", "b", "a"):
            s.inject(name, "toy.go", {})
        s.run()
        s.stop()
        o = "".join(t[0] if t != "a2" else "A" for t in s.actors["r"].order)  # a1=a, a2=A
        v = []
        if o.index("A") < o.index("b") < o.index("c"):
            v = [{"invariant": "x", "message": o, "seq": s.seq}]
        elif o.index("b") < o.index("c"):
            v = [{"invariant": "y", "message": o, "seq": s.seq}]
        return Outcome(s.seq, list(s.trace), v, o)

    def build(self, sched: Any, dump_dir: Any = None) -> None:  # pragma: no cover
        raise NotImplementedError

    def log_header(self, seed: int, strategy: Any) -> dict:  # pragma: no cover
        return {}

    def describe(self, type: str, payload: dict) -> str:
        return f"{type} {payload.get('tag', '')}".strip()


def tag(t: str, n: int = 1) -> tuple:
    src = {"a": "a", "b": "b", "c": "c"}[t]
    return (src, "r", "toy.tag", n)


def toy_run(cs: list[Constraint]) -> tuple[Outcome, list, ConstraintStrategy]:
    recs: list = []
    st = ConstraintStrategy(cs)
    return Toy().run(strategy=st, sink=recs.append), recs, st


def test_toy_fifo_passes_and_each_candidate_fails_as_designed():
    assert Toy().run().order == "cbaA" and Toy().run().ok
    x, _, st = toy_run([Constraint(tag("a", 2), tag("b")), Constraint(tag("b"), tag("c"))])
    assert x.order == "aAbc" and x.violations[0]["invariant"] == "x" and st.satisfied()
    y, _, _ = toy_run([Constraint(tag("b"), tag("c"))])
    assert y.violations[0]["invariant"] == "y"
    # the channel sequence matters: the first message of channel a is not enough
    a1, _, st1 = toy_run([Constraint(tag("a", 1), tag("b")), Constraint(tag("b"), tag("c"))])
    assert st1.satisfied() and [v["invariant"] for v in a1.violations] != ["x"]


def test_toy_minimizes_to_the_unique_answer_rejecting_the_other_failure():
    # a failing run with more ordering than needed: everything of a first, then b, then c
    strong = [Constraint(tag("a", 2), tag("c")), Constraint(tag("a", 2), tag("b")),
              Constraint(tag("b"), tag("c"))]
    out, recs, st = toy_run(strong)
    assert out.violations[0]["invariant"] == "x" and st.satisfied()
    assert len(initial_constraints(recs)) == 3
    found, mrecs, mres, runs = causal_minimize(Toy(), recs, ("x", "x|dump=-|expect=-"))
    got = {(c.constraint.before, c.constraint.after) for c in found}
    assert got == {(tag("a", 2), tag("b")), (tag("b"), tag("c"))}
    assert all(c.necessary for c in found) and mres.violations[0]["invariant"] == "x"
    assert runs > 0
    # brute force, independent of the search: every subset of the run's races that
    # reproduces x with all constraints holding; the smallest is unique and is the answer
    from itertools import combinations
    c0 = initial_constraints(recs)
    hits = []
    for k in range(len(c0) + 1):
        for sub in combinations(c0, k):
            o, _r, st2 = toy_run(list(sub))
            if st2.satisfied() and [v["invariant"] for v in o.violations] == ["x"]:
                hits.append({(c.before, c.after) for c in sub})
    smallest = min(len(h) for h in hits)
    assert [h for h in hits if len(h) == smallest] == [got]
    sig = constraint_signature(found)
    assert constraint_signature(type("R", (), {"constraints": found})()) == sig
    assert sig == "a>r:toy.tag#2<b>r:toy.tag#1;b>r:toy.tag#1<c>r:toy.tag#1"


def test_happens_before_separates_causal_pairs_from_races():
    out, recs, _ = toy_run([])
    hb = HappensBefore(recs)
    ids = delivery_ids(recs)
    races = {(ids[a], ids[b]) for a, b in hb.races()}
    # c, b and a's tags race each other; a1 and a2 share a channel: never a race
    assert (tag("c"), tag("b")) in races and (tag("b"), tag("a", 1)) in races
    assert (tag("a", 1), tag("a", 2)) not in races
    # a's tag was caused by a's go: its ancestors hold that delivery
    i = ids.index(tag("a", 1))
    assert recs[hb.ancestors(i)[0]][4] == "toy.go"


# -- the library's races -------------------------------------------------------------------------
def strong_log(tmp_path: Path, sc: Any, strong: list[Constraint], name: str) -> str:
    p = str(tmp_path / f"{name}.fadlog")
    r = record(sc, p, strategy=ConstraintStrategy(strong))
    assert not r.ok
    return p


def test_udev_window_is_one_constraint_in_kernel_terms(tmp_path):
    # crash held back until after drmgr's unlock: more than the failure needs
    log = strong_log(tmp_path, load("udev-reload-race"),
                     [Constraint(("hotplug", "kernel", "hp.unlock", 1),
                                 ("crash", "kernel", "cmd.run", 2))], "udev")
    m = minimize(log)
    assert m.key == "dump-armed" and m.reproduced
    assert [(c.constraint.before, c.constraint.after) for c in m.constraints] == [
        (("hotplug", "kernel", "hp.sysfs_write", 1), ("crash", "kernel", "cmd.run", 2))]
    c = m.constraints[0]
    assert c.necessary and c.flipped.startswith("passes")
    t = c.text
    assert "the crash (`echo c > /proc/sysrq-trigger`" in t and "udev rule's `echo 0 > " \
        "/sys/kernel/fadump_registered`" in t and "UNREGISTER" in t
    assert f"#{c.after_seq}" in t and f"#{c.before_seq}" in t
    # independent of minimize: FIFO passes, the constraint alone fails, reversed it passes
    sc = load("udev-reload-race")
    assert sim.run(sc).ok
    assert not sim.run(sc, strategy=ConstraintStrategy([c.constraint])).ok
    assert sim.run(sc, strategy=ConstraintStrategy([c.constraint.flipped()])).ok
    # the minimized log replays and satisfies the constraint
    res, lg = replay(m.out)
    ids = delivery_ids(lg.records)
    assert ids.index(c.constraint.before) < ids.index(c.constraint.after)
    d = m.to_json()
    assert d["constraints"][0]["before"]["type"] == "hp.sysfs_write"
    assert d["constraints"][0]["text"] == t
    assert d["constraint_signature"] == \
        "hotplug>kernel:hp.sysfs_write#1<crash>kernel:cmd.run#2"
    r = CliRunner().invoke(cli, ["minimize", log, "-o", str(tmp_path / "cli.fadlog")])
    assert r.exit_code == 0 and "1 ordering constraint(s)" in r.stdout
    assert "the failure needs (reversing any one makes it go away):\n  1. the crash (`echo c" \
        in r.stdout


def test_registration_dlpar_race_is_lmb_is_removable_while_register_in_flight(tmp_path):
    log = strong_log(tmp_path, protect(revert=False, concurrent=True),
                     [Constraint(("hotplug", "kernel", "hp.offline", 1),
                                 ("firmware", "kernel", "rtas.return", 1))], "dlpar")
    m = minimize(log)
    assert m.key == "reserved-area-intact"
    assert [(c.constraint.before, c.constraint.after) for c in m.constraints] == [
        (("hotplug", "kernel", "hp.is_removable", 1), ("firmware", "kernel", "rtas.return", 1))]
    t = m.constraints[0].text
    assert "lmb_is_removable(LMB 3)" in t and "answer to REGISTER" in t
    assert "removable=True" in t and "in flight" in t
    assert m.constraints[0].necessary
    sc = protect(revert=False, concurrent=True)
    c = m.constraints[0].constraint
    assert sim.run(sc).ok and sim.run(sc, strategy=ConstraintStrategy([c.flipped()])).ok
    bad = sim.run(sc, strategy=ConstraintStrategy([c]))
    assert "reserved-area-intact" in {v["invariant"] for v in bad.violations}


# -- pinning a failure as a regression scenario ---------------------------------------------------
def test_minimize_scenario_pins_the_failure_and_passes_once_fixed(tmp_path):
    log = strong_log(tmp_path, protect(revert=False, concurrent=True),
                     [Constraint(("hotplug", "kernel", "hp.offline", 1),
                                 ("firmware", "kernel", "rtas.return", 1))], "dlpar")
    out = tmp_path / "pinned.toml"
    r = CliRunner().invoke(cli, ["minimize", log, "--scenario", str(out), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["scenario"] == str(out) and len(data["constraints"]) == 1
    sc = load(str(out))
    assert [c.after for c in sc.schedule] == [("firmware", "kernel", "rtas.return", 1)]
    res = sim.run(sc)
    assert not res.ok and res.strategy == "constrained"
    assert "reserved-area-intact" in {v["invariant"] for v in res.violations}
    # without the schedule the same scenario passes (FIFO does not hit the race)
    plain = dict(sc.data)
    plain.pop("schedule")
    assert sim.run(loads_data(plain)).ok
    # "fixed": registration takes the device-hotplug lock -> the pinned scenario passes
    fixed = dict(sc.data, kernel=dict(sc.data.get("kernel", {}), hotplug_lock=True))
    assert sim.run(loads_data(fixed)).ok
    # the CLI and pytest see the same: fails while the bug exists
    r = CliRunner().invoke(cli, ["run", str(out), "-q", "--log", str(tmp_path / "p.fadlog")])
    assert r.exit_code == 1 and "reserved-area-intact" in r.output
    from fadumpsim.events.logfile import LogReader
    h = LogReader(str(tmp_path / "p.fadlog")).header
    assert h["strategy"] == "constrained" and len(h["strategy_params"]["constraints"]) == 1
    assert replay(str(tmp_path / "p.fadlog"))[0].events == res.events
    r = CliRunner().invoke(cli, ["minimize", log, "--scenario", str(out)])
    assert r.exit_code == 2 and "already exists" in r.stderr


def loads_data(d: dict) -> Any:
    from fadumpsim.scenario import Scenario
    return Scenario(d, source="<pinned>")


@pytest.mark.parametrize("bad, msg", [
    ('before = {src = "kdump", dst = "kernel", type = "cmd.run"}', "required: after"),
    ('before = {src = "nobody", dst = "kernel", type = "cmd.run"}\n'
     'after = {src = "kdump", dst = "kernel", type = "cmd.run", nth = 2}', "no actor or script"),
    ('before = {src = "kdump", dst = "kernel", type = "cmd.nope"}\n'
     'after = {src = "kdump", dst = "kernel", type = "cmd.run", nth = 2}', "unknown event type"),
    ('before = {src = "kdump", dst = "kernel", type = "cmd.run", nth = 0}\n'
     'after = {src = "kdump", dst = "kernel", type = "cmd.run", nth = 2}', "nth"),
    ('before = {src = "kdump", dst = "kernel", type = "cmd.run"}\n'
     'after = {src = "kdump", dst = "kernel", type = "cmd.run", nth = 1}', "same delivery"),
    ('before = {src = "kdump", dst = "kernel", type = "cmd.run", when = 3}\n'
     'after = {src = "kdump", dst = "kernel", type = "cmd.run", nth = 2}', "unknown key"),
])
def test_bad_schedule_constraints_are_one_line_exit_2(tmp_path, bad, msg):
    text = ('name = "s"\n[[script]]\nname = "kdump"\nactor = "kernel"\n'
            'run = ["cat /sys/kernel/fadump_enabled"]\n[[schedule.constraint]]\n' + bad + "\n")
    with pytest.raises(ScenarioError, match=msg):
        loads(text, "bad.toml")
    f = tmp_path / "bad.toml"
    f.write_text(text)
    r = CliRunner().invoke(cli, ["run", str(f)])
    assert r.exit_code == 2 and "bad.toml" in r.stderr and "Traceback" not in r.output


def test_pytest_runs_a_pinned_scenario_named_on_its_command_line(tmp_path, pytester=None):
    import subprocess
    import sys
    log = strong_log(tmp_path, load("udev-reload-race"),
                     [Constraint(("hotplug", "kernel", "hp.unlock", 1),
                                 ("crash", "kernel", "cmd.run", 2))], "udev")
    out = tmp_path / "pin.toml"
    r = CliRunner().invoke(cli, ["minimize", log, "--scenario", str(out)])
    assert r.exit_code == 0, r.output
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 1 and "1 failed" in p.stdout and "dump-armed" in p.stdout
