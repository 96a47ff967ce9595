"""pytest plugin (entry point `fadumpsim`): scenario files as tests, for projects that opt in.

Installed with fadumpsim, this plugin is loaded in every pytest session of the
environment, so it collects only what asks for it:

- files matching the ini option `fadumpsim_scenarios` (glob patterns relative to
  the rootdir, e.g. `fadumpsim_scenarios = ["scenarios/*.toml"]` in
  `[tool.pytest.ini_options]`), and
- any `.toml` file named explicitly on the command line (`pytest my.toml`).

Each becomes one test item. A scenario that does not load fails in one line (the
same line `fadumpsim run` prints); a failing scenario fails with its verdict block,
and its event log is kept (in a fresh temporary directory) with the `fadumpsim replay`
command that re-runs it.
"""
from __future__ import annotations

import fnmatch
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

INI = "fadumpsim_scenarios"


def pytest_addoption(parser: Any) -> None:
    parser.addini(INI, type="linelist", default=[],
                  help="fadumpsim: glob patterns (relative to the rootdir) of scenario "
                       "files to collect as tests, e.g. scenarios/*.toml")


def _opted_in(config: Any, file_path: Path) -> bool:
    try:
        rel = file_path.resolve().relative_to(Path(config.rootpath).resolve()).as_posix()
    except ValueError:
        return False
    return any(fnmatch.fnmatch(rel, pat) for pat in config.getini(INI))


def pytest_collect_file(parent: Any, file_path: Path) -> Any:
    if file_path.suffix != ".toml" or file_path.name == "pyproject.toml":
        return None
    config = parent.config
    if _opted_in(config, file_path) or _named(parent, file_path):
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
    """A scenario that ran and failed, or did not load: the message is the whole report."""


class ScenarioItem(pytest.Item):
    def runtest(self) -> None:
        from fadumpsim import api, scenario
        from fadumpsim.render import verdict_lines
        try:
            sc = scenario.load(str(self.path))
        except scenario.ScenarioError as e:
            raise ScenarioFailed(f"invalid scenario: {e}") from None
        # a private directory (kept only when the scenario fails, for `fadumpsim replay`)
        where = Path(tempfile.mkdtemp(prefix=f"fadumpsim-{self.path.stem}-"))
        log = where / f"{self.path.stem}.fadlog"
        try:
            res = api.record(sc, str(log))
        except BaseException:
            shutil.rmtree(where, ignore_errors=True)
            raise
        if not res.ok:
            from fadumpsim.events.logfile import LogReader
            recs = LogReader(str(log)).records()  # the verdict explains from the events
            raise ScenarioFailed("\n".join([*verdict_lines(res, recs),  # ends with "log: PATH"
                                            f"replay it: fadumpsim replay {log}"]))
        shutil.rmtree(where, ignore_errors=True)

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int, str]:
        return self.path, 0, f"scenario {self.name}"
