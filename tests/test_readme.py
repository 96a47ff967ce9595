"""The README's first two lines are the fresh-machine commands; CI runs the second verbatim."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_commands_and_ci():
    lines = (ROOT / "README.md").read_text().splitlines()
    install_run, install_test = lines[0].rstrip(), lines[1]
    assert install_run.startswith("python3 -m venv .venv && ") and install_run.endswith("fadumpsim run")
    assert install_test.startswith("python3 -m venv .venv && ") and "pytest" in install_test
    assert install_test in (ROOT / ".ci" / "run").read_text().splitlines()
