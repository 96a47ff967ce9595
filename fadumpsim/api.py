"""The replay layer bound to fadump scenarios: what the CLI, tests and users call.

`fadumpsim.replay` is generic (it runs any `replay.system.System`); these wrappers
accept a `Scenario`, a `.toml` path or a built-in name and supply the scenario
system and its factory, so callers never pass the factory themselves.
"""
from __future__ import annotations

from typing import Any

from fadumpsim import sim
from fadumpsim.replay import explore as _explore
from fadumpsim.replay import minimize as _minimize
from fadumpsim.replay import replayer as _replayer
from fadumpsim.scenario import Scenario, load as load_scenario

factory = sim.system_from_data


def system(sc: Scenario | str | sim.ScenarioSystem) -> sim.ScenarioSystem:
    """A ScenarioSystem from a Scenario, a `.toml` path or a built-in name."""
    if isinstance(sc, str):
        sc = load_scenario(sc)
    return sim.system(sc)


def record(sc: Scenario | str, path: str, **kw: Any) -> sim.RunResult:
    """Run the scenario writing every delivery to the event log at `path`."""
    return _replayer.record(system(sc), path, **kw)


def load(path: str, *, allow_damage: bool = False) -> _replayer.LoadedLog:
    """Read a log and its scenario."""
    return _replayer.load(path, factory, allow_damage=allow_damage)


def replay(path: str, **kw: Any) -> tuple[sim.RunResult, _replayer.LoadedLog]:
    """Re-execute a log and verify every event (raises Divergence)."""
    return _replayer.replay(path, factory, **kw)


def state_at(path: str, n: int) -> dict[str, dict[str, Any]]:
    """Every actor's snapshot right after event `n`."""
    return _replayer.state_at(path, factory, n)


def explore(sc: Scenario | str, *args: Any, **kw: Any) -> _explore.ExploreResult:
    """Explore schedules of a scenario (see replay/explore.py)."""
    return _explore.explore(system(sc), *args, **kw)


def minimize(path: str, out: str | None = None, **kw: Any) -> _minimize.MinimizeResult:
    """Shrink a failing log (see replay/minimize.py); constraints told in kernel terms."""
    from fadumpsim.explain import constraint_text
    res = _minimize.minimize(path, factory, out, **kw)
    for c in res.constraints:
        c.text = constraint_text(res.records, c.before_seq, c.after_seq)
    if res.constraints:
        res.story = [c.text for c in res.constraints]
    return res


def live_run(sc: Scenario | str, path: str, **kw: Any) -> Any:
    """Run with racing actor threads (see replay/live.py); the log replays scheduled."""
    from fadumpsim.replay.live import live_run as _live_run
    return _live_run(system(sc), path, **kw)
