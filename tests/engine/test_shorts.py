"""Shorts in the engine: replay of short entries/exits, reversals and short-side stops gives
the vectorbt backtest's trades and final equity (from_signals, direction both); spot markets
refuse short signals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest import Costs, run
from quantdesk.backtest.validation import parity_check
from quantdesk.data.csv_import import ImportOptions, parse_csv
from quantdesk.data.store import OHLCV_COLUMNS, normalize
from quantdesk.data.synthetic import SynthSpec, generate_market
from quantdesk.model import Side
from quantdesk.strategy import Choice, Float, Int, Signals, SignalStrategy, StrategyError
from quantdesk.system.replay import replay
from tests.conftest import SAMPLE_DATA, make_bars
from tests.engine.parity import assert_same_trades

REL = 1e-9
COSTS = Costs(fee=0.001, slippage=0.0005)


class ShortCross(SignalStrategy):
    """SMA cross on both sides: "reverse" flips long/short on each cross, "short" only shorts
    (entry on a cross below, exit on a cross above)."""

    params = {
        "fast": Int(2, 100, 5),
        "slow": Int(3, 300, 20),
        "mode": Choice(("reverse", "short"), "reverse"),
        "sl_stop": Float(0.0, 0.5, 0.0),
        "tp_stop": Float(0.0, 2.0, 0.0),
    }
    timeframe = "1h"

    @property
    def warmup(self) -> int:
        """The slow mean needs `slow` bars, plus one to see a cross."""
        return int(self.slow) + 1

    def signals(self, bars: pd.DataFrame) -> Signals:
        """Crosses of the fast mean of the close over the slow one."""
        close = bars["close"]
        above = close.rolling(self.fast).mean() > close.rolling(self.slow).mean()
        up = above & ~above.shift(1, fill_value=False)
        down = ~above & above.shift(1, fill_value=False)
        none = pd.DataFrame(False, index=close.index, columns=close.columns)
        reverse = self.mode == "reverse"
        return Signals(
            entries=up if reverse else none,
            exits=none,
            short_entries=down,
            short_exits=none if reverse else up,
            sl_stop=self.sl_stop,
            tp_stop=self.tp_stop,
        )


@pytest.fixture(scope="module")
def perps() -> dict[str, pd.DataFrame]:
    """Two synthetic hourly markets traded as USD-M perpetuals, 600 bars each."""
    market = generate_market(SynthSpec(seed=11, days=25))
    return {f"{s}:USDT": market.bars(s, "1h").iloc[:600] for s in ("BTC/USDT", "ETH/USDT")}


@pytest.fixture(scope="module")
def btc_daily() -> dict[str, pd.DataFrame]:
    """Real Binance USD-M daily BTC bars (~2,400) shipped as a package sample."""
    parsed = parse_csv(SAMPLE_DATA / "BTCUSDT-1d.csv", ImportOptions(market="usdm"))
    return {parsed.key.symbol: normalize(parsed.frame, OHLCV_COLUMNS)}


def assert_parity(strategy: SignalStrategy, data: dict, costs: Costs) -> pd.DataFrame:
    """Backtest and replay; compare trade by trade, order by order and the final equity."""
    bt = run(strategy, data, costs)
    rp = replay(strategy, data, costs)
    a, b = bt.trades, rp.trades
    assert_same_trades(a, b, REL)
    assert float(rp.final_equity) == pytest.approx(float(bt.equity.iloc[-1].sum()), rel=REL)
    assert parity_check(strategy, data, costs, replay_fn=replay).passed
    return a


@pytest.mark.parametrize("symbol", ["BTC/USDT:USDT", "ETH/USDT:USDT"])
def test_reversals_match_the_backtest(symbol: str, perps: dict) -> None:
    """Each cross reverses the position in one order in vectorbt, a close and an entry in the
    engine: the same trades, long and short, and the same equity."""
    trades = assert_parity(ShortCross(), {symbol: perps[symbol]}, COSTS)
    assert set(trades["direction"]) == {"Long", "Short"}
    # back to back: each trade opens on the bar the previous one closed
    closed = trades[trades["status"] == "Closed"]
    assert list(closed["exit_time"]) == list(trades["entry_time"].iloc[1 : len(closed) + 1])


def test_short_entries_and_exits_match_the_backtest(perps: dict) -> None:
    trades = assert_parity(ShortCross(mode="short"), perps, COSTS)
    assert set(trades["direction"]) == {"Short"}
    assert set(trades["column"]) == set(perps)


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "short", "sl_stop": 0.01, "tp_stop": 0.015},
        {"mode": "reverse", "sl_stop": 0.008},
        {"mode": "reverse", "sl_stop": 0.01, "tp_stop": 0.01},
    ],
)
def test_short_side_stops_match_the_backtest(params: dict, perps: dict) -> None:
    """A short's stop-loss sits above its entry, its take-profit below; both fire inside
    bars (the entry bar included) as vectorbt's do."""
    symbol = "BTC/USDT:USDT"
    strategy = ShortCross(**params)
    trades = assert_parity(strategy, {symbol: perps[symbol]}, COSTS)
    rp = replay(strategy, {symbol: perps[symbol]}, COSTS)
    shorts = trades[trades["direction"] == "Short"]
    # some shorts ended by their stop (the exit price is entry x (1 + sl) plus slippage)
    stop = shorts["entry_price"] * (1 + params["sl_stop"]) * (1 + COSTS.slippage)
    assert np.isclose(shorts["exit_price"], stop, rtol=1e-12).any()
    assert any(f.side is Side.BUY for f in rp.fills)


