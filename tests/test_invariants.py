"""Invariants as functions of the class, liveness, and the cost of accounting.

* two linearizations of one Mazurkiewicz class get the same verdict, and the class
  verdict includes whatever a per-state check sees in the run itself;
* `liveness`: a busy-forever registration, the event cap, a deadlock, a lock held by
  a finished operation; what a crash explains is not a violation;
* accounting looks at the LMBs an event changes, not at every LMB: pinned by the
  checker's own visit counter on 1TB vs 64TB.
"""
from __future__ import annotations

import json
import random
from types import SimpleNamespace

from click.testing import CliRunner

from fadumpsim import sim
from fadumpsim.api import explore, record, replay
from fadumpsim.cli import cli as cli_main
from fadumpsim.liveness import BUSY_CAP, Liveness
from fadumpsim.ownership import Ownership
from fadumpsim.replay import dpor
from fadumpsim.replay.explore import failure_of
from fadumpsim.replay.strategies import ForcedStrategy, RandomStrategy
from fadumpsim.scenario import Scenario, loads

from tests.oracle_classes import NaiveChecker

BUSY = """
name = "busy-forever"
[[script]]
name = "inj"
actor = "firmware"
run = ["inject rtas 9902 999999999999"]
[[script]]
name = "kdump"
actor = "kernel"
after = ["inj"]
run = ["echo 1 > /sys/kernel/fadump_registered"]
"""

# Registration, a DLPAR remove outside the fadump area and a crash, all concurrent, with
# a capture script: the remove's firmware release can reach firmware after the crash, so
# the capture kernel boots with an LMB firmware then takes away (the stale DLPAR).
STALE = Scenario.build("stale-dlpar", script=[
    {"name": "kdump", "actor": "kernel", "run": ["echo 1 > /sys/kernel/fadump_registered"]},
    {"name": "dlpar", "actor": "hotplug", "run": ["drmgr -c mem -r -s 0x80000014"]},
    {"name": "crash", "actor": "kernel", "run": ["echo c > /proc/sysrq-trigger"]},
    {"name": "save", "actor": "capture",
     "run": ["makedumpfile -d 31 /proc/vmcore /var/crash/vmcore"]}])


def _events(sc: Scenario, trace) -> tuple[list, object]:
    evs: list = []
    naive = NaiveChecker()
    res = sim.run(sc, strategy=ForcedStrategy(trace), observers=[naive],
                  on_deliver=lambda ev, _c: evs.append(ev))
    return evs, res, naive


def _swaps(evs) -> list[list[tuple[str, str]]]:
    """Other linearizations of the same class: swap adjacent independent deliveries
    (different receivers, the second not sent by the first)."""
    trace = [(e.src, e.dst) for e in evs]
    out = []
    for i in range(len(evs) - 1):
        a, b = evs[i], evs[i + 1]
        if a.dst != b.dst and b.cause != a.seq:
            t = list(trace)
            t[i], t[i + 1] = t[i + 1], t[i]
            out.append(t)
    return out


def _verdict(res) -> frozenset:
    return frozenset(v["invariant"] for v in res.violations)


def _class_traces(sc: Scenario) -> list[list[tuple[str, str]]]:
    job = dpor.run_job(sim.system(sc), dpor.Job((), frozenset()), bound=None,
                       local_budget=1 << 30, judge=failure_of, keep_traces=True)
    return [e.trace for e in job.executions if not e.blocked]


def test_two_linearizations_of_one_class_get_the_same_verdict():
    """Every class of the stale-DLPAR scenario; per class, every adjacent swap of two
    independent deliveries (another linearization of the same class)."""
    checked = with_accounting = 0
    traces = _class_traces(STALE)
    for trace in traces[::12]:
        evs, res, naive = _events(STALE, trace)
        base = _verdict(res)
        with_accounting += "accounting" in base
        key = sorted((e.dst, e.src, e.chan_seq) for e in evs)
        for t in _swaps(evs):
            evs2, res2, naive2 = _events(STALE, t)
            assert sorted((e.dst, e.src, e.chan_seq) for e in evs2) == key  # same class
            assert _verdict(res2) == base, t
            checked += 1
    assert checked > 150


