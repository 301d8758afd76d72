"""Peer cross-check: SMA cross in quantdesk (vectorbt) vs backtesting.py on its bundled data.

Conventions aligned on the backtesting.py side:
- market orders placed in next() on bar t fill at the open of t+1 (trade_on_close=False), as ours;
- commission is a fraction of notional charged on entry and on exit, as our fee;
- sizing: backtesting.py trades whole units of a proportion < 1 of equity; FractionalBacktest
  with a 1e-10 unit and a proportion of 1 - 1e-12 makes that "all equity", like vectorbt's
  size=inf (the rounding left is ~1e-10 of equity per trade);
- finalize_trades=False: the last open trade stays open and is marked at the last close without
  an exit commission, which is how vectorbt values an open position.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from backtesting import Strategy as BtStrategy
from backtesting.lib import FractionalBacktest, crossover
from backtesting.test import EURUSD, GOOG

from quantdesk.backtest import Costs, run
from quantdesk.strategy import load_strategy, repo_strategies_dir

ALL_IN = 1 - 1e-12


def _sma(values: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(values).rolling(n).mean().to_numpy()


class BtSmaCross(BtStrategy):
    fast = 10
    slow = 30

    def init(self) -> None:
        self.sma_fast = self.I(_sma, self.data.Close, self.fast)
        self.sma_slow = self.I(_sma, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.sma_fast, self.sma_slow):
            self.buy(size=ALL_IN)
        elif crossover(self.sma_slow, self.sma_fast):
            self.position.close()


@pytest.mark.parametrize(
    ("name", "data", "fast", "slow", "commission"),
    [("GOOG", GOOG, 10, 30, 0.002), ("EURUSD", EURUSD, 12, 48, 0.0002)],
)
def test_sma_cross_matches_backtesting_py(name, data, fast, slow, commission):
    bt = FractionalBacktest(
        data,
        BtSmaCross,
        cash=10_000,
        commission=commission,
        trade_on_close=False,
        exclusive_orders=False,
        finalize_trades=False,
        fractional_unit=1e-10,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = bt.run(fast=fast, slow=slow)

    bars = data.rename(columns=str.lower)
    bars.index = bars.index.tz_localize("UTC")
    strategy = load_strategy("sma_cross", {"fast": fast, "slow": slow}, repo_strategies_dir())
    ours = run(strategy, bars, Costs(fee=commission))

    peer_trades = peer["_trades"]
    closed = ours.trades[ours.trades["status"] == "Closed"]
    index = bars.index
    assert len(peer_trades) > 10, name
    assert len(closed) == len(peer_trades)
    assert list(index.get_indexer(closed["entry_time"])) == list(peer_trades["EntryBar"])
    assert list(index.get_indexer(closed["exit_time"])) == list(peer_trades["ExitBar"])
    np.testing.assert_allclose(closed["entry_price"], peer_trades["EntryPrice"], rtol=1e-9)
    np.testing.assert_allclose(closed["exit_price"], peer_trades["ExitPrice"], rtol=1e-9)

    peer_return = peer["Equity Final [$]"] / 10_000 - 1
    assert ours.summary()["total_return"] == pytest.approx(peer_return, rel=1e-6)
