"""Without stops the backtest simulates one row per bar (signals at the next open) instead of
the open row + range row of the fill convention: the orders, value and stats must be those of
the two-row simulation. A stop set so far away that it never fires (99%) takes the two-row
path over the same signals, so each case compares the two paths on the same work."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest import Costs, runner, simulate, to_bars
from quantdesk.backtest.metrics import compute_stats
from quantdesk.backtest.runner import portfolio_funding
from quantdesk.data.csv_import import ImportOptions, parse_csv
from quantdesk.data.samples import sample_path
from quantdesk.data.store import OHLCV_COLUMNS, normalize
from quantdesk.strategy import Signals, load_strategy, repo_strategies_dir

PERP = "BTC/USDT:USDT"


def walk(n: int, seed: int, columns: list[str]) -> dict[str, pd.DataFrame]:
    """Seeded random-walk hourly OHLCV bars per column, on a tz-naive UTC index."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2023-01-01", periods=n, freq="1h", name="time")
    out = {}
    for name in columns:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        open_ = np.concatenate([[100.0], close[:-1]]) * (1 + rng.normal(0, 0.002, n))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
        out[name] = pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=index
        )
    return out


def both_paths(bars, signals, costs, funding=None):
    """(one-row portfolio, two-row portfolio) of the same signals; the first must not take
    the two-row path."""

    def refuse(*args, **kwargs):
        raise AssertionError("a strategy without stops took the two-row simulation")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "_two_phase_rows", refuse)
        one = simulate(bars, signals, costs, funding=funding)
    two = simulate(bars, replace(signals, sl_stop=0.99), costs, funding=funding)
    return one, two


def assert_same(one, two, bars, funding=None) -> None:
    """Same orders (bar, size, price, fees, side), value and stats."""
    a, b = one.orders.values, two.orders.values
    assert len(a) == len(b) > 10
    for name in ("col", "idx", "side"):
        np.testing.assert_array_equal(a[name], b[name])
    for name in ("size", "price", "fees"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12)
    np.testing.assert_allclose(one.value().to_numpy(), two.value().to_numpy(), rtol=1e-12)
    pd.testing.assert_frame_equal(
        compute_stats(one, portfolio_funding(one, bars, funding)),
        compute_stats(two, portfolio_funding(two, bars, funding)),
        rtol=1e-10,
    )


@pytest.mark.parametrize("size", [None, 0.5])
def test_long_signals_one_row_equals_two_rows(size):
    bars = to_bars(walk(2_000, 3, ["A", "B"]))
    strategy = load_strategy("sma_cross", {"fast": 5, "slow": 20}, repo_strategies_dir())
    signals = strategy.signals(bars)
    assert not signals.sl_stop and not signals.tp_stop  # 0: off
    costs = Costs(fee=0.001, slippage=0.0005, size=size)
    one, two = both_paths(bars, signals, costs)
    assert_same(one, two, bars)


def test_long_and_short_signals_one_row_equals_two_rows():
    bars = to_bars(walk(2_000, 8, ["A"]))
    close = bars["close"]
    fast, slow = close.rolling(5).mean(), close.rolling(20).mean()
    up = (fast > slow) & (fast.shift() <= slow.shift())
    down = (fast < slow) & (fast.shift() >= slow.shift())
    signals = Signals(entries=up, exits=down, short_entries=down, short_exits=up)
    one, two = both_paths(bars, signals, Costs(fee=0.001))
    assert (one.orders.values["side"] == 1).sum() > 5
    assert (one.positions.values["direction"] == 1).any()  # short positions taken
    assert_same(one, two, bars)


def test_funded_perp_one_row_equals_two_rows():
    samples = sample_path("binance-um")
    raw = parse_csv(samples / "BTCUSDT-1d.csv", ImportOptions(market="usdm"))
    rates = parse_csv(samples / "BTCUSDT-funding.csv", ImportOptions(market="usdm"))
    frame = normalize(raw.frame, OHLCV_COLUMNS)
    frame.index = frame.index.tz_localize(None)
    funding_frame = rates.frame.copy()
    funding_frame.index = funding_frame.index.tz_localize(None)
    bars = to_bars({PERP: frame})
    funding = {PERP: funding_frame}
    strategy = load_strategy("sma_cross", {"fast": 10, "slow": 30}, repo_strategies_dir())
    costs = Costs(fee=0.001, slippage=0.0005, size=0.5)
    one, two = both_paths(bars, strategy.signals(bars), costs, funding=funding)
    assert abs(float(portfolio_funding(one, bars, funding).sum().iloc[0])) > 100
    assert_same(one, two, bars, funding)
