"""Search the orderings of a scenario for invariant or expectation failures.

`explore(sc, strategy=...)` runs many schedules of one scenario and groups the
failing ones by what failed:

* ``random``: schedule i uses RandomStrategy(seed * 1_000_003 + i).
* ``pct``: schedule i uses PctStrategy(seed * 1_000_003 + i, depth d, steps k),
  k estimated from a FIFO run's event count unless given; the PCT guarantee
  1/(n * k^(d-1)) per run (n = channels of the FIFO run) and 1-(1-p)^N over N runs
  is reported.
* ``exhaustive``: stateless model checking with source-DPOR and sleep sets
  (replay/dpor.py), optionally preemption-bounded.

Every schedule is judged exactly as `fadumpsim run` judges a run (RunResult.ok).
For each distinct failure one replayable log is written to `out`.
Schedules run in `workers` processes ('spawn' start method) or on a Dask cluster;
batches are fixed by schedule index (random/pct) and merged in order; exhaustive
search is one sequential DPOR (one task), so the result does not depend on the
number of workers. See docs/explore.md.
"""
from __future__ import annotations

import itertools
import logging
import os
import pickle
import queue
import signal
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from fadumpsim.replay.coverage import OrderCoverage, PairRecorder, describe_gap
from fadumpsim.replay.dpor import Execution, Job, JobResult, run_job
from fadumpsim.replay.strategies import ForcedStrategy, PctStrategy, RandomStrategy
from fadumpsim.replay.system import RunOutcome, System, SystemFactory

STRATEGIES = ("random", "pct", "exhaustive")
SEED_MUL = 1_000_003
#: schedules per task for random/pct (fixed: the partition must not depend on workers)
BATCH = 8
#: random/pct with workers > 1 stays in this process when the rest of the work, timed on
#: the first batch, would take less than this (seconds): spawning would only cost time
MIN_PARALLEL_S = 1.0
#: random probes (besides the FIFO run) used to estimate the PCT step bound k
PCT_PROBES = 8

Progress = Callable[[int, int, int], None]


def schedule_seed(seed: int, i: int) -> int:
    """The strategy seed of schedule `i` of an exploration seeded with `seed`."""
    return seed * SEED_MUL + i


# -- judging one run ----------------------------------------------------------------------------
def failure_of(res: RunOutcome) -> tuple | None:
    """None for a passing run, else (key, signature, invariants, expectation keys, dump, message).

    `key` is the first violated invariant the scenario does not expect (in the order
    they broke), else ``expect:<key>`` of the first failed expectation, or
    ``actor-failure`` when a handler raised. The signature adds the state the run failed in: every violated
    invariant, the dump status and every failed expectation key.
    """
    if res.ok:
        return None
    invs = tuple(v["invariant"] for v in res.violations)
    unexpected = res.unexpected_violations
    exp = tuple(e["key"] for e in res.expectations if not e["ok"])
    if res.failure:
        key = "actor-failure"
    elif unexpected:
        key = unexpected[0]["invariant"]
    elif exp:
        key = "expect:" + exp[0]
    else:  # pragma: no cover - ok is False for one of the reasons above
        key = "failure"
    status = res.dump.get("status", "?")
    sig = f"{'+'.join(invs) or '-'}|dump={status}|expect={'+'.join(exp) or '-'}"
    if res.failure:
        sig += "|actor-failure"
        msg = res.failure
    elif unexpected:
        msg = unexpected[0]["message"]
    else:
        msg = "; ".join(f"{e['key']}: expected {e['expected']!r}, got {e['actual']!r}"
                        for e in res.expectations if not e["ok"])
    return (key, sig, invs, exp, status, msg)


def failure_keys(res: RunOutcome) -> set[str]:
    """Every way a run fails: invariant names, ``expect:<key>``, ``actor-failure``."""
    out = {v["invariant"] for v in res.unexpected_violations}
    out |= {"expect:" + e["key"] for e in res.expectations if not e["ok"]}
    if res.failure:
        out.add("actor-failure")
    return out


