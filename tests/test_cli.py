"""The command line as users and acceptance checks drive it (contract: exit codes, JSON)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def fad(*args, cwd=None):
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "fadumpsim.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT, env=env)


def test_default_run_and_replay(tmp_path):
    log = tmp_path / "d.fadlog"
    r = fad("run", "--log", log)
    assert r.returncode == 0, r.stderr
    assert "[kdump-service]$ echo 1 > /sys/kernel/fadump_registered" in r.stdout
    assert "verdict: PASS" in r.stdout
    rp = fad("replay", log, "--quiet")
    assert rp.returncode == 0 and "all" in rp.stdout


def test_default_log_path_never_overwrites(tmp_path):
    assert fad("run", "-q", cwd=tmp_path).returncode == 0
    assert fad("run", "-q", cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in tmp_path.glob("*.fadlog")) == ["rfc-v6-story-1.fadlog", "rfc-v6-story.fadlog"]


def test_json_identical_across_runs(tmp_path):
    a = fad("run", "udev-reload-window", "--seed", 4, "--strategy", "random", "--json", "--log", tmp_path / "a")
    b = fad("run", "udev-reload-window", "--seed", 4, "--strategy", "random", "--json", "--log", tmp_path / "b")
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    ja.pop("log"), jb.pop("log")
    assert ja == jb
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    for k in ("scenario", "seed", "events", "outcome", "expectations", "violations", "dump",
              "memtotal_mb", "transcript", "kernel_log"):
        assert k in ja
    assert set(ja["dump"]) >= {"status", "kernel_pages_lost", "user_pages_lost"}


def test_show_formats_and_state_and_diff(tmp_path):
    a, b = tmp_path / "a.fadlog", tmp_path / "b.fadlog"
    fad("run", "udev-reload-window", "--log", a, "-q")
    fad("run", "udev-reload-window", "--log", b, "-q", "--strategy", "random", "--seed", 1)
    js = fad("show", a, "--format", "jsonl")
    rows = [json.loads(line) for line in js.stdout.splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert {"seq", "src", "dst", "type", "payload"} <= set(rows[0])
    mm = fad("show", a, "--format", "mermaid").stdout
    assert mm.startswith("sequenceDiagram") and "participant kernel" in mm
    st = fad("state", a, "--at", 10, "--actor", "kernel", "--json")
    assert st.returncode == 0 and json.loads(st.stdout)["actors"]["kernel"]["booted"] is True
    assert fad("state", a, "--at", 99999).returncode == 2
    same = fad("diff", a, a)
    assert same.returncode == 0 and "no difference" in same.stdout
    d = fad("diff", a, b)
    assert d.returncode in (0, 1)
    if d.returncode == 1:
        assert "the runs part at event #" in d.stdout


def test_corrupt_log_gives_prefix_and_exit_2(tmp_path):
    a = tmp_path / "a.fadlog"
    fad("run", "--log", a, "-q")
    data = a.read_bytes()
    (tmp_path / "t.fadlog").write_bytes(data[: len(data) * 2 // 3])
    r = fad("show", tmp_path / "t.fadlog")
    assert r.returncode == 2
    assert len(r.stdout.splitlines()) > 5
    assert r.stderr.count("\n") == 1 and "at byte" in r.stderr and "Traceback" not in r.stderr
    rp = fad("replay", tmp_path / "t.fadlog")
    assert rp.returncode == 2 and "Traceback" not in rp.stderr


def test_replay_divergence_exit_3(tmp_path):
    from fadumpsim.events.logfile import rewrite_records
    a, b = tmp_path / "a.fadlog", tmp_path / "b.fadlog"
    fad("run", "--log", a, "-q")

    def alter(rec):
        if rec[4] == "cmd.result" and rec[7]["stdout"]:
            rec[7] = dict(rec[7], stdout="tampered\n")
        return rec
    rewrite_records(a, b, alter)
    r = fad("replay", b)
    assert r.returncode == 3
    assert "replay diverged at event #" in r.stderr and "recorded:" in r.stderr


WRONG = {
    "dump": 'dump = "none"',
    "registered": "registered = false",
    "kernel_pages_lost": "kernel_pages_lost = 5",
    "user_pages_lost": 'user_pages_lost = ">0"',
    "log_contains": 'log_contains = ["no such kernel message"]',
    "log_lacks": 'log_lacks = ["registration is successful"]',
    "exit_codes.k": 'exit_codes = { "k" = [1] }',
    "memtotal_mb": "memtotal_mb = 9000",
    "violations": 'violations = ["accounting"]',
}


@pytest.mark.parametrize("key", sorted(WRONG))
def test_wrong_expectation_exits_1_and_names_key(tmp_path, key):
    f = tmp_path / "w.toml"
    f.write_text(f'name = "w"\n[[script]]\nname = "k"\nactor = "kernel"\n'
                 f'run = ["echo 1 > /sys/kernel/fadump_registered"]\n[expect]\n{WRONG[key]}\n')
    r = fad("run", f, "-q", "--log", tmp_path / "w.fadlog")
    assert r.returncode == 1
    assert f"[FAIL] expect {key}" in r.stdout


BAD = [
    ("", "name"),
    ('name = "x"\nbogus = 1', "unknown key 'bogus'"),
    ('name = "x"\n[machine]\nmemroy = "8G"', "unknown key 'memroy'"),
    ('name = "x"\n[machine]\nmemory = "8Q"', "[machine] memory"),
    ('name = "x"\n[machine]\nmemory = "8G"\nlmb_size = "100M"', "lmb_size"),
    ('name = "x"\nprofile = "future"', "unknown profile"),
    ('name = "x"\n[kernel]\nrevert = ["everything"]', "[kernel] revert"),
    ('name = "x"\n[workload]\nuser = "-1G"', "[workload] user"),
    ('name = "x"\n[[script]]\nname = "a"\nactor = "bmc"\nrun = ["ls"]', "unknown actor 'bmc'"),
    ('name = "x"\n[[script]]\nname = "a"\nactor = "kernel"\nrun = ["rm -rf /"]', "unknown command 'rm'"),
    ('name = "x"\n[[script]]\nname = "a"\nactor = "hotplug"\nrun = ["drmgr -c mem -r -q x"]', "LMB count"),
    ('name = "x"\n[[script]]\nname = "a"\nactor = "kernel"\nrun = ["makedumpfile /proc/vmcore /x"]', "capture kernel"),
    ('name = "x"\n[[script]]\nname = "a"\nactor = "kernel"\nafter = ["b"]\nrun = ["free -m"]\n'
     '[[script]]\nname = "b"\nactor = "kernel"\nafter = ["a"]\nrun = ["free -m"]', "cycle"),
    ('name = "x"\n[[script]]\nname = "a"\nactor = "kernel"\nafter = ["zzz"]\nrun = ["free -m"]', "no script named 'zzz'"),
    ('name = "x"\n[[script]]\nname = "a"\nactor = "kernel"\nrun = ["free -m"]\n[[script]]\nname = "a"\nactor = "kernel"\nrun = ["free -m"]', "duplicate"),
    ('name = "x"\n[expect]\ndump = "maybe"', "[expect] dump"),
    ('name = "x"\n[expect]\nuser_pages_lost = "lots"', "user_pages_lost"),
    ('name = "x"\n[expect]\nexit_codes = { "nobody" = [0] }', "no script named 'nobody'"),
    ('name = "x"\n[hotplug]\nudev_reload = "yes"', "udev_reload"),
    ('name = "x"\n[[script]]\nname = "a"\nactor = "firmware"\nrun = ["inject rtas"]', "inject"),
    ('name = "x" = 1', "invalid TOML"),
]


@pytest.mark.parametrize("text,needle", BAD)
def test_invalid_scenarios_exit_2_with_one_line(tmp_path, text, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    r = fad("run", f)
    assert r.returncode == 2, r.stdout
    assert r.stderr.count("\n") == 1, r.stderr
    assert str(f) in r.stderr and needle in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args", [["run", "--strategy", "bogus"], ["run", "--seed", "x"],
                                  ["frobnicate"], ["run", "no-such-scenario"],
                                  ["replay", "/nonexistent.fadlog"], ["show", "x", "--format", "png"]])
def test_cli_misuse_exit_2(args):
    r = fad(*args)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_not_a_log(tmp_path):
    f = tmp_path / "x.fadlog"
    f.write_text("hello")
    r = fad("replay", f)
    assert r.returncode == 2 and "not a fadumpsim event log" in r.stderr


def test_two_runs_with_the_same_log_second_is_refused(tmp_path):
    """While one run writes --log X (holding X.lock), a second `run --log X` exits 2
    with one line and leaves the first run's log alone."""
    from fadumpsim.events.logfile import LogWriter, read_log
    log = tmp_path / "same.fadlog"
    w = LogWriter(log, {"scenario": {"name": "first"}})
    w.append([1, 1000, "sim", "firmware", "sim.power_on", 0, 1, {}])
    r = fad("run", "--log", log, "-q")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"fadumpsim: {log}: log is being written by another run (lock {log}.lock is held)"]
    w.close()
    assert read_log(log)[0]["scenario"] == {"name": "first"} and len(read_log(log)[1]) == 1
    assert fad("run", "--log", log, "-q").returncode == 0  # free again


