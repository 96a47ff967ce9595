"""The deterministic scheduled runtime: real pykka actors, one delivery at a time.

Every actor is a pykka `Actor` whose inbox is owned by the `Scheduler`: a `tell`
lands in the (sender, receiver) FIFO channel instead of a thread's queue, and no
actor loop thread exists. The scheduler asks its strategy which non-empty channel
delivers next, assigns the delivery its global `seq` and virtual time, runs the
receiver's handler to completion, appends the record to the log, then lets the
observers look (read-only). A `Future.get()` called while the run is in progress
drives the scheduler until the future is set, so a blocking ask does not deadlock.

Cost per delivery does not grow with idle channels (one per script/actor pair, most
of them empty): the scheduler keeps the creation indices of the non-empty channels in
a sorted list, so the candidate list of a generic strategy costs O(k) in the k
non-empty channels, in exactly the first-send order the old scan over every channel
gave. Under plain FIFO (the common case) a heap of channel heads keyed by
(due, send_order) -- FifoStrategy's own order -- picks the delivery in O(log n) and no
candidate list is built unless `on_deliver` wants one. `examined` counts the channel
entries looked at to pick deliveries (tests pin it; see docs/benchmarks.md).
"""
from __future__ import annotations

import functools
import heapq
import traceback
from bisect import bisect_left, insort
from collections import deque
from typing import Any, Callable, Sequence

import pykka
from pykka._envelope import Envelope  # noqa: PLC2701 - pykka's documented extension point

from fadumpsim.events.envelope import Event
from fadumpsim.replay.actor import ActorTable, SimActor
from fadumpsim.replay.strategies import Channel, FifoStrategy, Strategy

Observer = Callable[["Scheduler", Event], None]


class Divergence(Exception):
    """Replay produced something other than the record."""

    def __init__(self, seq: int, actor: str, recorded: list | None, produced: list | None,
                 why: str) -> None:
        super().__init__(why)
        self.seq, self.actor, self.recorded, self.produced, self.why = (
            seq, actor, recorded, produced, why)


class ActorFailure(Exception):
    """A handler raised: the run ends, naming the actor and the event."""

    def __init__(self, event: Event, exc: BaseException) -> None:
        self.event = event
        self.exc = exc
        self.trace = "".join(traceback.format_exception(exc))
        super().__init__(f"actor {event.dst!r} failed handling #{event.seq} {event.type} "
                         f"from {event.src}: {type(exc).__name__}: {exc}")


class Deadlock(Exception):
    pass


class _Inbox:
    """pykka inbox of a scheduled actor: messages go to the scheduler, not a queue."""

    __slots__ = ("sched", "actor")

    def __init__(self) -> None:
        self.sched: Scheduler | None = None
        self.actor: Any = None

    def put(self, envelope: Envelope) -> None:
        msg = envelope.message
        if isinstance(msg, Event):
            self.sched._enqueue(msg)  # type: ignore[union-attr]
        else:  # pykka control traffic (proxy calls, stop): handled at once, never logged
            fut = envelope.reply_to
            if isinstance(fut, ScheduledFuture):
                fut.sched = self.sched
            try:
                res = self.actor._handle_receive(msg)
                if fut is not None:
                    fut.set(res)
            except Exception:
                if fut is None:
                    raise
                fut.set_exception()

    def get(self) -> Envelope:  # never used: there is no actor loop
        raise RuntimeError("scheduled actors have no receive loop")

    def empty(self) -> bool:
        return True


class ScheduledFuture(pykka.Future):
    """A future whose `get()` drives the scheduler instead of blocking a thread."""

    def __init__(self) -> None:
        super().__init__()
        self.sched: Scheduler | None = None
        self._done = False
        self._value: Any = None
        self._exc: Any = None

    def get(self, *, timeout: float | None = None) -> Any:
        if not self._done and self.sched is not None:
            self.sched.run_until(lambda: self._done)
        if not self._done:
            raise Deadlock("future can never be set: nothing left to deliver")
        if self._exc is not None:
            raise self._exc[1].with_traceback(self._exc[2])
        return self._value

    def set(self, value: Any = None) -> None:
        self._value, self._done = value, True

    def set_exception(self, exc_info: Any = None) -> None:
        import sys
        self._exc, self._done = (exc_info or sys.exc_info()), True


