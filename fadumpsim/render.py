"""Human-facing text: the run transcript, the verdict block, event timelines.

Plain text when piped; rich colours and tables only on a terminal (and never with
--json). Kept apart from the CLI so the pytest plugin can print the same verdict.
"""
from __future__ import annotations

import json
import math
from typing import Any, Iterable


from fadumpsim.eventtext import DRC_BASE, RTAS_CMDS, describe, summarize_payload  # noqa: F401


def timeline_text(records: Iterable[list[Any]]) -> Iterable[str]:
    for seq, t, src, dst, typ, cause, _cs, payload in records:
        yield (f"{seq:>6} {t / 1e9:>12.6f}s {src:>14} -> {dst:<14} {typ:<28} "
               f"{summarize_payload(typ, payload)}")


def timeline_jsonl(records: Iterable[list[Any]]) -> Iterable[str]:
    """One JSON object per event; always valid JSON (a NaN or infinite float from a
    hand-made log is written as the string "NaN"/"Infinity"/"-Infinity")."""
    for seq, t, src, dst, typ, cause, cs, payload in records:
        obj = {"seq": seq, "time": t, "src": src, "dst": dst, "type": typ,
               "cause": cause, "chan_seq": cs, "payload": payload}
        try:
            yield json.dumps(obj, allow_nan=False, default=_json_default)
        except (ValueError, TypeError):  # NaN, or a map key JSON cannot hold
            yield json.dumps(_finite(obj), allow_nan=False, default=_json_default)


