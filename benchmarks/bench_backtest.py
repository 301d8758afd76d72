"""Research backtest vs raw vectorbt: `quantdesk.backtest.run` and the bundled strategies'
`signals()` side by side with the plain vectorbt calls doing the same work, on the same bars.

Data: the seeded random walk of 1-minute bars of bench_replay (tz-aware UTC, as quantdesk
stores them), 100,000 and 1,000,000 bars (`BENCH_BACKTEST_BARS`, comma-separated).

- quantdesk backtest: `run(sma_cross(fast=20, slow=100), {symbol: bars}, Costs(fee=0.001))`
  then its stats table, equity and trades table: what `quantdesk backtest` reports.
- raw vectorbt: the same rule written against vectorbt directly, as its docs do, on the same
  bars with a naive index: `vbt.MA.run` x2, crossed above/below, shifted one bar (a close's
  signal fills at the next open), `Portfolio.from_signals(close, entries, exits, price=open,
  fees=0.001)`, then the same statistics (total return, CAGR, Sharpe, Sortino, Calmar, max
  drawdown and its duration, win rate, profit factor, exposure, trade count, fees, end
  value), the value series and the trade records.
- signals(): `sma_cross.signals(bars)` vs `vbt.MA.run` x2 + `ma_crossed_above/below`;
  `rsi_reversion.signals(bars)` vs `vbt.RSI.run` + `vbt.BBANDS.run` + the comparisons.

Every timing is the best of `BENCH_BACKTEST_REPEATS` (default 3) warm runs.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import vectorbt as vbt

from benchmarks import numba_loop
from benchmarks.bench_replay import FAST, FEE, SLOW, SYMBOL, make_bars
from quantdesk.backtest import Costs, run, to_bars
from quantdesk.strategy import load_strategy, repo_strategies_dir

SIZES = [int(n) for n in os.environ.get("BENCH_BACKTEST_BARS", "100000,1000000").split(",")]
REPEATS = int(os.environ.get("BENCH_BACKTEST_REPEATS", "3"))
CASH = 10_000.0
RSI_WINDOW, OVERSOLD, OVERBOUGHT, BB_WINDOW, BB_ALPHA = 14, 30.0, 70.0, 20, 2.0


def quantdesk_backtest(bars: pd.DataFrame) -> int:
    """quantdesk backtest.run + the stats, equity and trades it reports; returns trades."""
    strategy = load_strategy("sma_cross", {"fast": FAST, "slow": SLOW}, repo_strategies_dir())
    result = run(strategy, {SYMBOL: bars}, Costs(fee=FEE, init_cash=CASH), timeframe="1m")
    result.stats, result.equity  # noqa: B018 (computed lazily: that is the work measured)
    return len(result.trades)


def raw_backtest(bars: pd.DataFrame) -> int:
    """The same backtest in plain vectorbt on a naive index; returns trades."""
    close, open_ = bars["close"], bars["open"]
    fast = vbt.MA.run(close, FAST, short_name="fast")
    slow = vbt.MA.run(close, SLOW, short_name="slow")
    entries = fast.ma_crossed_above(slow).shift(1, fill_value=False)
    exits = fast.ma_crossed_below(slow).shift(1, fill_value=False)
    pf = vbt.Portfolio.from_signals(
        close, entries, exits, price=open_, fees=FEE, init_cash=CASH, freq="1min"
    )
    stats: dict[str, Any] = {
        "total_return": pf.total_return(),
        "cagr": pf.annualized_return(),
        "sharpe": pf.sharpe_ratio(),
        "sortino": pf.sortino_ratio(),
        "calmar": pf.calmar_ratio(),
        "max_drawdown": pf.max_drawdown(),
        "max_drawdown_duration": pf.drawdowns.max_duration(),
        "win_rate": pf.trades.closed.win_rate(),
        "profit_factor": pf.trades.closed.profit_factor(),
        "exposure": (pf.assets() != 0).mean(),
        "trades": pf.trades.count(),
        "fees_paid": pf.orders.fees.sum(),
        "end_value": pf.value().iloc[-1],
    }
    assert stats["trades"] >= 0
    return len(pf.trades.values)


def numba_backtest(bars: pd.DataFrame) -> int:
    """The same backtest as one plain numba loop (benchmarks/numba_loop.py); returns trades."""
    open_, close = bars["open"].to_numpy(), bars["close"].to_numpy()
    fast, slow = numba_loop.sma(close, FAST), numba_loop.sma(close, SLOW)
    return numba_loop.backtest(open_, close, fast, slow, FEE, CASH)[1]


def quantdesk_sma_signals(bars: pd.DataFrame) -> int:
    """sma_cross.signals() on the (field, symbol) bars; returns entries."""
    strategy = load_strategy("sma_cross", {"fast": FAST, "slow": SLOW}, repo_strategies_dir())
    return int(strategy.signals(bars).entries.to_numpy().sum())


def raw_sma_signals(bars: pd.DataFrame) -> int:
    """vbt.MA.run x2 and the crossings on the naive close; returns entries."""
    close = bars["close"]
    fast = vbt.MA.run(close, FAST, short_name="fast")
    slow = vbt.MA.run(close, SLOW, short_name="slow")
    entries, _ = fast.ma_crossed_above(slow), fast.ma_crossed_below(slow)
    return int(entries.to_numpy().sum())


def quantdesk_rsi_signals(bars: pd.DataFrame) -> int:
    """rsi_reversion.signals() with its defaults; returns entries."""
    strategy = load_strategy("rsi_reversion", {}, repo_strategies_dir())
    return int(strategy.signals(bars).entries.to_numpy().sum())


def raw_rsi_signals(bars: pd.DataFrame) -> int:
    """vbt.RSI.run + vbt.BBANDS.run and the same comparisons; returns entries."""
    close = bars["close"]
    rsi = vbt.RSI.run(close, RSI_WINDOW).rsi.to_numpy()
    bands = vbt.BBANDS.run(close, BB_WINDOW, alpha=BB_ALPHA)
    price = close.to_numpy()
    entries = (rsi < OVERSOLD) & (price < bands.lower.to_numpy())
    _ = (rsi > OVERBOUGHT) | (price > bands.middle.to_numpy())
    return int(entries.sum())


def best(fn: Callable[[pd.DataFrame], int], bars: pd.DataFrame) -> tuple[float, int]:
    """Best wall time of REPEATS warm calls, and the call's count."""
    times, out = [], 0
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = fn(bars)
        times.append(time.perf_counter() - t0)
    return min(times), out


