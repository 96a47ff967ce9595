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
@click.option("--debug", "_debug", is_flag=True,
              help="Show Python tracebacks for internal errors (as `fadumpsim --debug run`).")
def run(scenario: str | None, seed: int, strategy: str, depth: int, steps: int,
        log_path: str | None, as_json: bool, dump_dir: str | None, quiet: bool,
        trace: str | None, _debug: bool) -> None:
    """Run one scenario (a .toml file or a built-in name; default: rfc-v6-story).

    A scenario with `[kernel] hotplug_lock = true` is a counterfactual (what-if:
    registration takes the device-hotplug lock; no real kernel does): the verdict
    says so.

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
    from fadumpsim.events.logfile import LogBusyError
    from fadumpsim.sim import scheduled
    strat = scheduled(sc, make_strategy(strategy, seed, depth=depth, steps=steps))
    try:
        res = record(sc, str(path), seed=seed, strategy=strat, dump_dir=dump_dir,
                     observers=observers)
    except LogBusyError as e:  # another run holds the log name: exit 2
        raise InputError(f"{e.filename}: {e.strerror}") from None
    except OSError as e:  # the host's problem (disk full, permissions; LogWriteError): exit 2
        raise InputError(host_error_text(e, path)) from None
    if res.host_errors:  # the log is complete and replays; the dump file is not there
        raise InputError(host_error_text(res.host_errors[0], dump_dir) +
                         f" (while writing the dump; the log {path} is complete)")
    if as_json:
        from fadumpsim.render import explained_violations
        out = res.to_json()
        out["violations"] = explained_violations(res)
        click.echo(json.dumps(out, indent=2))
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
              help="Events of A to show before the first difference in outcome.")
def diff(log_a: str, log_b: str, context: int) -> None:
    """How two runs differ, aligned by causal identity (exit 1 when they differ).

    Deliveries are matched by sender, channel sequence and cause, not by position:
    the report lists the ordering decisions the runs made differently and the
    first delivery that exists in only one run or carries a different payload.
    """
    from fadumpsim.difflog import compare, diff_lines
    from fadumpsim.events.logfile import LogFormatError, LogReader
    ha, ra, ea = _read(log_a)
    hb, rb, eb = _read(log_b)
    if ha.get("scenario") != hb.get("scenario"):
        click.echo("note: the two logs hold different scenarios", err=True)
    tr = []
    for p in (log_a, log_b):
        try:
            rd = LogReader(p)
            rd.records()
            tr.append(rd.trailer)
        except LogFormatError:
            tr.append(None)
    d = compare(ra, rb)
    if d.identical:
        click.echo(f"no difference: both runs have the same {len(ra)} events")
        for e in (ea, eb):
            if e is not None:
                raise InputError(str(e))
        sys.exit(EXIT_OK)
    for name, p, h, r, t in (("A", log_a, ha, ra, tr[0]), ("B", log_b, hb, rb, tr[1])):
        click.echo(f"{name}: {p}: {h.get('scenario', {}).get('name', '?')}, {len(r)} events"
                   + (f", {t.get('outcome')}" if t else ""))
    for line in diff_lines(ra, rb, d, (tr[0], tr[1]), context=context):
        click.echo(line)
    sys.exit(EXIT_FAIL)


@cli.command()
@click.argument("log", type=click.Path(dir_okay=False))
@click.option("--at", "at", type=int, required=True, help="Event seq (0 = before the first).")
@click.option("--actor", help="Only this actor (firmware, kernel, hotplug, capture or a script).")
@click.option("--changed", is_flag=True, help="Only what event N changed (versus N-1).")
@click.option("--json", "as_json", is_flag=True)
def state(log: str, at: int, actor: str | None, changed: bool, as_json: bool) -> None:
    """Every actor's state (or one actor's) right after event N of LOG.

    Addresses and sizes in hex; the memory map as runs of LMBs with firmware
    assignment, zone, memblock reservations, the fadump reserved area, the
    boot-memory area and what firmware's registration covers.
    """
    from fadumpsim.events.logfile import LogFormatError
    from fadumpsim.api import load, state_at
    from fadumpsim.memmap import map_lines, memory_map
    from fadumpsim.replay.runtime import Divergence
    from fadumpsim.statefmt import change_lines, changes, value_lines
    regular_file(log)
    try:
        lg = load(log)
    except LogFormatError as e:
        raise InputError(str(e)) from None
    if not 0 <= at <= len(lg.records):
        raise InputError(f"{log}: --at {at} is outside 0..{len(lg.records)}")
    if changed and at == 0:
        raise InputError(f"{log}: --changed needs --at 1 or later (event 0 changes nothing)")
    try:
        snaps = state_at(log, at)
        prev = state_at(log, at - 1) if changed else None
    except Divergence as d:
        click.echo(_divergence_text(d), err=True)
        sys.exit(EXIT_DIVERGED)
    if actor is not None and actor not in snaps:
        raise InputError(f"{log}: no actor named {actor!r} (actors: {', '.join(snaps)})")
    lmb = lg.scenario.machine.lmb_size
    rows = memory_map(snaps, lmb)
    names = [actor] if actor is not None else list(snaps)
    diffs = {n: changes(prev[n], snaps[n]) for n in names} if prev is not None else None
    if as_json:
        out: dict[str, Any] = {"at": at, "actors": {n: snaps[n] for n in names},
                               "memory_map": [r.to_json() for r in rows]}
        if diffs is not None:
            out["changed"] = {n: [{"key": k, "before": a, "after": b} for k, a, b in d]
                              for n, d in diffs.items() if d}
        click.echo(json.dumps(out, indent=2, default=str))
        return
    ev = lg.records[at - 1] if at else None
    from fadumpsim.render import describe
    click.echo(f"# state right after event #{at}" + (
        f": {ev[2]} -> {ev[3]} {describe(ev[4], ev[7])}" if ev else " (start)"))
    if diffs is not None:
        for n, d in diffs.items():
            if d:
                click.echo(f"[{n}] changed by #{at}:")
                for k, a, b in d:
                    for line in change_lines(k, a, b):
                        click.echo(line)
        if not any(diffs.values()):
            click.echo(f"event #{at} changed no actor state" + (f" of {actor}" if actor else ""))
    else:
        for n in names:
            click.echo(f"[{n}]")
            for k, v in snaps[n].items():
                for line in value_lines(k, v):
                    click.echo(line)
    if actor in (None, "firmware", "kernel", "capture") and rows and \
            (diffs is None or any(diffs.get(n) for n in ("firmware", "kernel", "capture"))):
        which = "capture kernel" if snaps.get("capture", {}).get("booted") else "kernel"
        click.echo(f"memory map ({which}, LMB size {lmb >> 20}MB):")
        for line in map_lines(rows):
            click.echo(line)


@cli.command()
@click.argument("log", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), default=None,
              help="HTML file to write (default: LOG's stem + .html beside it).")
@click.option("--no-minimize", is_flag=True, help="Skip the minimized story (faster).")
def report(log: str, out: str | None, no_minimize: bool) -> None:
    """One self-contained HTML page about the run in LOG (works offline, no JavaScript):
    verdict and why, the minimized story, an SVG sequence diagram, the memory map over
    time, the transcript and the kernel log."""
    from fadumpsim.events.logfile import LogFormatError
    from fadumpsim.replay.runtime import Divergence
    from fadumpsim.report import run_report
    if out is None:
        p = Path(log)
        out = str(p.with_name((p.name[:-len(".fadlog")] if p.name.endswith(".fadlog")
                               else p.stem) + ".html"))
    if not Path(out).resolve().parent.is_dir():
        raise InputError(f"{out}: directory {Path(out).parent} does not exist")
    try:
        text = run_report(log, minimize=not no_minimize)
    except LogFormatError as e:
        raise InputError(str(e)) from None
    except Divergence as d:
        click.echo(_divergence_text(d), err=True)
        sys.exit(EXIT_DIVERGED)
    Path(out).write_text(text, encoding="utf-8")
    click.echo(f"written: {out}")


def _register_optional() -> None:
    """Commands that live in their own modules (kept out of the start-up path)."""
    from fadumpsim.cli_inspect import inspect_cmd
    cli.add_command(inspect_cmd, "inspect")
    from fadumpsim.cli_explore import explore_cmd, minimize_cmd
    cli.add_command(explore_cmd, "explore")
    cli.add_command(minimize_cmd, "minimize")
    from fadumpsim.cli_compare import compare_cmd
    cli.add_command(compare_cmd, "compare")
    from fadumpsim.cli_swarm import swarm_cmd
    cli.add_command(swarm_cmd, "swarm")


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
