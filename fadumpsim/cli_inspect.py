"""`fadumpsim inspect DUMPFILE [--log LOG]`: read a dump file back and check it."""
from __future__ import annotations

import sys

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
    from fadumpsim.cli_common import InputError
    from fadumpsim.dumpfile import DumpFormatError, inspect_dump, render_inspect
    truth = None
    if log is not None:
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
    try:
        report = inspect_dump(dumpfile, truth)
    except DumpFormatError as e:
        raise InputError(str(e)) from None
    click.echo(render_inspect(report))
    if report.truth is not None and not getattr(report.truth, "ok", True):
        sys.exit(1)
