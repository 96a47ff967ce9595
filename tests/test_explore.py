"""Exploration (replay/explore.py, replay/dpor.py), minimization and ordering coverage.

Real behaviour only: every test runs the simulator and checks what exploration finds,
counts, saves and replays.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from fadumpsim.events.logfile import LogReader
from fadumpsim import sim
from fadumpsim.cli_explore import explore_cmd, minimize_cmd
from fadumpsim.scenario import Scenario, loads
from fadumpsim.replay import dpor
from fadumpsim.replay.coverage import OrderCoverage, run_pairs
from fadumpsim.api import explore, minimize
from fadumpsim.replay.explore import failure_of

from fadumpsim.api import load, record, replay
from fadumpsim.replay.strategies import ForcedStrategy, PctStrategy

from tests.explore_scenarios import CAT, udev


def two_scripts(n_cmds: int = 2) -> Scenario:
    return Scenario.build("two-scripts", script=[
        {"name": "a", "actor": "kernel", "run": [CAT] * n_cmds},
        {"name": "b", "actor": "kernel", "run": [CAT] * n_cmds}])


# A kdump service registers; once it is done, a DLPAR hot-add and a crash race. The hot-add's
# memory online uevent makes the 2018 udev rule run `echo 0`, rebuild the initrd (3 timer
# steps) and `echo 1`: a crash inside that window finds fadump unregistered (dump-armed).
# LMB 3 (256M LMBs: 768M..1G) lies inside the fadump reserved area of the default 8G machine.
PROTECT = """
name = "hotplug-protect"
[kernel]
revert = %s
[[script]]
name = "kdump"
actor = "kernel"
run = ["echo 1 > /sys/kernel/fadump_registered"]
[[script]]
name = "remove"
actor = "hotplug"
%s
run = ["drmgr -c mem -r -s 0x80000003"]
[[script]]
name = "crash"
actor = "kernel"
after = ["kdump", "remove"]
run = ["echo c > /proc/sysrq-trigger"]
[[script]]
name = "save"
actor = "capture"
run = ["makedumpfile -d 31 /proc/vmcore /var/crash/vmcore"]
"""


def protect(revert: bool, concurrent: bool = False) -> Scenario:
    return loads(PROTECT % ('["hotplug-protect"]' if revert else "[]",
                            "" if concurrent else 'after = ["kdump"]'), "<protect>")


def keys(r) -> set[str]:
    return {f.invariant for f in r.failures}


def groups(r) -> list[tuple]:
    return [(f.invariant, f.signature, f.count, f.first_schedule) for f in r.failures]


def classes_of(sc: Scenario, traces) -> list[tuple]:
    out = []
    for tr in traces:
        evs: list[tuple] = []
        sim.run(sc, strategy=ForcedStrategy(tr), on_deliver=lambda ev, _c: evs.append(
            (ev.src, ev.dst, ev.type, ev.chan_seq, ev.payload)))
        out.append(dpor.class_key(sc, evs))
    return out


# -- exhaustive: counting ordering classes ---------------------------------------------------------
def test_exhaustive_runs_exactly_the_ordering_classes_of_two_scripts():
    """Two kernel scripts a and b, each running two `cat` commands.

    Reasoning: deliveries are dependent only when they go to the same actor. Each script
    receives only from the kernel, over one FIFO channel, so its deliveries never reorder.
    The kernel receives fw.boot (before any script starts), then a1, a2 from channel a->kernel
    and b1, b2 from b->kernel; a2 is sent only after a1's result came back, so the kernel
    sees an interleaving of [a1, a2] with [b1, b2] that keeps each script's order. Any such
    interleaving is possible (a script's pending command can wait arbitrarily), and they all
    differ in the kernel's order, so there are C(4, 2) = 6 ordering classes. Everything else
    (when each script receives its start or its results) commutes.
    """
    sc = two_scripts(2)
    r = explore(sc, "exhaustive", schedules=1000)
    assert r.complete and r.schedules == math.comb(4, 2) == 6 and r.blocked == 0
    assert r.failures == [] and r.ok
    # brute force: 252 interleavings of deliveries, but only 6 classes, the same 6
    count, classes, finished = dpor.enumerate_all(sim.system(sc))
    assert finished and count == 252 and len(classes) == 6
    job = dpor.run_job(sim.system(sc), dpor.Job((), frozenset()), bound=None, local_budget=10**6,
                       judge=failure_of, keep_traces=True)
    found = classes_of(sc, [e.trace for e in job.executions])
    assert len(set(found)) == len(found) == 6 and set(found) == classes


def test_exhaustive_three_scripts_multinomial():
    """Three scripts of two commands: 6!/(2!2!2!) = 90 orders of the kernel's six cmd.runs."""
    sc = Scenario.build("three", script=[
        {"name": n, "actor": "kernel", "run": [CAT] * 2} for n in ("a", "b", "c")])
    r = explore(sc, "exhaustive", schedules=1000)
    assert r.complete and r.schedules == 90


def test_exhaustive_kernel_vs_firmware_script_finds_the_one_failing_order(tmp_path):
    """A kdump registration vs a firmware fault injection (`inject rtas -1`).

    The firmware receives the registration's RTAS call and the injection command from two
    channels: two orders, hence two classes. Everything else is ordered by causality. Only
    the order "injection first" fails the registration (exit 1 instead of the expected 0).
    """
    sc = Scenario.build("kernel-vs-firmware", script=[
        {"name": "kdump", "actor": "kernel", "run": ["echo 1 > /sys/kernel/fadump_registered"]},
        {"name": "inj", "actor": "firmware", "run": ["inject rtas -1"]}],
        expect={"exit_codes": {"kdump": [0]}})
    r = explore(sc, "exhaustive", schedules=100, out=str(tmp_path))
    assert r.complete and r.schedules == 2
    assert [(f.invariant, f.count) for f in r.failures] == [("expect:exit_codes.kdump", 1)]
    res, _lg = replay(r.failures[0].log)
    assert failure_of(res)[0] == "expect:exit_codes.kdump"
    assert r.failures[0].reproduced is True


def test_dpor_covers_every_class_of_registration_vs_crash_exactly_once():
    """Registration racing a crash, with a capture script: the checker's `dump-armed` reads the
    order of the script's result vs the crash, which DPOR treats as dependent (@checker)."""
    sc = Scenario.build("reg-vs-crash", script=[
        {"name": "kdump", "actor": "kernel", "run": ["echo 1 > /sys/kernel/fadump_registered"]},
        {"name": "crash", "actor": "kernel", "run": ["echo c > /proc/sysrq-trigger"]},
        {"name": "save", "actor": "capture",
         "run": ["makedumpfile -d 31 /proc/vmcore /var/crash/vmcore"]}])
    count, classes, finished = dpor.enumerate_all(sim.system(sc))
    job = dpor.run_job(sim.system(sc), dpor.Job((), frozenset()), bound=None, local_budget=10**6,
                       judge=failure_of, keep_traces=True)
    found = classes_of(sc, [e.trace for e in job.executions if not e.blocked])
    assert finished and count > 10 * len(classes)
    assert sorted(found) == sorted(classes)          # each class exactly once
    # every verdict a brute-force interleaving can produce is produced by some class
    verdicts = {failure_of(sim.run(sc, strategy=ForcedStrategy(e.trace)))
                for e in job.executions if not e.blocked}
    assert any(v is None for v in verdicts)


def test_preemption_bound_limits_the_search_and_says_so():
    sc = two_scripts(2)
    sizes = [explore(sc, "exhaustive", schedules=1000, preemption_bound=b) for b in (0, 1, 50)]
    assert all(r.complete for r in sizes)
    assert sizes[0].schedules <= sizes[1].schedules <= sizes[2].schedules == 6
    assert "within the preemption bound 0" in sizes[0].complete_text()


# -- the udev reload window -----------------------------------------------------------------------
def test_udev_reload_window_found_replayed_and_minimized(tmp_path):
    sc = udev()
    rnd = explore(sc, "random", schedules=300, seed=0, out=str(tmp_path / "random"))
    assert "dump-armed" in keys(rnd)
    exh = explore(sc, "exhaustive", schedules=400, out=str(tmp_path / "exh"))
    assert "dump-armed" in keys(exh)             # bounded by the number of schedules
    # the hot-add's RTAS calls are the kernel's (hotplug -> kernel -> firmware), so the
    # crash script's commands race two more kernel deliveries than when drmgr talked to
    # firmware directly: the window needs 3 preemptions (1 before DLPAR died with its kernel)
    pb = explore(sc, "exhaustive", schedules=2000, preemption_bound=3)
    assert pb.complete and "dump-armed" in keys(pb)   # complete within 3 preemptions
    assert "within the preemption bound 3" in pb.complete_text()
    pb2 = explore(sc, "exhaustive", schedules=2000, preemption_bound=2)
    assert pb2.complete and "dump-armed" not in keys(pb2)
    g = next(f for f in exh.failures if f.invariant == "dump-armed")
    assert Path(g.log).name == "dump-armed-1.fadlog" and g.reproduced
    res, lg = replay(g.log)                      # the saved log replays to the same failure
    assert failure_of(res)[0] == "dump-armed" and res.dump["status"] == "none"

    g = next(f for f in rnd.failures if f.invariant == "dump-armed")
    m = minimize(g.log)
    assert m.failed and m.key == "dump-armed" and m.reproduced
    assert m.out == str(tmp_path / "random" / "dump-armed-1.min.fadlog")
    assert len(m.deviations) <= m.original_deviations
    mres, mlg = replay(m.out)
    assert "dump-armed" in {v["invariant"] for v in mres.violations}
    assert len(mlg.records) <= len(load(g.log).records)
    recs = mlg.records
    echo0 = next(r[0] for r in recs if r[4] == "hp.sysfs_write" and r[7]["value"] == "0")
    crash = next(r[0] for r in recs if r[4] == "rtas.os_term")
    echo1 = next((r[0] for r in recs if r[4] == "hp.sysfs_write" and r[7]["value"] == "1"),
                 math.inf)
    assert echo0 < crash < echo1
    # the story names the crash (or what it waited for) in kernel terms
    text = "\n".join(m.story)
    assert "#" in text and ("sysrq-trigger" in text or "script.done" in text
                            or "fadump_enabled" in text)
    # minimizing again never overwrites: a new name is picked
    m2 = minimize(g.log)
    assert m2.out.endswith("dump-armed-1.min-2.fadlog") and Path(m.out).exists()


def test_pct_reports_its_guarantee():
    sc = udev(0)
    # DLPAR and the udev restart die with the crashed kernel, so runs where the crash comes
    # early (FIFO and most probes: 20 events) are shorter than those where it lands in the
    # window (43): the estimated k would put every change point before the window. Give k.
    r = explore(sc, "pct", schedules=200, seed=1, pct_depth=3, pct_steps=45)
    p = r.pct
    assert p["per_run"] == pytest.approx(PctStrategy.guarantee(p["channels"], p["steps"], 3))
    assert p["cumulative"] == pytest.approx(1 - (1 - p["per_run"]) ** 200)
    assert p["steps"] >= sim.run(sc).events
    assert "a bug of depth <= 3 would be found with probability >=" in p["text"]
    assert "dump-armed" in keys(r)   # PCT finds the window even without the harness delay


# -- hotplug-protect (RFC patch 4/4) ------------------------------------------------------------------
def test_hotplug_protect_found_only_when_reverted(capsys):
    bad = protect(revert=True)
    for strategy in ("random", "exhaustive"):
        r = explore(bad, strategy, schedules=60, seed=2)
        assert keys(r) & {"reserved-area-intact", "dump-armed"}
    good = explore(protect(revert=False), "exhaustive", schedules=2000)
    assert good.complete and good.failures == []
    rnd = explore(protect(revert=False), "random", schedules=100, seed=2)
    assert rnd.failures == []
    # Report (not assert) what happens when registration and hot-remove run concurrently.
    conc = explore(protect(revert=False, concurrent=True), "exhaustive", schedules=2000)
    with capsys.disabled():
        print(f"\n[hotplug-protect, registration || hot-remove, full series] exhaustive: "
              f"{conc.schedules} classes, complete={conc.complete}, failures: "
              + ("; ".join(f"{f.invariant} x{f.count} ({f.signature})" for f in conc.failures)
                 or "none"))


# -- determinism across workers and backends ---------------------------------------------------------
def test_two_worker_processes_find_the_same_failures_as_one():
    sc = udev()
    one = explore(sc, "random", schedules=40, seed=5)
    # min_parallel_s=0: spawn a helper even for this little work (by default 40
    # schedules stay in this process, see the next test)
    two = explore(sc, "random", schedules=40, seed=5, workers=2, min_parallel_s=0)
    assert two.backend == "processes"
    assert groups(one) == groups(two) and one.schedules == two.schedules == 40
    assert one.coverage.pairs == two.coverage.pairs
    three = explore(sc, "pct", schedules=40, seed=5, workers=3, min_parallel_s=0)
    assert three.backend == "processes"
    one_pct = explore(sc, "pct", schedules=40, seed=5)
    assert groups(one_pct) == groups(three) and one_pct.coverage.pairs == three.coverage.pairs
    assert one_pct.first_failure_at == three.first_failure_at
    e1 = explore(protect(True, True), "exhaustive", schedules=150)
    e2 = explore(protect(True, True), "exhaustive", schedules=150, workers=2)
    assert groups(e1) == groups(e2) and e1.schedules == e2.schedules and not e1.complete
    assert e1.reachable == e2.reachable


def test_too_little_work_for_two_workers_stays_serial(monkeypatch):
    """`--workers 2` never pays for a spawned interpreter when the schedules left after
    the first (timed) batch would take less than min_parallel_s: no process starts."""
    import multiprocessing
    sc = udev()
    monkeypatch.setattr(multiprocessing, "get_context",
                        lambda *a: pytest.fail("a worker process was started"))
    two = explore(sc, "random", schedules=24, seed=5, workers=2)
    assert two.backend == "serial"
    one = explore(sc, "random", schedules=24, seed=5)
    assert groups(one) == groups(two) and one.coverage.pairs == two.coverage.pairs


def test_dask_local_cluster_gives_the_same_failures():
    pytest.importorskip("dask.distributed")
    sc = udev()
    serial = explore(sc, "random", schedules=10, seed=5)
    dsk = explore(sc, "random", schedules=10, seed=5, workers=2, scheduler_address="local",
                  dask_processes=False)
    assert dsk.backend == "dask"
    assert groups(serial) == groups(dsk)


# -- saving, interrupting, progress ---------------------------------------------------------------
def test_logs_are_never_overwritten_and_interrupt_keeps_them(tmp_path):
    sc = protect(revert=True)
    (tmp_path / "reserved-area-intact-1.fadlog").write_text("precious")
    seen = []

    def progress(done, total, failures):
        seen.append((done, total, failures))
        if done == 5:
            raise KeyboardInterrupt

    r = explore(sc, "random", schedules=50, seed=0, out=str(tmp_path), progress=progress)
    assert r.interrupted and not r.complete and r.schedules == 5
    assert seen[0] == (1, 50, 1)
    assert (tmp_path / "reserved-area-intact-1.fadlog").read_text() == "precious"
    assert r.failures[0].log == str(tmp_path / "reserved-area-intact-2.fadlog")
    assert LogReader(r.failures[0].log).header["scenario"]["name"] == "hotplug-protect"


# -- coverage ---------------------------------------------------------------------------------------------
def test_ordering_coverage_pairs_and_gaps():
    p1 = run_pairs([("k", "a"), ("k", "b"), ("f", "x"), ("k", "a")])
    assert p1 == {("k", "a", "b"), ("k", "b", "a")}
    cov = OrderCoverage()
    cov.add(run_pairs([("k", "a"), ("k", "c")]))
    assert cov.gaps() == [("k", "a", "c")]
    cov.add(run_pairs([("k", "c"), ("k", "a")]))
    assert cov.gaps() == [] and cov.both() == [("k", "a", "c")]
    # in the two-script scenario the kernel sees cmd.run and fw.boot in one order only: the
    # boot causes the script's command, so that is no gap (issue 13: coverage without noise)
    r = explore(two_scripts(1), "exhaustive", schedules=10)
    assert ("kernel", "fw.boot", "cmd.run") in r.coverage.causal()
    assert ("kernel", "fw.boot", "cmd.run") not in r.coverage.gaps()


# -- CLI -----------------------------------------------------------------------------------------------------
def test_cli_explore_json_and_exit_codes(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text(PROTECT % ('["hotplug-protect"]', 'after = ["kdump"]'))
    out = tmp_path / "out"
    r = CliRunner().invoke(explore_cmd, [str(f), "--strategy", "exhaustive", "--schedules", "200",
                                         "--out", str(out), "--json"])
    assert r.exit_code == 1, r.output
    data = json.loads(r.stdout)
    assert data["complete"] is True and data["schedules"] >= 1
    assert {x["invariant"] for x in data["failures"]} == {"reserved-area-intact"}
    assert all(Path(x["log"]).exists() for x in data["failures"])
    assert "coverage_gaps" in data and "first_failure_at" in data and "rate" in data
    f2 = tmp_path / "ok.toml"
    f2.write_text(PROTECT % ("[]", 'after = ["kdump"]'))
    r = CliRunner().invoke(explore_cmd, [str(f2), "--schedules", "5", "--out", str(out), "-q"])
    assert r.exit_code == 0 and "no failure found" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[script]]\nname = "s"\nactor = "kernel"\nrun = ["reboot"]\n')
    r = CliRunner().invoke(explore_cmd, [str(bad)])
    assert r.exit_code == 2 and "bad.toml" in r.stderr and "Traceback" not in r.output


def test_cli_minimize_exit_codes(tmp_path):
    passing = tmp_path / "pass.fadlog"
    record(two_scripts(1), str(passing))
    r = CliRunner().invoke(minimize_cmd, [str(passing)])
    assert r.exit_code == 1 and "nothing to minimize" in r.stdout
    r = CliRunner().invoke(minimize_cmd, [str(tmp_path / "missing.fadlog")])
    assert r.exit_code == 2 and "missing.fadlog" in r.stderr and "Traceback" not in r.output
    junk = tmp_path / "junk.fadlog"
    junk.write_bytes(b"not a log at all")
    r = CliRunner().invoke(minimize_cmd, [str(junk)])
    assert r.exit_code == 2 and "junk.fadlog" in r.stderr
    failing = tmp_path / "fail.fadlog"
    record(protect(revert=True), str(failing))
    out = tmp_path / "min.fadlog"
    r = CliRunner().invoke(minimize_cmd, [str(failing), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "story:" in r.stdout and str(out) in r.stdout and out.exists()
    assert "no deviation needed" in r.stdout   # FIFO itself fails here


def test_interruptible_keeps_partial_work_and_always_closes():
    from fadumpsim.replay.explore import Interruptible

    class Ex:
        closed = None

        def close(self, terminate=False):
            Ex.closed = terminate

    with Interruptible(Ex()) as run:
        raise KeyboardInterrupt
    assert run.interrupted and Ex.closed is True
    with Interruptible(Ex()) as run:
        pass
    assert not run.interrupted and Ex.closed is False
    with pytest.raises(ValueError):
        with Interruptible(Ex()):
            raise ValueError("a real error still propagates")
    assert Ex.closed is False


# -- issue 15: the shared pool (fork when safe, guided chunks) ------------------------------------
def _same_json(r) -> dict:
    d = r.to_json()
    for k in ("workers", "backend", "elapsed", "rate", "out"):
        d.pop(k)
    for f in d["failures"]:
        f.pop("log")
    return d


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_json_identical_for_1_2_3_workers_with_a_failing_scenario(strategy, tmp_path):
    sc = udev()
    one = explore(sc, strategy, schedules=150, seed=3, out=str(tmp_path / "1"))
    assert one.failures and one.first_failure_at is not None
    for w in (2, 3):
        many = explore(sc, strategy, schedules=150, seed=3, workers=w, min_parallel_s=0,
                       out=str(tmp_path / str(w)))
        assert many.backend == "processes" and many.parallel.chunks_helpers > 0
        assert _same_json(many) == _same_json(one)
        # the saved logs are the same runs: byte-identical files
        for a, b in zip(one.failures, many.failures):
            assert Path(a.log).read_bytes() == Path(b.log).read_bytes()


def test_spawned_helpers_give_the_same_result_as_forked(monkeypatch):
    import multiprocessing
    import fadumpsim.replay.explore as E
    sc = udev()
    res = {}
    for method in ("fork", "spawn"):
        monkeypatch.setattr(E, "helper_context", lambda m=method: multiprocessing.get_context(m))
        res[method] = explore(sc, "random", schedules=60, seed=9, workers=2, min_parallel_s=0)
        assert res[method].parallel.start_method == method
    assert _same_json(res["fork"]) == _same_json(res["spawn"])


def test_helpers_fork_only_when_no_other_thread_runs():
    """In a fresh interpreter (this pytest process may hold other tests' threads)."""
    import subprocess
    import sys
    code = """if True:
        import threading
        from fadumpsim.replay.explore import helper_context
        a = helper_context().get_start_method()
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        b = helper_context().get_start_method()
        stop.set(); t.join()
        print(a, b)
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["fork", "spawn"]


def test_guided_chunks_cover_every_schedule_once_and_shrink_to_a_batch():
    from fadumpsim.replay.explore import BATCH
    r = explore(udev(), "random", schedules=400, seed=1, workers=2, min_parallel_s=0)
    sizes = r.parallel.sizes
    assert sum(sizes) == 400 - BATCH and r.schedules == 400
    assert sizes[0] > BATCH and all(s == BATCH for s in sizes[-3:-1]) and sizes[-1] <= BATCH
    assert sizes == sorted(sizes, reverse=True)
    assert r.parallel.chunks_self + r.parallel.chunks_helpers == len(sizes)


def _helper_only(monkeypatch, action):
    """Make sample_task do `action()` in forked helpers only (this process runs normally)."""
    import multiprocessing
    import os
    import fadumpsim.replay.explore as E
    parent, real = os.getpid(), E.sample_task

    def task(*a):
        if os.getpid() != parent:
            action()
        return real(*a)
    monkeypatch.setattr(E, "sample_task", task)
    monkeypatch.setattr(E, "helper_context", lambda: multiprocessing.get_context("fork"))


def test_a_helper_that_dies_is_reported_not_waited_for(monkeypatch):
    import os
    _helper_only(monkeypatch, lambda: os._exit(3))
    with pytest.raises(RuntimeError, match=r"helper process ended \(exit code 3\)"):
        explore(udev(), "random", schedules=200, seed=1, workers=2, min_parallel_s=0)


def test_a_helper_error_is_raised_here_and_the_other_helpers_stop(monkeypatch, tmp_path):
    """One helper fails once; the other would go on for ~60 s of schedules: it is
    stopped at once, not waited for (a 7x margin on a loaded machine)."""
    import multiprocessing
    import os
    import time as _time
    flag = str(tmp_path / "failed-once")

    def boom_once():
        try:
            os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return
        raise ValueError("boom in a helper")
    _helper_only(monkeypatch, boom_once)
    t = _time.monotonic()
    with pytest.raises(ValueError, match="boom in a helper"):
        explore(udev(), "random", schedules=20000, seed=1, workers=3, min_parallel_s=0)
    assert _time.monotonic() - t < 8
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]


def test_a_free_helper_takes_the_next_chunk_without_waiting_for_this_process(monkeypatch):
    """Self-scheduling: while this process is slow (0.4 s per chunk here), the helper
    keeps taking chunks off the shared counter. A pool fed by this process between its
    own chunks gets at most a fixed number of chunks ahead per chunk this process runs."""
    import os
    import time as _time
    import fadumpsim.replay.explore as E
    parent, real = os.getpid(), E.sample_task

    def task(*a):
        if os.getpid() == parent and a[5][0] > 0:  # not the first batch (it is timed)
            _time.sleep(0.4)
        return real(*a)
    monkeypatch.setattr(E, "sample_task", task)
    r = explore(udev(), "random", schedules=400, seed=1, workers=2, min_parallel_s=0)
    st = r.parallel
    assert st.chunks_helpers >= 4 * max(1, st.chunks_self), (st.chunks_self, st.chunks_helpers)
    assert sum(st.sizes) == 400 - E.BATCH


def test_one_schedule_is_the_least_explore_accepts():
    from fadumpsim import api
    r = api.explore("double-registration", "random", schedules=1, seed=3)
    assert r.schedules == 1
    # one worker unless asked: the JSON says so, and nothing is started
    assert r.workers == 1 and r.backend == "serial" and r.parallel is None
    with pytest.raises(ValueError, match="schedules must be at least 1"):
        api.explore("double-registration", "random", schedules=0, seed=3)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        api.explore("double-registration", "random", schedules=1, workers=0)


def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("terminate", [False, True])
def test_the_dask_executor_closes_its_client_and_cluster(terminate):
    pytest.importorskip("dask.distributed")
    from fadumpsim.replay.explore import make_executor
    ex = make_executor(2, "local", dask_processes=False)
    assert list(ex.imap(_square, [(i,) for i in range(6)])) == [0, 1, 4, 9, 16, 25]
    client, cluster = ex.client, ex.cluster
    ex.close(terminate=terminate)
    assert client.status == "closed"
    assert cluster.status.name == "closed"


def test_dpor_reverses_a_race_at_the_very_first_delivery():
    # Any System, not only a scenario (whose first delivery is always the lone power-on):
    # two senders' messages to one actor are both enabled at step 1; the two orders are
    # two classes, and DPOR must run both (the race is at the root).
    from types import SimpleNamespace as NS

    from fadumpsim.events import types
    from fadumpsim.replay import dpor
    from fadumpsim.replay.actor import SimActor
    from fadumpsim.replay.runtime import Scheduler
    if not types.known("toy.first"):
        types._t("toy.first", "n", "explore unit-test event")

    class Sink(SimActor):
        def __init__(self, name):
            super().__init__(name)
            self.got = []

        def on_toy_first(self, ev):
            self.got.append(ev.src)

    class TwoSenders:
        name, data, source, actor_names, default_max_events = "two", {}, "", ("k",), 100

        def run(self, *, strategy, on_deliver=None, **_kw):
            s = Scheduler(strategy)
            s.on_deliver = on_deliver
            k = s.spawn(Sink, "k")
            s.wire()
            s.inject("k", "toy.first", {"n": 1}, src="a")
            s.inject("k", "toy.first", {"n": 2}, src="b")
            s.run()
            s.stop()
            return NS(trace=list(s.trace), events=s.seq, violations=[], order="".join(k.got))

    orders = []

    def judge(res):
        orders.append(res.order)
        return None

    job = dpor.run_job(TwoSenders(), dpor.Job((), frozenset()), bound=None, local_budget=100,
                       judge=judge)
    assert sorted(orders) == ["ab", "ba"]
    assert len([e for e in job.executions if not e.blocked]) == 2