class ScheduledActorBase(pykka.Actor):
    """pykka glue for scheduled actors (mixed with a SimActor subclass)."""

    @staticmethod
    def _create_actor_inbox() -> _Inbox:
        return _Inbox()

    @staticmethod
    def _create_future() -> ScheduledFuture:
        return ScheduledFuture()

    def _start_actor_loop(self) -> None:
        self.on_start()  # no thread: the scheduler calls deliver() directly

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Event):
            return self.deliver(message)  # type: ignore[attr-defined]
        return super().on_receive(message)


@functools.cache
def scheduled_class(cls: type[SimActor]) -> type:
    """The pykka actor class for a domain class in scheduled mode."""
    return type(f"Scheduled{cls.__name__}", (cls, ScheduledActorBase), {})


class Scheduler(ActorTable):
    """Owns every inbox; delivers one event at a time in the order a strategy picks."""

    def __init__(self, strategy: Strategy | None = None, *, sink: Callable[[list], None] | None = None,
                 observers: Sequence[Observer] = (), max_events: int = 1_000_000) -> None:
        super().__init__()
        self.strategy = strategy or FifoStrategy()
        self.sink = sink
        self.observers = list(observers)
        self.max_events = max_events
        self.channels: dict[Channel, deque[Event]] = {}
        self._keys: list[Channel] = []           # channel by creation index
        self._index: dict[Channel, int] = {}     # creation index by channel
        self._ready: list[int] = []              # creation indices of non-empty channels, sorted
        #: FIFO fast path: heads of non-empty channels as (due, send_order, index);
        #: kept only while the strategy is the FifoStrategy the scheduler started with
        self._fifo: Strategy | None = self.strategy if type(self.strategy) is FifoStrategy else None
        self._heads: list[tuple[int, int, int]] = []
        #: channel entries looked at to pick deliveries (the complexity tests pin it)
        self.examined = 0
        self.seq = 0
        self.now = 0
        self._send_order = 0
        self.busy: set[str] = set()
        self.current: Event | None = None
        self.failure: ActorFailure | None = None
        self.trace: list[Channel] = []
        #: set by an observer that proves the run can only spin (a liveness finding):
        #: the run stops after the current delivery, as at the event cap
        self.halted: str | None = None
        self.on_deliver: Callable[[Event, Sequence[Channel]], None] | None = None

    # -- actors ------------------------------------------------------------------
    def spawn(self, cls: type[SimActor], name: str, *args: Any, **kwargs: Any) -> SimActor:
        """Start the domain class `cls` as a scheduled pykka actor named `name`."""
        # There is no actor thread to keep the object alive: the scheduler does.
        actor = scheduled_class(cls)(name, *args, **kwargs)
        actor.actor_inbox.sched = self
        actor.actor_inbox.actor = actor
        self._register(name, actor)
        actor._start_actor_loop()
        return actor

    def stop(self) -> None:
        for ref in self.refs.values():
            pykka.ActorRegistry.unregister(ref)
            ref.actor_stopped.set()

    def inject(self, dst: str, type: str, payload: dict[str, Any], src: str = "sim") -> None:
        """An event from outside the actor system (cause 0)."""
        self._enqueue(self._inject_event(dst, type, payload, src))

    # -- queues ------------------------------------------------------------------
    def _enqueue(self, ev: Event) -> None:
        self._send_order += 1
        ev.send_order = self._send_order
        key = (ev.src, ev.dst)
        q = self.channels.get(key)
        if q is None:
            q = self.channels[key] = deque()
            self._index[key] = len(self._keys)
            self._keys.append(key)
        if not q:  # the channel becomes non-empty: ev is its head
            i = self._index[key]
            ready = self._ready
            if not ready or ready[-1] < i:
                ready.append(i)
            else:
                insort(ready, i)
            if self._fifo is not None:
                heapq.heappush(self._heads, (ev.due, ev.send_order, i))
        q.append(ev)

    def pending(self) -> int:
        ch, keys = self.channels, self._keys
        return sum(len(ch[keys[i]]) for i in self._ready)

    def enabled(self) -> list[Channel]:
        """Channels that may deliver now, in first-send order (deterministic)."""
        keys, busy = self._keys, self.busy
        if not busy:
            return [keys[i] for i in self._ready]
        return [k for k in map(keys.__getitem__, self._ready) if k[1] not in busy]

    def _pop(self, key: Channel) -> Event:
        """Take the head of `key`'s channel, keeping the non-empty index (and heap) current."""
        q = self.channels[key]
        ev = q.popleft()
        if not q:
            ready = self._ready
            i = self._index[key]
            if ready[-1] == i:
                ready.pop()
            else:
                del ready[bisect_left(ready, i)]
        elif self._fifo is not None:
            h = q[0]
            heapq.heappush(self._heads, (h.due, h.send_order, self._index[key]))
        return ev

    def _fifo_pick(self) -> Channel | None:
        """FifoStrategy's choice from the heap: the least (due, send_order) head whose
        receiver is not busy (heads to a busy receiver are set aside and put back)."""
        heads, keys, busy = self._heads, self._keys, self.busy
        aside = []
        key = None
        while heads:
            ent = heads[0]
            k = keys[ent[2]]
            if k[1] not in busy:
                key = k
                heapq.heappop(heads)
                break
            aside.append(heapq.heappop(heads))
        self.examined += 1 + len(aside)
        for ent in aside:
            heapq.heappush(heads, ent)
        return key

    # -- delivery ----------------------------------------------------------------
    def step(self) -> Event | None:
        """Deliver one event; None when nothing is deliverable."""
        fifo = self._fifo
        if fifo is not None and self.strategy is not fifo:
            fifo = self._fifo = None  # the strategy was swapped: the heap is no longer kept
            self._heads = []
        if fifo is not None:
            cands = self.enabled() if self.on_deliver is not None else None
            heads = self._heads
            if heads and not self.busy:  # the common case: the least head, no busy receiver
                key = self._keys[heads[0][2]]
                heapq.heappop(heads)
                self.examined += 1
            else:
                key = self._fifo_pick()
                if key is None:
                    return None
            self.seq = seq = self.seq + 1
        else:
            cands = self.enabled()
            if not cands:
                return None
            self.examined += len(cands)
            chans = self.channels
            heads = [chans[k][0] for k in cands]
            self.seq = seq = self.seq + 1
            i = self.strategy.choose(cands, heads, seq)
            if i < 0:
                self.seq = seq - 1
                return None
            key = cands[i]
        ev = self._pop(key)
        if self.on_deliver is not None:
            self.on_deliver(ev, cands)  # type: ignore[arg-type]
        self.trace.append(key)
        dst = ev.dst
        actor = self.actors[dst]
        now = self.now + actor.tick_ns
        if ev.due > now:
            now = ev.due
        self.now = ev.time = now
        ev.seq = seq
        self.current = ev
        busy = self.busy
        busy.add(dst)
        try:
            actor.deliver(ev)
        except Exception as exc:  # noqa: BLE001 - reported, run ends
            self.failure = ActorFailure(ev, exc)
        finally:
            busy.discard(dst)
            self.current = None
        if self.sink is not None:
            self.sink(ev.record())
        for ob in self.observers:
            ob(self, ev)
        if self.failure is not None:
            raise self.failure
        return ev

    def run(self, until: Callable[[], bool] | None = None) -> int:
        """Deliver until quiescent (or `until()` holds); returns events delivered."""
        n0 = self.seq
        step = self.step
        while self.seq < self.max_events and self.halted is None:
            if until is not None and until():
                break
            if step() is None:
                break
        return self.seq - n0

    def run_until(self, pred: Callable[[], bool]) -> None:
        self.run(until=pred)
        if not pred():
            raise Deadlock("nothing left to deliver and the awaited reply never came")


