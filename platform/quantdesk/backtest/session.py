"""Backtests straight from the data store: what notebooks, dashboards and the CLI share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from quantdesk.backtest.results import BacktestResult
from quantdesk.backtest.runner import run
from quantdesk.config import load_config
from quantdesk.data.store import DataStore, stored_funding
from quantdesk.data.symbols import parse_symbols
from quantdesk.model import INIT_CASH, Costs
from quantdesk.strategy import strategy_class


def open_store(data_root: str | Path | None = None) -> DataStore:
    """The store at data_root, else the configured one (quantdesk.toml / $QUANTDESK_DATA)."""
    return DataStore(data_root) if data_root else load_config().store()


def backtest_from_store(
    strategy: str,
    symbols: str | Sequence[str],
    timeframe: str | None = None,
    start: str | None = None,
    end: str | None = None,
    params: Mapping[str, Any] | None = None,
    fee: float = 0.001,
    slippage: float = 0.0,
    exchange: str | None = None,
    market: str | None = None,
    data_root: str | Path | None = None,
    strategies_dir: str | Path | None = None,
    cash: float = INIT_CASH,
    size: float | None = None,
    all_in: bool = False,
) -> BacktestResult:
    """Load the strategy and the bars it needs, and backtest them, entries sized as live
    trading would size them (the [risk] limits) unless `size` or `all_in` says otherwise."""
    from quantdesk.risk.sizing import entry_size

    cls = strategy_class(strategy, strategies_dir)
    instance = cls(**dict(params or {}))
    limits = load_config().risk.limits_for(cls.label())
    sizing = entry_size(instance, limits, size=size, all_in=all_in)
    costs = Costs(fee=fee, slippage=slippage, init_cash=cash, size=sizing.fraction)
    names = parse_symbols(symbols) if isinstance(symbols, str) else list(symbols)
    tf = timeframe or cls.timeframe
    store = open_store(data_root)
    data = store.load_many(names, tf, start, end, exchange, market)
    # perpetuals settle their stored funding, as `quantdesk backtest` settles it
    funding = stored_funding(store, names, start, end, exchange, market)
    return run(instance, data, costs, timeframe=tf, funding=funding)
