"""The README's first lines are the two fresh-machine commands; CI runs the second verbatim."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_commands_and_ci():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[0] == "```sh" and lines[3] == "```"
    install_run, install_test = lines[1], lines[2]
    assert install_run.endswith("fadumpsim run")
    assert "pytest" in install_test
    assert install_test in (ROOT / ".ci" / "run").read_text().splitlines()
