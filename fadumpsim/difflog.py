"""Compare two runs by causal identity, not by position (`fadumpsim diff`).

A delivery is named by what its sender decided -- (src, dst, type, nth): the nth
message of that type src sent to dst -- plus the name of the delivery that caused
it (its cause chain, one link: enough to tell two `cmd.result`s of different
commands apart when their channels line up). Two runs that only deliver
independent events in another order then align completely.

The comparison reports
  * the ordering decisions that differ: pairs of aligned deliveries to one actor
    that the two runs made in opposite orders, grouped by the delivery that moved;
  * the first difference in outcome: the first delivery (in run A's order) that
    exists in only one run or carries a different payload, and the verdict lines
    (outcome, dump status) from the log trailers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from fadumpsim.replay.constraints import delivery_ids

Rec = Sequence[Any]
Key = tuple[Any, ...]


def keys_of(records: Sequence[Rec]) -> list[Key]:
    """Causal identity of each delivery: its DeliveryId and its cause's DeliveryId."""
    ids = delivery_ids(records)
    out = []
    for r, d in zip(records, ids):
        c = r[5]
        out.append((*d, ids[c - 1] if 0 < c <= len(ids) else None))
    return out


@dataclass
class Moved:
    """One delivery that changed place relative to others at the same actor."""
    dst: str
    key: Key
    seq_a: int
    seq_b: int
    earlier_in_a: list[tuple[int, int]] = field(default_factory=list)   # it overtook these in A
    later_in_a: list[tuple[int, int]] = field(default_factory=list)     # these overtook it in B


@dataclass
class LogDiff:
    identical: bool
    aligned: int
    only_a: list[int]                 # seqs of A with no counterpart in B
    only_b: list[int]
    payload: list[tuple[int, int]]    # (seq A, seq B) aligned but different payload
    moved: list[Moved]
    first_outcome: tuple[str, int | None, int | None] | None   # (what, seq A, seq B)


def compare(ra: Sequence[Rec], rb: Sequence[Rec]) -> LogDiff:
    ka, kb = keys_of(ra), keys_of(rb)
    pos_b = {k: i for i, k in enumerate(kb)}
    pos_a = {k: i for i, k in enumerate(ka)}
    pairs = [(i, pos_b[k]) for i, k in enumerate(ka) if k in pos_b]
    only_a = [i + 1 for i, k in enumerate(ka) if k not in pos_b]
    only_b = [j + 1 for j, k in enumerate(kb) if k not in pos_a]
    payload = [(i + 1, j + 1) for i, j in pairs if ra[i][7] != rb[j][7]]
    # ordering decisions: per actor, aligned pairs in opposite orders
    by_dst: dict[str, list[tuple[int, int]]] = {}
    for i, j in pairs:
        by_dst.setdefault(ra[i][3], []).append((i, j))
    flips: list[tuple[str, tuple[int, int], tuple[int, int]]] = []
    for dst, lst in by_dst.items():
        for x in range(len(lst)):
            for y in range(x + 1, len(lst)):
                (i1, j1), (i2, j2) = lst[x], lst[y]
                if ra[i1][2] != ra[i2][2] and j1 > j2:      # A: 1 before 2; B: 2 before 1
                    flips.append((dst, lst[x], lst[y]))
    moved = _group(flips, ka, ra)
    first = None
    cands: list[tuple[int, str, int | None, int | None]] = []
    if only_a:
        s = only_a[0]
        cands.append((s, "only in A", s, None))
    if payload:
        s, t = payload[0]
        cands.append((s, "different payload", s, t))
    if only_b:
        t = only_b[0]
        # place a B-only delivery after the A delivery aligned with B's previous one
        prev = max(((j, i) for i, j in pairs if j < t - 1), default=(-1, -1))[1]
        cands.append((prev + 1.5, "only in B", None, t))   # type: ignore[arg-type]
    if cands:
        _, what, sa, sb = min(cands, key=lambda c: c[0])
        first = (what, sa, sb)
    identical = list(ra) == list(rb)
    return LogDiff(identical, len(pairs), only_a, only_b, payload, moved, first)