# -- results ------------------------------------------------------------------------------------
@dataclass
class FailureGroup:
    invariant: str            # the key: invariant, expect:<key> or actor-failure
    signature: str
    count: int
    first_schedule: int       # 1-based schedule number
    log: str | None
    invariants: list[str]
    expectations: list[str]
    dump: str
    message: str
    reproduced: bool | None = None   # the saved log fails the same way when re-run

    def to_json(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "count": self.count, "log": self.log,
                "signature": self.signature, "first_schedule": self.first_schedule,
                "invariants": self.invariants, "expectations": self.expectations,
                "dump": self.dump, "message": self.message, "reproduced": self.reproduced}


@dataclass
class ExploreResult:
    scenario: str
    strategy: str
    seed: int
    workers: int
    limit: int
    schedules: int = 0          # executions judged (for exhaustive: distinct classes)
    blocked: int = 0            # exhaustive: sleep-set/bound-blocked executions, not judged
    complete: bool = False
    interrupted: bool = False
    failures: list[FailureGroup] = field(default_factory=list)
    failing_schedules: int = 0
    first_failure_at: int | None = None
    elapsed: float = 0.0
    coverage: OrderCoverage = field(default_factory=OrderCoverage)
    pct: dict[str, Any] | None = None
    actor_names: tuple[str, ...] = ()
    preemption_bound: int | None = None
    pruned: int = 0             # exhaustive: branches left out by the preemption bound
    out: str | None = None
    max_events: int = 0
    backend: str = "serial"
    #: invariant -> judged schedules (classes, for exhaustive) that violated it, expected
    #: violations included: for a complete exhaustive search, every reachable violation
    reachable: dict[str, int] = field(default_factory=dict)
    #: random/pct with workers > 1: a SharedStats (where the wall time went; not in the JSON)
    parallel: Any = None

    @property
    def distinct(self) -> int:
        return len(self.failures)

    @property
    def rate(self) -> float:
        n = self.schedules + self.blocked
        return n / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def complete_text(self) -> str:
        if self.strategy != "exhaustive":
            return "not applicable (sampling strategy)"
        if self.interrupted:
            return "no (interrupted)"
        if not self.complete:
            return f"no (stopped at the limit of {self.limit} schedules)"
        if self.preemption_bound is not None:
            return (f"yes, within the preemption bound {self.preemption_bound} "
                    f"({self.pruned} branch(es) beyond the bound left out)")
        return "yes: every ordering class (up to commuting independent deliveries) was run"

    def to_json(self) -> dict[str, Any]:
        cov = self.coverage.summary()
        return {
            "scenario": self.scenario, "strategy": self.strategy, "seed": self.seed,
            "workers": self.workers, "backend": self.backend,
            "schedules": self.schedules, "blocked": self.blocked, "limit": self.limit,
            "complete": self.complete, "interrupted": self.interrupted,
            "failures": [f.to_json() for f in self.failures],
            "distinct": self.distinct, "failing_schedules": self.failing_schedules,
            "first_failure_at": self.first_failure_at,
            "elapsed": round(self.elapsed, 3), "rate": round(self.rate, 1),
            "preemption_bound": self.preemption_bound, "pruned": self.pruned,
            "coverage": {k: v for k, v in cov.items() if k != "gaps"},
            "coverage_gaps": cov["gaps"],
            "pct_guarantee": self.pct, "out": self.out, "max_events": self.max_events,
            "reachable_violations": dict(sorted(self.reachable.items())),
        }

    def summary_lines(self) -> list[str]:
        lines = [f"explored {self.schedules} schedule(s) of {self.scenario!r} with "
                 f"{self.strategy} (seed {self.seed}, {self.workers} worker(s), {self.backend}) "
                 f"in {self.elapsed:.2f}s: {self.rate:.0f} schedules/s"]
        if self.blocked:
            lines.append(f"  {self.blocked} redundant execution(s) abandoned by sleep sets "
                         "or the preemption bound")
        if self.interrupted:
            lines.append("  interrupted: partial result, every log found so far is kept")
        if self.failures:
            lines.append(f"distinct failures: {self.distinct} ({self.failing_schedules} failing "
                         f"schedule(s); first after {self.first_failure_at} schedule(s))")
            for f in self.failures:
                lines.append(f"  {f.invariant}: {f.count}x, first at schedule {f.first_schedule}, "
                             f"dump {f.dump}: {f.message}")
                lines.append(f"      log: {f.log or '(not saved)'}"
                             + ("" if f.reproduced in (None, True) else "  (WARNING: the log "
                                "did not reproduce the failure)"))
        else:
            lines.append("no failure found")
        lines.append(f"complete: {self.complete_text()}")
        if self.pct:
            lines.append(f"pct: {self.pct['text']}")
        # the four actors first (scripts only ever see start/done/result in causal order)
        gaps = sorted(self.coverage.gaps(),
                      key=lambda g: (g[0] not in self.actor_names, g))
        lines.append(f"ordering coverage: {len(self.coverage.both())} type pair(s) seen in both "
                     f"orders, {len(gaps)} gap(s) (could reorder, seen in one order only), "
                     f"{len(self.coverage.causal())} never reorder (one causes the other)")
        for g in gaps[:12]:
            lines.append(f"  {describe_gap(g)}")
        if len(gaps) > 12:
            lines.append(f"  ... {len(gaps) - 12} more (--json lists all)")
        return lines


