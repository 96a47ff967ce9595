"""`fadumpsim compare` and the mainline udev rules it compares."""
import json

import pytest

from fadumpsim import compare as cmp
from fadumpsim import sim
from fadumpsim.scenario import load, loads
from tests.test_cli import fad


def test_udev_window_under_2018_kernels_and_none_upstream():
    rows = {r.profile: r for r in cmp.compare("udev-reload-race",
                                               cmp.parse_profiles("classic,rfc-v6,upstream"), 300)}
    for p in ("classic", "rfc-v6"):
        assert rows[p].explore["failures"].get("dump-armed", 0) > 0, rows[p]
    up = rows["upstream"].explore
    assert up["complete"] and up["failures"] == {}
    assert rows["classic"].memtotal_mb == 7557 and rows["rfc-v6"].memtotal_mb == 8133
    assert (rows["classic"].area_removable, rows["rfc-v6"].area_removable,
            rows["upstream"].area_removable) == ("never", "when unregistered", "never")
    assert (rows["rfc-v6"].boot_memory_mb, rows["upstream"].boot_memory_mb) == (576, 320)


def test_one_write_reregistration_still_has_a_narrow_window():
    """2019-2023: the rule's `echo 1` unregisters then registers inside the kernel: a crash
    between the two RTAS calls finds nothing registered (fadump_mutex does not stop a crash)."""
    row = cmp.compare("udev-reload-race", cmp.parse_profiles("upstream:hotplug-ready"), 300)[0]
    assert row.explore["failures"].get("dump-armed", 0) > 0


def test_hot_add_then_crash_loses_kernel_pages_only_in_2018():
    rows = cmp.compare("hotadd-kept-in-dump", cmp.parse_profiles("classic,rfc-v6,upstream"), 0)
    lost = {r.profile: r.kernel_pages_lost for r in rows}
    assert lost["classic"] > 0 and lost["rfc-v6"] > 0 and lost["upstream"] == 0
    assert all(r.dump == "saved" and r.explore == {} for r in rows)


def test_variant_drops_expectations_and_foreign_reverts():
    sc = loads('name = "v"\n[kernel]\nrevert = ["zone-movable"]\n[expect]\nmemtotal_mb = 1\n')
    v = cmp.variant(sc, "upstream", ("cma",))
    assert v.kernel.profile == "upstream" and v.kernel.revert == ("cma",) and "expect" not in v.data


@pytest.mark.parametrize("spec, what", [
    ("bogus", "unknown profile 'bogus'"),
    ("upstream:zone-movable", "cannot revert 'zone-movable'"),
    ("classic:cma", "cannot revert"),
    ("upstream:", "name the steps"),
])
def test_bad_profile_specs(spec, what):
    with pytest.raises(cmp.ProfileError, match=what):
        cmp.parse_profiles(spec)
    r = fad("compare", "udev-reload-race", "--profiles", spec, "--explore", "0")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and what in r.stderr and "Traceback" not in r.stderr


def test_cli_json_markdown_and_report(tmp_path):
    html = tmp_path / "c.html"
    r = fad("compare", "upstream-area-not-removable", "--profiles", "rfc-v6,upstream",
            "--explore", "50", "--json", "--report", html)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [p["profile"] for p in out["profiles"]] == ["rfc-v6", "upstream"]
    for p in out["profiles"]:
        assert {"profile", "memtotal_mb", "boot_memory_mb", "reserved_mb", "dump",
                "kernel_pages_lost", "user_pages_lost", "explore"} <= set(p)
        assert {"schedules", "complete", "failures"} <= set(p["explore"])
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "http" not in page
    assert page.count("<tr>") == 3
    md = fad("compare", "upstream-area-not-removable", "--profiles", "upstream", "--explore", "0",
             "--markdown")
    assert md.returncode == 0 and "| upstream | 320MB |" in md.stdout
    assert fad("compare", "--all", "udev-reload-race").returncode == 2
    assert fad("compare", "nosuch").returncode == 2


def _udev(rule_or_profile: str, revert="[]", lmbs=1):
    text = (f'name = "u"\nprofile = "{rule_or_profile}"\n[kernel]\nrevert = {revert}\n'
            '[hotplug]\nudev_reload = true\n[[script]]\nname = "k"\nactor = "kernel"\n'
            'run = ["echo 1 > /sys/kernel/fadump_registered"]\n[[script]]\nname = "d"\n'
            f'actor = "hotplug"\nafter = ["k"]\nrun = ["drmgr -c mem -a -q {lmbs}"]\n')
    res = sim.run(loads(text), keep_sched=True)
    return res, res.sched.actors["hotplug"], res.sched.actors["kernel"].fw


def test_hotplug_ready_rule_exits_at_once():
    res, hp, fw = _udev("upstream")
    assert hp.udev.name == "hotplug-ready-2024"
    assert [m for _s, m in hp.udev_log if "kdumpctl" in m] == []
    assert any("hotplug_ready is 1" in m for _s, m in hp.udev_log)
    assert fw.registrations == 2 and fw.dump_registered  # boot + the script's echo 1


def test_without_hotplug_ready_the_throttled_reload_reregisters_once_per_burst():
    res, hp, fw = _udev("upstream", '["hotplug-ready"]', lmbs=3)
    msgs = [m for _s, m in hp.udev_log]
    reg = "/sys/kernel/fadump_registered"
    assert msgs.count(f"kdumpctl reload: echo 1 > {reg} -> 0") == 1, msgs  # one write
    assert not any("echo 0" in m for m in msgs)
    assert msgs.count("Throttling kdump restart for concurrent udev event") == 2
    assert fw.registrations == 3 and fw.dump_registered


def test_throttled_reload_falls_back_to_stop_start_on_a_2018_kernel():
    text = ('name = "t"\n[hotplug]\nudev_rule = "reload-throttled-2018"\n[[script]]\nname = "k"\n'
            'actor = "kernel"\nrun = ["echo 1 > /sys/kernel/fadump_registered"]\n[[script]]\n'
            'name = "d"\nactor = "hotplug"\nafter = ["k"]\nrun = ["drmgr -c mem -a -q 1"]\n')
    res = sim.run(loads(text), keep_sched=True)
    msgs = [m for _s, m in res.sched.actors["hotplug"].udev_log if "kdumpctl" in m]
    reg = "/sys/kernel/fadump_registered"
    assert msgs == [f"kdumpctl reload: echo 1 > {reg} -> -17", f"kdumpctl stop: echo 0 > {reg} -> 0",
                    f"kdumpctl start: echo 1 > {reg} -> 0"]


def test_profile_default_rules():
    assert load("udev-reload-race").udev.rule == "try-restart-2018"
    assert load("upstream-udev-window-gone").udev.rule == "hotplug-ready-2024"
    assert load("hotadd-kept-in-dump").udev.rule == "none"


def test_upstream_runs_record_and_replay(tmp_path):
    for name in ("upstream-udev-window-gone", "hotadd-kept-in-dump"):
        log = tmp_path / f"{name}.fadlog"
        r = fad("run", name, "--log", log, "--quiet")
        assert r.returncode == 0, r.stdout + r.stderr
        rp = fad("replay", log, "--quiet")
        assert rp.returncode == 0, rp.stdout + rp.stderr
