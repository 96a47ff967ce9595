"""Record a run to a log, re-execute a log exactly, and rebuild state at any event.

Replay needs only the log: the header carries the scenario, seed and strategy. It
forces the recorded channel order and compares every produced event with the
record; the first mismatch is a `Divergence` (CLI exit 3).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fadumpsim.events import records as records_mod
from fadumpsim.events.logfile import SCHEMA_DIGEST, LogFormatError, LogReader, LogWriter
from fadumpsim.replay.runtime import Divergence, Scheduler
from fadumpsim.replay.strategies import ForcedStrategy, Strategy, make_strategy
from fadumpsim.replay.system import RunOutcome, System, SystemFactory


def path_is_free(p: str | Path) -> bool:
    """No file there, and no log being written there (its `.partial` sibling)."""
    return not Path(p).exists() and not Path(str(p) + ".partial").exists()


def unused_path(path: str | Path, first: int = 1) -> str:
    """`path` itself if free, else `<stem>-N.fadlog` with the smallest free N >= `first`:
    no command ever overwrites a log it picked the name of."""
    p = Path(path)
    if path_is_free(p):
        return str(p)
    name = p.name
    stem, suffix = (name[:-len(".fadlog")], ".fadlog") if name.endswith(".fadlog") else (p.stem, p.suffix)
    n = first
    while not path_is_free(q := p.with_name(f"{stem}-{n}{suffix}")):
        n += 1
    return str(q)


def record(system: System, path: str, *, seed: int = 0, strategy: str | Strategy = "fifo",
           dump_dir: str | None = None, durable: bool = True, **kw: Any) -> RunOutcome:
    """Run `system` writing every delivery to the event log at `path`.

    `durable` (a log the user named) fsyncs the log once at close; internal
    re-recordings (explore's saved failures, minimize's result) pass False.
    """
    strat = make_strategy(strategy, seed) if isinstance(strategy, str) else strategy
    header = system.log_header(seed, strat)
    cap = kw.get("max_events")
    if cap is not None and cap != system.default_max_events:
        header["max_events"] = cap  # replay stops where the recording was cut
    w = LogWriter(path, header, durable=durable)
    try:
        res = system.run(seed=seed, strategy=strat, sink=w.append, dump_dir=dump_dir, **kw)
    except BaseException as e:
        w.abort({"error": repr(e)})
        raise
    trailer = {"events": res.events, "outcome": "pass" if res.ok else "fail"}
    if res.failure:
        trailer["error"] = res.failure
        w.abort(trailer)
    else:
        w.close(trailer)
    res.log = str(path)
    return res


@dataclass
class LoadedLog:
    header: dict[str, Any]
    records: list[list[Any]]
    trailer: dict[str, Any] | None
    error: LogFormatError | None
    system: System

    @property
    def scenario(self) -> Any:
        """The application's own description (for fadump: the Scenario)."""
        return getattr(self.system, "scenario", self.system)


def load(path: str, factory: SystemFactory, *, allow_damage: bool = False) -> LoadedLog:
    """Read a log and rebuild its system with `factory`; refuse damage unless `allow_damage`."""
    r = LogReader(path)
    recs = r.records()
    if r.error is not None and not allow_damage:
        raise r.error
    h = r.header
    check_shape(path, h, recs)
    check_schema(path, h)
    try:
        system = factory(h["scenario"], f"{path} (header scenario)")
    except (ValueError, KeyError, TypeError, ArithmeticError, RecursionError) as e:
        raise LogFormatError(str(path), -1, f"header holds no valid scenario: {e}") from None
    return LoadedLog(h, recs, r.trailer, r.error, system)


def check_shape(path: str, header: Any, records: list[Any]) -> None:
    """Refuse a CRC-valid log whose header or events have the wrong shape (one line)."""
    why = records_mod.header_problem(header)
    for rec in records:
        if why is not None:
            break
        why = records_mod.record_problem(rec)
    if why is not None:
        raise LogFormatError(str(path), -1, why)


def check_schema(path: str, header: dict[str, Any]) -> None:
    """An old log replays only if it was written with today's event schema.

    LogReader already refuses another schema digest (it could not decode the
    records); this re-check guards headers built by hand.
    """
    if header.get("event_schema") != SCHEMA_DIGEST:
        raise LogFormatError(str(path), -1, f"log event schema {header.get('event_schema')!r} "
                             f"is not this fadumpsim's {SCHEMA_DIGEST!r}")


class _Verifier:
    """Sink that compares each produced record with the recorded one."""

    def __init__(self, recorded: list[list[Any]], stop_at: int | None = None) -> None:
        self.recorded = recorded
        self.i = 0
        self.stop_at = stop_at

    def __call__(self, rec: list[Any]) -> None:
        i = self.i
        if i >= len(self.recorded):
            raise Divergence(rec[0], rec[3], None, rec, "the run goes on past the end of the log")
        want = self.recorded[i]
        if rec != want:
            raise Divergence(rec[0], want[3], want, rec, "produced event differs from the record")
        self.i += 1


def replay(path: str, factory: SystemFactory, *, upto: int | None = None,
           keep_sched: bool = False, observers: list[Callable[[Scheduler, Any], None]] | None = None
           ) -> tuple[RunOutcome, LoadedLog]:
    """Re-execute the log at `path`; raises Divergence at the first mismatch."""
    lg = load(path, factory)
    order = [(r[2], r[3]) for r in lg.records]
    if upto is not None:
        order = order[:upto]
    strat = ForcedStrategy(order)
    verifier = _Verifier(lg.records)
    max_events = upto if upto is not None else len(order)
    res = lg.system.run(seed=lg.header.get("seed", 0), strategy=strat, sink=verifier,
                  max_events=max_events, keep_sched=True, observers=observers or ())
    if strat.diverged and verifier.i < len(order):
        rec = lg.records[verifier.i]
        raise Divergence(rec[0], rec[3], rec, None, f"the recorded event was never produced ({strat.diverged})")
    if upto is None:
        if verifier.i < len(lg.records):
            rec = lg.records[verifier.i]
            raise Divergence(rec[0], rec[3], rec, None, "the recorded event was never produced")
        recorded_limit = lg.header.get("max_events", lg.system.default_max_events)
        if res.sched.enabled() and len(lg.records) < recorded_limit and not res.sched.halted:
            nxt = res.sched.channels[res.sched.enabled()[0]][0]
            raise Divergence(len(lg.records) + 1, nxt.dst, None,
                             [len(lg.records) + 1, 0, nxt.src, nxt.dst, nxt.type, nxt.cause,
                              nxt.chan_seq, nxt.payload],
                             "the run goes on past the end of the log")
    if not keep_sched:
        res.sched = None
    res.log = str(path)
    return res, lg


def state_at(path: str, factory: SystemFactory, n: int) -> dict[str, dict[str, Any]]:
    """Every actor's snapshot right after event `n` (0 = before the first delivery)."""
    res, _lg = replay(path, factory, upto=n, keep_sched=True)
    return {name: a.snapshot() for name, a in res.sched.actors.items()}
