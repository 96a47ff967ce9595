"""Per-LMB flag tables (assigned or not) and their runs, at C speed.

A 64TB partition has 262,144 LMBs; walking them in Python on every event would cost
more than the rest of the simulation, so runs are found with bytes.find().
"""
from __future__ import annotations


def flag_runs(flags: bytearray) -> list[list[int]]:
    """[[first, count, value], ...] for a table of 0/1 bytes."""
    out: list[list[int]] = []
    n = len(flags)
    i = 0
    while i < n:
        v = flags[i]
        j = flags.find(b"\x00" if v else b"\x01", i)
        if j < 0:
            j = n
        out.append([i, j - i, v])
        i = j
    return out


def assigned_ranges(flags: bytearray, lmb_size: int) -> list[tuple[int, int]]:
    """Byte ranges [start, end) of the LMBs whose flag is set."""
    return [(f * lmb_size, (f + c) * lmb_size) for f, c, v in flag_runs(flags) if v]
