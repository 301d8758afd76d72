"""Options several commands share, declared once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from quantdesk.cli.checks import (
    MAX_CASH,
    cash_amount,
    finite_number,
    out_folder,
    start_end_time,
)

F = TypeVar("F", bound=Callable[..., object])


def venue_filter_options(func: F) -> F:
    """--exchange and --market: narrow which stored series a symbol resolves to."""
    func = click.option(
        "--market",
        type=click.Choice(["spot", "usdm"]),
        default=None,
        help="Market type of the stored series (default: whichever holds the symbol).",
    )(func)
    return click.option(
        "--exchange",
        default=None,
        help="Exchange folder in the data store (default: whichever holds the symbol).",
    )(func)


def strategy_run_options(func: F) -> F:
    """What a backtest and a replay both take: strategy, symbols, period, params, costs, output.

    `quantdesk backtest` and `quantdesk replay` share these so the two accept the same command
    line and their results can be compared at a glance.
    """
    options = [
        click.option(
            "--strategy", "strategy_name", required=True, help="Strategy name (strategies/NAME.py)."
        ),
        click.option(
            "--symbols", required=True, help="Comma-separated symbols, e.g. BTC/USDT,ETH/USDT."
        ),
        click.option(
            "--timeframe", default=None, help="Bar size (default: the strategy's timeframe)."
        ),
        click.option(
            "--start",
            default=None,
            callback=start_end_time,
            help="First bar (UTC), e.g. 2024-01-01.",
        ),
        click.option(
            "--end", default=None, callback=start_end_time, help="Last bar (UTC, inclusive)."
        ),
        click.option(
            "--param",
            "param_args",
            multiple=True,
            metavar="NAME=VALUE",
            help="Strategy parameter; NAME=lo:hi:step or NAME=a,b,c sweeps it (repeatable).",
        ),
        click.option(
            "--fee",
            type=float,
            default=0.001,
            show_default=True,
            callback=finite_number,
            help="Fee, fraction of notional.",
        ),
        click.option(
            "--slippage",
            type=float,
            default=0.0,
            show_default=True,
            callback=finite_number,
            help="Slippage, fraction of price.",
        ),
        click.option(
            "--cash",
            type=float,
            default=10_000.0,
            show_default=True,
            callback=cash_amount,
            help=f"Starting cash (positive, at most {MAX_CASH:.0e}).",
        ),
        click.option(
            "--out",
            "out_dir",
            type=click.Path(file_okay=False),
            default="reports",
            show_default=True,
            callback=out_folder,
            help="Folder results are saved under (checked writable before the run).",
        ),
        click.option(
            "--strategies-dir",
            type=click.Path(file_okay=False),
            default=None,
            help="Folder of strategy modules (default: ./strategies).",
        ),
    ]
    func = sizing_options(venue_filter_options(func))
    for option in reversed(options):
        func = option(func)
    return func


def sizing_options(func: F) -> F:
    """--size and --all-in: how much an entry spends (default: what the [risk] limits allow)."""
    func = click.option(
        "--all-in", is_flag=True, help="Spend the whole sleeve per entry (the live limits won't)."
    )(func)
    return click.option(
        "--size",
        type=float,
        default=None,
        help="Fraction of equity per entry (default: the strategy's own sizing, else the "
        "largest the config's [risk] limits approve, as live trading would).",
    )(func)


def sizing_text(cls: type, sizing: Any) -> str:
    """The CLI's 'sizing:' phrase: the entry sizing, or the strategy's own target weights
    (only a SignalStrategy declares target_weights)."""
    if getattr(cls, "target_weights", False):
        return "the strategy's target weights of one shared cash pool (entry sizing does not apply)"
    return sizing.describe()


def run_costs(
    app: Any,
    cls: Any,
    params: Mapping[str, Any],
    fee: float,
    slippage: float,
    cash: float,
    size: float | None,
    all_in: bool,
) -> tuple[Any, Any]:
    """The Costs a research command trades on and the Sizing behind their `size`."""
    from quantdesk.model import Costs
    from quantdesk.risk.sizing import entry_size

    limits = app.config.risk.limits_for(cls.label())
    sizing = entry_size(cls, limits, params, size=size, all_in=all_in)
    return Costs(fee=fee, slippage=slippage, init_cash=cash, size=sizing.fraction), sizing


def execution_option(*aliases: str) -> Callable[[F], F]:
    """--execution auto|confirm|signals-only (extra names as aliases), as the `execution` arg."""
    return click.option(
        "--execution",
        *aliases,
        "execution",
        type=click.Choice(["auto", "confirm", "signals-only"]),
        default="auto",
        show_default=True,
        help="auto sends orders; confirm holds them for `quantdesk approve`; signals-only "
        "journals them and sends nothing.",
    )
