"""`fadumpsim compare` (registered by fadumpsim/cli.py): one scenario, several kernels."""
from __future__ import annotations

import json
import sys

import click

from fadumpsim.cli_common import EXIT_OK, InputError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("scenario", required=False)
@click.option("--profiles", default="classic,rfc-v6,upstream", show_default=True,
              help="Comma-separated PROFILE or PROFILE:STEP+STEP (steps reverted), "
                   "e.g. upstream:hotplug-ready.")
@click.option("--explore", "budget", type=click.IntRange(0), default=None,
              help="Exhaustive exploration budget per profile (0: none) [default: 300].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print a Markdown table.")
@click.option("--report", "report", type=click.Path(dir_okay=False), default=None,
              help="Also write the table as a self-contained HTML file.")
@click.option("--all", "all_", is_flag=True,
              help="Every built-in scenario (with --markdown: what docs/profiles.md holds).")
def compare_cmd(scenario: str | None, profiles: str, budget: int | None, as_json: bool,
                as_markdown: bool, report: str | None, all_: bool) -> None:
    """Run SCENARIO under each kernel profile and explore its orderings; one table.

    Columns: boot memory, reserved area, MemTotal after boot (memory given back),
    whether the fadump area can be hot-removed, registration, dump status, kernel and
    user pages lost, and the invariant failures exhaustive exploration finds (with
    whether it completed within the budget).
    """
    from fadumpsim import compare as cmp
    from fadumpsim.scenario import ScenarioError, builtin_names
    if all_ == (scenario is not None):
        raise InputError("compare: give a SCENARIO or --all, not both" if all_
                         else "compare: missing SCENARIO (or --all)")
    try:
        specs = cmp.parse_profiles(profiles)
    except cmp.ProfileError as e:
        raise InputError(f"--profiles: {e}") from None
    budget = cmp.DEFAULT_BUDGET if budget is None else budget
    names = builtin_names() if all_ else [scenario]
    results = []
    for name in names:
        try:
            results.append((name, cmp.compare(name, specs, budget)))
        except ScenarioError as e:
            raise InputError(str(e)) from None
    if report:
        from fadumpsim.report import page  # the report pages' look, self-contained
        title = "fadumpsim compare" + ("" if all_ else f" {scenario}")
        try:
            with open(report, "w", encoding="utf-8") as f:
                f.write(page(title, "".join(cmp.html_table(n, rows) for n, rows in results)))
        except OSError as e:
            raise InputError(f"{report}: {e}") from None
    if as_json:
        out = [{"scenario": n, "profiles": [r.to_json() for r in rows]} for n, rows in results]
        click.echo(json.dumps(out[0] if not all_ else {"scenarios": out}, indent=2))
    elif as_markdown:
        click.echo("\n".join(cmp.markdown(n, rows) for n, rows in results), nl=False)
    else:
        from rich.console import Console
        from rich.table import Table
        console = Console(width=200)
        for n, rows in results:
            t = Table(title=f"fadumpsim compare {n}")
            for c in cmp.COLUMNS:
                t.add_column(c)
            for r in rows:
                t.add_row(*cmp.cells(r))
            console.print(t)
    sys.exit(EXIT_OK)
