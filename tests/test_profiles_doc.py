"""docs/profiles.md holds the comparison for every built-in scenario, as generated now."""
import importlib.util
from pathlib import Path

from fadumpsim.scenario import builtin_names

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gen_profiles", ROOT / "benchmarks" / "gen_profiles.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)


def test_every_builtin_scenario_has_a_table():
    text = gen.DOC.read_text()
    assert [line[4:] for line in text.splitlines() if line.startswith("### ")] == builtin_names()


def test_regenerated_tables_match_the_committed_file():
    text = gen.DOC.read_text()
    for name in ("udev-reload-race", "hotadd-kept-in-dump", "upstream-area-not-removable"):
        assert gen.table(name) in text, f"docs/profiles.md is stale for {name}: " \
                                        "run python benchmarks/gen_profiles.py"


def test_splice_keeps_the_hand_written_text():
    doc = f"intro\n{gen.BEGIN}\nold\n{gen.END}\noutro\n"
    assert gen.splice(doc, "new\n") == f"intro\n{gen.BEGIN}\n\nnew\n\n{gen.END}\noutro\n"