def test_class_verdict_covers_every_state_a_run_passes_through():
    """Whatever the per-state check sees in this linearization, the class verdict has."""
    for s in range(30):
        evs, res, naive = _events(STALE, sim.run(STALE, strategy=RandomStrategy(100 + s)).trace)
        assert naive.violated <= _verdict(res)


def _ownership_run(order: list[str], causes: dict[str, str] | None = None) -> list[str]:
    """Feed fadumpsim.ownership deliveries in `order`: firmware releases LMB 5 ("F-")
    and takes it back ("F+"), the kernel finishes booting with LMB 5 present ("K"),
    the kernel crashes ("KX").
    `causes` makes a delivery caused by (sent during) another one."""
    causes = causes or {}
    lmb5 = bytearray(8)
    lmb5[:6] = b"\x01" * 6
    fw = SimpleNamespace(assigned=bytearray(lmb5))
    kernel = SimpleNamespace(name="kernel", booted=False, crashed=False, drmem=bytearray(lmb5))
    capture = SimpleNamespace(name="capture", booted=False, crashed=False, drmem=bytearray(8))
    actors = {"firmware": fw, "kernel": kernel, "capture": capture,
              "hotplug": SimpleNamespace(in_transit=[])}
    own = Ownership()
    seq_of: dict[str, int] = {}
    out = []
    for seq, step in enumerate(order, 1):
        if step in ("K", "KX"):
            kernel.booted = True
            kernel.crashed = step == "KX"
            ev = SimpleNamespace(dst="kernel", payload={})
        else:
            fw.assigned[5] = 1 if step == "F+" else 0
            ev = SimpleNamespace(dst="firmware", payload={"drc_index": 0x80000005})
        ev.seq, ev.cause = seq, seq_of.get(causes.get(step, ""), 0)
        seq_of[step] = seq
        msg = own.observe(actors, ev)
        if msg:
            out.append(msg)
    return out


def test_ownership_verdict_is_the_same_for_every_linearization_of_a_class():
    """The kernel's boot and firmware's release/re-acquire are independent: in order
    K,F-,F+ the state after F- disagrees, in F-,F+,K no state does. One class, one verdict:
    some run of it passes through "kernel uses LMB 5, which firmware does not assign"."""
    verdicts = [_ownership_run(o) for o in (["K", "F-", "F+"], ["F-", "K", "F+"],
                                             ["F-", "F+", "K"])]
    assert all(set(v) == {"kernel uses LMB 5, which firmware does not assign to the partition"}
               for v in verdicts)
    # when the kernel booted only after firmware took LMB 5 back (F+ caused K), no run can
    # see the disagreement, and none is reported
    assert _ownership_run(["F-", "F+", "K"], causes={"K": "F+"}) == []
    # nor when firmware released it only after the kernel had crashed (KX caused F-)
    assert _ownership_run(["K", "KX", "F-"], causes={"F-": "KX"}) == []
    assert _ownership_run(["K", "KX", "F-"]) != []   # concurrent: some run disagrees


# -- liveness ------------------------------------------------------------------------------
def test_busy_forever_is_a_liveness_violation_found_early(tmp_path):
    sc = loads(BUSY, "<busy>")
    res = record(sc, str(tmp_path / "busy.fadlog"))
    assert not res.ok
    (v,) = res.violations
    assert v["invariant"] == "liveness"
    assert "`echo 1 > /sys/kernel/fadump_registered` (script kdump) never returned" in v["message"]
    assert f"firmware answered busy {BUSY_CAP} times" in v["message"]
    assert res.events < 4 * BUSY_CAP + 50          # not 200,000
    again, _lg = replay(str(tmp_path / "busy.fadlog"))
    assert again.violations == res.violations


def test_a_finite_busy_spell_is_fine():
    sc = loads(BUSY.replace("999999999999", "40"), "<busy40>")
    res = sim.run(sc)
    assert res.ok and res.registered


