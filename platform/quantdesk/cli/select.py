"""`quantdesk select`: rank a universe of coins by weighted factor scores as of a time."""

from __future__ import annotations

import click

from quantdesk.cli import cli
from quantdesk.cli.context import AppContext
from quantdesk.cli.options import venue_filter_options
from quantdesk.cli.output import announce, console, print_table


@cli.command()
@click.option(
    "--universe",
    default=None,
    help="Comma-separated symbols, e.g. BTC/USDT,ETH/USDT (default: all stored at --timeframe).",
)
@click.option("--timeframe", default="1d", show_default=True, help="Bar size of the factors.")
@click.option("--top", type=int, default=5, show_default=True, help="How many picks to show.")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="Rank on the bars closed by this time: a bar opening at it is not used yet "
    "(default: up to the last bar every symbol has).",
)
@click.option(
    "--weights",
    default=None,
    help="factor=weight list, negative to prefer low values "
    "[default: momentum_30=1,trend=0.5,volatility=-0.5].",
)
@click.option("--min-quote-volume", type=float, default=None, help="Mean quote volume per bar.")
@click.option("--min-history", type=int, default=30, show_default=True, help="Bars of history.")
@click.option("--min-price", type=float, default=None)
@click.option("--max-price", type=float, default=None)
@click.option("--min-volatility", type=float, default=None, help="Annualized, e.g. 0.3.")
@click.option("--max-volatility", type=float, default=None, help="Annualized, e.g. 1.5.")
@click.option("--max-spread", type=float, default=None, help="Relative spread, needs --spreads.")
@click.option("--exclude", default="", help="Comma-separated symbols never to pick.")
@click.option(
    "--supply",
    type=click.Path(dir_okay=False),
    default=None,
    help="CSV symbol,circulating_supply: enables the market_cap factor.",
)
@click.option(
    "--spreads",
    type=click.Path(dir_okay=False),
    default=None,
    help="CSV time,symbol,spread (relative bid-ask spread from book snapshots).",
)
@click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Rank by a saved model's prediction (joblib from quantdesk.selection.models) instead.",
)
@click.option(
    "--allow-in-sample",
    is_flag=True,
    help="Let --model rank at an as-of inside its training window (refused by default).",
)
@venue_filter_options
@click.pass_obj
def select(
    app: AppContext,
    universe: str | None,
    timeframe: str,
    top: int,
    as_of: str | None,
    weights: str | None,
    min_quote_volume: float | None,
    min_history: int,
    min_price: float | None,
    max_price: float | None,
    min_volatility: float | None,
    max_volatility: float | None,
    max_spread: float | None,
    exclude: str,
    supply: str | None,
    spreads: str | None,
    model_path: str | None,
    allow_in_sample: bool,
    exchange: str | None,
    market: str | None,
) -> None:
    """Rank coins by a weighted score of cross-sectional factor z-scores (or by a saved model's
    prediction); show the top picks with each factor's contribution."""
    announce(f"select top {top} on {timeframe} bars")
    from quantdesk.data.symbols import parse_symbols
    from quantdesk.errors import ConfigError, DataError
    from quantdesk.selection.factors import MarketInputs, load_spreads, load_supply
    from quantdesk.selection.models import load_model
    from quantdesk.selection.ranking import explain, parse_weights, top_n
    from quantdesk.selection.screener import (
        DEFAULT_WEIGHTS,
        load_panel,
        rank_by_model,
        rank_universe,
    )
    from quantdesk.selection.screens import Screen

    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    if universe is not None and not universe.replace(",", "").strip():
        raise DataError("the universe is empty: pass e.g. --universe BTC/USDT,ETH/USDT")
    symbols = parse_symbols(universe) if universe else []
    factor_weights = parse_weights(weights) if weights is not None else DEFAULT_WEIGHTS
    screen = Screen(
        min_quote_volume=min_quote_volume,
        min_history=min_history,
        min_price=min_price,
        max_price=max_price,
        min_volatility=min_volatility,
        max_volatility=max_volatility,
        max_spread=max_spread,
        exclude=frozenset(s.strip() for s in exclude.split(",") if s.strip()),
    )
    if model_path and weights is not None:
        raise ConfigError("--model ranks by the model's prediction: leave out --weights")
    model = load_model(model_path) if model_path else None
    if allow_in_sample and model is None:
        raise ConfigError("--allow-in-sample applies to --model only")
    inputs = MarketInputs(
        spread=load_spreads(spreads) if spreads else None,
        supply=load_supply(supply) if supply else None,
    )
    panel = load_panel(app.store, symbols, timeframe, exchange, market)
    if model is not None:
        ranking = rank_by_model(panel, model, as_of, screen, timeframe, inputs, allow_in_sample)
    else:
        ranking = rank_universe(panel, factor_weights, as_of, screen, timeframe, inputs)
    picks = top_n(ranking.table, top)
    contrib = [c for c in picks.columns if str(c).startswith("w:")]
    rows = [
        (int(r["rank"]), sym, float(r["score"]), *(float(r[c]) for c in contrib), explain(r))
        for sym, r in picks.iterrows()
    ]
    title = (
        f"top {len(picks)} of {len(ranking.table)} ranked as of {ranking.time:%Y-%m-%d %H:%M} "
        f"UTC on the {timeframe} bars closed by then (last {ranking.bar:%Y-%m-%d %H:%M})"
    )
    if model is not None and model.train_end is not None:
        title += f"; model trained on {model.train_start:%Y-%m-%d} .. {model.train_end:%Y-%m-%d}"
    names = [c[2:] for c in contrib]
    print_table(("rank", "symbol", "score", *names, "reasons"), rows, title=title)
    for symbol, why in ranking.dropped.items():
        console().print(f"left out {symbol}: {why}")
