"""backtest.run simulates on a naive UTC index (vectorbt is slow on a tz-aware one): its results
must be the ones a simulation on the tz-aware bars gives, and everything that leaves it
(stats, equity, trades, funding, saved files, figures) keeps the bars' tz-aware UTC index."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest import Costs, run, simulate, to_bars
from quantdesk.backtest.metrics import compute_stats, equity_with_funding
from quantdesk.backtest.results import _TRADE_COLUMNS
from quantdesk.backtest.runner import portfolio_funding
from quantdesk.strategy import load_strategy, naive_utc, repo_strategies_dir

PERP = "BTC/USDT:USDT"


def walk(n: int, seed: int, freq: str = "1h") -> pd.DataFrame:
    """n seeded random-walk OHLCV bars on a tz-aware UTC index."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * (1 + rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    index = pd.date_range("2023-01-01", periods=n, freq=freq, tz="UTC", name="time")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=index
    )


def reference(strategy, data, costs, funding=None):
    """What backtest.run reported before: everything computed on the tz-aware bars."""
    bars = to_bars(data)
    portfolio = simulate(bars, strategy.signals(bars), costs, funding=funding)
    flows = portfolio_funding(portfolio, bars, funding)
    raw = portfolio.trades.records_readable
    trades = raw.rename(columns=_TRADE_COLUMNS)[list(_TRADE_COLUMNS.values())]
    for name in ("column", "direction", "status"):
        trades[name] = trades[name].astype(str)
    return (
        compute_stats(portfolio, flows),
        equity_with_funding(portfolio, flows),
        trades.reset_index(drop=True),
        flows,
    )


CASES = {
    "sma_cross stops": ("sma_cross", {"fast": 5, "slow": 20, "sl_stop": 0.02, "tp_stop": 0.03}),
    "rsi_reversion": ("rsi_reversion", {"rsi_window": 10, "bb_window": 15}),
    "momentum_rotation": ("momentum_rotation", {"lookback": 10, "top": 2, "min_history": 20}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_results_are_those_of_the_tz_aware_simulation_with_utc_outputs(case, tmp_path):
    name, params = CASES[case]
    freq = "1D" if name == "momentum_rotation" else "1h"
    data = {s: walk(600, seed, freq) for seed, s in enumerate(("BTC/USDT", "ETH/USDT", "SOL/USDT"))}
    strategy = load_strategy(name, params, repo_strategies_dir())
    costs = Costs(fee=0.001, slippage=0.0005)
    result = run(strategy, data, costs)
    stats, equity, trades, _ = reference(strategy, data, costs)

    assert len(trades) > 5
    pd.testing.assert_frame_equal(result.stats, stats)
    pd.testing.assert_frame_equal(result.equity, equity)
    pd.testing.assert_frame_equal(result.trades, trades)
    utc = result.bars.index
    assert str(utc.tz) == "UTC"
    assert result.equity.index.equals(utc) and str(result.equity.index.tz) == "UTC"
    for column in ("entry_time", "exit_time"):
        assert str(result.trades[column].dt.tz) == "UTC"
        assert result.trades[column].isin(utc).all()
    paths = result.save(tmp_path)
    saved = pd.read_parquet(paths["trades.parquet"])
    assert str(saved["entry_time"].dt.tz) == "UTC"
    pd.testing.assert_frame_equal(saved, result.trades, check_index_type=False)
    assert str(pd.read_parquet(paths["equity.parquet"]).index.tz) == "UTC"
    assert str(result.trades_table()["entry_time"].dt.tz) == "UTC"
    figure = result.equity_figure()
    assert pd.DatetimeIndex(figure.data[0].x).tz is not None


def test_funded_perpetual_matches_the_tz_aware_simulation():
    data = {PERP: walk(800, 7), "ETH/USDT": walk(800, 8)}
    settle = pd.date_range("2023-01-01 08:00", periods=90, freq="8h", tz="UTC")
    rates = np.random.default_rng(3).normal(0.0005, 0.001, len(settle))
    funding = {PERP: pd.DataFrame({"funding_rate": rates}, index=settle)}
    strategy = load_strategy("sma_cross", {"fast": 5, "slow": 20}, repo_strategies_dir())
    costs = Costs(fee=0.001)
    result = run(strategy, data, costs, funding=funding)
    stats, equity, trades, flows = reference(strategy, data, costs, funding)

    assert result.stats.loc[PERP, "funding"] != 0
    pd.testing.assert_frame_equal(result.stats, stats)
    pd.testing.assert_frame_equal(result.equity, equity)
    pd.testing.assert_frame_equal(result.trades, trades)
    pd.testing.assert_frame_equal(result.funding, flows)
    assert str(result.funding.index.tz) == "UTC"


@pytest.mark.parametrize("name", ["sma_cross", "rsi_reversion"])
def test_signals_keep_the_bars_utc_index(name):
    bars = to_bars({"BTC/USDT": walk(300, 1), "ETH/USDT": walk(300, 2)})
    strategy = load_strategy(name, {}, repo_strategies_dir())
    signals = strategy.signals(bars)
    naive = strategy.signals(naive_utc(bars))
    for field in ("entries", "exits"):
        frame = getattr(signals, field)
        assert frame.index.equals(bars.index) and str(frame.index.tz) == "UTC"
        np.testing.assert_array_equal(frame.to_numpy(), getattr(naive, field).to_numpy())
