"""Order of fills inside a bar on the real Binance daily bars, against a plain loop written here.

The convention (quantdesk.model.fills): the order due at a bar's open comes first, then the
bar's range. So an exit signal due at the open exits at the open even when the bar later reaches
the stop or the target, and a stop placed with an entry at the open is live for the rest of that
bar. The loop below knows nothing of vectorbt or the engine; the backtest and the replay must
both reproduce its every trade.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest import Costs, run
from quantdesk.data.csv_import import ImportOptions, parse_csv
from quantdesk.data.store import OHLCV_COLUMNS, normalize
from quantdesk.strategy import load_strategy
from quantdesk.system.replay import replay
from tests.conftest import SAMPLE_DATA

COSTS = Costs(fee=0.001, slippage=0.0005)
REL = 1e-9


@dataclass
class Loop:
    """What the plain loop found: trades, and the bars that decide the order question."""

    trades: list[tuple[pd.Timestamp, float, float, pd.Timestamp, float]]  # entry t/price, size
    exit_over_stop: list[pd.Timestamp]  # an exit at the open in a bar reaching a stop/target
    entry_bar_stops: list[pd.Timestamp]  # a stop/target hit in the bar of its entry


def daily(name: str) -> tuple[str, pd.DataFrame]:
    parsed = parse_csv(SAMPLE_DATA / f"{name}-1d.csv", ImportOptions(market="usdm"))
    return parsed.key.symbol, normalize(parsed.frame, OHLCV_COLUMNS)


def plain_loop(bars: pd.DataFrame, fast: int, slow: int, sl: float, tp: float) -> Loop:
    """Long-only SMA cross, all in, signals of close t at open t+1, stops per the convention."""
    close = bars["close"]
    fast_ma, slow_ma = close.rolling(fast).mean(), close.rolling(slow).mean()
    above = (fast_ma > slow_ma).to_numpy()
    known = (fast_ma.notna() & slow_ma.notna()).to_numpy()
    prev_known = np.r_[False, known[:-1]] & known
    prev_above = np.r_[False, above[:-1]]
    entries = prev_known & above & ~prev_above
    exits = prev_known & ~above & prev_above
    o, h, low = (bars[f].to_numpy() for f in ("open", "high", "low"))
    fee, slip = COSTS.fee, COSTS.slippage
    cash, qty, entry_price, entry_i = COSTS.init_cash, 0.0, 0.0, -1
    out = Loop([], [], [])

    def sell(i: int, price: float) -> None:
        nonlocal cash, qty
        fill = price * (1 - slip)
        cash += qty * fill * (1 - fee)
        out.trades.append((bars.index[entry_i], entry_price, qty, bars.index[i], fill))
        qty = 0.0

    for i in range(1, len(bars)):
        entry, exit_ = bool(entries[i - 1]), bool(exits[i - 1])
        stop = entry_price * (1 - sl) if sl else -np.inf
        target = entry_price * (1 + tp) if tp else np.inf
        # 1. the open: a market order due now, or a stop the bar opened through
        if qty > 0 and (o[i] <= stop or o[i] >= target):
            sell(i, o[i])
        elif qty > 0 and exit_ and not entry:
            if low[i] <= stop or h[i] >= target:
                out.exit_over_stop.append(bars.index[i])
            sell(i, o[i])
        elif qty == 0 and entry and not exit_:
            entry_price, entry_i = o[i] * (1 + slip), i
            qty = cash / (entry_price * (1 + fee))
            cash = 0.0
            stop = entry_price * (1 - sl) if sl else -np.inf
            target = entry_price * (1 + tp) if tp else np.inf
        # 2. the range, after the open: stops of the position held now (the stop-loss first)
        if qty > 0:
            hit = stop if low[i] <= stop else target if h[i] >= target else None
            if hit is not None:
                if entry_i == i:
                    out.entry_bar_stops.append(bars.index[i])
                sell(i, hit)
    if qty > 0:
        out.trades.append((bars.index[entry_i], entry_price, qty, pd.NaT, np.nan))
    return out


CASES = [
    ("LTCUSDT", 5, 20, 0.0, 0.05),  # the audit's example
    ("LTCUSDT", 5, 20, 0.05, 0.10),
    ("BTCUSDT", 10, 30, 0.05, 0.0),  # 49 trades, 8 touching the stop on their entry bar
    ("XRPUSDT", 5, 20, 0.08, 0.15),
]


@pytest.mark.parametrize(("coin", "fast", "slow", "sl", "tp"), CASES)
def test_backtest_and_replay_book_every_exit_as_the_plain_loop(coin, fast, slow, sl, tp) -> None:
    symbol, bars = daily(coin)
    loop = plain_loop(bars, fast, slow, sl, tp)
    # the data holds the cases this is about, or the test would prove nothing
    assert loop.exit_over_stop and loop.entry_bar_stops
    params = {"fast": fast, "slow": slow, "sl_stop": sl, "tp_stop": tp}
    strategy = load_strategy("sma_cross", params)
    bt = run(strategy, {symbol: bars}, COSTS).trades
    expected = pd.DataFrame(
        loop.trades, columns=["entry_time", "entry_price", "size", "exit_time", "exit_price"]
    )
    assert len(bt) == len(expected)
    assert list(bt["status"]) == ["Open" if pd.isna(t) else "Closed" for t in expected.exit_time]
    closed = bt["status"] == "Closed"  # vectorbt values an open trade at the last close
    assert list(bt["entry_time"].astype(str)) == list(expected["entry_time"].astype(str))
    exit_times = bt.loc[closed, "exit_time"].astype(str)
    assert list(exit_times) == list(expected.loc[closed.to_numpy(), "exit_time"].astype(str))
    for col in ("entry_price", "size"):
        np.testing.assert_allclose(bt[col], expected[col], rtol=REL, err_msg=col)
    np.testing.assert_allclose(
        bt.loc[closed, "exit_price"], expected.loc[closed.to_numpy(), "exit_price"], rtol=REL
    )
    # replay: the engine's Decimal fills, the same trades
    rp = replay(strategy, {symbol: bars}, COSTS).trades
    for col in ("entry_time", "exit_time"):
        assert list(rp[col].astype(str)) == list(bt[col].astype(str)), col
    for col in ("entry_price", "size", "exit_price", "pnl"):
        np.testing.assert_allclose(rp[col], bt[col], rtol=REL, atol=1e-9, err_msg=col)


def test_the_audits_ltc_exit_fills_at_the_open_not_at_the_target() -> None:
    symbol, bars = daily("LTCUSDT")
    strategy = load_strategy("sma_cross", {"fast": 5, "slow": 20, "tp_stop": 0.05})
    trades = run(strategy, {symbol: bars}, COSTS).trades
    (trade,) = trades[trades["exit_time"] == pd.Timestamp("2024-07-29", tz="UTC")].itertuples()
    assert bars.loc["2024-07-29", "high"].item() >= trade.entry_price * 1.05  # target reached
    assert trade.exit_price == pytest.approx(71.04 * (1 - COSTS.slippage), rel=1e-12)