# -- tasks (run in workers; top-level so that they pickle) ------------------------------------
def sample_task(factory: SystemFactory, data: dict[str, Any], source: str, strategy: str,
                seed: int, indices: Sequence[int], depth: int, steps: int) -> list[Execution]:
    """Run the random/pct schedules `indices`."""
    system = factory(data, source)
    out = []
    seen: set = set()  # coverage is a union: ship each pair once per task, not per schedule
    for i in indices:
        s = schedule_seed(seed, i)
        strat = RandomStrategy(s) if strategy == "random" else PctStrategy(s, depth, steps)
        pairs = PairRecorder()
        res = system.run(seed=s, strategy=strat,
                      on_deliver=lambda ev, _c, p=pairs: p(ev.dst, ev.type, ev.cause, ev.src))
        f = failure_of(res)
        new = pairs.pairs - seen
        seen |= new
        out.append(Execution(None, f is None, f, res.events,
                             list(res.trace) if f is not None else None,
                             frozenset(new),
                             tuple(v["invariant"] for v in res.violations)))
    return out


def dpor_task(factory: SystemFactory, data: dict[str, Any], source: str, job: Job,
              bound: int | None, local_budget: int) -> JobResult:
    """Explore one DPOR job (see replay/dpor.py)."""
    system = factory(data, source)
    return run_job(system, job, bound=bound, local_budget=local_budget, judge=failure_of)


def _call(packed: tuple) -> Any:
    fn, args = packed
    return fn(*args)


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C


@contextmanager
def children_deaf_to_sigint() -> Iterator[None]:
    """Start worker processes inside this block: they never see Ctrl-C.

    A terminal sends SIGINT to its whole foreground process group, helpers included;
    a helper hit while it starts (before `_worker_init` runs), or a Dask nanny/worker
    (no such hook), prints its own KeyboardInterrupt traceback. An ignored signal stays
    ignored through fork and exec (a blocked mask does not survive multiprocessing's
    spawn), and Python and asyncio leave an ignored SIGINT alone, so every process
    started here, and every one it starts (a nanny restarting its worker), ignores
    SIGINT for life; this process alone handles Ctrl-C and stops them (terminate,
    cluster close). Meanwhile SIGINT is also blocked in this thread, so a Ctrl-C that
    arrives while the workers start stays pending and is raised when the block ends
    (Linux queues a blocked signal even while it is ignored). Outside the main thread
    Python cannot change signal handlers: then this does nothing.
    """
    import threading
    if threading.current_thread() is not threading.main_thread() or \
            not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


# -- executors ---------------------------------------------------------------------------------
class _Serial:
    name = "serial"

    def imap(self, fn: Callable, args: Iterable[tuple]) -> Iterator[Any]:
        for a in args:
            yield fn(*a)

    def close(self, terminate: bool = False) -> None:
        pass


