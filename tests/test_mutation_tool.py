"""The mutation check's own machinery: the mutants it makes are the ones it claims."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import mutation  # noqa: E402

SRC = '''
LIMIT = 4


def f(a, b):
    """Docstring: never a mutant."""
    x = a + 1
    if a < b and not b == 3:
        return True
    return x
'''


def _kinds(src):
    return [(getattr(n, "lineno", 0), k, t) for n, k, t in mutation.points(ast.parse(src))]


def test_every_operator_yields_its_mutant():
    kinds = {k for _l, k, _t in _kinds(SRC)}
    assert {"cmp0", "binop", "boolop", "not", "int", "ret", "del"} <= kinds
    texts = [t for _l, _k, t in _kinds(SRC)]
    assert "Lt -> LtE" in texts and "Eq -> NotEq" in texts and "Add -> Sub" in texts
    assert "4 -> 5" in texts and "return True -> False" in texts


def test_docstrings_and_module_level_statements_are_not_deleted():
    dels = [l for l, k, _t in _kinds(SRC) if k == "del"]
    assert 2 not in dels          # LIMIT = 4 (module level)
    assert 6 not in dels          # the docstring
    assert 7 in dels and 10 in dels   # `return True` (line 9) gets the `ret` mutant instead


@pytest.mark.parametrize("kind,expect", [
    ("cmp0", "a <= b"), ("binop", "a - 1"), ("boolop", " or "), ("int", "LIMIT = 5"),
    ("ret", "return False"),
])
def test_mutated_source_changes_exactly_one_thing(tmp_path, monkeypatch, kind, expect):
    (tmp_path / "m.py").write_text(SRC)
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    ms = [m for m in mutation.mutants_of("m.py") if m.kind == kind]
    assert ms
    out = mutation.mutated_source(ms[0])
    assert expect in out
    base = ast.unparse(ast.parse(SRC))
    diff = [(a, b) for a, b in zip(base.splitlines(), out.splitlines()) if a != b]
    assert len(diff) == 1, diff


def test_the_order_of_mutants_is_stable():
    a = [(l, k, t) for l, k, t in _kinds(SRC)]
    b = [(l, k, t) for l, k, t in _kinds(SRC)]
    assert a == b and [l for l, _k, _t in a] == sorted(l for l, _k, _t in a)


def test_score_counts_equivalent_apart():
    r = [{"area": "x", "result": "killed"}, {"area": "x", "result": "killed (timeout)"},
         {"area": "x", "result": "survived"}, {"area": "x", "result": "equivalent"}]
    t = mutation.score(r)["x"]
    assert (t["killed"], t["survived"], t["equivalent"], t["scored"]) == (2, 1, 1, 3)
    assert round(t["pct"]) == 67


def test_every_area_names_existing_modules():
    root = Path(mutation.ROOT)
    for area, (mods, tests) in mutation.AREAS.items():
        assert all((root / m).exists() for m in mods), area
        assert any((root / t).exists() for t in tests), area


def test_only_runs_the_named_mutant_and_refuses_an_unknown_id(tmp_path, monkeypatch, capsys):
    (tmp_path / "m.py").write_text("def lt(a, b):\n    return a < b\n\n\ndef one():\n    return 1\n")
    (tmp_path / "test_m.py").write_text(
        "from m import lt\n\n\ndef test_lt():\n    assert lt(1, 2) and not lt(2, 2)\n")
    monkeypatch.setattr(mutation, "ROOT", tmp_path)
    monkeypatch.setattr(mutation, "AREAS", {"toy": (["m.py"], ["test_m.py"])})
    ms = {m.kind: m for m in mutation.mutants_of("m.py")}
    cmp, one = ms["cmp0"].id, ms["int"].id          # `<` -> `<=` (caught), 1 -> 2 (not)
    out = tmp_path / "r.json"
    assert mutation.main(["--area", "toy", "--only", one, "--only", cmp, "--json", str(out)]) == 0
    import json
    got = [(r["id"], r["result"]) for r in json.loads(out.read_text())["results"]]
    assert got == [(one, "survived"), (cmp, "killed")]
    assert mutation.main(["--area", "toy", "--only", "m.py:99:cmp0:7"]) == 2
    assert "no such mutant in toy: m.py:99:cmp0:7" in capsys.readouterr().err


def test_every_named_mutant_still_matches_its_module_exactly_once():
    # a pattern that no longer matches (the module was rewritten) would silently drop a
    # named bug from the check; named_source raises for 0 or 2+ matches
    named = mutation.load_named()
    assert len(named) >= 20
    for n in named:
        out = mutation.named_source(n)
        assert out != (Path(mutation.ROOT) / n.path).read_text(encoding="utf-8"), n.name
