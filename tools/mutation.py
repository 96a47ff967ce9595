#!/usr/bin/env python3
"""Mutation check: how many plausible one-line bugs does the test suite catch?

A *mutant* is one small AST change in one module of an area: a comparison flipped
or loosened (`<` -> `<=`, `==` -> `!=`), an integer constant off by one, `and` <->
`or`, a `not` dropped, `+` <-> `-`, a returned boolean negated, a statement
deleted. For each area (the model, the invariants, the log, exploration, the
runtime, the dump files) the script enumerates every mutation point in the area's
modules in a fixed order, draws a seeded sample, writes each mutant over its module
(restored afterwards, even on Ctrl-C), runs the area's tests with `pytest -x`, and
counts the mutant *killed* when the tests fail (or time out), *survived* otherwise.

Mutants listed in `tools/mutation-equivalent.txt` (id and reason: the change cannot
alter behaviour) are left out of the score. The score is killed / (sampled -
equivalent) per area. Named mutants (`tools/mutation_named.py`) reproduce the bugs of the
test-strength issue one by one; each must be killed.

    python tools/mutation.py                    # every area, default sample
    python tools/mutation.py --area invariants --sample 40
    python tools/mutation.py --list --area log  # the mutants, without running
    python tools/mutation.py --markdown         # the README table
    python tools/mutation.py --area model --only actors/firmware.py:83:cmp0:40   # one mutant

Run it in a clean work tree: it rewrites source files while it runs (and restores
them); it refuses to start when `git status` shows changes to the files it mutates.
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]

#: area -> (modules to mutate, tests that judge them)
AREAS: dict[str, tuple[list[str], list[str]]] = {
    "model": (["actors/kernel/sizing.py", "actors/kernel/actor.py", "actors/kernel/fadump.py", "actors/kernel/dlpar.py",
               "actors/firmware.py", "actors/kernel/crash.py", "actors/kernel/mm.py",
               "actors/pagemap.py", "actors/hotplug.py"],
              ["tests/test_model_units.py", "tests/test_sizing.py", "tests/test_pagemap.py",
               "tests/test_firmware.py", "tests/test_kernel.py", "tests/test_hotplug.py",
               "tests/test_regressions.py", "scenarios"]),
    "firmware": (["actors/flavours.py", "actors/firmware_copy.py"], ["tests/test_firmware.py"]),
    "invariants": (["fadumpsim/invariants.py", "fadumpsim/verdict.py"],
                   ["tests/test_checker_units.py", "tests/test_invariants.py",
                    "tests/test_regressions.py", "tests/test_kernel.py",
                    "tests/test_hotplug.py", "tests/test_explore.py", "scenarios"]),
    "log": (["events/logfile.py", "events/codec.py", "events/envelope.py", "events/types.py"],
            ["tests/test_logfile.py", "tests/test_log_decode.py", "tests/test_cdecode.py",
             "tests/test_runtime.py", "tests/test_regressions.py"]),
    "exploration": (["replay/dpor.py", "replay/minimize.py", "replay/explore.py"],
                    ["tests/test_minimize_units.py", "tests/test_explore.py",
                     "tests/test_minimize_causal.py", "tests/test_regressions.py"]),
    "minimize": (["replay/minimize.py", "replay/constraints.py"],
                 ["tests/test_minimize_units.py", "tests/test_minimize_causal.py",
                  "tests/test_explore.py"]),
    "runtime": (["replay/runtime.py", "replay/strategies.py", "replay/replayer.py",
                 "replay/actor.py", "actors/ops.py"],
                ["tests/test_runtime_units.py", "tests/test_scheduler_scale.py", "tests/test_runtime.py", "tests/test_runtime_order.py", "tests/test_regressions.py",
                 "tests/test_kernel.py"]),
    "dumpfiles": (["fadumpsim/dumpfile/kdump.py", "fadumpsim/dumpfile/elfcore.py",
                   "fadumpsim/dumpfile/image.py", "actors/kernel/dumpwriter.py"],
                  ["tests/test_dumpfile_units.py", "tests/test_dumpfile.py", "tests/test_dump_size.py",
                   "tests/test_inspect_hostile.py", "tests/test_makedumpfile.py",
                   "tests/test_dump_integration.py", "tests/test_regressions.py"]),
}

FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
        ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
        ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.FloorDiv: ast.Mult, ast.Mult: ast.FloorDiv,
         ast.LShift: ast.RShift, ast.RShift: ast.LShift, ast.BitAnd: ast.BitOr,
         ast.BitOr: ast.BitAnd}


@dataclass(frozen=True)
class Mutant:
    path: str        # repository-relative
    index: int       # the n-th mutation point of the file (stable for unchanged source)
    line: int
    kind: str
    text: str        # what changes, for humans

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}:{self.kind}:{self.index}"


def _docstring_nodes(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0]))
    return out


def points(tree: ast.AST) -> Iterator[tuple[ast.AST, str, str]]:
    """Every mutation point of a module, in source order: (node, kind, description)."""
    docs = _docstring_nodes(tree)
    # statements deleted only inside functions: deleting a module-level name is a
    # NameError at import, which any test "kills" without judging behaviour
    in_func = {id(st) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
               for st in ast.walk(f) if isinstance(st, ast.stmt) and st is not f}
    found: list[tuple[int, int, int, ast.AST, str, str]] = []
    order = 0

    def add(node: ast.AST, kind: str, text: str) -> None:
        nonlocal order
        order += 1
        found.append((getattr(node, "lineno", 0), getattr(node, "col_offset", 0), order,
                      node, kind, text))

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                if type(op) in FLIP:
                    add(node, f"cmp{k}", f"{type(op).__name__} -> {FLIP[type(op)].__name__}")
        elif isinstance(node, ast.BinOp) and type(node.op) in BINOP:
            add(node, "binop", f"{type(node.op).__name__} -> {BINOP[type(node.op)].__name__}")
        elif isinstance(node, ast.BoolOp):
            add(node, "boolop", "and <-> or")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            add(node, "not", "drop `not`")
        elif isinstance(node, ast.Constant) and type(node.value) is int and \
                not isinstance(node.value, bool) and abs(node.value) < 1 << 40:
            add(node, "int", f"{node.value} -> {node.value + 1}")
        elif isinstance(node, ast.Return) and isinstance(node.value, ast.Constant) and \
                isinstance(node.value.value, bool):
            add(node, "ret", f"return {node.value.value} -> {not node.value.value}")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Expr, ast.Return)) and \
                id(node) not in docs and id(node) in in_func:
            add(node, "del", "delete statement")
    found.sort(key=lambda f: (f[0], f[1], f[2]))
    for _l, _c, _o, node, kind, text in found:
        yield node, kind, text


def _apply(node: ast.AST, kind: str) -> ast.AST | None:
    """The mutated replacement of `node` (None: delete the statement)."""
    n = copy.copy(node)
    if kind.startswith("cmp"):
        k = int(kind[3:])
        ops = list(n.ops)  # type: ignore[attr-defined]
        ops[k] = FLIP[type(ops[k])]()
        n.ops = ops  # type: ignore[attr-defined]
    elif kind == "binop":
        n.op = BINOP[type(n.op)]()  # type: ignore[attr-defined]
    elif kind == "boolop":
        n.op = ast.Or() if isinstance(n.op, ast.And) else ast.And()  # type: ignore[attr-defined]
    elif kind == "not":
        return n.operand  # type: ignore[attr-defined]
    elif kind == "int":
        n.value = n.value + 1  # type: ignore[attr-defined]
    elif kind == "ret":
        n.value = ast.Constant(not n.value.value)  # type: ignore[attr-defined]
    elif kind == "del":
        return None
    return n


class _Replace(ast.NodeTransformer):
    def __init__(self, target: ast.AST, kind: str) -> None:
        self.target, self.kind = target, kind

    def generic_visit(self, node: ast.AST) -> ast.AST:
        for field, old in ast.iter_fields(node):
            if isinstance(old, list):
                new = []
                for v in old:
                    if v is self.target:
                        r = _apply(v, self.kind)
                        if r is None:
                            r = ast.Pass()
                        new.append(r)
                    elif isinstance(v, ast.AST):
                        new.append(self.visit(v))
                    else:
                        new.append(v)
                setattr(node, field, new)
            elif old is self.target:
                setattr(node, field, _apply(old, self.kind))
            elif isinstance(old, ast.AST):
                setattr(node, field, self.visit(old))
        return node


def mutants_of(path: str) -> list[Mutant]:
    src = (ROOT / path).read_text(encoding="utf-8")
    tree = ast.parse(src)
    return [Mutant(path, i, getattr(node, "lineno", 0), kind, text)
            for i, (node, kind, text) in enumerate(points(tree))]


def mutated_source(m: Mutant) -> str:
    src = (ROOT / m.path).read_text(encoding="utf-8")
    tree = ast.parse(src)
    for i, (node, kind, _t) in enumerate(points(tree)):
        if i == m.index:
            new = _Replace(node, kind).visit(tree)
            ast.fix_missing_locations(new)
            return ast.unparse(new) + "\n"
    raise KeyError(m.id)


# -- the bugs the test-strength issue names, as textual mutants -------------------------------
@dataclass(frozen=True)
class Named:
    name: str
    path: str
    pattern: str     # regular expression, must match exactly once
    repl: str


def load_named() -> list[Named]:
    p = ROOT / "tools" / "mutation_named.py"
    if not p.exists():
        return []
    ns: dict = {"Named": Named}
    exec(compile(p.read_text(encoding="utf-8"), str(p), "exec"), ns)
    return list(ns.get("NAMED", []))


def named_source(n: Named) -> str:
    src = (ROOT / n.path).read_text(encoding="utf-8")
    hits = len(re.findall(n.pattern, src, flags=re.M))
    if hits != 1:
        raise ValueError(f"named mutant {n.name!r}: pattern matches {hits} times in {n.path}")
    return re.sub(n.pattern, n.repl, src, count=1, flags=re.M)


# -- running ------------------------------------------------------------------------------------
def run_tests(tests: list[str], timeout: float) -> tuple[str, float]:
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
           "-p", "no:randomly", *[t for t in tests if (ROOT / t).exists()]]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    # pytest in its own session: on a timeout the whole group goes, the helper processes a
    # test forked included (killing pytest alone left them running, using the CPU while the
    # next mutants' tests ran)
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, start_new_session=True) as r:
        try:
            r.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(r.pid, signal.SIGKILL)
            r.communicate()
            return "killed (timeout)", time.monotonic() - t0
    if r.returncode == 0:
        return "survived", time.monotonic() - t0
    if r.returncode in (1,):
        return "killed", time.monotonic() - t0
    return f"killed (pytest exit {r.returncode})", time.monotonic() - t0


def with_source(path: str, text: str, tests: list[str], timeout: float) -> tuple[str, float]:
    p = ROOT / path
    orig = p.read_bytes()
    try:
        p.write_text(text, encoding="utf-8")
        return run_tests(tests, timeout)
    finally:
        p.write_bytes(orig)


def equivalent() -> dict[str, str]:
    p = ROOT / "tools" / "mutation-equivalent.txt"
    out = {}
    if p.exists():
        for line in p.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                mid, _, why = line.partition(" ")
                out[mid] = why.strip()
    return out


def sample(area: str, n: int, seed: int) -> list[Mutant]:
    mods, _tests = AREAS[area]
    allm = [m for path in mods if (ROOT / path).exists() for m in mutants_of(path)]
    rng = random.Random(f"{seed}:{area}")
    if n >= len(allm):
        return allm
    return sorted(rng.sample(allm, n), key=lambda m: (m.path, m.index))


def chosen(area: str, only: list[str]) -> list[Mutant]:
    """The mutants of `area` named by id in `only` (sampled or not), in the order given."""
    mods, _tests = AREAS[area]
    by_id = {m.id: m for path in mods if (ROOT / path).exists() for m in mutants_of(path)}
    return [by_id[i] for i in only if i in by_id]


def dirty(paths: list[str]) -> list[str]:
    r = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=ROOT,
                       capture_output=True, text=True)
    return [line for line in r.stdout.splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--area", action="append", choices=sorted(AREAS))
    ap.add_argument("--sample", type=int, default=25, help="mutants per area (default 25)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--list", action="store_true", help="list the sampled mutants only")
    ap.add_argument("--named", action="store_true", help="run only the named mutants")
    ap.add_argument("--only", action="append", metavar="ID",
                    help="run only this mutant (an id from --list; repeatable)")
    ap.add_argument("--json", metavar="FILE", help="write every result to FILE")
    ap.add_argument("--markdown", action="store_true", help="print the score table")
    a = ap.parse_args(argv)
    areas = a.area or list(AREAS)
    eq = equivalent()
    if a.only:
        known = {m.id for area in areas for m in chosen(area, a.only)}
        unknown = [i for i in a.only if i not in known]
        if unknown:
            print(f"error: no such mutant in {', '.join(areas)}: {unknown[0]}", file=sys.stderr)
            return 2
    results: list[dict] = []
    if not a.named:
        for area in areas:
            mods, tests = AREAS[area]
            ms = chosen(area, a.only) if a.only else sample(area, a.sample, a.seed)
            if a.list:
                for m in ms:
                    print(f"{area:12} {m.id:55} {m.text}{'  [equivalent]' if m.id in eq else ''}")
                continue
            if dirty(mods):
                print(f"refusing: uncommitted changes in {area} modules", file=sys.stderr)
                return 2
            for m in ms:
                if m.id in eq:
                    results.append({"area": area, "id": m.id, "text": m.text,
                                    "result": "equivalent", "why": eq[m.id]})
                    continue
                res, dt = with_source(m.path, mutated_source(m), tests, a.timeout)
                results.append({"area": area, "id": m.id, "text": m.text, "result": res,
                                "seconds": round(dt, 1)})
                print(f"{area:12} {res:22} {m.id}  {m.text}", flush=True)
    if a.list:
        return 0
    named = load_named()
    if a.named or not (a.area or a.only):
        all_tests = sorted({t for _m, ts in AREAS.values() for t in ts})
        for n in named:
            # the tests of every area the module belongs to (all tests when it is in none)
            tests = list(dict.fromkeys(t for ms, ts in AREAS.values() if n.path in ms
                                       for t in ts)) or all_tests
            res, dt = with_source(n.path, named_source(n), tests, a.timeout)
            results.append({"area": "named", "id": n.name, "text": n.pattern, "result": res,
                            "seconds": round(dt, 1)})
            print(f"{'named':12} {res:22} {n.name}", flush=True)
    table = score(results)
    if a.json:
        Path(a.json).write_text(json.dumps({"results": results, "score": table}, indent=1))
    print()
    print(markdown(table) if a.markdown else "\n".join(
        f"{k:12} {v['killed']}/{v['scored']} killed ({v['pct']:.0f}%), "
        f"{v['equivalent']} equivalent" for k, v in table.items()))
    return 0


def score(results: list[dict]) -> dict[str, dict]:
    table: dict[str, dict] = {}
    for r in results:
        t = table.setdefault(r["area"], {"killed": 0, "survived": 0, "equivalent": 0})
        if r["result"] == "equivalent":
            t["equivalent"] += 1
        elif r["result"].startswith("killed"):
            t["killed"] += 1
        else:
            t["survived"] += 1
    for t in table.values():
        t["scored"] = t["killed"] + t["survived"]
        t["pct"] = 100.0 * t["killed"] / t["scored"] if t["scored"] else 100.0
    return table


def markdown(table: dict[str, dict]) -> str:
    lines = ["| area | killed / non-equivalent | score | equivalent (excluded) |",
             "|---|---:|---:|---:|"]
    for k, v in table.items():
        lines.append(f"| {k} | {v['killed']} / {v['scored']} | {v['pct']:.0f}% | {v['equivalent']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
