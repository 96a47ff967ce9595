"""The capture kernel's file system as makedumpfile and cp see it (paths only).

Decides from the text of a path alone whether the capture kernel can create it, so
the simulated output is the same with or without `run --dump-dir`; where the file
then lands on the host is actors/kernel/dumpwriter.py's job.
"""
from __future__ import annotations

import posixpath


def capture_path_error(path: str) -> str | None:
    """Why the capture kernel cannot create `path`, or None.

    The capture kernel's file system is the run's --dump-dir and its shell starts in
    `/`. A path whose `..` climbs above `/` names a directory that does not exist
    there (ENOENT: fadumpsim refuses it rather than folding `/..` into `/`, so no
    path can name anything outside the dump directory); `/` itself or a name ending
    in `/` is a directory (EISDIR). Decided from the text alone, so the simulated
    output is the same with or without --dump-dir.
    """
    if "\0" in path or not path:
        return "No such file or directory"
    if path.endswith("/") or posixpath.normpath("/" + path) == "/":
        return "Is a directory"
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return "No such file or directory"
        elif part not in ("", "."):
            depth += 1
    return None
