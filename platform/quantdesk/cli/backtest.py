"""`quantdesk backtest`: one vectorbt backtest, or a vectorized parameter sweep."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from quantdesk.cli import cli
from quantdesk.cli.context import AppContext
from quantdesk.cli.options import strategy_run_options
from quantdesk.cli.output import announce, console, print_table
from quantdesk.errors import DataError

# Kept in step with quantdesk.strategy.MAX_GRID_COMBINATIONS (a test checks); not imported so
# that `quantdesk --help` does not load the strategy machinery.
MAX_GRID_COMBINATIONS = 10_000

if TYPE_CHECKING:
    from quantdesk.backtest.results import BacktestResult


@cli.command()
@strategy_run_options
@click.option(
    "--top",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="Rows to print for a sweep.",
)
@click.option(
    "--sort", "sort_by", default="total_return", show_default=True, help="Stat to rank a sweep by."
)
@click.option(
    "--max-combinations",
    type=click.IntRange(1),
    default=MAX_GRID_COMBINATIONS,
    show_default=True,
    help="Refuse sweeps larger than this instead of running for hours.",
)
@click.option(
    "--risk",
    "with_risk",
    is_flag=True,
    help="Apply the config's [risk] limits: replay through the engine with the live RiskEngine "
    "(what live trading would refuse or cut) and print its decisions.",
)
@click.pass_obj
def backtest(
    app: AppContext,
    strategy_name: str,
    symbols: str,
    timeframe: str | None,
    start: str | None,
    end: str | None,
    param_args: tuple[str, ...],
    fee: float,
    slippage: float,
    cash: float,
    top: int,
    sort_by: str,
    out_dir: str,
    strategies_dir: str | None,
    exchange: str | None,
    market: str | None,
    size: float | None = None,
    all_in: bool = False,
    max_combinations: int = MAX_GRID_COMBINATIONS,
    with_risk: bool = False,
) -> None:
    """Backtest a strategy on stored bars; print its stats and where results were saved."""
    announce(f"backtest {strategy_name} on {symbols} {timeframe or '(strategy timeframe)'}")
    from quantdesk.backtest import run, run_grid
    from quantdesk.backtest.metrics import STAT_COLUMNS
    from quantdesk.backtest.results import save_grid
    from quantdesk.cli.options import run_costs, sizing_text
    from quantdesk.data.symbols import parse_symbols
    from quantdesk.strategy import parse_param_args, strategy_class

    cls = strategy_class(strategy_name, strategies_dir)
    fixed, grid = parse_param_args(cls, param_args, max_combinations)
    costs, sizing = run_costs(app, cls, fixed, fee, slippage, cash, size, all_in)
    if grid and sort_by not in STAT_COLUMNS:
        raise click.UsageError(f"--sort must be one of: {', '.join(STAT_COLUMNS)}")
    names = parse_symbols(symbols)
    tf = timeframe or cls.timeframe
    if with_risk and grid:
        raise click.UsageError("--risk runs one parameter set: give each --param a single value")
    risk_config = app.config.risk if with_risk else None  # validated before any work
    data = app.store.load_many(names, tf, start, end, exchange, market)
    from quantdesk.data.store import stored_funding

    # perpetuals pay or receive funding at each stored settlement (none stored: none paid)
    funding = stored_funding(app.store, data, start, end, exchange, market)

    if risk_config is not None:
        from quantdesk.system.replay import replay

        replayed = replay(
            cls(**fixed), data, costs, timeframe=tf, risk_config=risk_config, funding=funding
        )
        print_stats(replayed.backtest, cls.label(), tf, prefix="with risk limits: ")
        decisions = sorted(replayed.extra["risk"].items())
        print_table(["risk decision", "orders"], decisions, title="pre-trade risk decisions")
        console().print(f"sizing: {sizing_text(cls, sizing)}")
        return

    if grid:
        result = run_grid(cls, grid, data, costs, fixed=fixed, funding=funding)
        best = result.top(top, by=sort_by)
        rows = [
            (
                *(str(v) for v in (key if isinstance(key, tuple) else (key,))),
                f"{row['total_return'] * 100:.2f}%",
                f"{row['sharpe']:.2f}",
                f"{row['max_drawdown'] * 100:.2f}%",
                int(row["trades"]),
            )
            for key, row in best.iterrows()
        ]
        columns = [*best.index.names, "total return", "sharpe", "max drawdown", "trades"]
        n = len(result.stats)
        print_table(
            columns, rows, title=f"{cls.label()} sweep: top {len(rows)} of {n} by {sort_by}"
        )
        try:
            path = save_grid(result, Path(out_dir))
        except OSError as exc:
            raise DataError(f"cannot save results under {out_dir}: {exc}") from None
        console().print(f"sizing: {sizing_text(cls, sizing)}")
        console().print(f"sweep results: {path}")
        return

    result = run(cls(**fixed), data, costs, timeframe=tf, funding=funding)
    print_stats(result, cls.label(), tf)
    console().print(f"sizing: {sizing_text(cls, sizing)}")
    try:
        saved = result.save(Path(out_dir))  # all files or none: it writes a temp folder first
    except OSError as exc:
        raise DataError(f"cannot save results under {out_dir}: {exc}") from None
    for name, path in saved.items():
        console().print(f"{name}: {path}")


def print_stats(result: BacktestResult, label: str, timeframe: str, prefix: str = "") -> None:
    """The stats table of one backtest (or replay): one row per statistic, a column per symbol."""
    from quantdesk.backtest.metrics import format_stats

    labels = [name for name, _ in format_stats(result.summary())]
    per_column = [dict(format_stats(result.stats.loc[c])) for c in result.stats.index]
    rows = [(name, *(col[name] for col in per_column)) for name in labels]
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    span = f"{result.bars.index[0]:%Y-%m-%d} .. {result.bars.index[-1]:%Y-%m-%d}"
    title = f"{prefix}{label}({params}) {timeframe} {span}"
    print_table(["stat", *(str(c) for c in result.stats.index)], rows, title=title)
