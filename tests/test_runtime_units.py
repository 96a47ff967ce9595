"""Runtime units pinned on toy actors: kernel locks and operations (actors/ops.py),
event numbering (replay/actor.py), the replayer's helpers and the strategies' parameters.

Each test fails on a plausible one-line change to the rule it names (checked with
`tools/mutation.py --area runtime`); all run in milliseconds.
"""
from __future__ import annotations

import pytest

from fadumpsim.actors.ops import Acquire, Call, Expect, OpActor, Step
from fadumpsim.events import types
from fadumpsim.events.logfile import LogFormatError
from fadumpsim.replay import replayer
from fadumpsim.replay.actor import SimActor
from fadumpsim.replay.runtime import Scheduler
from fadumpsim.replay.strategies import FifoStrategy, PctStrategy

for _name, _fields in (("opt.go", "n"), ("opt.step", "op"), ("opt.req", "op"),
                       ("opt.reply", "op"), ("opt.n", "n"), ("opt.pause", "op")):
    if not types.known(_name):
        types._t(_name, _fields, "runtime unit-test event")


class Worker(OpActor):
    """Runs one locked operation per opt.go: take lock L, step once, finish."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.trail: list[str] = []

    def on_opt_go(self, ev) -> None:
        self.start_op("work", self.work(ev.payload["n"]))

    def work(self, n: int):
        yield Acquire("L")
        self.trail.append(f"{n}:locked")
        yield Step("opt.step")
        self.trail.append(f"{n}:done")


def _sched(*actors: tuple[type, str]) -> Scheduler:
    s = Scheduler(FifoStrategy())
    s.delivered = []  # every delivered event, in order (what the log sink sees)
    s.observers.append(lambda sched, ev: sched.delivered.append(ev))
    for cls, name in actors:
        s.spawn(cls, name)
    s.wire()
    return s


def test_a_held_lock_queues_the_second_op_and_release_wakes_it():
    s = _sched((Worker, "k"))
    s.inject("k", "opt.go", {"n": 1})
    s.inject("k", "opt.go", {"n": 2})
    s.step()
    s.step()  # both ops started: op1 holds L and waits for its step, op2 waits for L
    k = s.actors["k"]
    snap = k.ops_snapshot()
    assert snap["locks"] == {"L": {"owner": "op1", "waiters": ["op2"]}}
    assert [(o["id"], o["waiting"], o["holds"]) for o in snap["ops"]] == [
        ("op1", "opt.step", ["L"]), ("op2", "lock:L", [])]
    s.run()
    assert k.trail == ["1:locked", "1:done", "2:locked", "2:done"]
    # the wake-up is a delivery of its own (an ordering decision), to the waiter
    wakes = [ev for ev in _deliveries(s) if ev[0] == "lock.wake"]
    assert wakes == [("lock.wake", {"op": "op2", "lock": "L"})]
    assert k.ops == {} and k.ops_snapshot()["locks"] == {}


def _deliveries(s: Scheduler) -> list[tuple[str, dict]]:
    return [(ev.type, ev.payload) for ev in s.delivered]


class Caller(OpActor):
    """An op that calls a server and waits for its reply, then expects a later event."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.got: list[str] = []

    def on_opt_go(self, ev) -> None:
        self.start_op("call", self.call())

    def call(self):
        reply = yield Call("srv", "opt.req", {}, reply="opt.reply")
        self.got.append(f"reply:{reply['op']}")
        self.send("srv", "opt.pause", {"op": self.ops_snapshot()["ops"][0]["id"]})
        yield Expect("opt.pause")
        self.got.append("resumed")


class Server(SimActor):
    def on_opt_req(self, ev) -> None:
        self.send(ev.src, "opt.reply", {"op": ev.payload["op"]})

    def on_opt_pause(self, ev) -> None:
        self.send(ev.src, "opt.pause", {"op": ev.payload["op"]})


def test_call_resumes_on_its_reply_and_expect_on_the_expected_event():
    s = _sched((Caller, "k"), (Server, "srv"))
    s.inject("k", "opt.go", {"n": 0})
    s.step()
    c = s.actors["k"]
    assert c.ops_snapshot()["ops"] == [{"id": "op1", "kind": "call", "waiting": "opt.reply",
                                        "holds": []}]
    s.step()  # srv answers
    s.step()  # the reply resumes the op, which sends opt.pause and expects it back
    assert c.got == ["reply:op1"]
    assert c.ops_snapshot()["ops"][0]["waiting"] == "opt.pause"
    s.run()
    assert c.got == ["reply:op1", "resumed"] and c.ops == {}


