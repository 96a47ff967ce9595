"""Build the actor system for a scenario, run it, and judge the result.

This is the one place that knows which actors exist: firmware, kernel, hotplug,
capture, and one actor per script. Everything else goes through events.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from fadumpsim.actors.firmware import Firmware
from fadumpsim.actors.hotplug import Hotplug
from fadumpsim.actors.kernel.actor import Kernel
from fadumpsim.actors.script import Script
from fadumpsim.events import types
from fadumpsim.events.envelope import Event
from fadumpsim import __version__
from fadumpsim.expect import evaluate
from fadumpsim.invariants import Checker
from fadumpsim.scenario import Scenario
from fadumpsim.verdict import judge
from fadumpsim.replay.runtime import ActorFailure, Scheduler
from fadumpsim.replay.strategies import Channel, FifoStrategy, Strategy, make_strategy

ACTOR_NAMES = ("firmware", "kernel", "hotplug", "capture")
DEFAULT_MAX_EVENTS = 200_000


@dataclass
class RunResult:
    scenario: Scenario
    seed: int
    strategy: str
    events: int
    transcript: list[dict[str, Any]]
    kernel_log: list[str]
    violations: list[dict[str, Any]]
    expectations: list[dict[str, Any]]
    dump: dict[str, Any]
    memtotal_mb: int
    registered: bool
    trace: list[Channel] = field(default_factory=list)
    failure: str | None = None
    log: str | None = None
    sched: Scheduler | None = None
    #: host I/O errors writing --dump-dir files: the run is unaffected, the CLI exits 2
    host_errors: list[OSError] = field(default_factory=list)

    @property
    def unexpected_violations(self) -> list[dict[str, Any]]:
        """Violations the scenario did not announce in `[expect] violations`."""
        allowed = set(self.scenario.expect.get("violations", []))
        return [v for v in self.violations if v["invariant"] not in allowed]

    @property
    def ok(self) -> bool:
        return not self.unexpected_violations and all(e["ok"] for e in self.expectations) \
            and not self.failure

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name, "seed": self.seed, "strategy": self.strategy,
            "events": self.events, "outcome": "pass" if self.ok else "fail",
            "expectations": self.expectations, "violations": self.violations,
            "dump": dict(self.dump),
            "memtotal_mb": self.memtotal_mb, "registered": self.registered,
            "transcript": self.transcript, "kernel_log": self.kernel_log, "log": self.log,
            "failure": self.failure,
        }


def log_header(sc: Scenario, seed: int, strategy: Strategy) -> dict[str, Any]:
    return {"simulator_version": __version__, "scenario": sc.data, "seed": seed,
            "strategy": strategy.name, "strategy_params": strategy.params()}


def build(sc: Scenario, sched: Scheduler, dump_dir: str | None = None) -> None:
    """Spawn every actor as a pykka actor in `sched` and power the partition on."""
    by_actor: dict[str, list[str]] = {a: [] for a in ACTOR_NAMES}
    dependents: dict[str, list[str]] = {s.name: [] for s in sc.scripts}
    for s in sc.scripts:
        by_actor[s.actor].append(s.name)
        for a in s.after:
            dependents[a].append(s.name)
    sched.spawn(Firmware, "firmware", sc.machine, sc.kernel.cmdline, by_actor["firmware"],
                sc.flavour)
    sched.spawn(Kernel, "kernel", sc.machine, sc.kernel,
                by_actor["kernel"] + by_actor["hotplug"], None)
    sched.spawn(Hotplug, "hotplug", sc.machine, sc.udev)
    sched.spawn(Kernel, "capture", sc.machine, sc.kernel, by_actor["capture"], dump_dir)
    for s in sc.scripts:
        sched.spawn(Script, s.name, s.actor, list(s.run), list(s.after), dependents[s.name])
    sched.wire()
    sched.inject("firmware", "sim.power_on", {})


def scheduled(sc: Scenario, strategy: str | Strategy) -> str | Strategy:
    """FIFO order under the scenario's [schedule] constraints (a pinned failure written by
    `minimize --scenario`) when it asks for FIFO; any other strategy is left alone."""
    if sc.schedule and (strategy == "fifo" or type(strategy) is FifoStrategy):
        from fadumpsim.replay.constraints import ConstraintStrategy
        return ConstraintStrategy(sc.schedule)
    return strategy


def run(sc: Scenario, *, seed: int = 0, strategy: str | Strategy = "fifo",
        sink: Callable[[list], None] | None = None, dump_dir: str | None = None,
        observers: Sequence[Callable[[Scheduler, Event], None]] = (),
        on_deliver: Callable[[Event, Sequence[Channel]], None] | None = None,
        max_events: int = DEFAULT_MAX_EVENTS, keep_sched: bool = False) -> RunResult:
    strategy = scheduled(sc, strategy)
    strat = make_strategy(strategy, seed) if isinstance(strategy, str) else strategy
    checker = Checker()
    sched = Scheduler(strat, sink=sink, observers=[checker, *observers], max_events=max_events)
    sched.on_deliver = on_deliver
    failure = None
    try:
        build(sc, sched, dump_dir)
        sched.run()
    except ActorFailure as e:
        failure = str(e)
    finally:
        sched.stop()
    return collect(sc, sched, checker, seed, strat.name, failure, keep_sched)


def collect(sc: Scenario, sched: Scheduler, checker: Checker, seed: int, strategy: str,
            failure: str | None, keep_sched: bool = False) -> RunResult:
    a = sched.actors
    kernel, capture = a["kernel"], a["capture"]
    verdict = judge(kernel, capture, a["firmware"])
    dump_seq = capture.saved_dumps[-1]["seq"] if verdict["status"] == "saved" else 0
    checker.finish(verdict, dump_seq, sched)
    transcript = []
    for s in sc.scripts:
        for r in a[s.name].results:
            transcript.append((r["sent"], s.name, r))
    transcript.sort(key=lambda x: x[0])
    tr = [{"script": name, "command": r["command"], "stdout": r["stdout"], "stderr": r["stderr"],
           "exit": r["exit"]} for _seq, name, r in transcript]
    klog = [line for _s, _t, line in sorted(kernel.log + capture.log, key=lambda x: x[0])]
    # a crashed kernel's state is frozen at the crash; without a crash, the end of the run
    registered = bool(kernel.fw.dump_registered if kernel.crashed or not capture.booted
                      else capture.fw.dump_registered)
    memtotal_mb = kernel.memtotal_after_boot >> 20
    res = RunResult(sc, seed, strategy, sched.seq, tr, klog,
                    [v.to_dict() for v in checker.violations], [], verdict, memtotal_mb,
                    registered, trace=list(sched.trace), failure=failure,
                    sched=sched if keep_sched else None,
                    host_errors=list(getattr(capture, "host_errors", [])))
    res.expectations = evaluate(sc, res)
    return res


@dataclass
class ScenarioSystem:
    """A scenario as a `replay.system.System`: what replay and exploration run.

    The replay layer never imports this module; it is handed a ScenarioSystem and,
    to rebuild one in a worker or from a log header, its `factory` (`system_from_data`).
    """

    scenario: Scenario
    actor_names: tuple[str, ...] = ACTOR_NAMES
    default_max_events: int = DEFAULT_MAX_EVENTS

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def data(self) -> dict[str, Any]:
        return self.scenario.data

    @property
    def source(self) -> str:
        return self.scenario.source

    @property
    def factory(self) -> Callable[[dict[str, Any], str], "ScenarioSystem"]:
        return system_from_data

    def run(self, **kw: Any) -> RunResult:
        if kw.get("max_events") is None:
            kw.pop("max_events", None)
        return run(self.scenario, **kw)

    def build(self, sched: Any, dump_dir: str | None = None) -> None:
        build(self.scenario, sched, dump_dir)

    def log_header(self, seed: int, strategy: Strategy) -> dict[str, Any]:
        return log_header(self.scenario, seed, strategy)

    def describe(self, type: str, payload: dict[str, Any]) -> str:
        from fadumpsim.render import describe
        return describe(type, payload)


def system_from_data(data: dict[str, Any], source: str) -> ScenarioSystem:
    """The SystemFactory of fadump scenarios (top-level, so that it pickles)."""
    return ScenarioSystem(Scenario(data, source=source))


def system(sc: Scenario | ScenarioSystem) -> ScenarioSystem:
    return sc if isinstance(sc, ScenarioSystem) else ScenarioSystem(sc)
