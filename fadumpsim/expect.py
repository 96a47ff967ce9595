"""Checking a scenario's [expect] table against a finished run."""
from __future__ import annotations

from typing import Any

from fadumpsim.scenario import Scenario, compare


def evaluate(sc: Scenario, res: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    e = sc.expect

    def add(key: str, expected: Any, actual: Any, ok: bool) -> None:
        out.append({"key": key, "expected": expected, "actual": actual, "ok": bool(ok)})

    if "dump" in e:
        add("dump", e["dump"], res.dump["status"], res.dump["status"] == e["dump"])
    if "registered" in e:
        add("registered", e["registered"], res.registered, res.registered == e["registered"])
    for k in ("kernel_pages_lost", "user_pages_lost"):
        if k in e:
            add(k, e[k], res.dump[k], compare(e[k], res.dump[k]))
    if "memtotal_mb" in e:
        add("memtotal_mb", e["memtotal_mb"], res.memtotal_mb, compare(e["memtotal_mb"], res.memtotal_mb))
    for s in e.get("log_contains", []):
        hit = any(s in line for line in res.kernel_log)
        add("log_contains", s, "present" if hit else "absent", hit)
    for s in e.get("log_lacks", []):
        hit = any(s in line for line in res.kernel_log)
        add("log_lacks", s, "present" if hit else "absent", not hit)
    if "violations" in e:
        seen = sorted({v["invariant"] for v in res.violations})
        add("violations", sorted(e["violations"]), seen, seen == sorted(e["violations"]))
    for name, codes in e.get("exit_codes", {}).items():
        actual = [t["exit"] for t in res.transcript if t["script"] == name and t["exit"] is not None]
        add(f"exit_codes.{name}", codes, actual, actual == codes)
    return out
