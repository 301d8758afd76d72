"""The replay's result portfolio is rebuilt from the engine's fills on naive UTC (vectorbt is
slow on a tz-aware index): its stats must equal those of the same fills on the tz-aware bars,
and what leaves it (equity, trades) keeps the bars' UTC index."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantdesk.backtest import Costs, to_bars
from quantdesk.backtest.metrics import compute_stats
from quantdesk.backtest.runner import on_bars
from quantdesk.model import Side
from quantdesk.strategy import load_strategy, repo_strategies_dir
from quantdesk.system.replay import portfolio_from_fills, replay


def walk(n: int, seed: int) -> pd.DataFrame:
    """n seeded random-walk hourly OHLCV bars on a tz-aware UTC index."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * 1.004
    low = np.minimum(open_, close) * 0.996
    index = pd.date_range("2023-01-01", periods=n, freq="1h", tz="UTC", name="time")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=index
    )


def test_replay_stats_match_the_tz_aware_rebuild_and_outputs_stay_utc():
    data = {"BTC/USDT": walk(600, 4)}
    strategy = load_strategy("sma_cross", {"fast": 5, "slow": 20}, repo_strategies_dir())
    result = replay(strategy, data, Costs(fee=0.001), timeframe="1h")
    fills = result.fills
    assert len(fills) > 10
    bars = to_bars(data)
    portfolio = portfolio_from_fills(bars, fills, 10_000.0)
    assert portfolio.wrapper.index.tz is None

    # the same fills as records on the tz-aware close: what the replay built before
    close = bars["close"]
    times = close.index.as_unit("ms").asi8
    records = np.zeros(len(fills), dtype=portfolio.orders.values.dtype)
    for k, f in enumerate(fills):
        idx = int(np.searchsorted(times, f.timestamp, side="right")) - 1
        side = 0 if f.side is Side.BUY else 1
        records[k] = (k, 0, idx, float(f.amount), float(f.price), float(f.fee), side)
    aware = on_bars(close, records, 10_000.0)
    assert aware.wrapper.index.tz is not None
    pd.testing.assert_frame_equal(
        result.backtest.stats.reset_index(drop=True),
        compute_stats(aware, None).reset_index(drop=True),
        check_dtype=False,
    )
    equity = result.backtest.equity
    assert equity.index.equals(close.index)
    np.testing.assert_allclose(
        equity.iloc[:, 0].to_numpy(), aware.value().to_numpy().ravel(), rtol=1e-12
    )
    trades = result.backtest.trades
    assert str(trades["entry_time"].dt.tz) == "UTC"
    expected = aware.trades.records_readable["Entry Timestamp"]
    assert list(trades["entry_time"]) == list(expected)
