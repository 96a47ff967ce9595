"""Live mode: the same SimActor classes as ordinary pykka ThreadingActors, racing.

In the scheduled runtime (replay/runtime.py) one scheduler thread picks every
delivery. Here every actor has its own pykka thread and inbox, and the threads race
for real. A thread-safe `Recorder` turns the race into a log that the scheduled
runtime replays exactly:

* **seq and time are assigned at the moment the receiving actor starts handling
  an event**, under one lock: seq is the next global number and time follows the
  scheduler's own rule, ``time = max(previous time + receiver.tick_ns, event.due)``
  (a logical counter: seq * 1000 for the default 1000 ns tick and no timers).
  Replaying the log in the scheduled runtime with ``ForcedStrategy(order from the
  log)`` therefore reproduces every record bit for bit, time included.
* **chan_seq and cause are decided by the sender** (`SimActor.send` numbers its
  channels and takes the cause from the delivery it is handling), so they are the
  same whatever the interleaving; events injected from outside (src "sim") are
  numbered per destination exactly like `Scheduler.inject`.
* Why any live order is a valid scheduled order: an actor handles one event at a
  time and touches only its own state, each (src, dst) channel is FIFO (one sender
  thread, one inbox queue), and an event can only start after the delivery that
  sent it started (so its sender has a smaller seq). Replaying deliveries one by
  one in seq order therefore gives every actor the same inputs in the same order.
* **Timers** (`SimActor.timer`, `send(..., delay=)`) are not slept on: the event
  is delivered as soon as its receiver takes it, like any other message. Its
  virtual time still respects `due` (the time rule above), so the handler sees
  the same `now` as in the scheduled runtime; only the wall-clock wait is skipped.
  A live order may thus deliver a timer "early" relative to other traffic, which
  is one more interleaving the scheduled strategies could also pick.
* **Quiescence**: every `tell` of an Event counts +1 (in the inbox's `put`), every
  handler completion -1; the run is over when the count is 0.
* **Failures**: an exception in a handler ends the run. Deliveries that had not
  started yet are dropped; the log keeps exactly the records 1..failing seq (a
  record is written only once every earlier delivery has completed without
  failing), which is what the scheduled runtime produces for the same failure,
  and the run reports `ActorFailure` naming the actor and the event.

Observers (the invariant checker, tracing) read other actors' state, which is not
safe while threads race: live mode runs none. Replay the log (the scheduled
runtime, deterministically) to judge a live run: `LiveResult.replay()`.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import pykka

from fadumpsim.events.envelope import Event
from fadumpsim.replay.actor import ActorTable, SimActor
from fadumpsim.replay.runtime import ActorFailure, Divergence, Scheduler
from fadumpsim.replay.strategies import ForcedStrategy

__all__ = ["LiveActorBase", "LiveStrategy", "LiveSystem", "LiveResult", "LiveTimeout",
           "Recorder", "live_class", "live_run", "replay_records"]

Sink = Callable[[list], None]


class LiveTimeout(Exception):
    """The live run did not become quiescent in time."""


class LiveStrategy:
    """Stands in for a strategy in the log header of a live run."""

    name = "live"

    def params(self) -> dict[str, Any]:
        return {"mode": "live"}


class Recorder:
    """Assigns seq/time to deliveries as they start and writes records in seq order.

    Also counts outstanding messages (sent and not yet handled) for quiescence.
    Every method takes the one lock; handlers themselves run outside it.
    """

    def __init__(self, sink: Sink | None = None, max_events: int = 200_000) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.sink = sink
        self.max_events = max_events
        self.seq = 0
        self.now = 0
        self.outstanding = 0
        self.closed = False          # no more deliveries start (failure, limit, stop)
        self.limit_hit = False
        self.failure: ActorFailure | None = None
        self.committed = 0           # records handed to the sink: 1..committed
        self.dropped = 0             # messages discarded after the run was closed
        self._pending: dict[int, list] = {}
        self._in_flight: set[int] = set()
        self.sink_error: BaseException | None = None

    # -- called by the inboxes and actor threads ------------------------------------------
    def sent(self) -> None:
        with self.cond:
            self.outstanding += 1

    def begin(self, actor: SimActor, ev: Event) -> bool:
        """The receiving actor starts handling `ev`: number it. False: drop it."""
        with self.cond:
            if self.closed:
                return False
            seq = self.seq + 1
            if seq > self.max_events:
                self.closed = self.limit_hit = True
                return False
            now = self.now + actor.tick_ns
            if ev.due > now:
                now = ev.due
            self.seq, self.now = seq, now
            ev.seq, ev.time = seq, now
            self._in_flight.add(seq)
            self._pending[seq] = ev.record()
            self._commit()
            return True

    def end(self, ev: Event | None, exc: BaseException | None = None) -> None:
        """A handler finished (ev None: the message was dropped without handling)."""
        with self.cond:
            if ev is not None:
                self._in_flight.discard(ev.seq)
                if exc is not None and (self.failure is None or ev.seq < self.failure.event.seq):
                    self.failure = ActorFailure(ev, exc)
                    self.closed = True
                self._commit()
            else:
                self.dropped += 1
            self.outstanding -= 1
            if self.outstanding == 0 or self.failure is not None:
                self.cond.notify_all()

    def _commit(self) -> None:
        """Hand record k to the sink once every delivery before it has completed
        (and none of those failed): the log is then always a prefix the scheduled
        runtime reproduces, ending at the failing event if there is one."""
        upto = min(self._in_flight) if self._in_flight else self.seq
        if self.failure is not None and self.failure.event.seq < upto:
            upto = self.failure.event.seq
        k = self.committed + 1
        pending = self._pending
        sink = self.sink
        while k <= upto:
            rec = pending.pop(k)
            if sink is not None and self.sink_error is None:
                try:
                    sink(rec)
                except BaseException as e:  # noqa: BLE001 - reported by the system
                    self.sink_error = e
                    self.closed = True
            k += 1
        self.committed = k - 1

    # -- main thread ----------------------------------------------------------------------
    def wait_quiescent(self, timeout: float | None) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.outstanding == 0, timeout)

    def close(self) -> None:
        with self.cond:
            self.closed = True


class _LiveInbox(queue.Queue):
    """pykka inbox of a live actor: a plain queue that counts Events put into it."""

    recorder: Recorder | None = None

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if isinstance(item.message, Event):
            self.recorder.sent()  # type: ignore[union-attr]
        super().put(item, block, timeout)


class LiveActorBase(pykka.ThreadingActor):
    """pykka glue for live actors (mixed with a SimActor subclass)."""

    use_daemon_thread = True  # a wedged handler must not keep the interpreter alive

    @staticmethod
    def _create_actor_inbox() -> _LiveInbox:
        return _LiveInbox()

    def on_receive(self, message: Any) -> Any:
        if not isinstance(message, Event):
            return super().on_receive(message)
        rec = self.actor_inbox.recorder
        if not rec.begin(self, message):  # type: ignore[arg-type]
            rec.end(None)
            return None
        exc = None
        try:
            self.deliver(message)  # type: ignore[attr-defined]
        except Exception as e:  # noqa: BLE001 - reported by the system, run ends
            exc = e
        finally:
            rec.end(message, exc)
        return None


_LIVE_CLASSES: dict[type, type] = {}


def live_class(cls: type[SimActor]) -> type:
    """The pykka ThreadingActor class for a domain class in live mode."""
    k = _LIVE_CLASSES.get(cls)
    if k is None:
        k = _LIVE_CLASSES[cls] = type(f"Live{cls.__name__}", (cls, LiveActorBase), {})
    return k


class LiveSystem(ActorTable):
    """Spawn, wire and run SimActors as racing pykka threads, recording every delivery.

    Same interface as `Scheduler` for building (`spawn`, `wire`, `inject`), so
    `fadumpsim.sim.build(sc, LiveSystem(...))` builds a whole scenario live.
    """

    def __init__(self, sink: Sink | None = None, *, max_events: int = 200_000) -> None:
        super().__init__()
        self.recorder = Recorder(sink, max_events)
        self._stopped = False

    @property
    def seq(self) -> int:
        """Deliveries started so far."""
        return self.recorder.seq

    @property
    def failure(self) -> ActorFailure | None:
        return self.recorder.failure

    def spawn(self, cls: type[SimActor], name: str, *args: Any, **kwargs: Any) -> SimActor:
        """Start the domain class `cls` as a live pykka actor (own thread) named `name`."""
        # The inbox gets the recorder before the thread can take anything from it.
        actor = live_class(cls)(name, *args, **kwargs)
        actor.actor_inbox.recorder = self.recorder
        self._register(name, actor)
        actor._start_actor_loop()
        return actor

    def inject(self, dst: str, type: str, payload: dict[str, Any], src: str = "sim") -> None:
        """An event from outside the actor system (cause 0), numbered like Scheduler.inject."""
        self.refs[dst].tell(self._inject_event(dst, type, payload, src))

    def run_until_quiescent(self, timeout: float | None = 60.0) -> int:
        """Wait until no message is queued or being handled; returns deliveries made.

        Raises ActorFailure if a handler raised (after the run has drained: every
        message not yet started is dropped), LiveTimeout if the system is still busy
        after `timeout` seconds.
        """
        rec = self.recorder
        if not rec.wait_quiescent(timeout):
            rec.close()
            raise LiveTimeout(f"live run not quiescent after {timeout} s: "
                              f"{rec.outstanding} messages outstanding, {rec.seq} delivered")
        if rec.sink_error is not None:
            raise rec.sink_error
        if rec.failure is not None:
            raise rec.failure
        return rec.committed

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every actor thread (messages not yet started are dropped)."""
        if self._stopped:
            return
        self._stopped = True
        self.recorder.close()
        futures = []
        for ref in self.refs.values():
            try:
                futures.append(ref.stop(block=False))
            except pykka.ActorDeadError:
                pass
        for f in futures:
            try:
                f.get(timeout=timeout)
            except (pykka.Timeout, pykka.ActorDeadError):
                pass

    def snapshots(self) -> dict[str, dict[str, Any]]:
        return {name: a.snapshot() for name, a in self.actors.items()}

    def __enter__(self) -> "LiveSystem":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass
class LiveResult:
    log: str
    events: int
    failure: str | None = None
    failure_trace: str | None = None
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failure is None

    factory: Any = None

    def replay(self, **kw: Any) -> Any:
        """Re-run the log in the scheduled runtime: (RunResult with the verdict, LoadedLog).

        Raises replay.runtime.Divergence if the scheduled run differs from the live one.
        """
        from fadumpsim.replay.replayer import replay
        return replay(self.log, self.factory, **kw)


def live_run(system: Any, path: str, *, dump_dir: str | None = None, timeout: float = 60.0,
             max_events: int | None = None) -> LiveResult:
    """Run `system` (a replay.system.System) with racing actor threads, logging to `path`.

    The log's header is that of a scheduled run with strategy "live" (seed 0); it
    replays with `replay.replayer.replay(path)`. A handler exception ends the run:
    the log keeps the records up to the failing event and its trailer says
    "error"; the result carries the report (actor, event, traceback).
    """
    from fadumpsim.events.logfile import LogWriter

    default = system.default_max_events
    limit = default if max_events is None else max_events
    header = system.log_header(0, LiveStrategy())
    if limit != default:
        header["max_events"] = limit
    w = LogWriter(path, header)
    live = LiveSystem(w.append, max_events=limit)
    failure: ActorFailure | None = None
    try:
        try:
            system.build(live, dump_dir)
            live.run_until_quiescent(timeout)
        except ActorFailure as e:
            failure = e
        finally:
            live.stop()
    except BaseException as e:
        w.abort({"error": repr(e), "events": w.count, "mode": "live"})
        raise
    trailer: dict[str, Any] = {"events": w.count, "mode": "live"}
    if live.recorder.limit_hit:
        trailer["stopped"] = f"max_events {limit} reached"
    if failure is not None:
        trailer["error"] = str(failure)
        w.abort(trailer)
    else:
        w.close(trailer)
    return LiveResult(str(path), w.count, str(failure) if failure else None,
                      failure.trace if failure else None, live.snapshots(), system.factory)


