"""The dump verdict of a run: status and pages lost, judged against the truth.

The truth is the production kernel's page map at the moment of the crash; the dump is
what the capture kernel saved (or, when nothing was saved, what /proc/vmcore offers).
A page is lost when the dump should hold it at its dump level but does not hold it
with the right content identity. Counting is extent by extent, never page by page.
"""
from __future__ import annotations

from typing import Any

from fadumpsim.actors.kernel.crash import dump_action, not_dumped
from fadumpsim.actors.pagemap import PageMap


def dump_status(kernel: Any, capture: Any) -> str:
    if not kernel.crashed:
        return "no-crash"
    if not capture.booted and capture.boot_count == 0:
        return "none"
    return capture.dump_status


def page_counts(truth: PageMap, kept: list[list[Any]], level: int, ps: int) -> dict[str, int]:
    """Kernel and user pages the dump should hold at `level` (expected), holds with the
    right content (captured), and the difference (lost): missing or wrong content."""
    dump = PageMap(ps)
    for a, b, k, t, base in kept:
        dump.assign(a, b, k, t, base)
    out = {f"{k}_pages_{w}": 0 for k in ("kernel", "user") for w in ("expected", "captured", "lost")}
    for s, e, k, t, b in truth.all():
        if not_dumped(k, t):
            continue  # the fadump area (by design) and memory beyond mem= are never dumped
        keep, cls = dump_action(k, t, level)
        if cls not in ("kernel", "user"):
            continue  # kernel pages are makedumpfile's "kernel data": reserved ones too
        if not keep:
            continue  # filtered out on purpose: not lost
        good = 0
        for ds, de, dk, dt, db in dump.pieces(s, e):
            if dt == t and db == b + (ds - s) // ps:
                good += de - ds
        out[f"{cls}_pages_expected"] += (e - s) // ps
        out[f"{cls}_pages_captured"] += good // ps
        out[f"{cls}_pages_lost"] += (e - s - good) // ps
    return out


def judge(kernel: Any, capture: Any) -> dict[str, Any]:
    status = dump_status(kernel, capture)
    out = {"status": status, "kernel_pages_lost": 0, "user_pages_lost": 0}
    if status not in ("saved", "available"):
        return out
    ps = kernel.machine.page_size
    if status == "saved":
        d = capture.saved_dumps[-1]
        kept, level = d["kept"], d["level"]
        out["path"] = d["path"]
    else:
        kept, _ex, _un = capture.vmcore_pages(0, capture.last_vmcore)
        level = 0
    out["level"] = level
    out.update(page_counts(kernel.crash_truth, kept, level, ps))
    return out
