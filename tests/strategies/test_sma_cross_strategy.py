"""sma_cross: signals against a pandas reference, causality, and a vectorized sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest import Costs, run, run_grid, to_bars
from quantdesk.data.synthetic import SynthSpec, generate_market
from quantdesk.strategy import load_strategy, repo_strategies_dir, strategy_class

DIR = repo_strategies_dir()


@pytest.fixture(scope="module")
def market():
    m = generate_market(SynthSpec(seed=3, days=20))
    return {s: m.bars(s, "1h") for s in ("BTC/USDT", "ETH/USDT")}


def test_entries_and_exits_are_sma_crossings(market):
    bars = to_bars(market)
    sig = load_strategy("sma_cross", {"fast": 5, "slow": 20}, DIR).signals(bars)
    close = bars["close"]
    fast, slow = close.rolling(5).mean(), close.rolling(20).mean()
    above = fast > slow
    below = fast < slow
    ref_entries = above & below.shift(1, fill_value=False)
    ref_exits = below & above.shift(1, fill_value=False)
    assert sig.entries.to_numpy().sum() > 3
    np.testing.assert_array_equal(sig.entries.to_numpy(), ref_entries.to_numpy())
    np.testing.assert_array_equal(sig.exits.to_numpy(), ref_exits.to_numpy())


def test_signals_are_causal(market):
    bars = to_bars(market["BTC/USDT"])
    strategy = load_strategy("sma_cross", {"fast": 4, "slow": 12}, DIR)
    full = strategy.signals(bars)
    for t in (40, 100, 250, len(bars) - 1):
        part = strategy.signals(bars.iloc[: t + 1])
        assert part.entries.iloc[-1].equals(full.entries.iloc[t])
        assert part.exits.iloc[-1].equals(full.exits.iloc[t])
    # History before the warmup window does not change today's decision.
    t = 300
    short = strategy.signals(bars.iloc[t + 1 - strategy.warmup - 1 : t + 1])
    assert short.entries.iloc[-1].equals(full.entries.iloc[t])


def test_sweep_equals_individual_backtests(market):
    cls = strategy_class("sma_cross", DIR)
    costs = Costs(fee=0.001, slippage=0.0002)
    grid = run_grid(cls, {"fast": [4, 8], "slow": [20, 30]}, market, costs, fixed={"sl_stop": 0.02})
    assert list(grid.stats.index.names) == ["fast", "slow", "symbol"]
    assert len(grid.stats) == 8
    for fast, slow in ((4, 30), (8, 20)):
        single = run(cls(fast=fast, slow=slow, sl_stop=0.02), market, costs).stats
        for symbol in market:
            got = grid.stats.loc[(fast, slow, symbol)]
            want = single.loc[symbol]
            assert got["trades"] == want["trades"]
            assert got["total_return"] == pytest.approx(want["total_return"], rel=1e-12)
    top = grid.top(3)
    assert list(top["total_return"]) == sorted(grid.stats["total_return"], reverse=True)[:3]


def test_sweep_over_stop_fractions_applies_each_stop_to_its_columns(market):
    cls = strategy_class("sma_cross", DIR)
    btc = {"BTC/USDT": market["BTC/USDT"]}
    grid = run_grid(cls, {"sl_stop": [0.0, 0.005]}, btc, fixed={"fast": 4, "slow": 12})
    for stop in (0.0, 0.005):
        single = run(cls(fast=4, slow=12, sl_stop=stop), btc).summary()
        assert grid.stats.loc[(stop, "BTC/USDT"), "total_return"] == pytest.approx(
            single["total_return"], rel=1e-12
        )
    no_stop, stop = grid.stats["total_return"].to_numpy()
    assert no_stop != stop


def test_default_timeframe_and_warmup():
    s = load_strategy("sma_cross", {"slow": 50}, DIR)
    assert s.timeframe == "1h" and s.warmup == 51
    assert isinstance(s.signals, object)
    assert pd.api.types.is_integer(s.warmup)