class _Pool:
    name = "processes"

    def __init__(self, n: int) -> None:
        import multiprocessing as mp
        # 'spawn': a fresh interpreter per worker, nothing inherited but sys.path
        self.pool: Any = None
        try:
            with children_deaf_to_sigint():
                self.pool = mp.get_context("spawn").Pool(n, initializer=_worker_init)
        except BaseException:  # a Ctrl-C held back while the helpers started
            self.close(terminate=True)
            raise

    def imap(self, fn: Callable, args: Iterable[tuple]) -> Iterator[Any]:
        return self.pool.imap(_call, ((fn, a) for a in args), chunksize=1)

    def close(self, terminate: bool = False) -> None:
        _close_pool(self.pool, terminate)


#: guided chunks: each is 1/(GUIDE * participants) of what is left (at least BATCH), so
#: the first are big (few round trips) and the last ones small (nobody waits long for a
#: straggler at the end)
GUIDE = 4
#: seconds of work in the biggest chunk (timed on the first batch)
CHUNK_S = 0.5


def helper_context() -> Any:
    """The multiprocessing context for `_Shared`'s helpers.

    'fork' on Linux when this process runs no other thread: the helper starts in a few
    ms with every module already imported (a spawned one pays ~0.3 CPU-s of imports
    first, ~15 % of 1,000 schedules). A scheduled run starts no thread (pykka actors are
    driven by the scheduler), so after the first batch there is only the main thread;
    with any other thread alive (a rich progress bar's refresher, a Dask client) a forked
    child could inherit a lock held by it: then 'spawn'. Results do not depend on the
    start method: a schedule depends only on its index.
    """
    import multiprocessing as mp
    import sys
    import threading
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return mp.get_context("fork")
    return mp.get_context("spawn")


