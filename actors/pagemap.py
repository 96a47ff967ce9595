"""Physical memory as extents: every page's class and content identity, by ranges.

A `PageMap` maps [start, end) byte ranges to (klass, tag, base): the page class
(free, kernel, user, cache, cache_private, reserved, offline) and the content
identity: page `a` holds page number `base + (a - start) // page_size` of the
allocation named `tag` ("" = zero-filled). Operations cost O(log n + extents
touched), never O(pages), so a 64TB partition costs what its allocations cost.
"""
from __future__ import annotations

from bisect import bisect_right
from typing import Iterator

Piece = tuple[int, int, str, str, int]  # start, end, klass, tag, base


class PageMap:
    """Sorted, non-overlapping extents with automatic split and merge."""

    __slots__ = ("ps", "starts", "ends", "vals")

    def __init__(self, page_size: int) -> None:
        self.ps = page_size
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.vals: list[tuple[str, str, int]] = []

    # -- queries -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.starts)

    def _first(self, start: int) -> int:
        """Index of the first extent that ends after `start`."""
        i = bisect_right(self.starts, start) - 1
        if i < 0 or self.ends[i] <= start:
            i += 1
        return i

    def pieces(self, start: int, end: int) -> Iterator[Piece]:
        """Extents overlapping [start, end), clipped, with `base` adjusted."""
        ps = self.ps
        i = self._first(start)
        starts, ends, vals = self.starts, self.ends, self.vals
        n = len(starts)
        while i < n and starts[i] < end:
            s, e = starts[i], ends[i]
            k, t, b = vals[i]
            cs = s if s > start else start
            ce = e if e < end else end
            yield cs, ce, k, t, (b + (cs - s) // ps) if t else 0
            i += 1

    def pieces_reversed(self, start: int, end: int) -> Iterator[Piece]:
        """Like `pieces`, from the top down (top-down allocation)."""
        ps = self.ps
        i = bisect_right(self.starts, end - 1) - 1
        starts, ends, vals = self.starts, self.ends, self.vals
        while i >= 0 and ends[i] > start:
            s, e = starts[i], ends[i]
            k, t, b = vals[i]
            cs = s if s > start else start
            ce = e if e < end else end
            yield cs, ce, k, t, (b + (cs - s) // ps) if t else 0
            i -= 1

    def all(self) -> Iterator[Piece]:
        for s, e, (k, t, b) in zip(self.starts, self.ends, self.vals):
            yield s, e, k, t, b

    def covered(self, start: int, end: int) -> int:
        """Bytes of [start, end) that some extent covers."""
        return sum(ce - cs for cs, ce, *_ in self.pieces(start, end))

    def klass_at(self, addr: int) -> str | None:
        i = bisect_right(self.starts, addr) - 1
        if i >= 0 and self.ends[i] > addr:
            return self.vals[i][0]
        return None

    def bytes_by_class(self, start: int = 0, end: int | None = None) -> dict[str, int]:
        out: dict[str, int] = {}
        if end is None:
            for s, e, v in zip(self.starts, self.ends, self.vals):
                out[v[0]] = out.get(v[0], 0) + e - s
        else:
            for cs, ce, k, _t, _b in self.pieces(start, end):
                out[k] = out.get(k, 0) + ce - cs
        return out

    # -- updates -------------------------------------------------------------------
    def assign(self, start: int, end: int, klass: str, tag: str = "", base: int = 0) -> None:
        """Make [start, end) one extent (klass, tag, base), splitting what it overlaps."""
        if end <= start:
            return
        self._cut(start, end, (klass, tag, base if tag else 0))

    def remove(self, start: int, end: int) -> None:
        """Drop [start, end) from the map (memory that is no longer present)."""
        if end > start:
            self._cut(start, end, None)

    def _cut(self, start: int, end: int, val: tuple[str, str, int] | None) -> None:
        ps = self.ps
        starts, ends, vals = self.starts, self.ends, self.vals
        i = self._first(start)
        j = i
        n = len(starts)
        while j < n and starts[j] < end:
            j += 1
        new_s: list[int] = []
        new_e: list[int] = []
        new_v: list[tuple[str, str, int]] = []
        if i < j and starts[i] < start:  # left remainder keeps its own base
            new_s.append(starts[i]); new_e.append(start); new_v.append(vals[i])
        if val is not None:
            new_s.append(start); new_e.append(end); new_v.append(val)
        if i < j and ends[j - 1] > end:  # right remainder: shift its base
            k, t, b = vals[j - 1]
            new_s.append(end); new_e.append(ends[j - 1])
            new_v.append((k, t, b + (end - starts[j - 1]) // ps if t else 0))
        starts[i:j] = new_s
        ends[i:j] = new_e
        vals[i:j] = new_v
        # merge around the new run
        lo = max(i - 1, 0)
        hi = min(i + len(new_s), len(starts) - 1)
        k = hi
        while k > lo:
            self._try_merge(k - 1)
            k -= 1

    def _try_merge(self, i: int) -> None:
        """Merge extent i with i+1 when they are adjacent and the same content run."""
        starts, ends, vals = self.starts, self.ends, self.vals
        if i + 1 >= len(starts) or ends[i] != starts[i + 1]:
            return
        a, b = vals[i], vals[i + 1]
        if a[0] != b[0] or a[1] != b[1]:
            return
        if a[1] and a[2] + (ends[i] - starts[i]) // self.ps != b[2]:
            return
        ends[i] = ends[i + 1]
        del starts[i + 1], ends[i + 1], vals[i + 1]

    # -- transport -------------------------------------------------------------------
    def to_list(self) -> list[list]:
        """msgpack-native form: [[start, end, klass, tag, base], ...]."""
        return [[s, e, k, t, b] for s, e, (k, t, b) in zip(self.starts, self.ends, self.vals)]

    @classmethod
    def from_list(cls, page_size: int, rows: list[list]) -> "PageMap":
        m = cls(page_size)
        for s, e, k, t, b in rows:
            m.assign(s, e, k, t, b)
        return m

    def copy(self) -> "PageMap":
        m = PageMap(self.ps)
        m.starts, m.ends, m.vals = list(self.starts), list(self.ends), list(self.vals)
        return m