def test_counterfactual_is_labelled_in_verdict_and_help(tmp_path):
    from click.testing import CliRunner
    from fadumpsim.cli import cli
    r = CliRunner().invoke(cli, ["run", "hotplug-lock-registration", "--quiet",
                                 "--log", str(tmp_path / "a.fadlog")])
    assert "what-if: registration takes the device-hotplug lock" in r.output
    r = CliRunner().invoke(cli, ["run", "rfc-v6-story", "--quiet", "--log", str(tmp_path / "b.fadlog")])
    assert "what-if" not in r.output
    h = CliRunner().invoke(cli, ["run", "--help"])
    assert "what-if" in h.output and "hotplug_lock" in h.output


def test_progress_bar_shared_by_explore_and_swarm_tracks_counts():
    from fadumpsim.cli_common import ProgressBar
    bar = ProgressBar(10, "explore x", unit="sched", found="failure(s)")
    bar(4, 10, 2)
    task = bar.progress.tasks[0]
    assert (task.completed, task.total, task.fields["failures"]) == (4, 10, 2)
    assert task.fields["rate"] >= 0
    open_ended = ProgressBar(None, "swarm", unit="seeds", found="finding(s)", rate_format=">6.1f")
    open_ended(5, None, 1)  # swarm --time: no total
    t = open_ended.progress.tasks[0]
    assert t.total is None and t.completed == 5 and t.fields["failures"] == 1


def test_progress_bar_runs_no_thread_so_explore_helpers_can_fork():
    import threading
    from fadumpsim.cli_common import ProgressBar
    before = threading.active_count()
    with ProgressBar(3, "explore x", unit="sched", found="failure(s)") as bar:
        for i in range(1, 4):
            bar(i, 3, 0)
        assert threading.active_count() == before
    assert bar.progress.tasks[0].completed == 3
