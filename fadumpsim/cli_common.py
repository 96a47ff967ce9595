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
