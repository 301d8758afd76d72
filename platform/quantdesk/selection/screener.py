"""The ranking a user asks for, end to end: load a universe, compute the factors the weights
(or a saved model) and screens need as of a time, screen, rank. Shared by `quantdesk select`,
the notebook and the Voila screener, so they always agree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from quantdesk.data.store import DataStore
from quantdesk.data.timeframes import timeframe_ms
from quantdesk.data.times import parse_time
from quantdesk.errors import ConfigError, DataError
from quantdesk.selection.factors import FactorConfig, FactorSet, MarketInputs, compute_factors
from quantdesk.selection.models import SavedModel, contributions
from quantdesk.selection.panel import Panel
from quantdesk.selection.ranking import rank
from quantdesk.selection.screens import Screen

DEFAULT_WEIGHTS = {"momentum_30": 1.0, "trend": 0.5, "volatility": -0.5}
YEAR_MS = 365 * 86_400_000


@dataclass
class Ranking:
    """A ranked cross-section: the table (best first), who was left out and why, and when:
    `time` is the as-of time (every bar used had closed by then), `bar` the open time of the
    last bar used."""

    table: pd.DataFrame
    dropped: pd.Series
    time: pd.Timestamp
    factors: FactorSet
    bar: pd.Timestamp


def factor_config(timeframe: str) -> FactorConfig:
    """Default windows, with volatility annualized for the timeframe."""
    return FactorConfig(periods_per_year=YEAR_MS / timeframe_ms(timeframe))


def load_panel(
    store: DataStore,
    symbols: Sequence[str],
    timeframe: str,
    exchange: str | None = None,
    market: str | None = None,
) -> Panel:
    """The universe's bars from the store as a panel (every symbol in the store if none given)."""
    if not symbols:
        symbols = sorted({k.symbol for k in store.keys(exchange, market, timeframe=timeframe)})
        if not symbols:
            raise DataError(f"the universe is empty: no {timeframe} data in {store.root}")
    return Panel.from_bars(store.load_many(symbols, timeframe, exchange=exchange, market=market))


def rank_universe(
    panel: Panel,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    as_of: object | None = None,
    screen: Screen = Screen(),
    timeframe: str = "1d",
    inputs: MarketInputs = MarketInputs(),
) -> Ranking:
    """Rank the panel's symbols on the bars closed by as_of (default: up to the last bar every
    symbol has)."""
    if not weights:
        raise ConfigError("no factor weights given")
    when = last_closed_bar(panel, as_of, timeframe)
    past = panel.loc(end=when)  # nothing after as-of is even loaded into the factors
    needed = list(dict.fromkeys([*weights, *(c for c in screen.needed() if c != "close")]))
    factors = compute_factors(past, needed, factor_config(timeframe), inputs)
    snapshot = factors.as_of(when)
    table, dropped = rank(snapshot, weights, screen)
    return _ranking(table, dropped, snapshot.attrs["time"], factors, timeframe)


def rank_by_model(
    panel: Panel,
    model: SavedModel,
    as_of: object | None = None,
    screen: Screen = Screen(),
    timeframe: str = "1d",
    inputs: MarketInputs = MarketInputs(),
    allow_in_sample: bool = False,
) -> Ranking:
    """Rank by a saved model's predicted return rank; linear models show their contributions.

    Uses the bars closed by as_of; refuses an as-of whose outcome the model was trained on
    unless allow_in_sample."""
    when = last_closed_bar(panel, as_of, timeframe)
    if not allow_in_sample:
        model.check_out_of_sample(panel.index, when)
    past = panel.loc(end=when)
    needed = list(dict.fromkeys([*model.features, *(c for c in screen.needed() if c != "close")]))
    factors = compute_factors(past, needed, factor_config(timeframe), inputs)
    snapshot = factors.as_of(when)
    reasons = screen.reasons(snapshot)
    lacking = snapshot[model.features].isna().any(axis=1) & (reasons == "")
    reasons[lacking] = "a model feature is unknown (not enough history)"
    kept = snapshot[reasons == ""]
    table = pd.DataFrame({"score": model.predict(kept)})
    parts = contributions(model, kept)
    if parts is not None:
        table = pd.concat([table, parts.add_prefix("w:")], axis=1)
    table = pd.concat([table, kept[model.features]], axis=1)
    table = table.sort_values("score", ascending=False, kind="stable")
    table.insert(0, "rank", range(1, len(table) + 1))
    return _ranking(table, reasons[reasons != ""], snapshot.attrs["time"], factors, timeframe)


def _ranking(
    table: pd.DataFrame, dropped: pd.Series, bar: pd.Timestamp, factors: FactorSet, timeframe: str
) -> Ranking:
    closed = bar + pd.Timedelta(milliseconds=timeframe_ms(timeframe))
    return Ranking(table, dropped, closed, factors, bar)


def last_closed_bar(panel: Panel, as_of: object | None, timeframe: str) -> pd.Timestamp:
    """Open time of the last bar closed by as_of (bars are stamped with their open time, so
    the bar opening at as_of is still unknown then); default: the last bar every symbol has."""
    if as_of is None:
        # a symbol whose data ends a week early would rank with stale or missing factors
        return panel.common_end
    when = parse_time(as_of)  # type: ignore[arg-type]
    bar = when - pd.Timedelta(milliseconds=timeframe_ms(timeframe))
    if bar < panel.index[0]:
        raise DataError(
            f"as-of {when:%Y-%m-%d %H:%M} is before the data: no {timeframe} bar closed by then "
            f"(the first opens {panel.index[0]:%Y-%m-%d %H:%M})"
        )
    return bar
