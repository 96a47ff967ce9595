"""The fault swarm: finds the known bugs unaided, saves findings that replay, does not
report bugs the knobs fix, gives the same result for any worker count, survives Ctrl-C."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fadumpsim import api, sim
from fadumpsim.cli import main
from fadumpsim.replay.explore import failure_of
from fadumpsim.replay.strategies import make_strategy
from fadumpsim.scenario import Scenario, load
from fadumpsim.strategies import Knobs
from fadumpsim.swarm import explained_by_fault, minimize_budget, refine, run_seed, swarm

#: seeds 0..24 of rfc-v6 hold the udev window (seed 11) and the registration/DLPAR race
#: (seed 24); see docs/swarm.md for seeds-to-first-find over 300 seeds
SEEDS = 25
UDEV_WINDOW = "dump-armed|dump=none|expect=-"


def _race(f: dict) -> bool:
    return f["invariant"] == "reserved-area-intact" and f["signature"].endswith("|reserved-area")


def _udev(f: dict) -> bool:
    return f["invariant"] == "dump-armed" and f["signature"] == UDEV_WINDOW


@pytest.fixture(scope="module")
def found(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("swarm")
    return swarm("rfc-v6", SEEDS, out=str(out), minimize_runs=25).to_json()


def test_finds_the_race_and_the_udev_window_without_hints(found: dict) -> None:
    assert found["seeds"] == SEEDS
    assert any(_race(f) for f in found["failures"]), found["failures"]
    assert any(_udev(f) for f in found["failures"]), found["failures"]
    assert sum(f["count"] for f in found["failures"]) == found["failing_seeds"]


def test_every_finding_replays_and_its_scenario_fails_the_same_way(found: dict) -> None:
    _check_findings(found)
    assert any(f["pinned"] for f in found["failures"])


def test_upstream_findings_replay_too(tmp_path: Path) -> None:
    """Upstream worlds (mainline rules, QEMU, re-registration in one write): seed 55's
    crash inside the one-write re-registration is its own group, and it replays."""
    r = swarm("upstream", 6, seed_start=52, out=str(tmp_path), minimize_runs=5).to_json()
    assert any(f["signature"].endswith("|reregister-in-flight") for f in r["failures"])
    _check_findings(r)


def _check_findings(found: dict) -> None:
    assert found["failures"]
    for f in found["failures"]:
        assert f["reproduced"] is True
        res, _lg = api.replay(f["log"])            # raises Divergence if it does not replay
        assert failure_of(res)[0] == f["invariant"]
        sc = load(f["scenario"])                    # the saved TOML file
        spec = f["schedule"]
        strat = make_strategy(spec["strategy"], spec["seed"],
                              **{k: spec[k] for k in ("depth", "steps") if k in spec})
        again = sim.run(sc, seed=spec["seed"], strategy=strat)
        got = failure_of(again)
        assert (got[0], refine(again, got[1], sc.data)) == (f["invariant"], f["signature"])
        assert f["run"].startswith(f"fadumpsim run {f['scenario']} --strategy {spec['strategy']}")
        if f["minimized"] is not None:
            assert f["log"].endswith(".min.fadlog")
            assert f["minimized"]["deviations"] <= f["minimized"]["original_deviations"]
        if f["pinned"] is not None:                 # the regression scenario fails in FIFO
            pinned = sim.run(load(f["pinned"]))
            assert failure_of(pinned)[0] == f["invariant"]


def test_the_knobs_that_fix_a_bug_make_the_swarm_stop_reporting_it() -> None:
    fixed = Knobs.parse("rfc-v6", ["hotplug_lock=true", "udev_reload=false"])
    r = swarm("rfc-v6", SEEDS, knobs=fixed, out=None).to_json()
    assert not any(_race(f) for f in r["failures"]), r["failures"]
    assert not any(_udev(f) for f in r["failures"]), r["failures"]
    # each knob closes its own bug: the race alone is still found with the rule off
    r2 = swarm("rfc-v6", SEEDS, knobs=Knobs.parse("rfc-v6", ["udev_reload=false"]),
               out=None).to_json()
    assert any(_race(f) for f in r2["failures"]) and not any(_udev(f) for f in r2["failures"])


def test_patch_4_reverted_is_found_when_the_knob_reverts_it() -> None:
    reverted = Knobs.parse("rfc-v6", ["revert=hotplug-protect", "udev_reload=false"])
    r = swarm("rfc-v6", 20, knobs=reverted, out=None).to_json()
    assert any(_race(f) for f in r["failures"])


def _strip(j: dict) -> dict:
    """Drop timing/backend fields and directory names: what may differ between runs."""
    j = json.loads(json.dumps(j))
    for k in ("elapsed", "rate", "workers", "backend", "out"):
        j.pop(k)
    for f in j["failures"]:
        for k in ("scenario", "log", "original_log", "run", "pinned"):
            if f[k]:
                f[k] = Path(f[k].split()[2] if k == "run" else f[k]).name
    return j


def test_same_seeds_same_result_whatever_the_worker_count(tmp_path: Path) -> None:
    one = swarm("rfc-v6", 8, seed_start=4, out=str(tmp_path / "w1"), minimize_runs=10).to_json()
    two = swarm("rfc-v6", 8, seed_start=4, out=str(tmp_path / "w2"), minimize_runs=10,
                workers=2).to_json()
    assert two["workers"] == 2 and two["backend"] == "processes"
    assert one["failures"] and _strip(one) == _strip(two)
    for f1, f2 in zip(one["failures"], two["failures"]):
        assert Path(f1["scenario"]).read_bytes() == Path(f2["scenario"]).read_bytes()


def test_ctrl_c_keeps_what_was_found(tmp_path: Path) -> None:
    calls = []

    def progress(done: int, total: int | None, failures: int) -> None:
        calls.append(done)
        if done >= 8:
            raise KeyboardInterrupt

    r = swarm("rfc-v6", 40, seed_start=8, out=str(tmp_path), progress=progress, minimize_runs=0)
    assert r.interrupted and r.seeds == 8 and calls == [4, 8]
    saved = json.loads((tmp_path / "swarm.json").read_text())
    assert saved["interrupted"] is True and saved["seeds"] == 8
    assert saved["failures"] and all(Path(f["scenario"]).exists() and Path(f["log"]).exists()
                                     for f in saved["failures"])


def test_time_limit_stops_the_swarm() -> None:
    r = swarm("rfc-v6", None, time_limit=0.01, out=None)
    assert 1 <= r.seeds <= 8


def test_run_seed_is_deterministic() -> None:
    assert run_seed(10, Knobs()) == run_seed(10, Knobs())


def test_copy_errors_injected_by_the_search_are_explained_not_reported() -> None:
    data = dict(load("firmware-copy-error").data)
    data.pop("expect")
    res = sim.run(Scenario(data))
    assert failure_of(res)[0] == "dump-armed" and explained_by_fault(data, res)
    data["script"] = [s for s in data["script"] if s["actor"] != "firmware"]
    for s in data["script"]:
        s.pop("after", None)
    assert not explained_by_fault(data, sim.run(Scenario(data)))


def test_capture_kernel_of_a_two_node_partition_boots() -> None:
    """A fully reserved node's memmap falls back to another node (memblock_alloc_try_nid);
    the swarm found capture kernels of multi-node partitions failing to boot."""
    sc = Scenario.build("two-node-capture", machine={"memory": "32G", "nodes": 2},
                        script=[{"name": "k", "actor": "kernel",
                                 "run": ["echo 1 > /sys/kernel/fadump_registered",
                                         "echo c > /proc/sysrq-trigger"]},
                                {"name": "s", "actor": "capture",
                                 "run": ["makedumpfile -d 31 /proc/vmcore /var/crash/v"]}])
    res = sim.run(sc)
    assert res.failure is None and res.dump["status"] == "saved" and res.ok


def test_cli_swarm_json_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["swarm", "--seeds", "4", "--seed-start", "9", "--out", str(tmp_path), "--json",
              "--minimize-runs", "0"])
    assert e.value.code == 1
    j = json.loads(capsys.readouterr().out)
    assert j["seeds"] == 4 and j["failures"]
    for f in j["failures"]:
        assert {"invariant", "count", "scenario", "log"} <= set(f)
    for argv, what in ((["swarm", "--set", "nope=1"], "unknown knob"),
                       (["swarm", "--profile", "solaris"], "unknown profile"),
                       (["swarm", "--seeds", "0"], "--seeds")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert what in err and len(err.splitlines()) == 1


def test_minimize_budget_shrinks_with_the_partition() -> None:
    assert minimize_budget(400, 64) == 400 and minimize_budget(400, 16384) == 400
    assert minimize_budget(400, 262144) == 25 and minimize_budget(400, 1 << 20) == 10
    assert minimize_budget(0, 1 << 20) == 0 and minimize_budget(5, 1 << 20) == 5


@pytest.mark.parametrize("inject, flavour, status", [
    ("inject copy-error hardware rmr", "qemu", "incomplete"),   # QEMU: bytes_dumped 0 only
    ("inject copy-error hardware cpu", "qemu", "none"),         # QEMU powers the guest off
    ("inject copy-error hardware rmr", "powervm", "invalid"),   # PowerVM: header 0x2000
    ("inject copy-error destination rmr at chunk 1", "powervm", "invalid"),
])
def test_every_copy_error_outcome_is_explained(inject: str, flavour: str, status: str) -> None:
    data = {"name": "copy", "firmware": {"flavour": flavour}, "script": [
        {"name": "k", "actor": "kernel", "run": ["echo 1 > /sys/kernel/fadump_registered"]},
        {"name": "f", "actor": "firmware", "run": [inject]},
        {"name": "crash", "actor": "kernel", "after": ["k", "f"],
         "run": ["echo c > /proc/sysrq-trigger"]},
        {"name": "save", "actor": "capture",
         "run": ["makedumpfile -d 31 /proc/vmcore /var/crash/vmcore"]}]}
    res = sim.run(Scenario(data))
    assert res.dump["status"] == status and failure_of(res)[0] == "dump-armed"
    assert explained_by_fault(data, res)
    # the same failure without the injection is not explained by it
    data["script"][1]["run"] = ["inject rtas 9902 1"]
    assert not explained_by_fault(data, res)


UNREGISTER_RACE = {"name": "crash-during-unregister", "script": [
    {"name": "k", "actor": "kernel", "run": ["echo 1 > /sys/kernel/fadump_registered"]},
    {"name": "f", "actor": "firmware", "after": ["k"], "run": ["inject rtas 9902 3"]},
    {"name": "stop", "actor": "kernel", "after": ["f"],
     "run": ["echo 0 > /sys/kernel/fadump_registered"]},
    {"name": "crash", "actor": "kernel", "after": ["f"],
     "run": ["free -m", "echo c > /proc/sysrq-trigger"]}]}


def test_a_crash_inside_the_scripts_own_unregister_breaks_no_promise() -> None:
    """The swarm found `dump-armed` reported when the crash lands while the script's own
    busy-retried `echo 0` is in flight (firmware may already have unregistered). The
    script was unregistering: the invariant's "unless a script wrote 0" covers it."""
    inside = []
    for seed in range(130):
        res = sim.run(Scenario(UNREGISTER_RACE), strategy="random", seed=seed)
        if res.dump["status"] == "none" and any(
                t["exit"] is None and t["command"].startswith("echo 0") for t in res.transcript):
            inside.append(seed)
            assert "dump-armed" not in {v["invariant"] for v in res.violations}, seed
    assert inside
    # a completed `echo 0` followed by `echo 1` re-arms: a lost dump is still reported
    data = json.loads(json.dumps(UNREGISTER_RACE))
    data["script"][1]["run"] = ["inject copy-error hardware"]
    data["script"][2]["run"] = ["echo 0 > /sys/kernel/fadump_registered",
                                "echo 1 > /sys/kernel/fadump_registered"]
    data["script"][3]["after"] = ["stop", "f"]
    res = sim.run(Scenario(data))
    assert [t["exit"] for t in res.transcript if t["script"] == "stop"] == [0, 0]
    assert res.dump["status"] == "invalid"
    assert "dump-armed" in {v["invariant"] for v in res.violations}


def test_a_hole_qemu_accepts_at_registration_is_told_apart() -> None:
    """QEMU registers an area with a hole (hole-before-registration-qemu): the LMB did not
    leave under a registration, it was never there; the swarm tags the group `hole`."""
    data = dict(load("hole-before-registration-qemu").data)
    data.pop("expect", None)
    res = sim.run(Scenario(data))
    v = next(v for v in res.violations if v["invariant"] == "reserved-area-intact")
    assert "was not in the partition when firmware accepted a registration" in v["message"]
    assert refine(res, "sig", data).endswith("|boot-area|hole")
    # the message alone tells (a hole left by a DLPAR remove is in no `unassigned` list)
    assert refine(res, "sig", None).endswith("|boot-area|hole")
    race = dict(load("hotplug-protect-reverted").data)
    race.pop("expect", None)
    res = sim.run(Scenario(race))
    assert "left the partition while" in res.violations[0]["message"]
    assert not refine(res, "sig", race).endswith("|hole")