def test_an_event_for_no_waiting_op_goes_to_the_handler():
    s = _sched((Caller, "k"), (Server, "srv"))
    c = s.actors["k"]
    ev_types: list[str] = []
    c.on_opt_reply = lambda ev: ev_types.append(ev.type)  # no op waits: plain handler
    s.inject("k", "opt.reply", {"op": "op9"})
    s.run()
    assert ev_types == ["opt.reply"]


def test_release_in_the_middle_of_an_op_frees_the_lock_and_the_op_holds_nothing():
    s = _sched((Worker, "k"))
    s.inject("k", "opt.go", {"n": 1})
    s.step()
    k = s.actors["k"]
    op = k.ops["op1"]
    k.release(op, "L")
    assert op.holds == [] and k.locks["L"].owner is None
    assert k.ops_snapshot() == {"ops": [{"id": "op1", "kind": "work", "waiting": "opt.step",
                                         "holds": []}], "locks": {}}
    k.release(op, "L")  # not the owner any more: nothing happens
    assert k.locks["L"].owner is None


class Sink(SimActor):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.got: list = []

    def on_opt_n(self, ev) -> None:
        self.got.append(ev)

    def on_opt_go(self, ev) -> None:
        self.send("b", "opt.n", {"n": 1})
        self.timer(5000, "opt.n", {"n": 2})


def test_ordinary_messages_are_due_at_once_and_timers_at_send_time_plus_delay():
    s = _sched((Sink, "a"), (Sink, "b"))
    s.inject("a", "opt.go", {"n": 0})
    s.run()
    (msg,), (tmr,) = s.actors["b"].got, s.actors["a"].got
    go_time = s.actors["a"].tick_ns
    assert msg.due == 0
    assert tmr.due == go_time + 5000 and tmr.time == go_time + 5000


def test_an_event_injected_mid_run_comes_after_a_message_sent_before_it():
    s = _sched((Sink, "a"), (Sink, "b"), (Sink, "c"))
    s.inject("a", "opt.go", {"n": 0})
    s.step()  # a sends b its message (and itself a timer)
    s.inject("c", "opt.n", {"n": 7})
    s.run()
    assert [(k[0], k[1]) for k in s.trace] == [("sim", "a"), ("a", "b"), ("sim", "c"), ("a", "a")]


def test_injected_events_are_numbered_per_destination_from_1():
    s = _sched((Sink, "a"), (Sink, "b"))
    for n in range(3):
        s.inject("b", "opt.n", {"n": n})
    s.inject("a", "opt.n", {"n": 9})
    s.run()
    assert [ev.chan_seq for ev in s.actors["b"].got] == [1, 2, 3]
    assert [ev.chan_seq for ev in s.actors["a"].got] == [1]


def test_now_is_the_time_of_the_delivery_being_handled():
    seen: list[int] = []

    class Clock(Sink):
        def on_opt_n(self, ev) -> None:
            seen.append(self.now)

    s = _sched((Clock, "a"))
    s.inject("a", "opt.n", {"n": 0})
    s.inject("a", "opt.n", {"n": 1})
    s.run()
    assert seen == [1000, 2000]


def test_unused_path_never_picks_an_existing_log_or_one_being_written(tmp_path):
    p = tmp_path / "run.fadlog"
    assert replayer.unused_path(p) == str(p)
    p.write_bytes(b"x")
    (tmp_path / "run-1.fadlog.partial").write_bytes(b"x")
    assert replayer.unused_path(p) == str(tmp_path / "run-2.fadlog")
    assert replayer.unused_path(tmp_path / "notes.txt") == str(tmp_path / "notes.txt")
    (tmp_path / "notes.txt").write_text("x")
    assert replayer.unused_path(tmp_path / "notes.txt", first=5) == str(tmp_path / "notes-5.txt")


def test_a_log_without_todays_event_schema_is_refused_with_no_position():
    with pytest.raises(LogFormatError) as e:
        replayer.check_schema("x.fadlog", {"scenario": {}})
    assert e.value.offset == -1 and "log event schema None is not" in str(e.value)
    with pytest.raises(LogFormatError):
        replayer.check_schema("x.fadlog", {"event_schema": "0" * 16})
    replayer.check_schema("x.fadlog", {"event_schema": replayer.SCHEMA_DIGEST})


