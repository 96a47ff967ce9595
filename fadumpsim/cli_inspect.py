"""`fadumpsim inspect DUMPFILE [--log LOG]`: read a dump file back and check it."""
from __future__ import annotations

import sys
from typing import Any

import click


@click.command()
@click.argument("dumpfile", type=click.Path(dir_okay=False))
@click.option("--log", "log", type=click.Path(dir_okay=False),
              help="The run's event log: compare every page with the truth at the crash.")
def inspect_cmd(dumpfile: str, log: str | None) -> None:
    """Header, notes, ranges and page classes of a dump file (ELF or kdump-compressed).

    \b
    Example:
      fadumpsim run --dump-dir out --log story.fadlog
      fadumpsim inspect out/var/crash/vmcore --log story.fadlog
    """
    from fadumpsim.cli_common import InputError, regular_file
    from fadumpsim.dumpfile import DumpFormatError, inspect_dump, render_inspect
    regular_file(dumpfile)
    truth = level = None
    if log is not None:
        regular_file(log)
        from fadumpsim.actors.kernel.dumpwriter import truth_image
        from fadumpsim.events.logfile import LogFormatError
        from fadumpsim.api import replay
        from fadumpsim.replay.runtime import Divergence
        try:
            res, _lg = replay(log, keep_sched=True)
        except (LogFormatError, Divergence) as e:
            raise InputError(f"{log}: {e}") from None
        kernel = res.sched.actors["kernel"]
        if kernel.crash_truth is None:
            raise InputError(f"{log}: the run has no crash, so there is no truth to compare")
        truth = truth_image(kernel)
        level = run_dump_level(res)
        why = _machine_mismatch(dumpfile, truth, kernel.machine)
        if why:
            raise InputError(f"{dumpfile}: not a dump of the run in {log}: {why}")
    try:
        report = inspect_dump(dumpfile, truth, dump_level=level)
    except DumpFormatError as e:
        raise InputError(str(e)) from None
    click.echo(render_inspect(report))
    if report.truth is not None and not getattr(report.truth, "ok", True):
        sys.exit(1)


def _machine_mismatch(dumpfile: str, truth: Any, machine: Any) -> str | None:
    """Why the dump cannot come from the log's machine (page size, memory beyond it)."""
    from fadumpsim.cli_common import InputError
    from fadumpsim.dumpfile import DumpFormatError
    from fadumpsim.dumpfile.inspect import open_dump
    try:
        with open_dump(dumpfile) as d:
            ps = d.page_size
            top = max((b for _a, b in d.memory_runs()), default=0)
    except DumpFormatError as e:
        raise InputError(str(e)) from None
    if ps != truth.page_size:
        return f"its page size is {ps} bytes, the log's machine has {truth.page_size}"
    if top > machine.max_memory:
        return (f"it holds memory up to {top:#x}, beyond the log's machine "
                f"({machine.max_memory:#x} bytes)")
    return None


def run_dump_level(res: Any) -> int | None:
    """The dump level the run saved its last dump with (what its verdict judged), so that
    `inspect --log` counts what the run counts: an ELF file does not record its level,
    and `cp` (level 0) would otherwise look like a filtered dump."""
    saved = res.sched.actors["capture"].saved_dumps
    return saved[-1]["level"] if saved else None
