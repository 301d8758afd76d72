"""The optimizer's objective metrics straight from a portfolio's order records, as arrays.

`compute_stats` gives every stat of every column through vectorbt's wrapped accessors: each
per-bar series (assets, cash, value, returns, drawdowns) becomes a pandas frame, a full copy of
bars x columns. On a grid chunk (100,000 bars x hundreds of combinations) those copies, not the
numba kernels, were most of the optimizer's time. Here the same vectorbt kernels
(`vectorbt.portfolio.nb`, `vectorbt.returns.nb`) run on plain arrays, one column at a time, and
only the seven objective metrics come out, equal to compute_stats'
(tests/backtest/test_objective_metrics.py).
Only for ungrouped portfolios (one cash pool per column); the caller falls back otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import vectorbt as vbt
from numba import njit
from vectorbt.portfolio import dispatch as portfolio_nb
from vectorbt.portfolio import nb as pnb
from vectorbt.portfolio.enums import Direction, TradesType
from vectorbt.returns import nb as rnb

OBJECTIVE_COLUMNS = [
    "sharpe",
    "sortino",
    "calmar",
    "total_return",
    "max_drawdown",
    "sharpe_bar",
    "trades",
]


def supported(portfolio: vbt.Portfolio) -> bool:
    """True when the array path applies: one cash pool per column, trades counted at exits."""
    grouped = portfolio.wrapper.grouper.is_grouped() or portfolio.cash_sharing
    return not grouped and portfolio.trades_type == TradesType.ExitTrades


def objective_metrics(portfolio: vbt.Portfolio, flows: pd.DataFrame | None = None) -> pd.DataFrame:
    """sharpe, sortino, calmar, total_return, max_drawdown (negative, as vectorbt gives it),
    sharpe_bar and trades per column; flows: funding cash per bar and column, added to equity.

    Ratios of columns without trades are NaN, as in compute_stats."""
    orders = portfolio.orders
    col_idxs, col_lens = orders.col_mapper.col_map
    init = np.array(np.broadcast_to(np.asarray(portfolio.init_cash, np.float64), len(col_lens)))
    close = _close(portfolio, filled=portfolio.fillna_close)
    funding = np.zeros((0, 0)) if flows is None else flows.to_numpy(dtype=np.float64)
    defaults = vbt.settings.returns["defaults"]
    ann = pd.Timedelta(vbt.settings.returns["year_freq"]) / portfolio.wrapper.freq
    values = _metrics_nb(
        close, orders.values, col_idxs, col_lens, init, funding, float(ann),
        float(defaults["risk_free"]), int(defaults["ddof"]), float(defaults["required_return"]),
    )  # fmt: skip
    frame = pd.DataFrame(values, columns=OBJECTIVE_COLUMNS[:-1], index=portfolio.wrapper.columns)
    frame["trades"] = _trade_counts(portfolio)
    ratios = ["sharpe", "sortino", "calmar"]
    frame.loc[frame["trades"] == 0, ratios] = np.nan
    frame[ratios] = frame[ratios].replace([np.inf, -np.inf], np.nan)
    return frame


@njit(cache=True)
def _metrics_nb(
    close: np.ndarray,
    records: np.ndarray,
    col_idxs: np.ndarray,
    col_lens: np.ndarray,
    init: np.ndarray,
    funding: np.ndarray,
    ann: float,
    risk_free: float,
    ddof: int,
    required_return: float,
) -> np.ndarray:
    """Portfolio.value's kernels, then the returns ratios, one column at a time: each column's
    series stay in cache instead of bars x columns arrays passing through memory per step."""
    n, width = close.shape
    out = np.empty((width, 6), dtype=np.float64)
    starts = np.cumsum(col_lens) - col_lens
    one = (n, 1)
    for col in range(width):
        col_map = (col_idxs[starts[col] : starts[col] + col_lens[col]], col_lens[col : col + 1])
        assets = pnb.assets_nb(pnb.asset_flow_nb(one, records, col_map, Direction.Both))
        cash = pnb.cash_nb(pnb.cash_flow_nb(one, records, col_map, False), init[col : col + 1])
        value = pnb.value_nb(cash, pnb.asset_value_nb(close[:, col : col + 1], assets))[:, 0]
        if funding.shape[0] > 0:
            value = value + np.cumsum(funding[:, col])
        returns = rnb.returns_1d_nb(value, init[col])
        out[col, 0] = rnb.sharpe_ratio_1d_nb(returns, ann, risk_free, ddof)
        out[col, 1] = rnb.sortino_ratio_1d_nb(returns, ann, required_return)
        out[col, 2] = rnb.calmar_ratio_1d_nb(returns, ann)
        out[col, 3] = value[-1] / init[col] - 1.0
        out[col, 4] = rnb.max_drawdown_1d_nb(returns)
        out[col, 5] = _sharpe_bar(returns)
    return out


@njit(cache=True)
def _sharpe_bar(returns: np.ndarray) -> float:
    """Mean over standard deviation (ddof 1) of the non-NaN returns; NaN when flat."""
    total, count = 0.0, 0
    for r in returns:
        if not np.isnan(r):
            total += r
            count += 1
    if count < 2:
        return np.nan
    mean = total / count
    square = 0.0
    for r in returns:
        if not np.isnan(r):
            square += (r - mean) ** 2
    std = np.sqrt(square / (count - 1))
    return mean / std if std > 0 else np.nan


def _close(portfolio: vbt.Portfolio, filled: bool) -> np.ndarray:
    """The closes as a 2-D array; forward- then back-filled when asked (as vectorbt fills)."""
    close = np.asarray(portfolio.close, dtype=np.float64)
    close = close.reshape(len(close), -1)
    if filled and np.isnan(close).any():
        close = pd.DataFrame(close).ffill().bfill().to_numpy()
    return close


def _trade_counts(portfolio: vbt.Portfolio) -> np.ndarray:
    """Exit trades per column, open ones included (what Portfolio.trades.count() counts)."""
    orders = portfolio.orders
    records = portfolio_nb.get_exit_trades(orders.values, _close(portfolio, filled=False),
                                           orders.col_mapper.col_map)  # fmt: skip
    return np.bincount(records["col"], minlength=portfolio.wrapper.shape_2d[1]).astype(np.int64)
