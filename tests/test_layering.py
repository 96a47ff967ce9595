"""Imports point down, and nothing imports in a cycle (hardening issue, "layering").

Read from the source with `ast` (every import, including those inside functions),
independently of how setuptools maps the folders, so a lazy import cannot hide an
upward dependency.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: repository folder -> installed package name
FOLDERS = {"fadumpsim": "fadumpsim", "events": "fadumpsim.events", "replay": "fadumpsim.replay",
           "actors": "fadumpsim.actors", "scenarios": "fadumpsim.scenarios"}
#: bottom to top; a module may import only from its own layer or a lower one
LAYERS = [
    ("ground", ("fadumpsim.events", "fadumpsim.dumpfile")),
    ("runtime", ("fadumpsim.replay",)),
    ("actors", ("fadumpsim.actors",)),
    ("app", ("fadumpsim.scenario", "fadumpsim.sim", "fadumpsim.invariants",
             "fadumpsim.ownership", "fadumpsim.liveness",
             "fadumpsim.verdict", "fadumpsim.render", "fadumpsim.expect", "fadumpsim.api",
             "fadumpsim.explain", "fadumpsim.report", "fadumpsim.pin",
             "fadumpsim.memmap", "fadumpsim.eventtext", "fadumpsim.statefmt", "fadumpsim.difflog",
             "fadumpsim.scenarios", "fadumpsim.compare", "fadumpsim.strategies",
             "fadumpsim.swarm", "fadumpsim.hostpaths")),
    ("top", ("fadumpsim.cli", "fadumpsim.cli_common", "fadumpsim.cli_explore",
             "fadumpsim.cli_inspect", "fadumpsim.cli_compare", "fadumpsim.cli_swarm",
             "fadumpsim.pytest_plugin")),
]


def modules() -> dict[str, Path]:
    out = {}
    for folder, pkg in FOLDERS.items():
        for f in sorted((ROOT / folder).rglob("*.py")):
            rel = f.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts])] = f
    return out


def layer_of(mod: str) -> int:
    if mod == "fadumpsim":
        return 0
    for i, (_name, prefixes) in enumerate(LAYERS):
        if any(mod == p or mod.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{mod} is in no layer: add it to LAYERS")


def imports_of(mod: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names = [stem] + [f"{stem}.{a.name}" for a in node.names]
        for n in names:
            # the longest known module that `n` names or lies in
            parts = n.split(".")
            for k in range(len(parts), 0, -1):
                cand = ".".join(parts[:k])
                if cand in known:
                    if cand != mod:
                        out.add(cand)
                    break
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(m, p, known) for m, p in mods.items()}


def test_every_import_points_down():
    bad = []
    for mod, deps in sorted(graph().items()):
        for d in sorted(deps):
            if d == "fadumpsim" or layer_of(d) <= layer_of(mod):
                continue
            bad.append(f"{mod} ({LAYERS[layer_of(mod)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    g = graph()
    # Tarjan's strongly connected components; any component of size > 1 is a cycle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_a_planted_upward_import(tmp_path):
    """The checker itself can fail: an actor importing the CLI is reported."""
    f = tmp_path / "x.py"
    f.write_text("def f():\n    from fadumpsim.cli import main\n")
    deps = imports_of("fadumpsim.actors.x", f, set(modules()))
    assert "fadumpsim.cli" in deps and layer_of("fadumpsim.cli") > layer_of("fadumpsim.actors.x")


@pytest.mark.parametrize("name", ["actors", "events", "replay", "scenarios"])
def test_no_top_level_package_outside_the_repo(name, tmp_path):
    """The wheel installs one namespace: `import events` fails outside the repository."""
    r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr
    r = subprocess.run([sys.executable, "-c", f"import fadumpsim.{name}"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
