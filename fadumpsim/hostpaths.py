"""Checks on the host paths a command writes (--log, --dump-dir), before a run starts.

A run writes only what the user named: the log, and files under --dump-dir. These
checks turn the usual mistakes into one line and exit 2 up front (the log naming
an input file, a directory that is missing or is a file); any other host error
(read-only file system, full disk) is reported where it happens, with its errno.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Iterable


class HostPathError(OSError):
    """A host path the command cannot or must not write: one line, exit 2."""

    def __str__(self) -> str:
        name = errno.errorcode.get(self.errno or 0, "")
        return f"{self.filename}: {self.strerror}" + (f" ({name})" if name else "")


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_log_target(path: Path, inputs: Iterable[str | Path] = (),
                     dump_dir: str | None = None) -> None:
    """Refuse a --log that is an input file, a directory, or in a missing directory."""
    for inp in inputs:
        p = Path(inp)
        if p.exists() and _same(p, path):
            raise HostPathError(errno.EEXIST, f"--log names the input file {inp}; "
                                "refusing to overwrite it with the log", str(path))
    if path.is_dir():
        raise HostPathError(errno.EISDIR, "--log is a directory", str(path))
    if path.exists() and not path.is_symlink() and not path.is_file():
        raise HostPathError(errno.EEXIST, "--log is not a regular file (a device or FIFO "
                            "is never replaced by a log)", str(path))
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise HostPathError(errno.ENOENT, f"directory {parent} does not exist", str(path))
    if not parent.is_dir():
        raise HostPathError(errno.ENOTDIR, f"{parent} is not a directory", str(path))
    if dump_dir is not None and Path(dump_dir).exists() and _same(Path(dump_dir), path):
        raise HostPathError(errno.EISDIR, "--log is the --dump-dir", str(path))


def prepare_dump_dir(dump_dir: str) -> None:
    """Create --dump-dir (and its parents) or say in one line why it cannot be."""
    d = Path(dump_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise HostPathError(errno.ENOTDIR, "--dump-dir exists and is not a directory",
                            dump_dir) from None
    except OSError as e:
        raise HostPathError(e.errno, e.strerror or str(e), e.filename or dump_dir) from None
    if not d.is_dir():
        raise HostPathError(errno.ENOTDIR, "--dump-dir is not a directory", dump_dir)