def _grab(counter: Any, n: int, cap: int, participants: int) -> range | None:
    """Take the next guided chunk of schedule indices off the shared counter (None: all
    taken). Each is 1/(GUIDE * participants) of what is left, at least BATCH, at most
    `cap`: whoever is free takes the next one, so nobody waits for work to be handed out."""
    with counter.get_lock():
        start = counter.value
        if start >= n:
            return None
        size = max(BATCH, min(cap, -(-(n - start) // (GUIDE * participants))))
        stop = min(start + size, n)
        counter.value = stop
    return range(start, stop)


def _helper_loop(counter: Any, results: Any, n: int, cap: int, participants: int,
                 head: tuple, tail: tuple) -> None:
    """A `_Shared` helper: take chunks until none is left, send each one's executions
    (start, stop, executions) to the parent; an exception is sent instead, once."""
    _worker_init()
    try:
        while (c := _grab(counter, n, cap, participants)) is not None:
            results.put((c.start, c.stop, sample_task(*head, c, *tail)))
    except Exception as e:  # noqa: BLE001 - re-raised in the parent
        try:
            pickle.dumps(e)
        except Exception:  # noqa: BLE001
            e = RuntimeError(f"explore helper failed: {e!r}")
        results.put(("error", e, None))


@dataclass
class SharedStats:
    """Where the parallel run's wall time went (for benchmarks; not in the JSON)."""
    start_method: str = ""
    start_s: float = 0.0          # starting the helper processes (this process)
    first_result_s: float = 0.0   # helpers started -> first helper chunk seen here
    waited_s: float = 0.0         # this process blocked on helper results (the tail)
    chunks_self: int = 0
    chunks_helpers: int = 0
    sizes: list[int] = field(default_factory=list)


class _Shared:
    """Random/PCT schedules shared between this process and `workers - 1` helpers.

    This process runs the first batch itself and times it; when the rest would take
    less than `min_parallel_s` it simply goes on alone. Otherwise it starts the helpers
    (forked when safe, see `helper_context`). From then on every participant, this
    process included, takes the next chunk off one shared counter whenever it is free
    (`_grab`: guided sizes, big first, `BATCH` at the end), so no helper ever waits for
    this process to hand out work; helpers send each chunk's executions back on a queue
    that this process reads between its own chunks. Every chunk's schedules are fixed by
    index and results are merged in schedule order: the outcome does not depend on who
    ran what, nor on chunk sizes.
    """

    def __init__(self, workers: int, min_parallel_s: float) -> None:
        self.workers = workers
        self.min_parallel_s = min_parallel_s
        self.helpers: list[Any] = []
        self.results: Any = None
        self.name = "serial"
        self.stats = SharedStats()

    def sample(self, system: System, merger: _Merger, strategy: str, n: int, seed: int,
               depth: int, steps: int) -> None:
        head = (system.factory, system.data, system.source, strategy, seed)
        tail = (depth, steps)

        def merge(c: Sequence[int], execs: list[Execution]) -> None:
            for i, e in zip(c, execs):
                merger.add(e, schedule_seed(seed, i))

        first = range(min(BATCH, n))
        t0 = time.perf_counter()
        execs = sample_task(*head, first, *tail)
        per = (time.perf_counter() - t0) / max(1, len(first))
        merge(first, execs)
        rest = n - len(first)
        if rest <= 0:
            return
        if rest * per < self.min_parallel_s or rest <= BATCH:
            # ranges of BATCH: `--schedules 100000000` never holds a list of them
            for a in range(len(first), n, BATCH):
                c = range(a, min(a + BATCH, n))
                merge(c, sample_task(*head, c, *tail))
            return
        # ...but at most ~CHUNK_S of work: progress moves and memory stays small even for
        # `--schedules 100000000`
        cap = max(BATCH, int(CHUNK_S / max(per, 1e-6)))
        st = self.stats
        ctx = helper_context()
        st.start_method = ctx.get_start_method()
        counter = ctx.Value("q", len(first))
        self.results = results = ctx.Queue()
        t1 = time.perf_counter()
        with children_deaf_to_sigint():
            for _ in range(self.workers - 1):
                p = ctx.Process(target=_helper_loop, daemon=True,
                                args=(counter, results, n, cap, self.workers, head, tail))
                p.start()
                self.helpers.append(p)
        t2 = time.perf_counter()
        st.start_s = t2 - t1
        self.name = "processes"
        try:
            self._share(head, tail, n, cap, counter, results, merge, nxt=len(first), t2=t2)
        except BaseException:  # an error or a Ctrl-C: the helpers stop now, not at the end
            self.close(terminate=True)
            raise

    def _share(self, head: tuple, tail: tuple, n: int, cap: int, counter: Any, results: Any,
               merge: Callable[[Sequence[int], list[Execution]], None], nxt: int,
               t2: float) -> None:
        """Take chunks off the counter until none is left, merging everybody's results
        in schedule order as they become contiguous; then wait for the helpers' last."""
        st = self.stats
        done: dict[int, tuple[range, list[Execution]]] = {}

        def absorb(item: tuple) -> None:
            a, b, execs = item
            if a == "error":
                raise b
            done[a] = (range(a, b), execs)
            st.chunks_helpers += 1
            if not st.first_result_s:
                st.first_result_s = time.perf_counter() - t2

        def merge_ready() -> None:
            nonlocal nxt
            while nxt in done:
                c, execs = done.pop(nxt)
                st.sizes.append(len(c))
                merge(c, execs)
                nxt = c.stop

        while (c := _grab(counter, n, cap, self.workers)) is not None:
            done[c.start] = (c, sample_task(*head, c, *tail))
            st.chunks_self += 1
            while True:  # whatever the helpers finished meanwhile
                try:
                    absorb(results.get(False))
                except queue.Empty:
                    break
            merge_ready()
        tw = time.perf_counter()
        while nxt < n:  # only the helpers' last chunks are left
            try:
                absorb(results.get(timeout=0.5))
            except queue.Empty:
                dead = [p for p in self.helpers if p.exitcode not in (None, 0)]
                if dead or not any(p.is_alive() for p in self.helpers):
                    # a helper killed (OOM killer, a signal): its chunk will never come
                    code = dead[0].exitcode if dead else 0
                    raise RuntimeError(f"an explore helper process ended (exit code {code}) "
                                       f"before sending schedules {nxt}..") from None
                continue
            merge_ready()
        st.waited_s = time.perf_counter() - tw

    def close(self, terminate: bool = False) -> None:
        """Stop the helpers: they have ended (all work taken), or kill them after a Ctrl-C."""
        for p in self.helpers:
            if terminate:
                p.terminate()
            p.join()
        self.helpers.clear()
        if self.results is not None:
            self.results.close()
            self.results = None


@contextmanager
def _environ(**env: str) -> Iterator[None]:
    """Processes started inside get these environment variables (unless already set)."""
    added = {k: v for k, v in env.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _close_pool(pool: Any, terminate: bool) -> None:
    """Stop a multiprocessing pool: let it finish, or kill it after a Ctrl-C."""
    if pool is None:
        return
    if terminate:
        pool.terminate()
    else:
        pool.close()
    pool.join()


class _Dask:
    name = "dask"
    #: seconds a LocalCluster gets to stop its workers after a Ctrl-C
    CLOSE_TIMEOUT = 5.0

    def __init__(self, address: str, workers: int, processes: bool) -> None:
        from dask.distributed import Client, LocalCluster  # lazily: dask is heavy
        self.cluster = None
        self.client: Any = None
        self.inflight: deque = deque()
        try:
            if address == "local":
                # workers log WARNING/ERROR noise when stopped mid-task or mid-heartbeat (after a
                # Ctrl-C); a failing task still raises here, in the client
                with children_deaf_to_sigint(), _environ(DASK_LOGGING__DISTRIBUTED="critical"):
                    # no dashboard; the scheduler's HTTP routes on a free port, not 8787
                    # (taken by any other cluster: a warning on stderr)
                    self.cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1,
                                                processes=processes, dashboard_address=None,
                                                scheduler_kwargs={"dashboard_address": ":0"})
                self.client = Client(self.cluster)
            else:
                self.client = Client(address)
        except BaseException:  # a Ctrl-C (or an error) while starting: stop what started
            self.close(terminate=True)
            raise
        self.window = 4 * max(1, workers)

    def imap(self, fn: Callable, args: Iterable[tuple]) -> Iterator[Any]:
        it = iter(args)
        q = self.inflight
        for a in itertools.islice(it, self.window):
            q.append(self.client.submit(fn, *a, pure=False))
        while q:
            r = q[0].result()
            q.popleft()
            a = next(it, None)
            if a is not None:
                q.append(self.client.submit(fn, *a, pure=False))
            yield r

    def close(self, terminate: bool = False) -> None:
        """Close the client (and the LocalCluster). After a Ctrl-C, cancel what is in
        flight and keep Dask's shutdown chatter (rescheduling, killing workers still
        busy) off the terminal: the user asked for it to stop."""
        quiet = logging.getLogger("distributed")
        level = quiet.level
        if terminate:
            quiet.setLevel(logging.CRITICAL)
        kw = {"timeout": self.CLOSE_TIMEOUT} if terminate else {}
        try:
            # no client.cancel after a Ctrl-C: it has no timeout and could wait for ever on
            # a busy loop; closing the cluster stops the work anyway
            if self.client is not None:
                self._quietly(terminate, self.client.close, **kw)
            if self.cluster is not None:
                self._quietly(terminate, self.cluster.close, **kw)
                if terminate:  # whatever worker is still alive after the timeouts
                    import multiprocessing
                    for child in multiprocessing.active_children():
                        if child.name.startswith("Dask"):
                            child.kill()
                            child.join(self.CLOSE_TIMEOUT)
        finally:
            self.inflight.clear()
            quiet.setLevel(level)

    @staticmethod
    def _quietly(terminate: bool, fn: Callable, *args: Any, **kw: Any) -> None:
        """After a Ctrl-C a slow or failing shutdown step must not become a traceback:
        the work is over, and leftovers die with this process (Dask's own atexit)."""
        try:
            fn(*args, **kw)
        except Exception:  # noqa: BLE001
            if not terminate:
                raise


class Interruptible:
    """`with Interruptible(ex) as run:` -- Ctrl-C ends the work early and is remembered
    (`run.interrupted`); the executor is always closed, terminated after a Ctrl-C. Shared
    by explore and swarm, whose partial results are kept."""

    def __init__(self, ex: Any) -> None:
        self.ex = ex
        self.interrupted = False

    def __enter__(self) -> "Interruptible":
        return self

    def __exit__(self, typ: Any, exc: Any, tb: Any) -> bool:
        if typ is not None and issubclass(typ, KeyboardInterrupt):
            self.interrupted = True
        try:
            self.ex.close(terminate=self.interrupted)
        except KeyboardInterrupt:  # pragma: no cover - a second Ctrl-C while closing
            self.interrupted = True
        return self.interrupted and (typ is None or issubclass(typ, KeyboardInterrupt))


def make_executor(workers: int = 1, scheduler_address: str | None = None,
                  dask_processes: bool = True) -> Any:
    """An executor with `imap(fn, args)` (results in submission order), `close()` and
    `name`: Dask when a scheduler address is given, processes for workers > 1, else
    serial. Shared by explore and the swarm."""
    if scheduler_address is not None:
        return _Dask(scheduler_address, workers, dask_processes)
    if workers > 1:
        return _Pool(workers)
    return _Serial()


# -- merging results ----------------------------------------------------------------------------
class _Merger:
    """Folds executions (in schedule order) into an ExploreResult; saves one log per failure."""

    def __init__(self, system: System, result: ExploreResult, out: str | None,
                 progress: Progress | None, total: int) -> None:
        self.system = system
        self.r = result
        self.out = out
        self.progress = progress
        self.total = total
        self.groups: dict[tuple[str, str], FailureGroup] = {}

    def add(self, ex: Execution, seed: int = 0) -> None:
        r = self.r
        if ex.blocked:
            r.blocked += 1
        else:
            r.schedules += 1
            n = r.schedules
            r.max_events = max(r.max_events, ex.events)
            if ex.pairs:
                r.coverage.add(ex.pairs)
            for inv in ex.violations:
                r.reachable[inv] = r.reachable.get(inv, 0) + 1
            if ex.failure is not None:
                r.failing_schedules += 1
                if r.first_failure_at is None:
                    r.first_failure_at = n
                key, sig, invs, exp, status, msg = ex.failure
                g = self.groups.get((key, sig))
                if g is None:
                    g = FailureGroup(key, sig, 0, n, None, list(invs), list(exp), status, msg)
                    self.groups[(key, sig)] = g
                    r.failures.append(g)
                    if self.out is not None and ex.trace is not None:
                        g.log, g.reproduced = save_failure(self.system, ex.trace, self.out, key, sig,
                                                           seed)
                g.count += 1
        if self.progress is not None:
            self.progress(r.schedules + r.blocked, self.total, len(r.failures))


def _slug(key: str) -> str:
    s = "".join(c if c.isalnum() or c in "-_." else "-" for c in key.replace("expect:", "expect-"))
    return s.strip("-.") or "failure"


def free_path(directory: str | os.PathLike[str], stem: str, suffix: str = ".fadlog") -> str:
    """`directory/stem-N.suffix` with the smallest N >= 1 naming no existing file."""
    from fadumpsim.replay.replayer import path_is_free
    d = Path(directory)
    for n in itertools.count(1):
        p = d / f"{stem}-{n}{suffix}"
        if path_is_free(p):
            return str(p)
    raise AssertionError("unreachable")


def save_failure(system: System, trace: Sequence[tuple[str, str]], out: str, key: str,
                 signature: str, seed: int = 0) -> tuple[str, bool]:
    """Re-run `trace` into a replayable log in `out`; (path, it failed the same way)."""
    from fadumpsim.replay.replayer import record
    os.makedirs(out, exist_ok=True)
    path = free_path(out, _slug(key))
    res = record(system, path, seed=seed, strategy=ForcedStrategy([tuple(c) for c in trace]),
                 durable=False)  # an internal re-recording: no fsync
    f = failure_of(res)
    return path, (f is not None and f[1] == signature)


# -- the entry point --------------------------------------------------------------------------------
def explore(system: System, strategy: str = "random", schedules: int = 100, seed: int = 0,
            workers: int = 1, out: str | None = None, preemption_bound: int | None = None,
            pct_depth: int = 3, pct_steps: int | None = None, progress: Progress | None = None,
            scheduler_address: str | None = None, *, dask_processes: bool = True,
            min_parallel_s: float = MIN_PARALLEL_S) -> ExploreResult:
    """Explore schedules of `system` (fadumpsim.api.explore takes a scenario or its name)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (expected {', '.join(STRATEGIES)})")
    if schedules < 1:
        raise ValueError("schedules must be at least 1")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if preemption_bound is not None and preemption_bound < 0:
        raise ValueError("the preemption bound must be >= 0")
    if pct_depth < 1:
        raise ValueError("pct depth must be >= 1")
    result = ExploreResult(system.name, strategy, seed, workers, schedules,
                           preemption_bound=preemption_bound if strategy == "exhaustive" else None,
                           out=out)
    t0 = time.perf_counter()
    early = False
    try:
        if scheduler_address is not None:
            ex: Any = _Dask(scheduler_address, workers, dask_processes)
        elif workers > 1 and strategy == "exhaustive":
            ex = _Pool(workers)
        elif workers > 1:
            ex = _Shared(workers, min_parallel_s)  # random/pct: this process works too
        else:
            ex = _Serial()
    except KeyboardInterrupt:  # Ctrl-C while workers start (they are stopped): no schedule run
        ex, early = _Serial(), True
    result.backend = ex.name
    result.actor_names = system.actor_names
    merger = _Merger(system, result, out, progress, schedules)
    with Interruptible(ex) as run:
        if early:
            raise KeyboardInterrupt
        if strategy == "exhaustive":
            _exhaustive(system, ex, merger, schedules, preemption_bound)
        else:
            steps = pct_steps
            if strategy == "pct":
                fifo = system.run()
                channels = len(set(fifo.trace))
                if steps is None:
                    # k must bound the run length: the FIFO run's event count, raised to
                    # the longest of a few random probes (a crash shortens FIFO runs)
                    probes = [system.run(seed=s, strategy=RandomStrategy(s)).events
                              for s in (schedule_seed(seed, -1 - p) for p in range(PCT_PROBES))]
                    steps = max(1, fifo.events, *probes)
                p = PctStrategy.guarantee(channels, steps, pct_depth)
                cum = 1.0 - (1.0 - p) ** schedules
                result.pct = {"depth": pct_depth, "steps": steps, "channels": channels,
                              "per_run": p, "cumulative": cum, "runs": schedules,
                              "text": f"a bug of depth <= {pct_depth} would be found with "
                                      f"probability >= {p:.3g} per run ({channels} channels, "
                                      f"k = {steps} steps), >= {cum:.3g} over {schedules} runs"}
            if isinstance(ex, _Shared):
                result.parallel = ex.stats
            _sample(system, ex, merger, strategy, schedules, seed, pct_depth, steps or 1)
            result.backend = ex.name
    result.elapsed = time.perf_counter() - t0
    result.interrupted = run.interrupted
    if run.interrupted:
        result.complete = False
    if result.pct is not None and result.max_events > result.pct["steps"]:
        result.pct["note"] = (f"some runs took {result.max_events} steps > k = "
                              f"{result.pct['steps']}: the bound holds for runs of at most k steps")
    return result


def _sample(system: System, ex: Any, merger: _Merger, strategy: str, n: int, seed: int,
            depth: int, steps: int) -> None:
    if isinstance(ex, _Shared):
        return ex.sample(system, merger, strategy, n, seed, depth, steps)
    # lazily: `--schedules 100000000` must not build its batch list first
    batches, submitted = itertools.tee(list(range(a, min(a + BATCH, n)))
                                       for a in range(0, n, BATCH))
    args = ((system.factory, system.data, system.source, strategy, seed, b, depth, steps)
            for b in submitted)
    for b, execs in zip(batches, ex.imap(sample_task, args)):
        for i, e in zip(b, execs):
            merger.add(e, schedule_seed(seed, i))


def _exhaustive(system: System, ex: Any, merger: _Merger, limit: int,
                bound: int | None) -> None:
    """One sequential source-DPOR search (a single job, run by the executor).

    The search is not split into jobs: splitting a DPOR tree across jobs made the number
    of classes run depend on the per-job budget (duplicates at the seams; the oracle
    test caught 54 -> 62/72 classes). A single job gives the same classes, the same
    order and the same schedule numbers for any number of workers and on Dask;
    `--workers` speeds up random and pct only.
    """
    r = merger.r
    args = [(system.factory, system.data, system.source, Job((), frozenset(), budget=limit),
             bound, limit)]
    for res in ex.imap(dpor_task, args):
        for e in res.executions:
            merger.add(e)
        r.pruned += res.pruned
        if res.entries:  # pragma: no cover - the root job has no ancestor to send them to
            raise AssertionError("DPOR: the root job returned backtrack entries")
        r.complete = not res.exported_jobs
