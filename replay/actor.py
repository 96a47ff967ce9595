"""The actor base every simulated component derives from.

Domain classes (firmware, kernel, hotplug manager, capture kernel, scripts) subclass
`SimActor` and stay free of any concurrency mechanism. The runtime turns each one
into a real pykka actor, either scheduled (replay/runtime.py: one delivery at a
time, chosen by a strategy) or live (replay/live.py: pykka threads racing). A
handler for event type "rtas.call" is the method `on_rtas_call(event)`.
"""
from __future__ import annotations

from typing import Any, Callable

from fadumpsim.events.envelope import Event
from fadumpsim.events.types import check_payload


class SimActor:
    """Domain side of an actor: state, handlers, and the ability to send events."""

    name: str = "?"
    #: time in virtual ns one delivery to this actor takes (the clock's tick).
    tick_ns: int = 1000

    def __init__(self, name: str) -> None:
        super().__init__()  # pykka.Actor in the runtime's mixed class, object otherwise
        self.name = name
        self._refs: dict[str, Any] = {}
        self._chan: dict[str, int] = {}
        self._current: Event | None = None
        self._handlers: dict[str, Callable[[Event], None]] = {}
        self._now = 0

    # -- wiring (runtime only) -------------------------------------------------
    def bind(self, refs: dict[str, Any]) -> None:
        """Give the actor the refs of every endpoint it may send to."""
        self._refs = refs

    # -- sending -----------------------------------------------------------------
    def send(self, dst: str, type: str, payload: dict[str, Any] | None = None, *,
             delay: int = 0) -> None:
        """Send `type` to `dst`; with `delay`, it may not be delivered before now+delay."""
        payload = {} if payload is None else payload
        check_payload(type, payload)
        n = self._chan.get(dst, 0) + 1
        self._chan[dst] = n
        cur = self._current
        ev = Event(src=self.name, dst=dst, type=type, payload=payload,
                   cause=cur.seq if cur is not None else 0, chan_seq=n,
                   due=(self._now + delay) if delay else 0)
        ref = self._refs.get(dst)
        if ref is None:
            raise KeyError(f"{self.name} has no route to {dst!r}")
        ref.tell(ev)

    def timer(self, delay: int, type: str, payload: dict[str, Any] | None = None) -> None:
        """A virtual-clock timer: an event to ourselves due `delay` ns from now."""
        self.send(self.name, type, payload, delay=delay)

    @property
    def now(self) -> int:
        """Virtual time of the delivery being handled (ns)."""
        return self._now

    # -- receiving -----------------------------------------------------------------
    def deliver(self, event: Event) -> None:
        """Run the handler for one delivered event."""
        self._current = event
        self._now = event.time
        try:
            h = self._handlers.get(event.type)
            if h is None:
                h = getattr(self, "on_" + event.type.replace(".", "_").replace("-", "_"), None)
                if h is None:
                    raise NotImplementedError(f"{self.name} has no handler for {event.type!r}")
                self._handlers[event.type] = h
            h(event)
        finally:
            self._current = None

    # -- inspection ------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A msgpack-native view of the actor's state, for `state --at N` and checkers."""
        return {}


class ActorTable:
    """Name -> actor and name -> pykka ref, shared by the scheduled and the live system.

    Both start actors the way pykka.Actor.start() does but keep a strong reference to
    each object (to read its state after the run), and number events injected from
    outside the same way, so that a live log replays in the scheduled runtime.
    """

    def __init__(self) -> None:
        self.actors: dict[str, SimActor] = {}
        self.refs: dict[str, Any] = {}
        self._injected: dict[str, int] = {}

    def _register(self, name: str, actor: Any) -> Any:
        import pykka
        ref = actor.actor_ref
        pykka.ActorRegistry.register(ref)
        self.actors[name] = actor
        self.refs[name] = ref
        return ref

    def wire(self) -> None:
        """Let every actor reach every other by name (after all are spawned)."""
        for a in self.actors.values():
            a.bind(self.refs)

    def _inject_event(self, dst: str, type: str, payload: dict[str, Any], src: str) -> Event:
        """An event from outside the actor system (cause 0), numbered per destination."""
        self._injected[dst] = n = self._injected.get(dst, 0) + 1
        return Event(src=src, dst=dst, type=type, payload=payload, chan_seq=n)
