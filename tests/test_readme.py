"""The README's first two lines are the fresh-machine commands; CI runs the second verbatim."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_commands_and_ci():
    lines = (ROOT / "README.md").read_text().splitlines()
    install_run, install_test = lines[0].rstrip(), lines[1]
    assert install_run.startswith("python3 -m venv .venv && ") and install_run.endswith("fadumpsim run")
    assert install_test.startswith("python3 -m venv .venv && ") and "pytest" in install_test
    assert install_test in (ROOT / ".ci" / "run").read_text().splitlines()


def everyday_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Everyday use", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split(" #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_links_stay_in_the_repository():
    import re
    text = (ROOT / "README.md").read_text()
    assert "../" not in text
    for target in re.findall(r"\]\(([^)]+)\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_everyday_use_block_runs_in_order(tmp_path):
    """Every command of the README's "Everyday use" block, in order, in an empty directory
    (with a copy of the scenario files, as in a clone): exit 0, or 1 where the README says
    the command reports a difference or a failure found."""
    import os
    import shutil
    import subprocess
    import sys
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    env = dict(os.environ, NO_COLOR="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    cmds = everyday_commands()
    assert cmds[0] == "fadumpsim run" and any(c.startswith("fadumpsim minimize") for c in cmds)
    for cmd in cmds:
        r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
        want = 1 if cmd.startswith(("fadumpsim diff", "fadumpsim explore")) else 0
        if cmd.startswith("fadumpsim swarm"):  # 1 when a generated world fails
            want = r.returncode if r.returncode in (0, 1) else 0
        assert r.returncode == want, f"{cmd}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr}"
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, cmd
        if cmd.startswith("fadumpsim explore"):
            nxt = [ln for ln in r.stdout.splitlines() if ln.startswith("next: ")]
            mini = next(c for c in cmds if c.startswith("fadumpsim minimize"))
            assert nxt == [f"next: fadumpsim minimize {mini.split()[2]}"], (nxt, mini)
