"""The pytest plugin collects only what opts in (hardening issue, packaging).

Each case runs pytest in a subprocess in a fresh directory: the plugin is installed
in this environment, so it is loaded there exactly as in a foreign project."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pytest_in(d: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=d, capture_output=True, text=True, timeout=300)


def test_foreign_project_with_scenarios_config_toml_untouched(tmp_path):
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "config.toml").write_text("[server]\nport = 80\n")
    (tmp_path / "test_own.py").write_text("def test_own():\n    assert True\n")
    r = pytest_in(tmp_path)
    assert r.returncode == 0, r.stdout
    assert "1 passed" in r.stdout and "config" not in r.stdout


def test_ini_option_opts_in_and_explicit_toml_is_collected(tmp_path):
    (tmp_path / "sc").mkdir()
    (tmp_path / "sc" / "ok.toml").write_text('name = "ok"\n')
    (tmp_path / "other.toml").write_text('name = "other"\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\nfadumpsim_scenarios = sc/*.toml\n")
    r = pytest_in(tmp_path, "--co")
    assert r.stdout.splitlines()[0] == "sc/ok.toml::ok", r.stdout
    assert "other" not in r.stdout
    assert "1 passed" in pytest_in(tmp_path).stdout
    r = pytest_in(tmp_path, "other.toml")
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout


def test_bad_scenario_one_line_and_failure_keeps_a_replayable_log(tmp_path):
    (tmp_path / "bad.toml").write_text('name = "bad"\nbogus = 1\n')
    (tmp_path / "fails.toml").write_text('name = "fails"\n[expect]\nmemtotal_mb = 1\n')
    r = pytest_in(tmp_path, "bad.toml", "fails.toml", f"--basetemp={tmp_path / 'bt'}")
    assert r.returncode == 1
    bad = [ln for ln in r.stdout.splitlines() if "unknown key 'bogus'" in ln]
    assert bad and bad[0].startswith("invalid scenario: ") and "Traceback" not in r.stdout
    assert "[FAIL] expect memtotal_mb: expected 1, actual 8133" in r.stdout
    cmd = next(ln for ln in r.stdout.splitlines() if ln.startswith("replay it: "))
    log = cmd.split("fadumpsim replay ", 1)[1]
    rr = subprocess.run([sys.executable, "-m", "fadumpsim.cli", "replay", log, "-q"],
                        capture_output=True, text=True)
    assert rr.returncode == 1 and "replay: all" in rr.stdout  # it fails again, identically


def test_this_repository_still_collects_its_scenarios():
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "--co", "scenarios/"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    n = len(list((ROOT / "scenarios").glob("*.toml")))
    assert f"{n} tests collected" in r.stdout, r.stdout
