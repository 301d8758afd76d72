"""Replay throughput: sma_cross over 1,000,000 bars, side by side with peers in one run.

Same data (a seeded random walk of 1-minute bars) and the same rule everywhere: long when the
fast SMA of the close crosses above the slow one, flat when it crosses below; a signal on the
close of bar t fills at the open of bar t+1, 0.1% fee of notional, all cash in.

- quantdesk replay: the engine end to end (signals once, then bar by bar: kernel, risk gate,
  order manager, SimVenue over the matching core, Decimal portfolio), in-memory journal; and
  the same with the SQLite journal (every order, event, fill, position; equity sampled).
- quantdesk backtest: vectorbt's `Portfolio.from_signals` (vectorized reference).
- backtesting.py: `FractionalBacktest` with a `next()` per bar (all-in sizing as in the peer test).
- backtrader: `Cerebro` with SMA indicators and `CrossOver`, all-in sizer. It is the slowest
  by far, so by default it runs on a slice (`BENCH_BACKTRADER_BARS`) and its 1M-bar time is
  extrapolated linearly (its cost is per bar; said so in the table).

Environment: BENCH_REPLAY_BARS (default 1,000,000), BENCH_BACKTRADER_BARS (default 200,000),
BENCH_JOURNAL_BARS (default 200,000; the SQLite journal run, extrapolated the same way; set it
to 1000000 to measure the full run).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from quantdesk.backtest import Costs, run
from quantdesk.strategy import load_strategy, repo_strategies_dir
from quantdesk.system.replay import replay

BARS = int(os.environ.get("BENCH_REPLAY_BARS", "1000000"))
BACKTRADER_BARS = min(BARS, int(os.environ.get("BENCH_BACKTRADER_BARS", "200000")))
JOURNAL_BARS = min(BARS, int(os.environ.get("BENCH_JOURNAL_BARS", "200000")))
FAST, SLOW, FEE, CASH = 20, 100, 0.001, 10_000.0
SYMBOL = "BTC/USDT"


def make_bars(n: int, seed: int = 42) -> pd.DataFrame:
    """n 1-minute OHLCV bars from a seeded random walk."""
    rng = np.random.default_rng(seed)
    close = 20_000 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate([[20_000.0], close[:-1]])
    wick = rng.uniform(0, 0.0008, (2, n))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    index = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC", name="time")
    volume = rng.uniform(1, 10, n)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def _strategy():
    return load_strategy("sma_cross", {"fast": FAST, "slow": SLOW}, repo_strategies_dir())


def run_replay(bars: pd.DataFrame) -> int:
    """quantdesk replay, in-memory journal; returns the number of trades."""
    result = replay(_strategy(), {SYMBOL: bars}, Costs(fee=FEE), timeframe="1m")
    return len(result.portfolio.closed_trips) + len(result.portfolio.open_trips)


def run_replay_journal(bars: pd.DataFrame) -> int:
    """quantdesk replay with the SQLite (WAL) journal."""
    with tempfile.TemporaryDirectory() as tmp:
        result = replay(
            _strategy(),
            {SYMBOL: bars},
            Costs(fee=FEE),
            timeframe="1m",
            journal=Path(tmp) / "bench.sqlite",
        )
    return len(result.portfolio.closed_trips) + len(result.portfolio.open_trips)


def run_signals(bars: pd.DataFrame) -> int:
    """sma_cross.signals() alone: the vectorized part both quantdesk paths pay once."""
    from quantdesk.backtest.runner import to_bars

    signals = _strategy().signals(to_bars({SYMBOL: bars}))
    return int(signals.entries.to_numpy().sum())


def run_vectorbt(bars: pd.DataFrame) -> int:
    """quantdesk backtest (vectorbt from_signals)."""
    result = run(_strategy(), {SYMBOL: bars}, Costs(fee=FEE), timeframe="1m")
    return int(result.stats["trades"].iloc[0])


def run_backtesting_py(bars: pd.DataFrame) -> int:
    """backtesting.py FractionalBacktest, SMA cross in next()."""
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest, crossover

    def sma(values: np.ndarray, n: int) -> np.ndarray:
        return pd.Series(values).rolling(n).mean().to_numpy()

    class SmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                self.buy(size=1 - 1e-12)
            elif crossover(self.slow, self.fast):
                self.position.close()

    data = bars.rename(columns=str.capitalize)
    data.index = data.index.tz_localize(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = FractionalBacktest(
            data, SmaCross, cash=CASH, commission=FEE, trade_on_close=False, finalize_trades=False
        )
        stats = bt.run()
    return int(stats["# Trades"])


def run_backtrader(bars: pd.DataFrame) -> int:
    """backtrader Cerebro, SMA + CrossOver, all-in sizer, next-open fills (default)."""
    import backtrader as bt

    class SmaCross(bt.Strategy):
        def __init__(self) -> None:
            fast = bt.ind.SMA(self.data.close, period=FAST)
            slow = bt.ind.SMA(self.data.close, period=SLOW)
            self.cross = bt.ind.CrossOver(fast, slow)
            self.trades = 0

        def notify_trade(self, trade) -> None:
            if trade.isclosed:
                self.trades += 1

        def next(self) -> None:
            if not self.position and self.cross > 0:
                self.buy()
            elif self.position and self.cross < 0:
                self.close()

    cerebro = bt.Cerebro(stdstats=False)
    data = bars.copy()
    data.index = data.index.tz_localize(None)
    cerebro.adddata(bt.feeds.PandasData(dataname=data))
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=FEE)
    cerebro.addsizer(bt.sizers.AllInSizer, percents=99)
    (strategy,) = cerebro.run()
    return strategy.trades


def _time(fn: Callable[[pd.DataFrame], int], bars: pd.DataFrame) -> tuple[float, int]:
    t0 = time.perf_counter()
    trades = fn(bars)
    return time.perf_counter() - t0, trades


def main() -> None:
    """Print one markdown table: seconds, bars/s and speed relative to quantdesk replay."""
    bars = make_bars(BARS)
    run_replay(bars.iloc[:5_000])  # warm-up: imports, numba caches
    run_vectorbt(bars.iloc[:5_000])
    rows = []
    for name, fn, n in (
        ("quantdesk replay (engine, memory journal)", run_replay, BARS),
        ("quantdesk replay (engine, SQLite journal)", run_replay_journal, JOURNAL_BARS),
        ("quantdesk backtest (vectorbt from_signals)", run_vectorbt, BARS),
        ("  of which: sma_cross.signals() alone", run_signals, BARS),
        ("backtesting.py 0.6 (FractionalBacktest)", run_backtesting_py, BARS),
        ("backtrader (Cerebro)", run_backtrader, BACKTRADER_BARS),
    ):
        seconds, trades = _time(fn, bars.iloc[:n])
        full = seconds * BARS / n  # linear extrapolation when run on a slice
        rows.append((name, n, trades, seconds, full))
        print(f"  {name.strip()}: {n:,} bars in {seconds:.1f} s, {trades} trades", flush=True)
    base = rows[0][4]
    cpu = platform.processor() or platform.machine()
    print(
        f"\nMachine: {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d}; sma_cross fast={FAST} slow={SLOW}, {BARS:,} bars\n"
    )
    print("| engine | bars run | trades | seconds | bars/s | time for 1M bars | vs replay |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, n, trades, seconds, full in rows:
        note = "" if n == BARS else " (extrapolated)"
        print(
            f"| {name} | {n:,} | {trades:,} | {seconds:.1f} | {n / seconds:,.0f} | "
            f"{full:.1f} s{note} | {full / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
