"""`fadumpsim swarm` (registered by fadumpsim/cli.py).

Module-level imports stay light (click only); the generator, the swarm loop and rich
are imported when the command runs.
"""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from fadumpsim.cli_common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, ProgressBar


def _profiles() -> list[str]:
    from fadumpsim.actors.machine import PROFILES
    return list(PROFILES)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profile", default="rfc-v6", show_default=True,
              help="Kernel profile of every generated scenario (rfc-v6, classic, ...).")
@click.option("--seeds", type=click.IntRange(1), default=None,
              help="How many seeds to run (default 100 unless --time is given).")
@click.option("--time", "time_limit", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="S", help="Run seeds until S seconds have passed.")
@click.option("--seed-start", type=click.IntRange(0), default=0, show_default=True,
              help="First seed.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Worker processes (or Dask workers with --scheduler local).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on Dask: 'local' or a scheduler address (tcp://host:8786).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Force a generator knob: udev_reload, hotplug_lock, nonmovable, faults, "
                   "crash = true|false|any; revert = STEP[,STEP]|any; udev_rule = NAME|any; "
                   "flavour = powervm|qemu|any; max_memory = SIZE.")
@click.option("--out", type=click.Path(file_okay=False), default="swarm-out", show_default=True,
              help="Directory for the findings (scenario + logs) and swarm.json.")
@click.option("--minimize-runs", type=click.IntRange(0), default=None,
              help="Candidate runs a minimization may spend per finding (0: save the "
                   "recorded log without minimizing; default 400).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, only the summary.")
def swarm_cmd(profile: str, seeds: int | None, time_limit: float | None, seed_start: int,
              workers: int, scheduler: str | None, settings: tuple[str, ...], out: str,
              minimize_runs: int | None, as_json: bool, quiet: bool) -> None:
    """Generate a world per seed and look for failures nobody wrote a scenario for.

    Seed N gives a scenario (machine of 2GB..64TB, command line, workload, hotplug
    storm, kdump service, firmware faults, a crash, capture) and a seeded random or
    PCT schedule. Each distinct failure is saved in --out as a scenario file and a
    minimized log that replays to it. The same seeds give the same findings with any
    number of workers. Exit 0: nothing found; 1: at least one finding; 2: bad input.
    Ctrl-C stops and keeps what was found.

    \b
    Examples:
      fadumpsim swarm --seeds 300
      fadumpsim swarm --profile classic --time 60 --workers 2 --json
      fadumpsim swarm --seeds 200 --set hotplug_lock=true --set udev_reload=false
    """
    from fadumpsim.strategies import Knobs
    from fadumpsim.swarm import swarm
    if profile not in _profiles():
        _usage(f"swarm: unknown profile {profile!r} (expected {', '.join(_profiles())})")
    try:
        knobs = Knobs.parse(profile, settings)
    except ValueError as e:
        _usage(f"swarm: {e}")
        return
    if seeds is None and time_limit is None:
        seeds = 100
    show_bar = not quiet and not as_json and sys.stderr.isatty()
    kw: dict[str, Any] = dict(seeds=seeds, seed_start=seed_start, time_limit=time_limit,
                              knobs=knobs, workers=workers, scheduler_address=scheduler, out=out)
    if minimize_runs is not None:
        kw["minimize_runs"] = minimize_runs
    try:
        if show_bar:
            with ProgressBar(seeds, f"swarm {profile}", unit="seeds", found="finding(s)",
                             rate_format=">6.1f") as bar:
                res = swarm(profile, progress=bar, **kw)
        else:
            res = swarm(profile, **kw)
    except OSError as e:
        _usage(f"dask scheduler {scheduler}: {e}" if scheduler else f"{out}: {e}")
        return
    if res.interrupted:
        click.echo(f"fadumpsim: interrupted: partial result of {res.seeds} seed(s) "
                   "(every finding saved so far is kept)", err=True)
    if as_json:
        click.echo(json.dumps(res.to_json(), indent=2))
    else:
        for line in res.summary_lines():
            click.echo(line)
    sys.exit(EXIT_FAIL if res.failures else EXIT_OK)


def _usage(msg: str) -> None:
    click.echo(f"fadumpsim: {msg}", err=True)
    sys.exit(EXIT_USAGE)
