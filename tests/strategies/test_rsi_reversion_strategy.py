"""rsi_reversion: signals against vectorbt/pandas references, causality, sweeps."""

from __future__ import annotations

import numpy as np
import pytest
import vectorbt as vbt

from quantdesk.backtest import run, run_grid, to_bars
from quantdesk.data.synthetic import SynthSpec, generate_market
from quantdesk.strategy import load_strategy, repo_strategies_dir, strategy_class

DIR = repo_strategies_dir()


@pytest.fixture(scope="module")
def market():
    m = generate_market(SynthSpec(seed=5, days=20))
    return {s: m.bars(s, "1h") for s in ("BTC/USDT", "SOL/USDT")}


def test_entries_need_oversold_rsi_below_the_lower_band(market):
    bars = to_bars(market)
    s = load_strategy("rsi_reversion", {"rsi_window": 10, "oversold": 35.0}, DIR)
    sig = s.signals(bars)
    close = bars["close"]
    rsi = vbt.RSI.run(close, 10).rsi.to_numpy()
    mid = close.rolling(20).mean()
    lower = (mid - 2 * close.rolling(20).std(ddof=0)).to_numpy()
    want_entries = (rsi < 35.0) & (close.to_numpy() < lower)
    want_exits = (rsi > 70.0) | (close.to_numpy() > mid.to_numpy())
    assert want_entries.sum() > 2
    np.testing.assert_array_equal(sig.entries.to_numpy(), want_entries)
    np.testing.assert_array_equal(sig.exits.to_numpy(), want_exits)


def test_signals_are_causal(market):
    bars = to_bars(market["SOL/USDT"])
    s = load_strategy("rsi_reversion", {}, DIR)
    full = s.signals(bars)
    for t in (30, 120, len(bars) - 1):
        part = s.signals(bars.iloc[: t + 1])
        assert part.entries.iloc[-1].equals(full.entries.iloc[t])
        assert part.exits.iloc[-1].equals(full.exits.iloc[t])


def test_sweep_equals_individual_backtests(market):
    cls = strategy_class("rsi_reversion", DIR)
    grid = run_grid(cls, {"rsi_window": [7, 14], "oversold": [25.0, 40.0]}, market)
    assert len(grid.stats) == 8
    for window, level in ((7, 40.0), (14, 25.0)):
        single = run(cls(rsi_window=window, oversold=level), market).stats
        for symbol in market:
            assert grid.stats.loc[(window, level, symbol), "total_return"] == pytest.approx(
                single.loc[symbol, "total_return"], rel=1e-12
            )


def test_history_before_the_warmup_does_not_matter(market):
    bars = to_bars(market["BTC/USDT"])
    s = load_strategy("rsi_reversion", {"rsi_window": 6, "bb_window": 12}, DIR)
    full = s.signals(bars)
    t = 200
    short = s.signals(bars.iloc[t + 1 - s.warmup - 1 : t + 1])
    assert short.entries.iloc[-1].equals(full.entries.iloc[t])
    assert short.exits.iloc[-1].equals(full.exits.iloc[t])