def _json_default(b: Any) -> str:
    return b.hex() if isinstance(b, bytes) else str(b)


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return json.dumps(v)  # 'NaN', 'Infinity', '-Infinity'
    if isinstance(v, dict):
        return {k if isinstance(k, (str, int)) else _json_default(k): _finite(x)
                for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def timeline_mermaid(records: list[list[Any]], scripts: list[str]) -> Iterable[str]:
    """A mermaid sequenceDiagram (renders on GitHub/GitLab markdown viewers)."""
    yield "sequenceDiagram"
    order = [*scripts, "firmware", "kernel", "hotplug", "capture"]
    seen = {r[2] for r in records} | {r[3] for r in records}
    for name in order + sorted(seen - set(order)):
        if name in seen:
            yield f"    participant {mermaid_id(name)} as {name}"
    for seq, _t, src, dst, typ, _c, _cs, payload in records:
        label = f"#{seq} {typ} {summarize_payload(typ, payload, 40)}".replace(";", ",")
        arrow = "-)" if src == dst else "->>"
        yield f"    {mermaid_id(src)}{arrow}{mermaid_id(dst)}: {mermaid_escape(label)}"


def mermaid_id(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def mermaid_escape(s: str) -> str:
    return s.replace("\n", " ").replace(":", "#58;").replace("'", "").replace('"', "")


def transcript_lines(res: Any) -> list[str]:
    out = []
    for t in res.transcript:
        out.append(f"[{t['script']}]$ {t['command']}")
        for stream in ("stdout", "stderr"):
            if t[stream]:
                out.extend(t[stream].rstrip("\n").split("\n"))
        if t["exit"] is None:
            out.append("(no exit status: the kernel running this shell crashed)")
        elif t["exit"]:
            out.append(f"(exit {t['exit']})")
    return out


def run_records(res: Any) -> list[list[Any]] | None:
    """The delivered records of a finished run, read back from its log (None without one)."""
    if not getattr(res, "log", None):
        return None
    from fadumpsim.events.logfile import LogFormatError, LogReader
    try:
        return LogReader(res.log).records()
    except (LogFormatError, OSError):
        return None


def explained_violations(res: Any, records: list[list[Any]] | None = None) -> list[dict[str, Any]]:
    """res.violations, each with "because" and "explanation" when the records are known."""
    recs = records if records is not None else run_records(res)
    if not recs:
        return list(res.violations)
    from fadumpsim.explain import explain_all
    return explain_all(res.violations, recs)


def verdict_lines(res: Any, records: list[list[Any]] | None = None) -> list[str]:
    d = res.dump
    out = [f"== verdict: {'PASS' if res.ok else 'FAIL'} ({res.scenario.name}, seed {res.seed}, "
           f"{res.strategy}, {res.events} events)"]
    out.append(f"dump: {d['status']}; kernel pages lost {d['kernel_pages_lost']}, "
               f"user pages lost {d['user_pages_lost']}; fadump_registered at crash/end: "
               f"{int(res.registered)}; MemTotal after boot {res.memtotal_mb} MB")
    for w in res.scenario.kernel.what_ifs():
        out.append(f"  {w}")
    if "level" in d:
        out.append(f"  at dump level {d['level']}: kernel pages {d['kernel_pages_captured']}/"
                   f"{d['kernel_pages_expected']} captured, user pages {d['user_pages_captured']}/"
                   f"{d['user_pages_expected']} captured")
    if "user_pages_overwritten" in d:
        out.append(f"  firmware's copy wrote over {d['kernel_pages_overwritten']} kernel and "
                   f"{d['user_pages_overwritten']} user pages of the crashed kernel")
    for e in res.expectations:
        mark = "ok  " if e["ok"] else "FAIL"
        out.append(f"  [{mark}] expect {e['key']}: expected {e['expected']!r}, actual {e['actual']!r}")
    if not res.violations:
        out.append("  invariants: dump-armed, kernel-data-captured, reserved-area-intact, accounting, liveness: ok")
    allowed = set(res.scenario.expect.get("violations", []))
    for v in explained_violations(res, records) if res.violations else []:
        mark = "expected" if v["invariant"] in allowed else "FAIL"
        out.append(f"  [{mark}] invariant {v['invariant']} (event #{v['seq']}): {v['message']}")
        for b in v.get("because", []):
            out.append(f"      because #{b['seq']}: {b['text']}")
    if res.failure:
        out.append(f"  [FAIL] simulator: {res.failure}")
    if res.log:
        out.append(f"log: {res.log}")
    return out


def print_run(res: Any, *, quiet: bool = False, color: bool = False) -> None:
    if color:
        from rich.console import Console
        from rich.table import Table
        con = Console(highlight=False)
        if not quiet:
            for line in transcript_lines(res):
                style = "bold cyan" if line.startswith("[") and "]$ " in line else None
                con.print(line, style=style, markup=False)
            con.print("-- kernel log --", style="dim")
            for line in res.kernel_log:
                con.print(line, style="dim", markup=False)
        tab = Table(title=f"verdict: {'PASS' if res.ok else 'FAIL'}", title_style="bold green" if res.ok else "bold red")
        tab.add_column("check")
        tab.add_column("expected")
        tab.add_column("actual")
        tab.add_column("")
        d = res.dump
        tab.add_row("dump", "", f"{d['status']} (kernel lost {d['kernel_pages_lost']}, user lost {d['user_pages_lost']})", "")
        for w in res.scenario.kernel.what_ifs():
            tab.add_row("what-if", "", w.removeprefix("what-if: "), "[yellow]counterfactual[/]")
        for e in res.expectations:
            tab.add_row(f"expect {e['key']}", repr(e["expected"]), repr(e["actual"]),
                        "[green]ok[/]" if e["ok"] else "[red]FAIL[/]")
        allowed = set(res.scenario.expect.get("violations", []))
        for v in explained_violations(res) if res.violations else []:
            why = "".join(f"\n  because #{b['seq']}: {b['text']}" for b in v.get("because", []))
            tab.add_row(f"invariant {v['invariant']}", f"event #{v['seq']}", v["message"] + why,
                        "[yellow]expected[/]" if v["invariant"] in allowed else "[red]FAIL[/]")
        if not res.violations:
            tab.add_row("invariants", "", "all five hold", "[green]ok[/]")
        con.print(tab)
        if res.log:
            con.print(f"log: {res.log}", style="dim", markup=False)
        return
    if not quiet:
        print("\n".join(transcript_lines(res)))
        print("-- kernel log --")
        print("\n".join(res.kernel_log))
    print("\n".join(verdict_lines(res)))
