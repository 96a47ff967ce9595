"""Shape checks for what a log holds, before anything acts on it.

A log is untrusted input: its frames can be CRC-valid and still carry a payload with a
missing key, a 1,000-deep structure or a header whose scenario is a list. Every
reader (replay, state, show, diff, minimize, inspect --log) runs these checks first so
that such a log is refused in one line naming the file and the event (exit 2),
instead of failing deep inside an actor or a renderer.
"""
from __future__ import annotations

from typing import Any

from fadumpsim.events import types

#: nesting deeper than this is refused (real payloads nest at most 8 levels)
MAX_DEPTH = 32
U64 = (1 << 64) - 1


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply `value` nests lists and maps, without recursion; stops past `limit`."""
    stack, deepest = [(value, 1)], 0
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend((x, d + 1) for x in v)
    return deepest


def _int(v: Any, lo: int = 0, hi: int = U64) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def header_problem(h: Any) -> str | None:
    """Why a header cannot be acted on, or None."""
    if not isinstance(h, dict):
        return "header is not a map"
    if depth(h) > MAX_DEPTH:
        return f"header nests deeper than {MAX_DEPTH} levels"
    if not isinstance(h.get("scenario"), dict):
        return "header scenario is not a map"
    if "seed" in h and not _int(h["seed"]):
        return f"header seed {h['seed']!r} is not an integer in 0..2^64-1"
    if "max_events" in h and not _int(h["max_events"]):
        return f"header max_events {h['max_events']!r} is not a non-negative integer"
    if "strategy" in h and not isinstance(h["strategy"], str):
        return "header strategy is not a string"
    sp = h.get("strategy_params", {})
    if not isinstance(sp, dict):
        return "header strategy_params is not a map"
    return None


def record_problem(rec: Any) -> str | None:
    """Why an event record cannot be replayed or shown, or None.

    A record is [seq, time, src, dst, type, cause, chan_seq, payload] (docs/log-format.md);
    a known event type must carry exactly its declared payload keys (events/types.py)."""
    if not isinstance(rec, list) or len(rec) != 8:
        return "an event record is not an 8-field array"
    seq, time, src, dst, typ, cause, chan_seq, payload = rec
    if not (_int(seq) and _int(time) and _int(cause) and _int(chan_seq)):
        return f"event #{seq!r}: seq, time, cause and chan_seq must be integers in 0..2^64-1"
    if not (isinstance(src, str) and isinstance(dst, str) and isinstance(typ, str)):
        return f"event #{seq}: src, dst and type must be strings"
    if not isinstance(payload, dict):
        return f"event #{seq} ({typ}): payload is not a map"
    if depth(payload) > MAX_DEPTH:
        return f"event #{seq} ({typ}): payload nests deeper than {MAX_DEPTH} levels"
    if types.known(typ):
        try:
            types.check_payload(typ, payload)
        except types.PayloadError as e:
            return f"event #{seq}: {e}"
    return None
