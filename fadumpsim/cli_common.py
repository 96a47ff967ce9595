"""What every `fadumpsim` subcommand module shares: the contract's exit codes and the
one-line input error. Kept apart so that `cli.py` and its subcommand modules never
import each other."""
from __future__ import annotations

import os
import stat
from typing import Any

import click

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_DIVERGED = 0, 1, 2, 3


class InputError(click.ClickException):
    """Bad input: one line, exit 2."""
    exit_code = EXIT_USAGE

    def show(self, file: Any = None) -> None:
        click.echo(f"fadumpsim: {self.message}", err=True)


def regular_file(path: str) -> str:
    """`path` if it is a regular file; a FIFO, device or directory is refused (exit 2)
    rather than read forever or blocked on."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file")
    return path


class ProgressBar:
    """A rich progress bar on stderr, shared by `explore` and `swarm`: done/total, a rate
    in `unit`/s and a red count of `found` (callers create it only when stderr is a TTY).
    rich is imported here, when a bar is made, to keep `fadumpsim --help` fast."""

    def __init__(self, total: int | None, label: str, *, unit: str, found: str,
                 rate_format: str = ">6.0f") -> None:
        import time

        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        self.progress = Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:" + rate_format + "} " + unit + "/s"),
            TextColumn("[red]{task.fields[failures]} " + found),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True,
            # no refresher thread: redrawn from __call__ at most 10x/s, so that explore's
            # helpers can be forked (a fork is only safe with no other thread alive)
            auto_refresh=False)
        self.task = self.progress.add_task(label, total=total, rate=0.0, failures=0)
        self._time = time.perf_counter
        self.t0 = self._time()
        self.drawn = self.t0

    def __enter__(self) -> "ProgressBar":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, done: int, total: int | None, failures: int) -> None:
        dt = self._time() - self.t0
        self.progress.update(self.task, completed=done, total=total,
                             rate=done / dt if dt > 0 else 0.0, failures=failures)
        now = self._time()
        if now - self.drawn >= 0.1 or done == total:
            self.drawn = now
            self.progress.refresh()