def replay_records(records: list[list[Any]], build: Callable[[Scheduler], None], *,
                   sink: Sink | None = None) -> tuple[Scheduler, ActorFailure | None]:
    """Re-run recorded deliveries in the scheduled runtime and verify every record.

    For actor systems that are not scenarios (a scenario log replays with
    replay.replayer.replay). `build(sched)` spawns, wires and injects exactly as the
    recorded run did. Returns the scheduler (its actors hold the final state) and
    the ActorFailure the replay ended with, if the recorded run ended with one.
    Raises Divergence at the first record the replay does not reproduce.
    """
    order = [(r[2], r[3]) for r in records]
    strat = ForcedStrategy(order)
    n = len(records)
    i = 0

    def verify(rec: list) -> None:
        nonlocal i
        if i >= n:
            raise Divergence(rec[0], rec[3], None, rec, "the run goes on past the end of the log")
        want = records[i]
        if rec != want:
            raise Divergence(rec[0], want[3], want, rec, "produced event differs from the record")
        i += 1
        if sink is not None:
            sink(rec)

    sched = Scheduler(strat, sink=verify, max_events=n)
    failure = None
    try:
        build(sched)
        sched.run()
    except ActorFailure as e:
        failure = e
    finally:
        sched.stop()
    if i < n:
        rec = records[i]
        why = strat.diverged or "the run stopped"
        raise Divergence(rec[0], rec[3], rec, None, f"the recorded event was never produced ({why})")
    return sched, failure
