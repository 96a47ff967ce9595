"""`fadumpsim explore` and `fadumpsim minimize` (registered by fadumpsim/cli.py).

Module-level imports stay light (click only) so that `fadumpsim --help` is fast;
the exploration engine, rich and dask are imported when a command runs.
"""
from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from fadumpsim.cli_common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, ProgressBar


def _input_error(msg: str) -> None:
    click.echo(f"fadumpsim: {msg}", err=True)
    sys.exit(EXIT_USAGE)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("scenario")
@click.option("--strategy", type=click.Choice(["random", "pct", "exhaustive"]), default="random",
              show_default=True, help="How orderings are chosen.")
@click.option("--schedules", type=click.IntRange(1), default=200, show_default=True,
              help="How many schedules to run (exhaustive: at most).")
@click.option("--seed", type=click.IntRange(0, 1 << 44), default=0, show_default=True,
              help="Base seed (0..2^44): schedule i uses seed*1000003+i, which must fit the "
                   "log's unsigned 64 bits.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Worker processes (or Dask workers with --scheduler local).")
@click.option("--out", "out", type=click.Path(file_okay=False), default="explore-out",
              show_default=True, help="Directory for one replayable log per distinct failure.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--depth", type=click.IntRange(1, 20), default=3, show_default=True,
              help="PCT bug depth d.")
@click.option("--steps", type=click.IntRange(1), default=None,
              help="PCT step bound k (default: estimated from a FIFO run and a few probes).")
@click.option("--preemption-bound", type=click.IntRange(0), default=None,
              help="Exhaustive: at most this many preemptions per schedule.")
@click.option("--scheduler", "scheduler", default=None, metavar="ADDRESS",
              help="Run on Dask: 'local' starts a LocalCluster of --workers processes, "
                   "anything else is a scheduler address (tcp://host:8786). Dask ships work "
                   "as pickles: only connect to a scheduler you trust.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, only the summary.")
@click.option("--report", "report_out", type=click.Path(dir_okay=False), default=None,
              help="Also write one self-contained HTML page: every failure group with its "
                   "minimized story and sequence diagram.")
def explore_cmd(scenario: str, strategy: str, schedules: int, seed: int, workers: int, out: str,
                as_json: bool, depth: int, steps: int | None, preemption_bound: int | None,
                scheduler: str | None, quiet: bool, report_out: str | None) -> None:
    """Search orderings of SCENARIO for invariant or expectation failures.

    SCENARIO is a .toml file or a built-in scenario name. Each distinct failure is
    saved once as a replayable log in --out (replay it with `fadumpsim replay`,
    shrink it with `fadumpsim minimize`). Exit 0: no failure; 1: at least one
    failure; 2: bad input. Ctrl-C stops cleanly and reports what was found so far.

    \b
    Examples:
      fadumpsim explore udev-reload-window --strategy pct --schedules 500
      fadumpsim explore my.toml --strategy exhaustive --schedules 5000 --workers 2
      fadumpsim explore my.toml --scheduler local --workers 4 --json
    """
    from fadumpsim.events.logfile import LogFormatError
    from fadumpsim.scenario import ScenarioError, load
    if scheduler is not None and scheduler != "local" and \
            not re.fullmatch(r"(tcp|tls|inproc|ucx|ws|wss)://\S+", scheduler):
        _input_error(f"--scheduler {scheduler!r}: expected 'local' or a Dask scheduler "
                     "address such as tcp://host:8786")
    try:
        sc = load(scenario)
    except (ScenarioError, LogFormatError) as e:
        _input_error(str(e))
        return
    from fadumpsim.api import explore
    from pathlib import Path
    if report_out is not None and not Path(report_out).resolve().parent.is_dir():
        _input_error(f"{report_out}: directory {Path(report_out).parent} does not exist")
    show_bar = not quiet and not as_json and sys.stderr.isatty()
    label = f"{strategy} {sc.name}"
    kw: dict[str, Any] = dict(strategy=strategy, schedules=schedules, seed=seed, workers=workers,
                              out=out, preemption_bound=preemption_bound, pct_depth=depth,
                              pct_steps=steps, scheduler_address=scheduler)
    try:
        if show_bar:
            with ProgressBar(schedules, label, unit="sched", found="failure(s)") as bar:
                res = explore(sc, progress=bar, **kw)
        else:
            res = explore(sc, **kw)
    except (ScenarioError, LogFormatError) as e:
        _input_error(str(e))
        return
    except OSError as e:
        if scheduler is not None:
            _input_error(f"dask scheduler {scheduler}: {e}")
        _input_error(f"{out}: {e}")
        return
    if res.interrupted:
        click.echo(f"fadumpsim: interrupted: partial result of {res.schedules} schedule(s) "
                   "(every log saved so far is kept)", err=True)
    if report_out is not None:
        from fadumpsim.report import explore_report
        Path(report_out).write_text(explore_report(res), encoding="utf-8")
    if as_json:
        d = res.to_json()
        d["report"] = report_out
        click.echo(json.dumps(d, indent=2, default=str))
    else:
        if report_out is not None:
            click.echo(f"report: {report_out}")
        for line in res.summary_lines():
            click.echo(line)
        if res.failures:
            click.echo(f"next: fadumpsim minimize {res.failures[0].log}" if res.failures[0].log
                       else "")
    sys.exit(EXIT_FAIL if res.failures else EXIT_OK)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("log")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the minimized log (default: LOG's stem + .min.fadlog; an "
                   "existing file is never overwritten: a free name is picked).")
