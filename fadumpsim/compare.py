"""One scenario under several kernel profiles, side by side (`fadumpsim compare`).

Each profile spec is `NAME` or `NAME:STEP+STEP` (the steps reverted, e.g.
`upstream:hotplug-ready` is the 2019-2023 kernel). The scenario's own `profile` and
`revert` are replaced; its `[expect]` is dropped, because expectations are written for
one profile: what is compared is the FIFO run's facts and the invariant failures an
exhaustive exploration finds.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from fadumpsim import api, sim
from fadumpsim.actors.machine import PROFILES, REVERTABLE
from fadumpsim.scenario import Scenario

DEFAULT_PROFILES = ("classic", "rfc-v6", "upstream")
DEFAULT_BUDGET = 300


class ProfileError(ValueError):
    """A bad profile spec: one line."""


def parse_profiles(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """'classic,upstream:hotplug-ready+cma' -> [(classic, ()), (upstream, (hotplug-ready, cma))]."""
    out = []
    for spec in text.split(","):
        spec = spec.strip()
        name, colon, rest = spec.partition(":")
        if name not in PROFILES:
            raise ProfileError(f"unknown profile {name!r} (expected {', '.join(PROFILES)})")
        steps = tuple(s for s in rest.split("+") if s) if rest else ()
        for s in steps:
            if s not in REVERTABLE[name]:
                can = ", ".join(REVERTABLE[name]) or "nothing"
                raise ProfileError(f"profile {name} cannot revert {s!r} (it can revert: {can})")
        if colon and not steps:
            raise ProfileError(f"profile spec {spec!r}: name the steps to revert after ':'")
        out.append((name, steps))
    if not out:
        raise ProfileError("no profiles given")
    return out


def spec_name(name: str, revert: tuple[str, ...]) -> str:
    return name + (":" + "+".join(revert) if revert else "")


def variant(sc: Scenario, name: str, revert: tuple[str, ...]) -> Scenario:
    """The scenario under another kernel: same machine, scripts and command line."""
    d = copy.deepcopy(sc.data)
    d["profile"] = name
    d.pop("expect", None)
    kt = d.setdefault("kernel", {})
    kt.pop("revert", None)
    if revert:
        kt["revert"] = list(revert)
    return Scenario(d, source=sc.source)


@dataclass
class Row:
    profile: str
    memtotal_mb: int
    boot_memory_mb: int
    reserved_mb: int
    area_removable: str
    registered: bool
    registrations: int
    dump: str
    kernel_pages_lost: int
    user_pages_lost: int
    explore: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def area_removable(kernel: Any) -> str:
    """Can DLPAR take the fadump area's LMBs? Registered, no profile lets it (the kernel's
    is_fadump_memory_area() check); unregistered, only a ZONE_MOVABLE area can go."""
    fw = kernel.fw
    if not fw.reserve_dump_area_size:
        return "no area"
    return "when unregistered" if fw.zone_movable else "never"


def compare_one(sc: Scenario, name: str, revert: tuple[str, ...], budget: int) -> Row:
    v = variant(sc, name, revert)
    res = sim.run(v, keep_sched=True)
    kernel = res.sched.actors["kernel"]
    fw = kernel.fw
    row = Row(spec_name(name, revert), res.memtotal_mb, fw.boot_memory_size >> 20,
              fw.reserve_dump_area_size >> 20, area_removable(kernel), res.registered,
              fw.registrations, res.dump["status"], res.dump["kernel_pages_lost"],
              res.dump["user_pages_lost"])
    if budget:
        ex = api.explore(v, "exhaustive", budget)
        failures: dict[str, int] = {}
        for g in ex.failures:
            failures[g.invariant] = failures.get(g.invariant, 0) + g.count
        row.explore = {"schedules": ex.schedules, "complete": ex.complete,
                       "failures": dict(sorted(failures.items()))}
    return row


def compare(sc: Scenario | str, profiles: list[tuple[str, tuple[str, ...]]] | None = None,
            budget: int = DEFAULT_BUDGET) -> list[Row]:
    """Rows in the order of `profiles` (ScenarioError for a bad scenario)."""
    if isinstance(sc, str):
        sc = api.system(sc).scenario
    profiles = profiles or [(p, ()) for p in DEFAULT_PROFILES]
    rows = []
    for name, revert in profiles:
        rows.append(compare_one(sc, name, revert, budget))
    return rows


# -- presentation ----------------------------------------------------------------------------
COLUMNS = ("profile", "boot memory", "reserved", "MemTotal", "area hot-removable",
           "registered", "dump", "kernel pages lost", "user pages lost", "ordering failures")


def failures_text(ex: dict[str, Any]) -> str:
    if not ex:
        return "not explored"
    found = ", ".join(f"{k} {v}" for k, v in ex["failures"].items()) or "none"
    scope = "complete" if ex["complete"] else "incomplete"
    n = ex["schedules"]
    return f"{found} ({n} schedule{'s' if n != 1 else ''}, {scope})"


def cells(r: Row) -> list[str]:
    return [r.profile, f"{r.boot_memory_mb}MB", f"{r.reserved_mb}MB", f"{r.memtotal_mb}MB",
            r.area_removable, f"{'yes' if r.registered else 'no'} ({r.registrations}x)",
            r.dump, str(r.kernel_pages_lost), str(r.user_pages_lost), failures_text(r.explore)]


def markdown(scenario: str, rows: list[Row]) -> str:
    lines = [f"### {scenario}", "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def html_table(scenario: str, rows: list[Row]) -> str:
    """One scenario's table as an HTML section (the page comes from fadumpsim/report.py)."""
    from html import escape
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells(r)) + "</tr>"
                   for r in rows)
    return (f"<h2>{escape(scenario)}</h2>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n")
