"""Sizes as the kernel command line and util-linux write them (K, M, G, T, P)."""
from __future__ import annotations

import re

KB, MB, GB, TB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
_UNITS = {"": 1, "B": 1, "K": KB, "M": MB, "G": GB, "T": TB, "P": TB << 10, "E": TB << 20}
_RE = re.compile(r"^\s*(\d+)\s*([KMGTPE]?)(?:I?B)?\s*$", re.IGNORECASE)
#: memparse() reads an unsigned long: nothing bigger is a size anywhere in the model
MAX_SIZE = (1 << 64) - 1


class SizeError(ValueError):
    pass


def parse_size(text: str | int) -> int:
    """'8G' -> 8589934592 (memparse semantics: binary units, no fractions)."""
    if isinstance(text, bool):
        raise SizeError(f"not a size: {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise SizeError(f"negative size: {text}")
        if text > MAX_SIZE:
            raise SizeError(f"size {text} does not fit in 64 bits")
        return text
    text = str(text)
    m = _RE.match(text) if len(text) <= 64 else None
    if not m:
        raise SizeError(f"not a size: {text[:40]!r} (expected e.g. 8G, 256M, 64K)")
    n = int(m.group(1)) * _UNITS[m.group(2).upper()]
    if n > MAX_SIZE:
        raise SizeError(f"size {text.strip()!r} does not fit in 64 bits")
    return n


def human(n: int) -> str:
    """lsmem-style size: 256M, 8G, 1.5G, 0B."""
    if n == 0:
        return "0B"
    for unit, div in (("E", TB << 20), ("P", TB << 10), ("T", TB), ("G", GB), ("M", MB), ("K", KB)):
        if n >= div:
            v = n / div
            return f"{int(v)}{unit}" if n % div == 0 else f"{v:.1f}{unit}"
    return f"{n}B"
