"""Start-up cost of the CLI: import time and `fadumpsim --help`, minus a bare interpreter.

Each command runs in a fresh subprocess, best of --reps (default 5), after one
untimed run that leaves the .pyc files compiled. Reported: wall time of
`python -c pass` (the baseline), and for each command its time and its time
minus the baseline. Target: < 0.3 s over the baseline for `fadumpsim --help`
and for `import fadumpsim.cli`. With --detail, the ten most expensive imports of
`import fadumpsim.cli` (python -X importtime, cumulative microseconds).

Run: python benchmarks/bench_import.py [--reps N] [--detail]
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TARGET = 0.3


def _cli() -> list[str] | None:
    exe = os.path.join(os.path.dirname(sys.executable), "fadumpsim")
    if os.path.exists(exe):
        return [exe]
    found = shutil.which("fadumpsim")
    return [found] if found else None


def commands() -> list[tuple[str, list[str]]]:
    py = sys.executable
    have_cli = os.path.exists(os.path.join(ROOT, "fadumpsim", "cli.py"))
    cmds = [("python -c pass", [py, "-c", "pass"]),
            ("import fadumpsim.sim", [py, "-c", "import fadumpsim.sim"])]
    if have_cli:
        cmds.append(("import fadumpsim.cli", [py, "-c", "import fadumpsim.cli"]))
        exe = _cli()
        cmds.append(("fadumpsim --help", (exe or [py, "-c", "from fadumpsim.cli import main; main()"])
                     + ["--help"]))
    return cmds


def timed(argv: list[str], reps: int) -> float:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, check=True)  # compile .pyc
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def detail() -> None:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import fadumpsim.cli"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stderr
    rows = []
    for line in out.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cum_us, name = (p.strip() for p in line.split(":", 1)[1].split("|"))
        rows.append((int(cum_us), int(self_us), name))
    print("\nmost expensive imports of fadumpsim.cli (cumulative / self, microseconds):")
    for cum, self_us, name in sorted(rows, reverse=True)[:10]:
        print(f"  {cum:>9,} {self_us:>9,}  {name}")


def main(reps: int = 5, show_detail: bool = False) -> dict[str, float]:
    res: dict[str, float] = {}
    for label, argv in commands():
        res[label] = timed(argv, reps)
    base = res["python -c pass"]
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; best of {reps}")
    print("| command | wall | minus `python -c pass` | target |")
    print("|---|---:|---:|---|")
    for label, t in res.items():
        extra = t - base
        target = "-"
        if label in ("import fadumpsim.cli", "fadumpsim --help"):
            target = f"< {TARGET} s: " + ("met" if extra < TARGET else "MISSED")
        print(f"| `{label}` | {t * 1000:.0f} ms | "
              f"{'' if label == 'python -c pass' else f'{extra * 1000:.0f} ms'} | {target} |")
    if "import fadumpsim.cli" not in res:
        print("fadumpsim/cli.py does not exist yet: measured fadumpsim.sim only")
    if show_detail:
        detail()
    return res


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[a.index("--reps") + 1]) if "--reps" in a else 5, "--detail" in a)