def naive(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.index = out.index.tz_localize(None)
    return out


PAIRS = (
    ("backtest.run + stats (sma_cross)", quantdesk_backtest, raw_backtest, "ohlcv"),
    ("sma_cross.signals()", quantdesk_sma_signals, raw_sma_signals, "bars"),
    ("rsi_reversion.signals()", quantdesk_rsi_signals, raw_rsi_signals, "bars"),
)


def main() -> None:
    """Print one markdown table: quantdesk seconds, raw vectorbt seconds, their ratio."""
    warm = make_bars(5_000)
    for _, ours, raw, kind in PAIRS:  # imports, numba caches
        ours(warm if kind == "ohlcv" else to_bars({SYMBOL: warm}))
        raw(naive(warm) if kind == "ohlcv" else naive(to_bars({SYMBOL: warm})))
    numba_backtest(warm)
    rows, loops = [], []
    for n in SIZES:
        ohlcv = make_bars(n)
        inputs = {"ohlcv": ohlcv, "bars": to_bars({SYMBOL: ohlcv})}
        for name, ours, raw, kind in PAIRS:
            t_ours, c_ours = best(ours, inputs[kind])
            t_raw, c_raw = best(raw, naive(inputs[kind]))
            rows.append((name, n, t_ours, t_raw, c_ours, c_raw))
            if ours is quantdesk_backtest:
                t_loop, c_loop = best(numba_backtest, ohlcv)
                loops.append((n, t_ours, t_raw, t_loop, c_ours, c_loop))
            print(
                f"  {name} {n:,} bars: quantdesk {t_ours * 1e3:.0f} ms, raw vectorbt "
                f"{t_raw * 1e3:.0f} ms, {t_ours / t_raw:.2f}x ({c_ours} / {c_raw})",
                flush=True,
            )
        del ohlcv, inputs
    cpu = platform.processor() or platform.machine()
    print(
        f"\nMachine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"vectorbt {vbt.__version__}, {datetime.now(UTC):%Y-%m-%d}, load average "
        f"{os.getloadavg()[0]:.2f}; best of {REPEATS}\n"
    )
    print("| path | bars | quantdesk ms | raw vectorbt ms | ratio | count (quantdesk / raw) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, n, t_ours, t_raw, c_ours, c_raw in rows:
        print(
            f"| {name} | {n:,} | {t_ours * 1e3:,.0f} | {t_raw * 1e3:,.0f} | "
            f"{t_ours / t_raw:.2f}x | {c_ours:,} / {c_raw:,} |"
        )
    print("\nThe practical limit: the same backtest as one plain numba loop (numba_loop.py)\n")
    print("| bars | quantdesk ms | raw vectorbt ms | numba loop ms | quantdesk / loop | trades |")
    print("|---|---:|---:|---:|---:|---:|")
    for n, t_ours, t_raw, t_loop, c_ours, c_loop in loops:
        print(
            f"| {n:,} | {t_ours * 1e3:,.0f} | {t_raw * 1e3:,.0f} | {t_loop * 1e3:,.1f} | "
            f"{t_ours / t_loop:,.0f}x | {c_ours:,} / {c_loop:,} |"
        )


if __name__ == "__main__":
    main()
