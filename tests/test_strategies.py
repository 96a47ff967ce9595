"""The scenario generator: valid, deterministic, covering its space; hypothesis strategies."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings

from fadumpsim import sim
from fadumpsim.actors.sizes import parse_size
from fadumpsim.scenario import Scenario
from fadumpsim.strategies import (Knobs, RandomDraw, gen_scenario, interesting_lmbs, kernels,
                                  machines, scenario_for_seed, scenarios, scripts, workloads)

SEEDS = range(300)


def test_every_generated_scenario_is_valid() -> None:
    for seed in SEEDS:
        data = scenario_for_seed(seed)
        Scenario(data, source=f"<seed {seed}>")   # raises ScenarioError when invalid


def test_same_seed_same_scenario_in_another_process() -> None:
    here = [scenario_for_seed(s) for s in (0, 7, 123)]
    code = ("import json; from fadumpsim.strategies import scenario_for_seed; "
            "print(json.dumps([scenario_for_seed(s) for s in (0, 7, 123)]))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert json.loads(out) == here
    assert scenario_for_seed(1) != scenario_for_seed(2)


def _commands(data: dict) -> list[str]:
    return [c for s in data["script"] for c in s["run"]]


def test_the_generator_covers_its_space() -> None:
    """Over 300 seeds every feature the swarm promises shows up (a dropped branch fails)."""
    seen: Counter[str] = Counter()
    mems = set()
    for seed in SEEDS:
        d = scenario_for_seed(seed)
        mems.add(parse_size(d["machine"]["memory"]))
        seen["udev"] += "hotplug" in d
        seen["qemu"] += d.get("firmware", {}).get("flavour") == "qemu"
        seen["cpus"] += "cpus" in d["machine"]
        seen["initrd_stale"] += d.get("hotplug", {}).get("initrd_stale", False)
        seen["kdumpctl_start_ms"] += "kdumpctl_start_ms" in d.get("hotplug", {})
        seen["nonmovable"] += "fadump=nonmovable" in d["kernel"]["cmdline"]
        seen["crashkernel"] += "crashkernel=" in d["kernel"]["cmdline"]
        seen["holes"] += bool(d["machine"].get("unassigned"))
        seen["nodes"] += d["machine"].get("nodes", 1) > 1
        seen["workload"] += bool(d.get("workload"))
        names = {s["name"] for s in d["script"]}
        seen["crash"] += "crash" in names
        seen["restart"] += "kdump-restart" in names
        for c in _commands(d):
            for key, needle in (("remove-index", "-r -s"), ("remove-count", "-r -q"),
                                ("add", "-a -q"), ("busy", "inject rtas 99"),
                                ("busy-2", "inject rtas -2 "), ("error", "inject rtas -1 "),
                                ("copy-error", "inject copy-error"), ("d31", "-d 31"),
                                ("copy-hardware", "copy-error hardware"),
                                ("copy-section", "copy-error destination rmr"),
                                ("copy-chunk", " at chunk "), ("dmesg", "dmesg"),
                                ("region", "cat /sys/kernel/debug/powerpc/fadump_region"),
                                ("cp", "cp /proc/vmcore"), ("release", "fadump_release_mem"),
                                ("unregister", "echo 0 > /sys/kernel/fadump_registered")):
                seen[key] += needle in c
    assert min(mems) == 2 << 30 and max(mems) == 64 << 40
    for key in ("udev", "nonmovable", "crashkernel", "holes", "nodes", "workload", "crash",
                "restart", "remove-index", "remove-count", "add", "busy", "busy-2", "error",
                "copy-error", "d31", "cp", "release", "unregister", "qemu", "cpus",
                "initrd_stale", "kdumpctl_start_ms", "copy-hardware", "copy-section",
                "copy-chunk", "dmesg", "region"):
        assert seen[key] > 0, key
    assert 0 < seen["udev"] < len(SEEDS)             # drawn, both ways
    assert seen["crash"] < len(SEEDS)                 # some runs never crash


def _inject_words(data: dict) -> list[list[str]]:
    return [c.split() for s in data["script"] if s["actor"] == "firmware" for c in s["run"]
            if c.startswith("inject copy-error")]


def test_copy_errors_cover_the_injection_grammar() -> None:
    """Every side, every section (and none), chunk 0 and later chunks, as parsed by the
    model's own command parser (actors/commands.py)."""
    from fadumpsim.actors.commands import COPY_SECTIONS, COPY_SIDES, parse_command
    sides, sections, chunks = Counter(), Counter(), Counter()
    for seed in range(1000):
        data = scenario_for_seed(seed)
        for s in data["script"]:
            if s["actor"] != "firmware":
                continue
            for c in s["run"]:
                cmd = parse_command("firmware", c)
                if cmd["what"] == "copy-error":
                    sides[cmd["side"]] += 1
                    sections[cmd["section"]] += 1
                    chunks[min(cmd["chunk"], 2)] += 1
    assert set(sides) == set(COPY_SIDES)
    assert set(sections) == {"", *COPY_SECTIONS}
    assert set(chunks) == {0, 1, 2}


