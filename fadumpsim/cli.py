"""The `fadumpsim` command line (README.md; the public contract is ../shared/docs/contract.md).

Exit status: 0 all good, 1 an expectation/invariant failed (or, for diff, the runs
differ), 2 bad usage or bad input (one line on stderr, no traceback unless --debug),
3 replay diverged from the record.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from fadumpsim.cli_common import (EXIT_DIVERGED, EXIT_FAIL, EXIT_OK, EXIT_USAGE, InputError,
                                  regular_file)


def _is_tty() -> bool:
    return sys.stdout.isatty() and os.environ.get("NO_COLOR") is None


def _load_scenario(spec: str | None) -> Any:
    from fadumpsim.scenario import ScenarioError, load
    try:
        return load(spec)
    except ScenarioError as e:
        raise InputError(str(e)) from None


def _default_log_path(sc: Any, spec: str | None) -> Path:
    """Beside the scenario file (or here for a built-in), never over an existing file."""
    from fadumpsim.replay.replayer import unused_path
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in sc.name)
    base = Path(spec).parent if spec and Path(spec).is_file() else Path(".")
    return Path(unused_path(base / f"{stem}.fadlog"))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fadumpsim")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Deterministic, replayable simulator of firmware-assisted dump (fadump) on IBM Power.

    \b
    Examples:
      fadumpsim run                          # the RFC v6 story on an 8GB partition
      fadumpsim run scenarios/udev-reload-window.toml --strategy random --seed 7
      fadumpsim replay rfc-v6-story.fadlog
      fadumpsim show rfc-v6-story.fadlog --format mermaid
      fadumpsim explore udev-reload-window --strategy exhaustive --schedules 500
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


#: seeds are recorded as msgpack unsigned 64-bit integers
SEED_RANGE = click.IntRange(0, (1 << 64) - 1)


@cli.command()
@click.argument("scenario", required=False)
@click.option("--seed", type=SEED_RANGE, default=0, show_default=True,
              help="Seed for random/pct (0..2^64-1).")
@click.option("--strategy", type=click.Choice(["fifo", "random", "pct"]), default="fifo",
              show_default=True, help="Which pending event is delivered next.")
@click.option("--depth", type=click.IntRange(1, 20), default=3, show_default=True,
              help="PCT bug depth d.")
@click.option("--steps", type=click.IntRange(1), default=200, show_default=True,
              help="PCT step bound k.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False),
              help="Event log to write (default: SCENARIO-NAME.fadlog, never overwritten).")
@click.option("--json", "as_json", is_flag=True, help="Print the result JSON object only.")
@click.option("--dump-dir", type=click.Path(file_okay=False),
              help="Write files that makedumpfile/cp create under DIR.")
@click.option("--quiet", "-q", is_flag=True, help="Only the verdict.")
@click.option("--trace", type=click.Choice(["off", "console", "json"]), default=None,
              help="Log every delivery with structlog to stderr (default: $FADUMPSIM_LOG or off).")
def run(scenario: str | None, seed: int, strategy: str, depth: int, steps: int,
        log_path: str | None, as_json: bool, dump_dir: str | None, quiet: bool,
        trace: str | None) -> None:
    """Run one scenario (a .toml file or a built-in name; default: rfc-v6-story).

    \b
    Example:
      fadumpsim run hotplug-protect-registered --log /tmp/x.fadlog
    """
    from fadumpsim.render import print_run
    from fadumpsim.api import record
    from fadumpsim.replay.strategies import make_strategy
    from fadumpsim.hostpaths import HostPathError, check_log_target, prepare_dump_dir
    sc = _load_scenario(scenario)
    observers = _tracing(trace, f"{sc.name}:{seed}:{strategy}")
    path = Path(log_path) if log_path else _default_log_path(sc, scenario)
    try:
        check_log_target(path, inputs=[scenario] if scenario else [], dump_dir=dump_dir)
        if dump_dir:
            prepare_dump_dir(dump_dir)
    except HostPathError as e:
        raise InputError(str(e)) from None
    if log_path and path.exists():
        click.echo(f"fadumpsim: note: replacing existing log {path}", err=True)
    strat = make_strategy(strategy, seed, depth=depth, steps=steps)
    try:
        res = record(sc, str(path), seed=seed, strategy=strat, dump_dir=dump_dir,
                     observers=observers)
    except OSError as e:  # the host's problem (disk full, permissions), not the simulation's
        raise InputError(host_error_text(e, path)) from None
    if res.host_errors:  # the log is complete and replays; the dump file is not there
        raise InputError(host_error_text(res.host_errors[0], dump_dir) +
                         f" (while writing the dump; the log {path} is complete)")
    if as_json:
        click.echo(json.dumps(res.to_json(), indent=2))
    else:
        print_run(res, quiet=quiet, color=_is_tty())
    sys.exit(EXIT_OK if res.ok else EXIT_FAIL)


def _tracing(trace: str | None, run_id: str) -> list[Any]:
    """structlog delivery logging on stderr, off unless asked (costs nothing when off)."""
    from fadumpsim.replay import tracing
    try:
        if trace is None:
            tracing.configure_from_env(stream=sys.stderr)
        else:
            tracing.configure(trace, stream=sys.stderr)
    except ValueError as e:
        raise InputError(f"${tracing.ENV_VAR}: {e}") from None
    return tracing.observers(run_id)


def host_error_text(e: OSError, path: Any) -> str:
    """One line naming the file and the errno (e.g. ENOSPC), for a host I/O error."""
    import errno as _errno
    name = _errno.errorcode.get(e.errno or 0, "EIO")
    return f"{e.filename or path}: {e.strerror or e} ({name})"


def _divergence_text(d: Any) -> str:
    from fadumpsim.render import timeline_text
    lines = [f"replay diverged at event #{d.seq} (actor {d.actor}): {d.why}"]
    lines.append("  recorded: " + (next(iter(timeline_text([d.recorded]))).strip() if d.recorded else "(nothing)"))
    lines.append("  now:      " + (next(iter(timeline_text([d.produced]))).strip() if d.produced else "(nothing)"))
    return "\n".join(lines)


@cli.command()
@click.argument("log", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result JSON object only.")
@click.option("--quiet", "-q", is_flag=True, help="Only the verdict.")
def replay(log: str, as_json: bool, quiet: bool) -> None:
    """Re-execute LOG (the log alone suffices) and verify every event against it."""
    from fadumpsim.events.logfile import LogFormatError
    from fadumpsim.render import print_run
    from fadumpsim.api import replay as do_replay
    from fadumpsim.replay.runtime import Divergence
    regular_file(log)
    try:
        res, lg = do_replay(log)
    except LogFormatError as e:
        raise InputError(str(e)) from None
    except Divergence as d:
        click.echo(_divergence_text(d), err=not as_json)
        if as_json:
            click.echo(json.dumps({"log": log, "diverged": True, "seq": d.seq, "actor": d.actor,
                                   "why": d.why, "recorded": d.recorded, "produced": d.produced},
                                  default=str))
        sys.exit(EXIT_DIVERGED)
    res.strategy = lg.header.get("strategy", res.strategy)
    if as_json:
        out = res.to_json()
        out["replayed"] = True
        click.echo(json.dumps(out, indent=2))
    else:
        print_run(res, quiet=quiet, color=_is_tty())
        click.echo(f"replay: all {res.events} events match the record")
    sys.exit(EXIT_OK if res.ok else EXIT_FAIL)


def _read(log: str) -> tuple[dict[str, Any], list[list[Any]], Any]:
    from fadumpsim.events.logfile import LogFormatError, LogReader
    from fadumpsim.replay.replayer import check_shape
    regular_file(log)
    try:
        r = LogReader(log)
        recs = r.records()
        check_shape(log, r.header, recs)
    except LogFormatError as e:
        raise InputError(str(e)) from None
    return r.header, recs, r.error


@cli.command()
@click.argument("log", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl", "mermaid"]), default="text",
              show_default=True)
def show(log: str, fmt: str) -> None:
    """Read-only timeline of LOG: one line per event (seq, time, src -> dst, type, fields)."""
    from fadumpsim.render import timeline_jsonl, timeline_mermaid, timeline_text
    header, recs, err = _read(log)
    if fmt == "text":
        sc = header.get("scenario", {})
        click.echo(f"# {sc.get('name', '?')}: seed {header.get('seed')}, strategy "
                   f"{header.get('strategy')}, {len(recs)} events")
        lines = timeline_text(recs)
    elif fmt == "jsonl":
        lines = timeline_jsonl(recs)
    else:
        scripts = [s.get("name") for s in header.get("scenario", {}).get("script", [])]
        lines = timeline_mermaid(recs, scripts)
    for line in lines:
        click.echo(line)
    if err is not None:
        raise InputError(str(err))


@cli.command()
@click.argument("log_a", type=click.Path(dir_okay=False))
@click.argument("log_b", type=click.Path(dir_okay=False))
@click.option("--context", type=click.IntRange(0), default=3, show_default=True,
              help="Matching events to show before the first difference.")
def diff(log_a: str, log_b: str, context: int) -> None:
    """The first event where two runs part, with both sides (exit 1 when they differ)."""
    from fadumpsim.render import timeline_text
    ha, ra, ea = _read(log_a)
    hb, rb, eb = _read(log_b)
    if ha.get("scenario") != hb.get("scenario"):
        click.echo("note: the two logs hold different scenarios", err=True)
    n = min(len(ra), len(rb))
    i = next((k for k in range(n) if ra[k] != rb[k]), None)
    if i is None and len(ra) == len(rb):
        click.echo(f"no difference: both runs have the same {len(ra)} events")
        for e, name in ((ea, log_a), (eb, log_b)):
            if e is not None:
                raise InputError(str(e))
        sys.exit(EXIT_OK)
    if i is None:
        i = n
    click.echo(f"the runs part at event #{i + 1}")
    for line in timeline_text(ra[max(0, i - context):i]):
        click.echo(f"  = {line}")
    click.echo(f"  A {next(iter(timeline_text([ra[i]])), '') if i < len(ra) else '(log A ends)'}")
    click.echo(f"  B {next(iter(timeline_text([rb[i]])), '') if i < len(rb) else '(log B ends)'}")
    if i < len(ra) and i < len(rb):
        fa, fb = ra[i], rb[i]
        names = ("seq", "time", "src", "dst", "type", "cause", "chan_seq", "payload")
        for k, (x, y) in enumerate(zip(fa, fb)):
            if x != y:
                click.echo(f"    {names[k]}: A={x!r}  B={y!r}")
    sys.exit(EXIT_FAIL)


@cli.command()
@click.argument("log", type=click.Path(dir_okay=False))
@click.option("--at", "at", type=int, required=True, help="Event seq (0 = before the first).")
@click.option("--actor", help="Only this actor (firmware, kernel, hotplug, capture or a script).")
@click.option("--json", "as_json", is_flag=True)
def state(log: str, at: int, actor: str | None, as_json: bool) -> None:
    """Every actor's state (or one actor's) right after event N of LOG."""
    from fadumpsim.events.logfile import LogFormatError
    from fadumpsim.api import load, state_at
    from fadumpsim.replay.runtime import Divergence
    regular_file(log)
    try:
        lg = load(log)
    except LogFormatError as e:
        raise InputError(str(e)) from None
    if not 0 <= at <= len(lg.records):
        raise InputError(f"{log}: --at {at} is outside 0..{len(lg.records)}")
    try:
        snaps = state_at(log, at)
    except Divergence as d:
        click.echo(_divergence_text(d), err=True)
        sys.exit(EXIT_DIVERGED)
    if actor is not None:
        if actor not in snaps:
            raise InputError(f"{log}: no actor named {actor!r} (actors: {', '.join(snaps)})")
        snaps = {actor: snaps[actor]}
    if as_json:
        click.echo(json.dumps({"at": at, "actors": snaps}, indent=2, default=str))
        return
    ev = lg.records[at - 1] if at else None
    click.echo(f"# state right after event #{at}" + (f": {ev[2]} -> {ev[3]} {ev[4]}" if ev else " (start)"))
    for name, snap in snaps.items():
        click.echo(f"[{name}]")
        for k, v in snap.items():
            click.echo(f"  {k}: {json.dumps(v, default=str)}")


def _register_optional() -> None:
    """Commands that live in their own modules (kept out of the start-up path)."""
    from fadumpsim.cli_inspect import inspect_cmd
    cli.add_command(inspect_cmd, "inspect")
    from fadumpsim.cli_explore import explore_cmd, minimize_cmd
    cli.add_command(explore_cmd, "explore")
    cli.add_command(minimize_cmd, "minimize")


_register_optional()


def main(argv: list[str] | None = None) -> None:
    """Entry point: click in non-standalone mode so every error is one line, exit 2."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = cli.main(args=argv, prog_name="fadumpsim", standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except SystemExit:
        raise
    except getattr(click.exceptions, "NoArgsIsHelpError", ()) as e:  # bare `fadumpsim`
        click.echo(e.ctx.get_help() if e.ctx else "")
        sys.exit(EXIT_OK)
    except click.UsageError as e:
        where = f" ({e.ctx.command_path})" if e.ctx else ""
        click.echo(f"fadumpsim: usage error{where}: {e.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("fadumpsim: aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("fadumpsim: interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001
        if debug:
            raise
        click.echo(f"fadumpsim: internal error: {type(e).__name__}: {e} (run with --debug for "
                   "the traceback)", err=True)
        sys.exit(EXIT_FAIL)


if __name__ == "__main__":  # pragma: no cover
    main()
