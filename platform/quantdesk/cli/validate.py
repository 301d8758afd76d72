"""`quantdesk validate`: bias and overfitting checks; exit 0 when all pass, 1 when one fails."""

from __future__ import annotations

from typing import Any

import click

from quantdesk.cli import cli
from quantdesk.cli.context import AppContext
from quantdesk.cli.optimize import data_window_options, job_from_options, storage_options
from quantdesk.cli.output import print_table


def print_report(report: Any, title: str) -> None:
    """The verdict table."""
    from rich.markup import escape

    # details hold brackets like E[max SR]; rich would read them as markup
    rows = [tuple(escape(str(v)) for v in r) for r in report.table().itertuples(index=False)]
    print_table(["check", "verdict", "value", "detail"], rows, title=title)


def threshold_options(func: Any) -> Any:
    """--min-dsr, --max-pbo, --min-stability, --min-wfe: what the checks must reach."""
    options = [
        click.option("--min-dsr", type=float, default=0.95, show_default=True,
                     help="Deflated Sharpe ratio needed (probability, 0-1)."),
        click.option("--max-pbo", type=float, default=0.2, show_default=True,
                     help="Highest probability of backtest overfitting accepted (0-1)."),
        click.option("--min-stability", type=float, default=0.5, show_default=True,
                     help="Share of the best objective the neighbours' median must keep."),
        click.option("--min-wfe", type=float, default=0.25, show_default=True,
                     help="Walk-forward efficiency needed (mean OOS / mean IS objective)."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def thresholds_from(kw: dict[str, Any]) -> Any:
    """The Thresholds the threshold options give (ValidationError, exit 2, when out of range)."""
    from quantdesk.backtest.validation import Thresholds

    return Thresholds(
        min_dsr=kw.pop("min_dsr"),
        max_pbo=kw.pop("max_pbo"),
        min_stability=kw.pop("min_stability"),
        min_wf_efficiency=kw.pop("min_wfe"),
    )


def parse_checks(text: str | None) -> tuple[str, ...] | None:
    """'lookahead,recursive' -> a tuple (None = every check)."""
    if not text:
        return None
    return tuple(c.strip() for c in text.split(",") if c.strip())


@cli.command()
@click.option("--strategy", "strategy_name", required=True, help="Strategy name.")
@data_window_options(required=False)
@storage_options
@click.option(
    "--checks",
    default=None,
    help="Comma-separated subset of: lookahead, recursive, dsr, pbo, stability, parity.",
)
@threshold_options
@click.pass_obj
def validate(app: AppContext, strategy_name: str, **kw: Any) -> None:
    """Validate a strategy (params from --param, or a study's best trial with --study)."""
    from quantdesk.backtest.optimize import (
        SearchSpace,
        best_trial,
        job_from_meta,
        load_result,
    )
    from quantdesk.backtest.validation import CHECKS, StudyTrials, validate
    from quantdesk.errors import QuantdeskError
    from quantdesk.system.replay import replay

    thresholds = thresholds_from(kw)
    checks = parse_checks(kw["checks"]) or CHECKS
    trials = None
    if kw["study_name"]:
        study, meta = load_result(kw["study_name"], kw["storage"])
        if meta["strategy"] != strategy_name:
            raise QuantdeskError(
                f"study {kw['study_name']!r} optimized {meta['strategy']}, not {strategy_name}"
            )
        job = job_from_meta(meta, app.store, kw["strategies_dir"])
        params = {**job.fixed, **best_trial(study).params}
        trials = StudyTrials.from_study(study, job.fixed)
        space = job.space()
    else:
        if not kw["symbols"]:
            raise click.UsageError("give --symbols (or --study to validate a study's best trial)")
        job = job_from_options(app, strategy_name, kw)
        if job.grid:
            raise click.UsageError("validate takes one value per --param (NAME=VALUE)")
        params = dict(job.fixed)
        # stability looks around the given values in every parameter's own range
        space = SearchSpace(job.strategy_cls()) if job.strategy_cls().params else None
    strategy = job.strategy_cls()(**params)
    report = validate(
        strategy,
        job.data,
        job.costs,
        space=space,
        trials=trials,
        objective=job.objective if job.objective != "return_vs_drawdown" else "return_dd",
        dd_penalty=job.dd_penalty,
        checks=checks,
        thresholds=thresholds,
        funding=job.funding,
        replay_fn=replay,
    )
    shown = ", ".join(f"{k}={v}" for k, v in strategy.values.items())
    print_report(report, f"validate {strategy_name}({shown}) {job.timeframe}")
    verdict = "PASS" if report.passed else "FAIL"
    click.echo(f"verdict: {verdict}")
    if not report.passed:
        click.get_current_context().exit(1)
