"""Actor snapshots as readable text: hex addresses, nested values on their own lines,
no line longer than the terminal, and what one event changed."""
from __future__ import annotations

import json
import re
from typing import Any, Iterator

#: keys whose integers are addresses or byte sizes (shown in hex)
ADDRESS_KEY = re.compile(r"(start|end|size|addr|base|destination|source|length|memory|reserved|"
                         r"movable|loads|total|free|available|used|cache|kernel|user|hdr|"
                         r"boot_memory)", re.I)
WIDTH = 100


def hexify(key: str, v: Any) -> Any:
    """Integers under address-like keys as hex strings (lists and dicts recursively)."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return Hex(v) if ADDRESS_KEY.search(key) and v >= 0x1000 else v
    if isinstance(v, list):
        return [hexify(key, x) for x in v]
    if isinstance(v, dict):
        return {k: hexify(k if ADDRESS_KEY.search(k) else key if k.isdigit() else k, x)
                for k, x in v.items()}
    return v


class Hex(int):
    """An int shown in hex."""


def _short(v: Any) -> str:
    """JSON-like one-line text in which Hex values are bare hex numbers."""
    if isinstance(v, Hex):
        return f"{int(v):#x}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_short(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    return json.dumps(v, default=str)


def value_lines(key: str, v: Any, indent: int = 2) -> Iterator[str]:
    """`key: value`, or key and nested lines when the value does not fit."""
    pad = " " * indent
    h = hexify(key, v)
    one = f"{pad}{key}: {_short(h)}"
    if len(one) <= WIDTH or not isinstance(v, (dict, list)):
        yield one if len(one) <= WIDTH else one[:WIDTH - 3] + "..."
        return
    yield f"{pad}{key}:"
    if isinstance(v, dict):
        for k, x in v.items():
            yield from value_lines(k, x if ADDRESS_KEY.search(k) else x, indent + 2)
    else:
        for x in v:
            if isinstance(x, dict) and len(f"{pad}  - {_short(hexify(key, x))}") > WIDTH:
                items = list(x.items())
                yield f"{pad}  - {items[0][0]}: {_short(hexify(items[0][0], items[0][1]))}"
                for k, y in items[1:]:
                    yield from value_lines(k, y, indent + 4)
            else:
                yield f"{pad}  - {_short(hexify(key, x))}"


def flatten(v: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to leaves (lists kept whole: they are compared as values)."""
    if isinstance(v, dict):
        out: dict[str, Any] = {}
        for k, x in v.items():
            out.update(flatten(x, f"{prefix}.{k}" if prefix else k))
        return out
    return {prefix: v}


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, old, new) for every leaf that differs between two snapshots."""
    a, b = flatten(before), flatten(after)
    keys = list(dict.fromkeys([*a, *b]))
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def change_lines(key: str, old: Any, new: Any) -> list[str]:
    last = key.rsplit(".", 1)[-1]
    o, n = _short(hexify(last, old)), _short(hexify(last, new))
    line = f"  {key}: {o} -> {n}"
    if len(line) <= WIDTH:
        return [line]
    return [f"  {key}:", *(f"    was: {x}" for x in _wrap(o)), *(f"    now: {x}" for x in _wrap(n))]


def _wrap(s: str) -> list[str]:
    w = WIDTH - 9
    return [s[i:i + w] for i in range(0, len(s), w)] or [""]
