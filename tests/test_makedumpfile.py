"""makedumpfile's report, the verdict and `fadumpsim inspect` agree on the same dump.

Old model: never-used memory counted as zero pages, "Write bytes" was kept pages x page
size, and the summary's 10,535 remaining pages disagreed with the verdict's 10,279
kernel pages (reserved pages are makedumpfile's kernel data too).
"""
from __future__ import annotations

import re

import pytest

from fadumpsim import api, scenario
from fadumpsim.actors.kernel.dumpwriter import truth_image
from fadumpsim.dumpfile import inspect_dump

STORY = """
name = "md"
[workload]
kernel = "600M"
user = "2G"
cache = "1G"
[[script]]
name = "k"
actor = "kernel"
run = ["echo 1 > /sys/kernel/fadump_registered", "echo c > /proc/sysrq-trigger"]
[[script]]
name = "save"
actor = "capture"
run = ["%s"]
"""


def report(stdout: str) -> dict[str, int]:
    """The summary's counters, by their makedumpfile labels."""
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"\s*([A-Za-z][A-Za-z -]*?)\s*: (0x[0-9a-f]+|\d+)$", line)
        if m:
            out[m.group(1)] = int(m.group(2), 0)
    return out


def saved(tmp_path, cmd: str):
    res = api.record(scenario.loads(STORY % cmd, "<md>"), str(tmp_path / "r.fadlog"),
                     dump_dir=str(tmp_path / "d"), keep_sched=True)
    save = [t for t in res.transcript if t["script"] == "save"][0]
    assert save["exit"] == 0, save
    path = tmp_path / "d" / "var" / "crash" / "vmcore"
    return res, report(save["stdout"]), save["stdout"], path


def test_default_story_summary_verdict_and_inspect_agree(tmp_path):
    res = api.record(scenario.load("rfc-v6-story"), str(tmp_path / "r.fadlog"),
                     dump_dir=str(tmp_path / "d"), keep_sched=True)
    out = [t for t in res.transcript if "makedumpfile" in t["command"]][0]["stdout"]
    r = report(out)
    path = tmp_path / "d" / "var" / "crash" / "vmcore"
    insp = inspect_dump(str(path), truth_image(res.sched.actors["kernel"]))
    kept = r["Remaining pages"]
    assert kept == res.dump["kernel_pages_expected"] == res.dump["kernel_pages_captured"]
    assert kept == insp.page_classes["kernel"] == insp.pages_present
    assert r["Write bytes"] == path.stat().st_size
    assert insp.truth is not None and insp.truth.lost == 0 and not insp.truth.unexpected
    # never-used memory is free (buddy pages), not zero
    assert r["Pages filled with zero"] == 0 and r["Free pages"] > 0
    assert "Offline pages" not in out      # makedumpfile 1.6.5 (2018-11-22) added that line
    assert r["Original pages"] - r["Excluded pages"] == kept


@pytest.mark.parametrize("opts", ["-d 31", "-d 16", "-c -d 1", "-E -d 31"])
def test_each_level_and_format_agrees_with_the_file(tmp_path, opts):
    res, r, out, path = saved(tmp_path, f"makedumpfile {opts} /proc/vmcore /var/crash/vmcore")
    level = int(opts.split("-d ")[1])
    # an ELF file does not record its dump level: tell inspect
    insp = inspect_dump(str(path), truth_image(res.sched.actors["kernel"]), dump_level=level)
    assert r["Write bytes"] == path.stat().st_size
    t = insp.truth
    assert t is not None and not t.unexpected, t
    # the verdict's losses are inspect's (user pages in the ZONE_MOVABLE destination are
    # overwritten by the boot-memory copy whenever the level wants user pages)
    assert t.lost_of("user") == res.dump["user_pages_lost"]
    assert t.lost_of("kernel") == res.dump["kernel_pages_lost"] == 0
    never_used = r["Free pages"] if level & 16 else r["Pages filled with zero"]
    if level & 16:
        assert r["Free pages"] > 0 and r["Pages filled with zero"] == 0
    elif level & 1:
        # without -d 16, never-used pages are judged by content: all zero
        assert r["Pages filled with zero"] > 0 and r["Free pages"] == 0
    else:
        assert r["Free pages"] == r["Pages filled with zero"] == 0
    assert never_used >= 0
    assert res.dump["kernel_pages_lost"] == 0
    # the verdict's kernel pages are what the summary keeps as kernel data
    kern = insp.page_classes["kernel"]
    assert kern == res.dump["kernel_pages_captured"]


def test_summary_does_not_depend_on_dump_dir(tmp_path):
    a = api.record(scenario.loads(STORY % "makedumpfile -c -d 31 /proc/vmcore /x", "<md>"),
                   str(tmp_path / "a.fadlog"), dump_dir=str(tmp_path / "d"))
    b = api.record(scenario.loads(STORY % "makedumpfile -c -d 31 /proc/vmcore /x", "<md>"),
                   str(tmp_path / "b.fadlog"))
    assert a.transcript == b.transcript
    assert (tmp_path / "a.fadlog").read_bytes()[64:] != b""  # both logs exist
