"""The practical limit: the sma_cross backtest as one plain numba loop, no framework.

The same rule as every other row of the benchmarks: long when the fast SMA of the close
crosses above the slow one (vectorbt's `crossed_above` state machine, NaN warm-up included),
flat when it crosses below; a close's signal fills at the next bar's open; all cash in, the
fee on notional (vectorbt's size=inf buy: cash / (price x (1 + fee)) units). It returns the
end value, the trade count and the per-bar Sharpe, so its work includes an equity curve.
Used by bench_backtest (one backtest) and bench_grid (a parameter grid).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def sma(close: np.ndarray, window: int) -> np.ndarray:
    """Rolling mean of `window` closes (NaN for the first window - 1 bars)."""
    out = np.full(close.shape[0], np.nan)
    total = 0.0
    for i in range(close.shape[0]):
        total += close[i]
        if i >= window:
            total -= close[i - window]
        if i >= window - 1:
            out[i] = total / window
    return out


@njit(cache=True)
def backtest(
    open_: np.ndarray,
    close: np.ndarray,
    fast: np.ndarray,
    slow: np.ndarray,
    fee: float,
    cash0: float,
) -> tuple[float, int, float]:
    """(end value, trades, per-bar Sharpe) of the SMA cross on precomputed averages."""
    n = close.shape[0]
    cash, qty, trades = cash0, 0.0, 0
    above_ago, below_ago = -1, -1
    was_below, was_above = False, False
    enter, leave = False, False  # decided on the previous close, done at this open
    prev_value, total, total_sq = cash0, 0.0, 0.0
    for i in range(n):
        if enter and qty == 0.0:
            qty = cash / (open_[i] * (1.0 + fee))
            cash = 0.0
            trades += 1
        elif leave and qty > 0.0:
            cash = qty * open_[i] * (1.0 - fee)
            qty = 0.0
        value = cash + qty * close[i]
        ret = value / prev_value - 1.0
        total += ret
        total_sq += ret * ret
        prev_value = value
        # vectorbt's crossed_above / crossed_below (wait=0) on this close
        f, s = fast[i], slow[i]
        enter, leave = False, False
        if np.isnan(f) or np.isnan(s):
            above_ago, below_ago, was_below, was_above = -1, -1, False, False
        elif f > s:
            below_ago, was_above = -1, True
            if was_below:
                above_ago += 1
                enter = above_ago == 0
        elif f < s:
            above_ago, was_below = -1, True
            if was_above:
                below_ago += 1
                leave = below_ago == 0
        else:
            above_ago, below_ago = -1, -1
    mean = total / n
    var = (total_sq - n * mean * mean) / (n - 1)
    sharpe = mean / np.sqrt(var) if var > 0 else np.nan
    return cash + qty * close[n - 1], trades, sharpe


@njit(cache=True)
def grid(
    open_: np.ndarray,
    close: np.ndarray,
    fasts: np.ndarray,
    slows: np.ndarray,
    fee: float,
    cash0: float,
) -> np.ndarray:
    """End value, trades and Sharpe of every (fast, slow) pair; each average computed once."""
    fast_ma = np.empty((fasts.shape[0], close.shape[0]))
    slow_ma = np.empty((slows.shape[0], close.shape[0]))
    for k in range(fasts.shape[0]):
        fast_ma[k] = sma(close, fasts[k])
    for k in range(slows.shape[0]):
        slow_ma[k] = sma(close, slows[k])
    out = np.empty((fasts.shape[0] * slows.shape[0], 3))
    for a in range(fasts.shape[0]):
        for b in range(slows.shape[0]):
            value, trades, sharpe = backtest(open_, close, fast_ma[a], slow_ma[b], fee, cash0)
            row = a * slows.shape[0] + b
            out[row, 0], out[row, 1], out[row, 2] = value, trades, sharpe
    return out
