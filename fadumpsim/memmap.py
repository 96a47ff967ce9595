"""The partition's memory map at one moment, as runs of LMBs with what covers them.

Built from actor snapshots (`state --at N`, the HTML report): firmware's LMB
assignment, the running kernel's memblock memory/reserved ranges and ZONE_MOVABLE
range, its fadump reserved area and boot-memory area, and the ranges firmware's
registration covers. The map is cut at every boundary of any of these and adjacent
pieces with the same attributes are merged, so a 64TB partition is a handful of rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

Range = tuple[int, int]   # [start, end)


@dataclass
class Row:
    start: int
    end: int
    first_lmb: int
    last_lmb: int
    assigned: bool          # firmware assigns it to the partition
    present: bool           # in the kernel's memblock.memory
    zone: str               # "Movable", "Normal" or "-"
    reserved: str           # "", "memblock" (fully) or "partly"
    areas: tuple[str, ...]  # "boot memory", "fadump area", "registered"

    def lmbs(self) -> str:
        return (f"LMB {self.first_lmb}" if self.first_lmb == self.last_lmb
                else f"LMB {self.first_lmb}-{self.last_lmb}")

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "lmbs": [self.first_lmb, self.last_lmb],
                "assigned": self.assigned, "present": self.present, "zone": self.zone,
                "reserved": self.reserved, "areas": list(self.areas)}


def _inside(ranges: Iterable[Range], a: int, b: int) -> str:
    """'' when [a, b) meets none of the ranges, 'all' when covered, else 'part'."""
    cov = 0
    for s, e in ranges:
        lo, hi = max(s, a), min(e, b)
        if lo < hi:
            cov += hi - lo
    return "" if cov == 0 else "all" if cov >= b - a else "part"


def memory_map(snaps: dict[str, dict[str, Any]], lmb_size: int,
               kernel: str | None = None) -> list[Row]:
    """Rows for the kernel that runs (capture once it booted, else the production one)."""
    if kernel is None:
        kernel = "capture" if snaps.get("capture", {}).get("booted") else "kernel"
    fw = snaps.get("firmware", {})
    k = snaps.get(kernel, {})
    fd = k.get("fw_dump", {}) or {}
    assigned = [(s * lmb_size, (s + n) * lmb_size) for s, n, a in fw.get("lmb_runs", []) if a]
    total = max([(s + n) * lmb_size for s, n, _a in fw.get("lmb_runs", [])] or [0])
    memory = [tuple(r) for r in k.get("memblock_memory", [])]
    reserved = [tuple(r) for r in k.get("memblock_reserved", [])]
    movable = [tuple(k["movable"])] if k.get("movable") else []
    areas: list[tuple[str, Range]] = []
    if fd.get("boot_memory_size"):
        areas.append(("boot memory", (0, fd["boot_memory_size"])))
    if fd.get("reserve_dump_area_size"):
        s = fd["reserve_dump_area_start"]
        areas.append(("fadump area", (s, s + fd["reserve_dump_area_size"])))
    reg = fw.get("registered") or {}
    for sec in reg.get("sections", []) if isinstance(reg, dict) else []:
        if sec.get("length"):
            d = sec["destination"]
            areas.append(("registered", (d, d + sec["length"])))
    cuts = {0, total}
    for rs in (assigned, memory, reserved, movable, [r for _n, r in areas]):
        for s, e in rs:
            cuts.update((s, e))
    cuts = sorted(c for c in cuts if 0 <= c <= total)
    rows: list[Row] = []
    for a, b in zip(cuts, cuts[1:]):
        if a >= b:
            continue
        present = bool(_inside(memory, a, b))
        res = _inside(reserved, a, b)
        row = Row(a, b, a // lmb_size, (b - 1) // lmb_size, bool(_inside(assigned, a, b)),
                  present, ("Movable" if _inside(movable, a, b) else "Normal") if present else "-",
                  {"": "", "all": "memblock", "part": "partly"}[res],
                  tuple(dict.fromkeys(n for n, r in areas if _inside([r], a, b))))
        p = rows[-1] if rows else None
        if p is not None and (p.assigned, p.present, p.zone, p.reserved, p.areas) == \
                (row.assigned, row.present, row.zone, row.reserved, row.areas):
            p.end, p.last_lmb = row.end, row.last_lmb
        else:
            rows.append(row)
    return rows


def map_lines(rows: list[Row]) -> list[str]:
    """A fixed-width table: one line per run, hex addresses."""
    digits = max(9, len(f"{rows[-1].end - 1:x}") if rows else 9)
    rng = 2 * (digits + 2) + 1
    lw = max([13, *(len(r.lmbs()) for r in rows)])
    out = [f"  {'LMBs':<{lw}} {'range':<{rng}} {'firmware':<10} {'kernel':<8} {'zone':<8} "
           f"{'memblock':<9} areas"]
    for r in rows:
        out.append(f"  {r.lmbs():<{lw}} {r.start:#0{digits + 2}x}-{r.end - 1:#0{digits + 2}x} "
                   f"{'assigned' if r.assigned else '-':<10} {'present' if r.present else '-':<8} "
                   f"{r.zone:<8} {r.reserved or '-':<9} {', '.join(r.areas) or '-'}")
    return out