def test_udev_rules_come_from_the_registry() -> None:
    """Each profile draws the rules of its era (the default first); `udev_rule=any`
    draws every rule actors/udev.py registers; a forced rule is that rule."""
    from fadumpsim.actors.udev import DEFAULT_RULE, RULES
    from fadumpsim.strategies import ERA_RULES
    for profile in ("rfc-v6", "classic", "upstream"):
        drawn = Counter(scenario_for_seed(s, Knobs(profile=profile)).get("hotplug", {})
                        .get("udev_rule") for s in range(300))
        assert set(drawn) - {None} == set(ERA_RULES[profile]), (profile, drawn)
        assert drawn[DEFAULT_RULE[profile]] == max(v for k, v in drawn.items() if k)
    anyrule = Knobs.parse("rfc-v6", ["udev_rule=any"])
    drawn = {scenario_for_seed(s, anyrule).get("hotplug", {}).get("udev_rule")
             for s in range(300)}
    assert drawn - {None} == set(RULES) - {"none"}
    forced = Knobs.parse("upstream", ["udev_rule=try-restart-2018", "udev_reload=true"])
    assert {scenario_for_seed(s, forced)["hotplug"]["udev_rule"] for s in range(30)} == \
        {"try-restart-2018"}
    off = Knobs.parse("rfc-v6", ["udev_rule=none"])
    assert all("hotplug" not in scenario_for_seed(s, off) for s in range(30))


def test_flavour_knob() -> None:
    qemu = Knobs.parse("rfc-v6", ["flavour=qemu"])
    assert all(scenario_for_seed(s, qemu)["firmware"] == {"flavour": "qemu"} for s in range(20))
    pvm = Knobs.parse("rfc-v6", ["flavour=powervm"])
    assert all("firmware" not in scenario_for_seed(s, pvm) for s in range(20))
    with pytest.raises(ValueError, match="flavour"):
        Knobs.parse("rfc-v6", ["flavour=kvm"])
    with pytest.raises(ValueError, match="udev_rule"):
        Knobs.parse("rfc-v6", ["udev_rule=try-restart-2019"])


def test_upstream_reverts_its_mainline_steps() -> None:
    k = Knobs.parse("upstream", ["revert=hotplug-ready"])
    assert all(scenario_for_seed(s, k)["kernel"]["revert"] == ["hotplug-ready"] for s in range(10))
    drawn = Knobs.parse("upstream", ["revert=any"])
    seen = {r for s in range(200) for r in scenario_for_seed(s, drawn)["kernel"].get("revert", [])}
    assert seen == {"cma", "reregister", "boot-register", "hotplug-ready"}
    with pytest.raises(ValueError, match="zone-movable"):
        Knobs.parse("upstream", ["revert=zone-movable"])


def test_dlpar_by_index_aims_at_fadump_boundaries() -> None:
    # 8GB, 256MB LMBs: boot memory 576MB, the area right above it: LMBs 2..5 matter
    lm = interesting_lmbs(8 << 30, 256 << 20, 512 << 20, "fadump=on")
    assert {2, 3, 4} <= set(lm) and 31 in lm and 1 not in lm


def test_forcing_a_knob_changes_only_that_knob() -> None:
    for seed in range(40):
        free = scenario_for_seed(seed)
        locked = scenario_for_seed(seed, Knobs(hotplug_lock=True, udev_reload=False))
        assert locked["kernel"].get("hotplug_lock") is True
        assert "hotplug" not in locked
        free["kernel"].pop("hotplug_lock", None)
        locked["kernel"].pop("hotplug_lock", None)
        free.pop("hotplug", None)
        # the udev rule changes the oracle's conditions, nothing else
        free.pop("expect", None)
        locked.pop("expect", None)
        assert free == locked


def test_default_knobs_are_the_profile_as_shipped() -> None:
    for seed in range(100):
        k = scenario_for_seed(seed)["kernel"]
        assert "revert" not in k and "hotplug_lock" not in k
    reverted = [scenario_for_seed(s, Knobs(revert=("hotplug-protect",)))["kernel"]
                for s in range(5)]
    assert all(k["revert"] == ["hotplug-protect"] for k in reverted)
    classic = scenario_for_seed(3, Knobs(profile="classic"))
    assert classic["profile"] == "classic" and "revert" not in classic["kernel"]
    assert "nonmovable" not in classic["kernel"]["cmdline"]