def test_pct_depth_1_is_allowed_and_has_no_change_points():
    p = PctStrategy(seed=3, depth=1, steps=10)
    assert p.change == {}
    with pytest.raises(ValueError):
        PctStrategy(seed=3, depth=0)


@pytest.mark.parametrize("n,k,d,want", [(1, 1, 1, 1.0), (1, 1, 2, 1.0), (2, 10, 1, 0.5),
                                        (2, 10, 3, 1 / 200), (3, 10, 2, 1 / 30),
                                        (0, 0, 2, 1.0)])
def test_pct_guarantee_is_one_over_n_times_k_to_the_d_minus_1(n, k, d, want):
    # Burckhardt et al.: a depth-d bug is hit with probability >= 1 / (n k^(d-1))
    assert PctStrategy.guarantee(n, k, d) == pytest.approx(want)


def test_a_loaded_log_names_the_systems_own_scenario():
    class WithScenario:
        scenario = "the scenario"

    class Bare:
        pass

    assert replayer.LoadedLog({}, [], None, None, WithScenario()).scenario == "the scenario"
    bare = Bare()
    assert replayer.LoadedLog({}, [], None, None, bare).scenario is bare


def _pct_picks(seed: int, depth: int, steps: int, chans: list) -> list:
    p = PctStrategy(seed=seed, depth=depth, steps=steps)
    heads: list = [None] * len(chans)
    return [chans[p.choose(chans, heads, step)] for step in range(1, steps + 1)]


@pytest.mark.parametrize("seed", range(12))
def test_pct_keeps_the_top_channel_until_a_change_point_then_demotes_it_for_good(seed):
    # PCT (Burckhardt et al. 2010): the highest-priority enabled channel runs; at each of
    # the d-1 change points the running one drops below every channel never demoted, so
    # the pick switches there and a demoted channel never comes back while others wait.
    chans = [("sim", "a"), ("sim", "b"), ("sim", "c"), ("sim", "d")]
    picks = _pct_picks(seed, depth=3, steps=10, chans=chans)
    changes = sorted(PctStrategy(seed=seed, depth=3, steps=10).change)
    assert len(changes) == 2
    switches = [i + 1 for i in range(1, len(picks)) if picks[i] != picks[i - 1]]
    # the pick at a change point is made after the demotion: it differs from the last one
    assert switches == [p for p in changes if p > 1]
    runs = [picks[0]] + [picks[i] for i in range(1, len(picks)) if picks[i] != picks[i - 1]]
    assert len(set(runs)) == len(runs)  # once demoted, never picked again here
    assert picks == _pct_picks(seed, depth=3, steps=10, chans=chans)  # seeded


def test_pct_demoted_channels_rank_by_the_order_they_were_demoted():
    # With only demoted channels left, the one demoted at the later change point wins
    # (its priority is the higher low value, i+1): d-1 = 2 demotions of 2 channels.
    for seed in range(20):
        chans = [("sim", "a"), ("sim", "b")]
        p = PctStrategy(seed=seed, depth=3, steps=4)
        picks = [chans[p.choose(chans, [None, None], s)] for s in range(1, 5)]
        first, second = sorted(p.change)
        if first == 1:
            continue  # the first pick is made after a demotion: no earlier pick to compare
        before = picks[first - 2]
        # at `first` the running one is demoted, the other runs; at `second` that one is
        # demoted too, to a higher low value than the first: it stays on top
        assert picks[first - 1] != before
        assert picks[second - 1] == picks[first - 1] != before


def test_a_send_made_outside_any_delivery_has_no_cause_even_after_an_op_resumed():
    s = _sched((Caller, "k"), (Server, "srv"))
    s.inject("k", "opt.go", {"n": 0})
    s.run()
    c = s.actors["k"]
    assert c.got == ["reply:op1", "resumed"]
    c.send("srv", "opt.n", {"n": 5})  # e.g. a test harness: not caused by a delivery
    (ev,) = list(s.channels[("k", "srv")])
    assert ev.cause == 0


class Boom(SimActor):
    def on_opt_n(self, ev) -> None:
        raise ValueError("bad n")


