"""Structured delivery logging: off costs nothing, json is one parseable object per line."""
from __future__ import annotations

import io
import json

import pytest

from fadumpsim import sim
from fadumpsim.scenario import Scenario
from fadumpsim.replay import tracing
from fadumpsim.replay.runtime import Scheduler

SC = Scenario.build("trace", script=[
    {"name": "arm", "actor": "kernel", "run": ["echo 1 > /sys/kernel/fadump_registered",
                                               "echo c > /proc/sysrq-trigger"]},
    {"name": "save", "actor": "capture",
     "run": ["makedumpfile -d 31 /proc/vmcore /var/crash/vmcore"]}])


@pytest.fixture(autouse=True)
def back_to_off():
    yield
    tracing.configure("off")


def test_off_by_default_adds_no_observer():
    assert tracing.mode() == "off"
    assert tracing.delivery_logger("r0") is None
    assert tracing.observers("r0") == []
    res = sim.run(SC, observers=tracing.observers("r0"), keep_sched=True)
    assert len(res.sched.observers) == 1  # only the invariant checker


def test_off_mode_writes_nothing():
    buf = io.StringIO()
    tracing.configure("off", stream=buf)
    assert tracing.delivery_logger("r") is None
    tracing.get_logger().info("hello", x=1)
    tracing.get_logger().critical("really", x=1)
    assert buf.getvalue() == ""


def test_json_mode_one_object_per_delivery():
    buf = io.StringIO()
    tracing.configure("json", stream=buf)
    obs = tracing.observers("run-42")
    assert len(obs) == 1
    res = sim.run(SC, observers=obs, keep_sched=True)
    assert len(res.sched.observers) == 2
    lines = buf.getvalue().splitlines()
    assert len(lines) == res.events > 5
    recs = [json.loads(line) for line in lines]
    for i, r in enumerate(recs, 1):
        assert r["run_id"] == "run-42" and r["seq"] == i and r["event"] == "deliver"
        assert r["level"] == "info"
        assert {"actor", "src", "type", "time_ns"} <= r.keys()
        assert "timestamp" not in r  # never the wall clock
    assert recs[0]["actor"] == "firmware" and recs[0]["src"] == "sim"
    assert recs[0]["type"] == "sim.power_on"
    assert [r["time_ns"] for r in recs] == sorted(r["time_ns"] for r in recs)
    # deterministic: the same run gives the same lines
    buf2 = io.StringIO()
    tracing.configure("json", stream=buf2)
    sim.run(SC, observers=tracing.observers("run-42"))
    assert buf2.getvalue() == buf.getvalue()


def test_console_mode_is_readable():
    buf = io.StringIO()
    tracing.configure("console", stream=buf)
    ob = tracing.delivery_logger("c1")
    sched = Scheduler()

    class Ev:
        seq, dst, src, type, time = 7, "kernel", "arm", "cmd.run", 7000
    ob(sched, Ev())
    out = buf.getvalue()
    assert out.count("\n") == 1 and "\x1b[" not in out  # no colours on a non-terminal
    for part in ("deliver", "run_id=c1", "seq=7", "actor=kernel", "src=arm", "type=cmd.run",
                 "time_ns=7000"):
        assert part in out


def test_unknown_mode_and_env(monkeypatch):
    with pytest.raises(ValueError, match="unknown log mode"):
        tracing.configure("loud")
    monkeypatch.setenv(tracing.ENV_VAR, "JSON")
    buf = io.StringIO()
    assert tracing.configure_from_env(stream=buf) == "json"
    tracing.get_logger("x", who="me").warning("hi")
    assert json.loads(buf.getvalue()) == {"who": "me", "event": "hi", "level": "warning"}


def test_off_does_not_even_load_structlog():
    import subprocess
    import sys
    code = ("import sys; from fadumpsim.replay import tracing; tracing.configure('off'); "
            "assert tracing.observers('x') == []; print('structlog' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
