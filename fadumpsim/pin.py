"""Pin a minimized failure as a regression scenario (`fadumpsim minimize --scenario`).

The pinned scenario is the original one plus a `[schedule]` of the constraints the
failure needs: run in FIFO order under those constraints it takes the failing path
for as long as the bug exists. Its `[expect]` states the *correct* behaviour (the
failing invariant is taken out of `[expect] violations` if the original announced
it), so `pytest OUT.toml` fails while the bug is there and passes once it is fixed.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import tomli_w


def pinned_data(data: dict[str, Any], result: Any, log: str) -> dict[str, Any]:
    """Scenario data with [schedule] = the result's constraints."""
    d = copy.deepcopy(data)
    d["name"] = f"{data['name']}-pinned"
    texts = " ".join(f"({i + 1}) {c.text}." for i, c in enumerate(result.constraints))
    d["description"] = (f"Pins the ordering that `fadumpsim minimize {Path(log).name}` found "
                        f"for {result.key}: {texts} It fails while the bug exists and passes "
                        "once it is fixed.")
    exp = d.setdefault("expect", {})
    if result.key in exp.get("violations", []):
        exp["violations"] = [v for v in exp["violations"] if v != result.key]
        if not exp["violations"]:
            del exp["violations"]
    if not exp:
        del d["expect"]
    d["schedule"] = {"constraint": [dict(c.constraint.to_data(), text=c.text)
                                    for c in result.constraints]}
    return d


def write_pinned(path: str, data: dict[str, Any], result: Any, log: str) -> dict[str, Any]:
    """Write the pinned scenario to `path` (refusing to overwrite) and return its data."""
    d = pinned_data(data, result, log)
    p = Path(path)
    if p.exists():
        raise FileExistsError(f"{path}: already exists (not overwritten)")
    head = (f"# Regression scenario written by `fadumpsim minimize --scenario` from {log}.\n"
            "# [schedule] forces the found order (FIFO otherwise); see docs/scenario-format.md.\n")
    p.write_text(head + tomli_w.dumps(d, multiline_strings=False), encoding="utf-8")
    return d