def test_a_failing_handler_ends_the_run_naming_actor_event_and_the_exception():
    from fadumpsim.replay.runtime import ActorFailure
    s = _sched((Boom, "x"))
    s.inject("x", "opt.n", {"n": 3})
    with pytest.raises(ActorFailure) as e:
        s.run()
    assert isinstance(e.value.exc, ValueError) and str(e.value.exc) == "bad n"
    assert e.value.event.type == "opt.n" and e.value.event.dst == "x"
    assert "actor 'x' failed handling #1 opt.n from sim: ValueError: bad n" == str(e.value)
    assert "ValueError: bad n" in e.value.trace


def test_a_run_without_a_seed_is_the_seed_0_run(tmp_path):
    from fadumpsim import api
    a, b = tmp_path / "a.fadlog", tmp_path / "b.fadlog"
    replayer.record(api.system("udev-reload-race"), str(a), strategy="random")
    replayer.record(api.system("udev-reload-race"), str(b), strategy="random", seed=0)
    assert a.read_bytes() == b.read_bytes()
    assert api.load(str(a)).header["seed"] == 0


def test_a_log_cut_by_the_event_cap_replays_to_its_end_and_stops(tmp_path):
    from fadumpsim import api
    full = api.record("udev-reload-race", str(tmp_path / "full.fadlog")).events
    p = tmp_path / "cut.fadlog"
    rec = api.record("udev-reload-race", str(p), max_events=10)
    assert full > 10 and rec.events == 10
    lg = api.load(str(p))
    assert len(lg.records) == 10 and lg.header["max_events"] == 10
    assert "max_events" not in api.load(str(tmp_path / "full.fadlog")).header
    res, _ = api.replay(str(p))  # the replay must stop where the recording was cut
    assert res.events == 10
    assert [v["invariant"] for v in res.violations] == ["liveness"]  # the cap, as recorded


class Chatty(SimActor):
    def on_opt_go(self, ev) -> None:
        for n in range(3):
            self.send("b", "opt.n", {"n": n})
        self.send("a", "opt.n", {"n": 9})


def test_messages_an_actor_sends_are_numbered_per_channel_from_1():
    s = _sched((Chatty, "a"), (Sink, "b"))
    s.inject("a", "opt.go", {"n": 0})
    s.step()
    assert [ev.chan_seq for ev in s.channels[("a", "b")]] == [1, 2, 3]
    assert [ev.chan_seq for ev in s.channels[("a", "a")]] == [1]
    assert all(ev.cause == 1 for ev in s.channels[("a", "b")])


class Sloppy(SimActor):
    def on_opt_go(self, ev) -> None:
        self.send("a", "opt.n", {"m": 1})  # not the declared field


def test_a_payload_that_differs_from_its_declaration_is_refused_at_send():
    from fadumpsim.events.types import PayloadError
    s = _sched((Sloppy, "a"))
    s.inject("a", "opt.go", {"n": 0})
    with pytest.raises(Exception) as e:
        s.run()
    assert isinstance(e.value.exc, PayloadError)
    assert "opt.n: payload fields ['m'] != declared ['n']" in str(e.value.exc)
    assert not s.channels.get(("a", "a"))  # nothing was sent


def test_a_replay_mismatch_names_the_recorded_events_number_and_receiver():
    # record layout: seq, time, src, dst, type, cause, chan_seq, payload
    from fadumpsim.replay.runtime import Divergence
    want = [[1, 1000, "sim", "kernel", "cmd.run", 0, 1, {"n": 1}],
            [2, 2000, "kernel", "firmware", "rtas.call", 1, 1, {"n": 2}]]
    v = replayer._Verifier(want)
    v(list(want[0]))
    produced = [2, 2000, "kernel", "firmware", "rtas.call", 1, 1, {"n": 3}]
    with pytest.raises(Divergence) as e:
        v(produced)
    assert (e.value.seq, e.value.actor) == (2, "firmware")
    assert e.value.recorded == want[1] and e.value.produced == produced
    assert e.value.why == "produced event differs from the record"
    short = replayer._Verifier(want[:1])
    short(list(want[0]))
    with pytest.raises(Divergence) as e:  # one more than the log holds
        short([2, 9000, "sim", "hotplug", "x", 0, 1, {}])
    assert (e.value.seq, e.value.actor) == (2, "hotplug")
    assert e.value.why == "the run goes on past the end of the log"