def _group(flips: list, ka: list[Key], ra: Sequence[Rec]) -> list[Moved]:
    """Cover the flipped pairs greedily by the delivery that takes part in most of them."""
    left = list(flips)
    out: list[Moved] = []
    while left:
        count: dict[tuple[int, int], int] = {}
        for _d, p, q in left:
            count[p] = count.get(p, 0) + 1
            count[q] = count.get(q, 0) + 1
        best = max(count, key=lambda p: (count[p], -p[0]))
        i, j = best
        m = Moved(ra[i][3], ka[i], i + 1, j + 1)
        rest = []
        for d, p, q in left:
            if p == best:
                m.earlier_in_a.append((q[0] + 1, q[1] + 1))
            elif q == best:
                m.later_in_a.append((p[0] + 1, p[1] + 1))
            else:
                rest.append((d, p, q))
        out.append(m)
        left = rest
    return sorted(out, key=lambda m: m.seq_a)


def diff_lines(ra: Sequence[Rec], rb: Sequence[Rec], d: LogDiff, trailers: tuple[Any, Any],
               context: int = 3, limit: int = 8) -> list[str]:
    """The human report of `compare` (see the module docstring)."""
    from fadumpsim.render import describe, timeline_text

    def ev(r: Rec) -> str:
        return f"{r[2]} -> {r[3]} {describe(r[4], r[7])}"

    n = min(len(ra), len(rb))
    part = next((k for k in range(n) if ra[k] != rb[k]), n) + 1
    out = [f"the runs part at event #{part} by position; aligned by causal identity "
           f"(sender, channel sequence, cause): {d.aligned} "
           f"deliveries in both runs, {len(d.only_a)} only in A, {len(d.only_b)} only in B, "
           f"{len(d.payload)} with a different payload"]
    if d.moved:
        out.append(f"ordering decisions that differ ({len(d.moved)}):")
        for m in d.moved[:limit]:
            r = ra[m.seq_a - 1]
            what = f"{m.dst} handled {describe(r[4], r[7])} from {r[2]} (A #{m.seq_a}, B #{m.seq_b})"
            if m.earlier_in_a:
                o = m.earlier_in_a
                out.append(f"  {what} before {len(o)} deliveries in A, after them in B: "
                           + _few(ra, o, describe))
            if m.later_in_a:
                o = m.later_in_a
                out.append(f"  {what} after {len(o)} deliveries in A, before them in B: "
                           + _few(ra, o, describe))
        if len(d.moved) > limit:
            out.append(f"  ... {len(d.moved) - limit} more")
    else:
        out.append("ordering decisions that differ: none (every actor handled the same "
                   "deliveries in the same order; only the interleaving between actors differs)")
    if d.first_outcome is not None:
        what, sa, sb = d.first_outcome
        out.append("first difference in outcome:")
        if sa is not None:
            lo = max(0, sa - 1 - context)
            for line in timeline_text(ra[lo:sa - 1]):
                out.append(f"  = {line}")
        if what == "different payload":
            out.append(f"  A #{sa} {ev(ra[sa - 1])}")
            out.append(f"  B #{sb} {ev(rb[sb - 1])}")
        elif what == "only in A":
            out.append(f"  A #{sa} {ev(ra[sa - 1])}  (no such delivery in B)")
        else:
            out.append(f"  B #{sb} {ev(rb[sb - 1])}  (no such delivery in A)")
    else:
        out.append("first difference in outcome: none (the same deliveries with the same "
                   "payloads, in another order)")
    ta, tb = (t or {} for t in trailers)
    if ta.get("outcome") != tb.get("outcome"):
        out.append(f"outcome: A {ta.get('outcome', '?')}, B {tb.get('outcome', '?')}")
    return out


def _few(recs: Sequence[Rec], pairs: list[tuple[int, int]], describe: Any, n: int = 3) -> str:
    items = [f"{describe(recs[a - 1][4], recs[a - 1][7])} (A #{a}/B #{b})" for a, b in pairs]
    if len(items) > n:
        return ", ".join(items[:1]) + f", ... {len(items) - 2} more, " + items[-1]
    return ", ".join(items)