@click.option("--scenario", "scenario_out", type=click.Path(dir_okay=False), default=None,
              help="Also write a regression scenario that forces the found order "
                   "([schedule]); it fails while the bug exists, passes once fixed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def minimize_cmd(log: str, out: str | None, scenario_out: str | None, as_json: bool) -> None:
    """Shrink the failing run in LOG to the few orderings the failure needs.

    Finds a minimal set of "A before B" constraints between deliveries of
    independent causal chains: FIFO order under them fails the same way, and
    reversing any one of them (checked by running) makes the failure go away.
    Writes the minimized run as a replayable log and prints the constraints in
    kernel terms. Exit 0: minimized; 1: LOG does not fail (nothing to minimize);
    2: bad input.
    """
    from pathlib import Path
    from fadumpsim.events.logfile import LogFormatError
    from fadumpsim.scenario import ScenarioError
    from fadumpsim.api import minimize
    from fadumpsim.replay.minimize import MinimizeError
    if scenario_out is not None:
        if Path(scenario_out).exists():
            _input_error(f"{scenario_out}: already exists (not overwritten)")
        if not Path(scenario_out).resolve().parent.is_dir():
            _input_error(f"{scenario_out}: directory {Path(scenario_out).parent} does not exist")
    try:
        res = minimize(log, out)
    except (LogFormatError, ScenarioError, MinimizeError) as e:
        _input_error(str(e))
        return
    except OSError as e:
        _input_error(f"{log}: {e}")
        return
    pinned = None
    if scenario_out is not None and res.failed:
        from fadumpsim.api import load
        from fadumpsim.pin import write_pinned
        write_pinned(scenario_out, load(log).header["scenario"], res, log)
        pinned = scenario_out
    if as_json:
        d = res.to_json()
        d["scenario"] = pinned
        click.echo(json.dumps(d, indent=2, default=str))
        sys.exit(EXIT_OK if res.failed else EXIT_FAIL)
    if not res.failed:
        click.echo(f"{log}: the run passes (no invariant or expectation fails): nothing to "
                   "minimize")
        sys.exit(EXIT_FAIL)
    click.echo(f"failure: {res.key}: {res.message}")
    click.echo(f"original: {res.original_events} events, {res.original_deviations} deviation(s) "
               f"from FIFO order")
    click.echo(f"minimized: {res.events} events, {len(res.constraints)} ordering constraint(s), "
               f"{len(res.deviations)} deviation(s) from FIFO ({res.runs} candidate runs)")
    if res.constraints:
        click.echo("the failure needs (reversing any one makes it go away):")
        for i, c in enumerate(res.constraints, 1):
            mark = "" if c.necessary else f"  (reversed alone it still {c.flipped})"
            click.echo(f"  {i}. {c.text}{mark}")
    else:
        click.echo("story:")
        for line in res.story:
            click.echo(f"  {line}")
    click.echo(f"written: {res.out}" + ("" if res.reproduced else
                                       "  (WARNING: re-recording did not reproduce the failure)"))
    if pinned:
        click.echo(f"regression scenario: {pinned} (pytest {pinned} fails while the bug exists)")
    sys.exit(EXIT_OK)