def test_the_event_cap_is_a_liveness_violation():
    sc = loads(BUSY, "<busy>")
    res = sim.run(sc, max_events=300)
    (v,) = res.violations
    assert v["invariant"] == "liveness"
    assert v["message"].startswith("the run did not come to rest within 300 events")
    assert "kdump" in v["message"] and "firmware" in v["message"]


def test_a_crash_explains_what_it_kills():
    """Registration racing a crash and a DLPAR remove: whatever the order, what waits for
    the dead kernel is not a liveness violation."""
    r = explore(STALE, "random", schedules=60, seed=3)
    assert "liveness" not in r.reachable


def test_explore_and_run_json_report_liveness(tmp_path):
    sc = loads(BUSY, "<busy>")
    r = explore(sc, "exhaustive", schedules=50, out=str(tmp_path))
    assert r.complete and [f.invariant for f in r.failures] == ["liveness"]
    res, _lg = replay(r.failures[0].log)
    assert [v["invariant"] for v in res.violations] == ["liveness"]
    f = tmp_path / "busy.toml"
    f.write_text(BUSY)
    out = CliRunner().invoke(cli_main, ["run", str(f), "--json", "--log",
                                        str(tmp_path / "x.fadlog")])
    assert out.exit_code == 1, out.output
    data = json.loads(out.stdout)
    assert data["outcome"] == "fail"
    assert [v["invariant"] for v in data["violations"]] == ["liveness"]


def _op(id, kind, waiting, **info):
    return SimpleNamespace(id=id, kind=kind, waiting=waiting, info=info, holds=[])


def _sched(actors, seq=10):
    return SimpleNamespace(actors=actors, seq=seq, halted=None)


def test_liveness_names_a_deadlock_and_a_lock_held_by_a_finished_operation():
    a = _op("k1", "fadump_register_store", "lock:device_hotplug")
    b = _op("k2", "lock_device_hotplug", "lock:fadump_mutex")
    locks = {"fadump_mutex": SimpleNamespace(name="fadump_mutex", owner="k1"),
             "device_hotplug": SimpleNamespace(name="device_hotplug", owner="k2")}
    kernel = SimpleNamespace(crashed=False, ops={"k1": a, "k2": b}, locks=locks, hp_lock_ops={})
    msg = Liveness().stuck(_sched({"kernel": kernel}), capped=False)
    assert msg and "deadlock" in msg and "fadump_register_store (k1)" in msg
    # the same kernel, crashed: the crash explains it
    kernel.crashed = True
    assert Liveness().stuck(_sched({"kernel": kernel}), capped=False) is None
    orphan = SimpleNamespace(crashed=False, ops={}, hp_lock_ops={},
                             locks={"fadump_mutex": SimpleNamespace(name="fadump_mutex",
                                                                    owner="k9")})
    msg = Liveness().stuck(_sched({"kernel": orphan}), capped=False)
    assert msg == "kernel lock fadump_mutex is held by operation k9, which has finished"


# -- accounting cost ---------------------------------------------------------------------------
def _dlpar(size: str, k: int) -> Scenario:
    return Scenario.build(f"remove-{size}", machine={"memory": size, "max_memory": size,
                                                     "lmb_size": "256M"},
                          script=[{"name": "dlpar", "actor": "hotplug",
                                   "run": [f"drmgr -c mem -r -q {k}"]}])


def _visits(sc: Scenario) -> tuple[int, int]:
    res = sim.run(sc, keep_sched=True)
    assert res.ok and res.transcript[0]["exit"] == 0
    return res.sched.observers[0].ownership.visits, res.events


def test_accounting_looks_at_changed_lmbs_only():
    small, ev_small = _visits(_dlpar("1T", 16))
    big, ev_big = _visits(_dlpar("64T", 16))
    assert ev_small == ev_big
    # 16 LMBs, each changing hands a few times (kernel, hotplug, firmware): a few checks
    # per change, the same on 4,096 and on 262,144 LMBs
    assert small == big and 16 <= big <= 16 * 8