def test_reversals_on_real_daily_bars(btc_daily: dict) -> None:
    """Six years of BTC perpetual days, long and short by turns."""
    trades = assert_parity(ShortCross(fast=10, slow=30), btc_daily, COSTS)
    assert len(trades) > 50


def test_short_signals_on_a_spot_market_are_refused(perps: dict) -> None:
    spot = {"BTC/USDT": perps["BTC/USDT:USDT"]}
    with pytest.raises(StrategyError, match=r"BTC/USDT, a spot market: shorts need a perpetual"):
        replay(ShortCross(mode="short"), spot, COSTS)


class Scripted(SignalStrategy):
    """Signals on given bars' closes (test fixture): short at `short_at`, long at `long_at`."""

    params = {
        "short_at": Int(0, 10_000, 10),
        "long_at": Int(0, 10_000, 20),
        "sl_stop": Float(0.0, 0.5, 0.0),
    }

    def signals(self, bars: pd.DataFrame) -> Signals:
        """One short entry, one long entry (a reversal when the short is still open)."""
        close = bars["close"]
        none = pd.DataFrame(False, index=close.index, columns=close.columns)
        short_entries, entries = none.copy(), none.copy()
        short_entries.iloc[self.short_at] = True
        entries.iloc[self.long_at] = True
        return Signals(
            entries=entries, exits=none, short_entries=short_entries, short_exits=none,
            sl_stop=self.sl_stop,
        )  # fmt: skip


def test_a_stop_gapped_through_at_the_open_takes_the_reversal_s_place() -> None:
    """vectorbt checks stops before signals: when the open of the reversal's bar is beyond the
    short's stop, the stop closes the short there and the long entry of that bar is dropped."""
    bars = make_bars(40, seed=3)
    symbol = "BTC/USDT:USDT"
    entry_open = bars["open"].iloc[11]
    gap = entry_open * 1.05  # far beyond a 2% stop above the short's entry
    bars.iloc[21, bars.columns.get_loc("open")] = gap
    bars.iloc[21, bars.columns.get_loc("high")] = max(gap, bars["high"].iloc[21])
    strategy = Scripted(sl_stop=0.02)
    trades = assert_parity(strategy, {symbol: bars}, COSTS)
    assert list(trades["direction"]) == ["Short"]  # no long: the reversal went with the stop
    assert trades["exit_price"].iloc[0] == pytest.approx(gap * (1 + COSTS.slippage), rel=1e-12)
    # without the gap the same signals reverse into a long at that open
    plain = assert_parity(Scripted(sl_stop=0.5), {symbol: make_bars(40, seed=3)}, COSTS)
    assert list(plain["direction"]) == ["Short", "Long"]
