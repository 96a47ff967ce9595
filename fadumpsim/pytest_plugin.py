"""pytest plugin (entry point `fadumpsim`): `pytest scenarios/` runs every scenario file.

Each `*.toml` file that is a scenario becomes one test item; it fails with the
verdict block (expected vs. actual, violated invariants) as its message.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def pytest_collect_file(parent: Any, file_path: Path) -> Any:
    if file_path.suffix == ".toml" and file_path.name != "pyproject.toml" and \
            (file_path.parent.name == "scenarios" or _named(parent, file_path)):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def _named(parent: Any, file_path: Path) -> bool:
    """The file was named on the command line (`pytest pinned.toml`, e.g. a regression
    scenario written by `fadumpsim minimize --scenario`), wherever it lives."""
    root = Path(parent.config.invocation_params.dir)
    for a in parent.config.args:
        p = Path(a.split("::")[0])
        if (p if p.is_absolute() else root / p).resolve() == file_path.resolve():
            return True
    return False


class ScenarioFile(pytest.File):
    def collect(self) -> Any:
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioFailed(Exception):
    pass


class ScenarioItem(pytest.Item):
    def runtest(self) -> None:
        from fadumpsim import scenario, sim
        from fadumpsim.render import verdict_lines
        sc = scenario.load(str(self.path))
        recs: list = []
        res = sim.run(sc, sink=recs.append)
        if not res.ok:
            raise ScenarioFailed("\n".join(verdict_lines(res, recs)))

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int, str]:
        return self.path, 0, f"scenario {self.name}"