@pytest.mark.parametrize("settings_, problem", [
    (["hotplug_lock"], "expected KEY=VALUE"),
    (["hotplug_lock=maybe"], "true, false or any"),
    (["revert=zone-movabl"], "unknown patch"),
    (["colour=red"], "unknown knob"),
    (["max_memory=lots"], "max_memory"),
])
def test_knob_errors_name_the_problem(settings_: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Knobs.parse("rfc-v6", settings_)


def test_knob_parsing() -> None:
    k = Knobs.parse("rfc-v6", ["hotplug_lock=any", "udev-reload=false", "revert=hotplug-protect",
                               "max_memory=64G"])
    assert (k.hotplug_lock, k.udev_reload, k.revert, k.max_memory) == (None, False,
                                                                        ("hotplug-protect",),
                                                                        64 << 30)
    with pytest.raises(ValueError, match="classic"):
        Knobs.parse("classic", ["revert=hotplug-protect"])
    assert Knobs.parse("rfc-v6", ["udev_rule=any", "flavour=any"]).flavour is None
    assert all(parse_size(scenario_for_seed(s, k)["machine"]["memory"]) <= 64 << 30
               for s in range(50))


def test_random_draw_is_the_same_generator_as_the_strategy() -> None:
    """The swarm's generator is gen_scenario; the strategy wraps the same function."""
    import random
    a = gen_scenario(RandomDraw(random.Random("x")), Knobs(), name="n")
    b = gen_scenario(RandomDraw(random.Random("x")), Knobs(), name="n")
    assert a == b
    Scenario(a)


# -- hypothesis: the public strategies ------------------------------------------------------------
@settings(max_examples=40, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(profile="rfc-v6", max_memory=64 << 30))
def test_strategy_scenarios_validate_and_run_deterministically(data: dict) -> None:
    sc = Scenario(data)
    a = sim.run(sc, seed=1, strategy="random")
    b = sim.run(Scenario(data), seed=1, strategy="random")
    assert (a.events, a.trace, a.violations) == (b.events, b.trace, b.violations)


@settings(max_examples=30, derandomize=True, deadline=None)
@given(machines(), kernels(Knobs(profile="classic")), workloads("16G"), scripts("16G"))
def test_part_strategies_build_valid_sections(m: dict, k: dict, w: dict, s: list) -> None:
    assert "revert" not in k and "nonmovable" not in k["cmdline"]
    Scenario({"name": "parts", "profile": "classic", "machine": m, "kernel": k})
    Scenario({"name": "parts", "machine": {"memory": "16G"}, "workload": w, "script": s})


@settings(max_examples=20, derandomize=True, deadline=None)
@given(scenarios(profile="rfc-v6", hotplug_lock=True, udev_reload=False, max_memory=16 << 30))
def test_strategy_overrides_are_knobs(data: dict) -> None:
    assert data["kernel"]["hotplug_lock"] is True and "hotplug" not in data
    assert parse_size(data["machine"]["memory"]) <= 16 << 30


def test_crashkernel_is_drawn_only_where_the_capture_kernel_fits() -> None:
    """A capture kernel needs the memmap of max_memory (64 bytes a page) in boot memory;
    the generator draws crashkernel= only where it fits, and still draws it."""
    from fadumpsim.strategies import capture_fits
    drawn = 0
    for seed in range(300):
        d = scenario_for_seed(seed)
        m = d["machine"]
        for w in d["kernel"]["cmdline"].split():
            if w.startswith("crashkernel="):
                drawn += 1
                ps = parse_size(m.get("page_size", "64K"))
                assert parse_size(w[12:]) >= parse_size(m["max_memory"]) // ps * 64, (seed, m, w)
    assert drawn > 20
    assert not capture_fits(1 << 30, {"memory": "1T", "max_memory": "1T"})
    assert capture_fits(2 << 30, {"memory": "1T", "max_memory": "1T"})
    assert not capture_fits(1 << 30, {"memory": "64G", "max_memory": "64G", "page_size": "4K"})


def test_every_partition_leaves_fadump_room() -> None:
    """The RMA is at most a quarter of memory (else fadump cannot reserve its area and
    registration fails with ENODEV, which the oracle would report)."""
    for seed in range(300):
        m = scenario_for_seed(seed)["machine"]
        assert 4 * parse_size(m["rma_size"]) <= parse_size(m["memory"]), (seed, m)


@pytest.mark.parametrize("profile", ["rfc-v6", "classic", "upstream"])
def test_generated_worlds_run_without_model_failures(profile: str) -> None:
    """40 seeds per profile run to the end: no actor fails (an exception in the model is a
    simulator bug or a world the generator must not draw, never a finding)."""
    from fadumpsim.swarm import run_seed
    for seed in range(40):
        out = run_seed(seed, Knobs(profile=profile))
        assert out.failure is None or out.failure[0] != "actor-failure", (seed, out.failure)
