"""Multi-step kernel operations as continuations, and kernel locks as wait queues.

A registration, a DLPAR remove or a udev reload is a generator. It `yield`s what it
waits for (an RTAS answer, a lock, a timer, a step boundary) and the actor returns
to its mailbox; the reply event resumes it. Between two steps the actor handles
anything else that is delivered, which is what lets the races of the real kernel
appear (design note 1). Locks (`fadump_mutex`, the device-hotplug lock) are
per-actor FIFO wait queues of operations; a released lock wakes its next waiter
with a `lock.wake` event, so the wake-up is itself an ordering decision.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generator

from fadumpsim.events.envelope import Event
from fadumpsim.replay.actor import SimActor


@dataclass
class Call:
    """Send `type` to `dst` with payload (+ op id); resume on an event of `reply`."""
    dst: str
    type: str
    payload: dict[str, Any]
    reply: str


@dataclass
class Step:
    """An interleaving point: resume on our own `type` event (payload + op id)."""
    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    delay: int = 0  # >0: a virtual-clock timer


@dataclass
class Acquire:
    lock: str


@dataclass
class Expect:
    """Wait for an event of `type` addressed to this op (sent earlier by the op)."""
    type: str


OpGen = Generator[Any, Any, None]


@dataclass
class Op:
    id: str
    kind: str
    gen: OpGen
    waiting: str = ""
    holds: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Lock:
    name: str
    owner: str | None = None
    waiters: deque[str] = field(default_factory=deque)


class OpActor(SimActor):
    """A SimActor that runs generator operations and owns named locks."""

    op_prefix = "op"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ops: dict[str, Op] = {}
        self.locks: dict[str, Lock] = {}
        self._op_seq = 0

    def lock(self, name: str) -> Lock:
        lk = self.locks.get(name)
        if lk is None:
            lk = self.locks[name] = Lock(name)
        return lk

    # -- running ops ---------------------------------------------------------------
    def start_op(self, kind: str, gen: OpGen, **info: Any) -> Op:
        self._op_seq += 1
        op = Op(f"{self.op_prefix}{self._op_seq}", kind, gen, info=info)
        self.ops[op.id] = op
        self._advance(op, None)
        return op

    def _advance(self, op: Op, value: Any) -> None:
        """Run `op` until it waits for something or finishes."""
        while True:
            try:
                w = op.gen.send(value)
            except StopIteration:
                for name in list(op.holds):
                    self.release(op, name)
                self.ops.pop(op.id, None)
                return
            value = None
            if isinstance(w, Acquire):
                lk = self.lock(w.lock)
                if lk.owner is None:
                    lk.owner = op.id
                    op.holds.append(w.lock)
                    continue
                lk.waiters.append(op.id)
                op.waiting = f"lock:{w.lock}"
                return
            if isinstance(w, Call):
                payload = dict(w.payload)
                payload["op"] = op.id
                op.waiting = w.reply
                self.send(w.dst, w.type, payload)
                return
            if isinstance(w, Step):
                payload = {"op": op.id, **w.payload}
                op.waiting = w.type
                self.send(self.name, w.type, payload, delay=w.delay)
                return
            if isinstance(w, Expect):
                op.waiting = w.type
                return
            raise TypeError(f"operation {op.kind} yielded {w!r}")

    def resume(self, event: Event) -> bool:
        """Resume the op this event answers; False if no op waits for it."""
        op = self.ops.get(event.payload.get("op", ""))
        if op is None or op.waiting != event.type:
            return False
        op.waiting = ""
        self._advance(op, event.payload)
        return True

    def release(self, op: Op, name: str) -> None:
        lk = self.lock(name)
        if lk.owner != op.id:
            return
        if name in op.holds:
            op.holds.remove(name)
        lk.owner = None
        if lk.waiters:
            nxt = lk.waiters.popleft()
            lk.owner = nxt
            self.ops[nxt].holds.append(name)
            self.ops[nxt].waiting = "lock.wake"
            self.send(self.name, "lock.wake", {"op": nxt, "lock": name})

    def on_lock_wake(self, event: Event) -> None:
        self.resume(event)

    def deliver(self, event: Event) -> None:
        # Replies routed by op id need no dedicated handler.
        if "op" in event.payload and event.payload["op"] in self.ops \
                and self.ops[event.payload["op"]].waiting == event.type:
            self._current = event
            self._now = event.time
            try:
                self.resume(event)
            finally:
                self._current = None
            return
        super().deliver(event)

    def ops_snapshot(self) -> dict[str, Any]:
        return {
            "ops": [{"id": o.id, "kind": o.kind, "waiting": o.waiting, "holds": list(o.holds)}
                    for o in self.ops.values()],
            "locks": {n: {"owner": lk.owner, "waiters": list(lk.waiters)}
                      for n, lk in self.locks.items() if lk.owner or lk.waiters},
        }
