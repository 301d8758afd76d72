"""`quantdesk report NAME -p key value ...`: run a notebook with papermill, render HTML."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from quantdesk.cli import cli
from quantdesk.cli.context import AppContext
from quantdesk.cli.output import announce, console


@cli.command()
@click.argument("name")
@click.option(
    "-p",
    "--param",
    "params",
    type=(str, str),
    multiple=True,
    metavar="NAME VALUE",
    help='Notebook parameter (JSON values like 10 or {"fast": 5}, else a string); repeatable.',
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="reports",
    show_default=True,
    help="Reports land in OUT/<date>/.",
)
@click.option(
    "--notebooks",
    "notebooks_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of report notebooks (default: ./notebooks).",
)
@click.option("--journal", default=None, help="A session's journal (daily report): -p journal.")
@click.option("--date", "day", default=None, help="UTC day YYYY-MM-DD (daily report): -p date.")
@click.pass_obj
def report(
    app: AppContext,
    name: str,
    params: tuple[tuple[str, str], ...],
    out_dir: str,
    notebooks_dir: str | None,
    journal: str | None,
    day: str | None,
) -> None:
    """Execute notebooks/NAME.ipynb with parameters and render it as HTML without code."""
    announce(f"report {name}: running the notebook")
    from quantdesk.reports import find_notebook, notebook_parameters, parse_params, run_report
    from quantdesk.strategy import strategy_class

    values = parse_params(params)
    if journal is not None:
        values["journal"] = journal if "://" in journal else str(Path(journal).resolve())
    if day is not None:
        values["date"] = day
    if "journal" in values:
        from quantdesk.reports_daily import daily_report

        # Fail fast, before a kernel starts, on a missing journal or a bad day.
        daily_report(values["journal"], values.get("date"), values.get("data_root")).journal.close()
    path = find_notebook(name, notebooks_dir)
    if isinstance(values.get("strategy"), str):
        # Fail fast, before a kernel starts, on a bad strategy name or parameter.
        cls = strategy_class(values["strategy"], values.get("strategies_dir"))
        if isinstance(values.get("params"), dict):
            cls.validate_params(values["params"])
    if "data_root" in notebook_parameters(path) and values.get("data_root") is None:
        # The kernel may run elsewhere: hand it the store this command was configured with.
        values["data_root"] = str(app.store.root.resolve())
    paths = run_report(
        name, values, out_dir=out_dir, notebooks=notebooks_dir, progress=sys.stderr.isatty()
    )
    console().print(f"report: {paths.html.resolve()}")
    console().print(f"notebook: {paths.notebook.resolve()}")
