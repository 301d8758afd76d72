"""`quantdesk optimize`: an optuna study over a strategy's params (optionally walk-forward)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from quantdesk.cli import cli
from quantdesk.cli.context import AppContext
from quantdesk.cli.options import sizing_options, venue_filter_options
from quantdesk.cli.output import announce, console, print_table

F = TypeVar("F", bound=Callable[..., Any])


def data_window_options(required: bool = True) -> Callable[[F], F]:
    """--symbols/--timeframe/--start/--end/--param/--fee/--slippage/--cash/--strategies-dir."""

    def decorate(func: F) -> F:
        options = [
            click.option(
                "--symbols", required=required, help="Comma-separated symbols, e.g. BTC/USDT."
            ),
            click.option("--timeframe", default=None, help="Bar size (default: the strategy's)."),
            click.option("--start", default=None, help="First bar (UTC), e.g. 2024-01-01."),
            click.option("--end", default=None, help="Last bar (UTC, inclusive)."),
            click.option(
                "--param",
                "param_args",
                multiple=True,
                metavar="NAME=VALUE",
                help="Fix a param (NAME=VALUE) or narrow its search (NAME=lo:hi:step, NAME=a,b).",
            ),
            click.option("--fee", type=float, default=0.001, show_default=True, help="Fee."),
            click.option(
                "--slippage", type=float, default=0.0, show_default=True, help="Slippage."
            ),
            click.option("--cash", type=float, default=10_000.0, show_default=True),
            click.option(
                "--strategies-dir",
                type=click.Path(file_okay=False),
                default=None,
                help="Folder of strategy modules (default: ./strategies).",
            ),
        ]
        for option in reversed(options):
            func = option(func)
        return sizing_options(venue_filter_options(func))

    return decorate


def storage_options(func: F) -> F:
    """--storage and --study."""
    func = click.option(
        "--study", "study_name", default=None, help="Study name (default: STRATEGY-TF-OBJECTIVE)."
    )(func)
    return click.option(
        "--storage",
        default=None,
        callback=_configured_storage,
        help="Optuna storage: a URL (sqlite:///..., postgresql://...), a journal file (*.log), "
        "a SQLite path, or 'memory' (default: [storage] optuna in quantdesk.toml, else "
        "reports/optuna.sqlite3).",
    )(func)


def _configured_storage(ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    # The config's storage key stands in for a missing --storage: one URL for the whole team.
    if value is not None:
        return value
    app = ctx.find_object(AppContext)
    return app.config.storage.optuna if app is not None else None


def job_from_options(app: AppContext, strategy_name: str, kw: dict[str, Any], **extra: Any) -> Any:
    """The optimization job the data-window and cost options describe (extra: job settings)."""
    from quantdesk.backtest.optimize import job_from_store
    from quantdesk.cli.options import run_costs
    from quantdesk.strategy import parse_param_args, strategy_class

    cls = strategy_class(strategy_name, kw["strategies_dir"])
    fixed, _ = parse_param_args(cls, kw["param_args"])
    costs, _ = run_costs(
        app, cls, fixed, kw["fee"], kw["slippage"], kw["cash"], kw["size"], kw["all_in"]
    )
    return job_from_store(
        app.store,
        strategy_name,
        kw["symbols"],
        kw["timeframe"],
        kw["start"],
        kw["end"],
        kw["exchange"],
        kw["market"],
        kw["param_args"],
        kw["strategies_dir"],
        costs=costs,
        **extra,
    )


@cli.command()
@click.option("--strategy", "strategy_name", required=True, help="Strategy name.")
@data_window_options()
@click.option("--trials", type=int, default=100, show_default=True, help="Trials to run.")
@click.option(
    "--objective",
    default="sharpe",
    show_default=True,
    help="sharpe, sortino, calmar, return_dd, or return_vs_drawdown (Pareto front).",
)
@click.option(
    "--min-trades",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="Trials with fewer trades are infeasible (never 'best').",
)
@click.option(
    "--holdout",
    type=float,
    default=0.2,
    show_default=True,
    help="Share of the bars (the tail) kept out of the search and shown out of sample; 0 = off.",
)
@click.option(
    "--dd-penalty", type=float, default=0.5, show_default=True, help="return_dd's penalty."
)
@click.option(
    "--method",
    type=click.Choice(["auto", "tpe", "grid"]),
    default="auto",
    show_default=True,
    help="auto = vectorbt grid when the space has at most --trials combinations.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Sampler seed.")
@click.option("--no-prune", is_flag=True, help="Evaluate every trial on the full history.")
@storage_options
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes.")
@click.option(
    "--heartbeat",
    type=click.IntRange(1, 3600),
    default=10,
    show_default=True,
    help="Shared studies: seconds between a running trial's heartbeats; a trial silent for 3 "
    "is failed and retried by another worker.",
)
@click.option(
    "--walk-forward",
    "wf_windows",
    type=int,
    default=0,
    help="Instead: N walk-forward windows, --trials per window (in memory).",
)
@click.option("--train-ratio", type=float, default=3.0, show_default=True)
@click.option("--anchored", is_flag=True, help="Walk-forward training always starts at bar 0.")
@click.option("--top", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.pass_obj
def optimize(app: AppContext, strategy_name: str, **kw: Any) -> None:
    """Optimize a strategy's params with optuna; print the best trials (or the Pareto front)."""
    announce(f"optimize {strategy_name} on {kw['symbols']}")
    import optuna

    from quantdesk.backtest.optimize import (
        default_study_name,
        get_objective,
        optimize,
        split_holdout,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    get_objective(kw["objective"])
    job = job_from_options(
        app,
        strategy_name,
        kw,
        objective=kw["objective"],
        min_trades=kw["min_trades"],
        dd_penalty=kw["dd_penalty"],
        prune=not kw["no_prune"],
        seed=kw["seed"],
    )
    progress = sys.stderr.isatty()
    if kw["wf_windows"]:
        _walk_forward(job, kw, progress)
        return
    holdout = split_holdout(job, kw["holdout"]) if kw["holdout"] else None
    if holdout is not None:
        job = holdout.job
    name = kw["study_name"] or default_study_name(job)
    result = optimize(
        job,
        n_trials=kw["trials"],
        storage=kw["storage"],
        study_name=name,
        workers=kw["workers"],
        method=kw["method"],
        progress=progress,
        heartbeat=kw["heartbeat"],
    )
    frame = result.pareto_front() if result.objective.multi else result.trials()
    frame = frame[frame["feasible"]]  # trials under --min-trades are not candidates
    value_cols = [c for c in frame.columns if c.startswith("value")]
    frame = frame.sort_values(value_cols[0], ascending=False).head(kw["top"])
    params = [c for c in frame.columns if c.startswith("param_")]
    columns = ["trial", *value_cols, *(p[6:] for p in params), "return", "max dd", "trades"]
    if holdout is not None:
        columns += ["OOS " + kw["objective"], "OOS return", "OOS max dd", "OOS trades"]
    objective = get_objective(kw["objective"])
    rows = []
    for _, r in frame.iterrows():
        row = [
            int(r["number"]),
            *(f"{r[c]:.4f}" for c in value_cols),
            *(r[p] for p in params),
            f"{r['total_return'] * 100:.2f}%",
            f"{r['max_drawdown'] * 100:.2f}%",
            int(r["trades"]),
        ]
        if holdout is not None:
            oos = holdout.metrics({p[6:]: _native(r[p]) for p in params})
            row += [
                f"{objective.values(oos, job.dd_penalty)[0]:.4f}",
                f"{oos['total_return'] * 100:.2f}%",
                f"{oos['max_drawdown'] * 100:.2f}%",
                int(oos["trades"]),
            ]
        rows.append(tuple(row))
    what = "Pareto front" if result.objective.multi else f"top {len(rows)}"
    states = [t.state.name for t in result.study.trials]
    title = (
        f"{strategy_name} {job.timeframe} {kw['objective']} ({result.method}): {what} "
        f"of {states.count('COMPLETE')} complete trials"
    )
    if "PRUNED" in states:
        title += f", {states.count('PRUNED')} pruned"
    title += f"; at least {job.min_trades} trades"
    print_table(columns, rows, title=title)
    bars = job.bars()
    window = f"in-sample {bars.index[0]:%Y-%m-%d %H:%M} .. {bars.index[-1]:%Y-%m-%d %H:%M}"
    if holdout is not None:
        last = holdout.bars.index[-1]
        window += (
            f"; out-of-sample (held out, never searched) {holdout.first:%Y-%m-%d %H:%M} .. "
            f"{last:%Y-%m-%d %H:%M} ({len(holdout.bars) - holdout.start} bars)"
        )
    console().print(window)
    best = ", ".join(f"{k}={v}" for k, v in result.best_params.items())
    console().print(f"best: {best}")
    console().print(f"study: {result.study.study_name} (storage: {kw['storage'] or 'default'})")


def _walk_forward(job: Any, kw: dict[str, Any], progress: bool) -> None:
    from quantdesk.backtest.walkforward import walk_forward

    result = walk_forward(
        job,
        n_windows=kw["wf_windows"],
        train_ratio=kw["train_ratio"],
        anchored=kw["anchored"],
        n_trials=kw["trials"],
        method=kw["method"],
        progress=progress,
    )
    table = result.side_by_side()
    rows = [
        (
            r["window"],
            r["test"],
            r["params"],
            f"{r['is_objective']:.3f}",
            f"{r['oos_objective']:.3f}",
            f"{r['is_total_return'] * 100:.2f}%",
            f"{r['oos_total_return'] * 100:.2f}%",
            int(r["oos_trades"]),
        )
        for _, r in table.iterrows()
    ]
    kind = "anchored" if kw["anchored"] else "rolling"
    print_table(
        ["window", "test", "params", "IS obj", "OOS obj", "IS return", "OOS return", "OOS trades"],
        rows,
        title=f"walk-forward ({kind}, {job.objective}): in-sample vs out-of-sample",
    )
    s = result.summary()
    console().print(
        f"mean IS {s['is_objective']:.3f}, mean OOS {s['oos_objective']:.3f}, "
        f"efficiency {s['efficiency']:.2f}"
    )


def _native(value: Any) -> Any:
    # pandas hands numpy scalars back; params validate plain ints and floats
    return value.item() if hasattr(value, "item") else value
