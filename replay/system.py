"""What replay and exploration need from an application, without importing it.

The replay layer (runtime, replayer, explore, DPOR, minimize) sits below the actors
and the scenario code, so it never imports them. An application hands it a `System`:
a built, runnable description of one actor system. Exploration ships a system to
worker processes as `(factory, data, source)`, where `factory` is a top-level
function (so it pickles) that rebuilds the system from `data`; replay rebuilds the
system from a log header with the same factory.

`fadumpsim.sim.ScenarioSystem` is the fadump implementation; `fadumpsim.api` binds it.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

from fadumpsim.events.envelope import Event
from fadumpsim.replay.strategies import Channel, Strategy


class RunOutcome(Protocol):
    """The parts of a run's result that replay and exploration read."""

    events: int
    trace: list[Channel]
    violations: list[dict[str, Any]]
    expectations: list[dict[str, Any]]
    dump: dict[str, Any]
    failure: str | None
    log: str | None
    sched: Any

    @property
    def ok(self) -> bool: ...

    @property
    def unexpected_violations(self) -> list[dict[str, Any]]: ...


class System(Protocol):
    """One runnable actor system (for fadump: one scenario)."""

    name: str
    #: msgpack/pickle-safe description; `factory(data, source)` rebuilds the system
    data: dict[str, Any]
    source: str
    factory: Callable[[dict[str, Any], str], "System"]
    #: the long-lived actors (scripts are the others), listed first in reports
    actor_names: tuple[str, ...]
    default_max_events: int

    def run(self, *, seed: int = 0, strategy: str | Strategy = "fifo",
            sink: Callable[[list], None] | None = None, dump_dir: str | None = None,
            observers: Sequence[Callable[[Any, Event], None]] = (),
            on_deliver: Callable[[Event, Sequence[Channel]], None] | None = None,
            max_events: int | None = None, keep_sched: bool = False) -> RunOutcome: ...

    def build(self, sched: Any, dump_dir: str | None = None) -> None:
        """Spawn and wire every actor in `sched` (a Scheduler or a LiveSystem), then start it."""
        ...

    def log_header(self, seed: int, strategy: Strategy) -> dict[str, Any]: ...

    def describe(self, type: str, payload: dict[str, Any]) -> str:
        """One human line for an event (used in minimization stories)."""
        ...


SystemFactory = Callable[[dict[str, Any], str], System]
