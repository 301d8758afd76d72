"""Funding of perpetuals in the vectorbt backtest: cash paid or received at each settlement.

The convention is the engine's (`quantdesk.engine.kernel.Kernel._settle_funding`), so a replay
and a backtest of the same strategy book the same funding:
- a settlement at time t is booked at the open of the first bar opening at or after t, before
  that bar's orders, on the position held then (the position at the previous bar's close);
- it is marked at the previous bar's close: received = -quantity x close x rate (a long pays a
  positive rate, a short receives it);
- settlements at or before the first bar's open meet no position; those after the last bar's
  open are not booked (the run ends first).

Why post-processing: the installed vectorbt (1.2.0) has no cash deposits / cash earnings, and
`simulate_from_signal_func_nb` keeps the cash balance in a local variable no callback can move.
So the simulation trades as if funding did not exist and the funding cash is added to its cash
(hence equity, returns, drawdowns) afterwards. Entries are sized from the trading cash only,
exactly as the engine's SignalRunner sizes them from its sleeve (fills only): the two stay in
parity, and a strategy's funding never changes its trade sizes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from quantdesk.model import parse_symbol

FundingData = Mapping[str, pd.DataFrame | pd.Series]


def is_perpetual(symbol: object) -> bool:
    """Whether a column's symbol is a derivative that settles funding (BTC/USDT:USDT)."""
    try:
        return parse_symbol(str(symbol)).is_derivative
    except ValueError:  # a column label that is not a symbol (e.g. 'asset'): no funding
        return False


def rates_per_bar(index: pd.DatetimeIndex, rates: pd.DataFrame | pd.Series) -> np.ndarray:
    """Sum of the funding rates booked at each bar's open (see the module's convention)."""
    series = rates["funding_rate"] if isinstance(rates, pd.DataFrame) else rates
    series = series.dropna()
    out = np.zeros(len(index))
    if series.empty or len(index) == 0:
        return out
    bar_ms = index.as_unit("ms").asi8
    times = pd.DatetimeIndex(series.index).as_unit("ms").asi8
    # first bar opening at or after the settlement
    at = np.searchsorted(bar_ms, times, side="left")
    keep = (at >= 1) & (at < len(index))
    np.add.at(out, at[keep], series.to_numpy(dtype=np.float64)[keep])
    return out


def funding_flows(
    close: pd.DataFrame,
    assets: pd.DataFrame,
    symbols: list[str],
    funding: FundingData | None,
) -> pd.DataFrame | None:
    """Funding cash received (negative: paid) at each bar, per portfolio column.

    close and assets share one index and the portfolio's columns; symbols[j] is column j's
    symbol. None when no column is a perpetual with a funding series.
    """
    if not funding:
        return None
    flows = np.zeros(close.shape)
    found = False
    prev_close = close.shift(1).to_numpy(dtype=np.float64)
    prev_assets = assets.shift(1).fillna(0.0).to_numpy(dtype=np.float64)
    per_symbol: dict[str, np.ndarray] = {}
    for j, symbol in enumerate(symbols):
        if symbol not in funding or not is_perpetual(symbol):
            continue
        if symbol not in per_symbol:
            per_symbol[symbol] = rates_per_bar(close.index, funding[symbol])
        found = True
        rate = per_symbol[symbol]
        held = prev_assets[:, j]
        flows[:, j] = np.where(rate != 0, -held * np.nan_to_num(prev_close[:, j]) * rate, 0.0)
    if not found:
        return None
    return pd.DataFrame(flows, index=close.index, columns=close.columns)
