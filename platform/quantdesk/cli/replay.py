"""`quantdesk replay`: a strategy through the engine on stored bars, with the backtest's table."""

from __future__ import annotations

from pathlib import Path

import click

from quantdesk.cli import cli
from quantdesk.cli.checks import journal_file
from quantdesk.cli.context import AppContext
from quantdesk.cli.options import execution_option, strategy_run_options
from quantdesk.cli.output import announce, console
from quantdesk.errors import QuantdeskError


@cli.command()
@strategy_run_options
@execution_option("--mode")
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False),
    default=None,
    callback=journal_file,
    help="Journal file (default: OUT/journals/replay-NAME-STAMP.sqlite).",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar.")
@click.pass_obj
def replay(
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
    out_dir: str,
    strategies_dir: str | None,
    exchange: str | None,
    market: str | None,
    execution: str,
    journal_path: str | None,
    progress: bool,
    size: float | None = None,
    all_in: bool = False,
) -> None:
    """Replay a strategy bar by bar through the engine (risk, orders, SimVenue, portfolio,
    journal); print the same stats table as `quantdesk backtest` and the journal's path."""
    announce(f"replay {strategy_name} on {symbols} {timeframe or '(strategy timeframe)'}")
    from quantdesk.cli.backtest import print_stats
    from quantdesk.cli.options import run_costs, sizing_text
    from quantdesk.data.store import stored_funding
    from quantdesk.data.symbols import parse_symbols
    from quantdesk.strategy import parse_param_args, strategy_class
    from quantdesk.system.replay import default_journal_path
    from quantdesk.system.replay import replay as run_replay

    cls = strategy_class(strategy_name, strategies_dir)
    fixed, grid = parse_param_args(cls, param_args)
    if grid:
        raise QuantdeskError("replay runs one parameter set: give each --param a single value")
    costs, sizing = run_costs(app, cls, fixed, fee, slippage, cash, size, all_in)
    names = parse_symbols(symbols)
    tf = timeframe or cls.timeframe
    data = app.store.load_many(names, tf, start, end, exchange, market)
    journal = Path(journal_path) if journal_path else default_journal_path(out_dir, cls.label())
    if journal.exists():
        raise QuantdeskError(f"journal {journal} already exists: replays write a fresh one")
    funding = stored_funding(app.store, names, start, end, exchange, market)
    result = run_replay(
        cls(**fixed),
        data,
        costs,
        timeframe=tf,
        journal=journal,
        mode=execution,
        progress=progress,
        funding=funding,
    )
    print_stats(result.backtest, cls.label(), tf, prefix="replay ")
    console().print(f"sizing: {sizing_text(cls, sizing)}")
    console().print(f"journal: {journal.resolve()}")
    if execution == "confirm":
        held = result.extra.get("awaiting_approval", 0)
        console().print(f"orders awaiting approval: {held} (quantdesk approve --journal ...)")
