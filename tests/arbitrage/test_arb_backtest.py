"""The pair backtest: liquidation buffer, combined SL/TP, funding by hand, the PnL split, and the
real BTC sample end to end in both directions."""

from __future__ import annotations

import pandas as pd
import pytest

from quantdesk.arbitrage.backtest import run_pair
from quantdesk.arbitrage.execution import FillModel, scripted
from quantdesk.arbitrage.market import sample_market
from quantdesk.arbitrage.risk import liquidation_price, stop_price
from quantdesk.strategy import load_strategy, repo_strategies_dir
from tests.arbitrage.helpers import T0, hours, market

# every test trade here: open on the first hour, never on the spread, no costs
EAGER = {"confirm": 1, "entry_apr": 0.0, "exit_apr": -10.0, "slippage_bps": 0.0}


def arb(**params):
    return load_strategy("funding_arb", {**EAGER, **params}, repo_strategies_dir())


def long_a_market(n: int, price_a, price_b=None, rate_b: float = 1e-5):
    """Venue A (8h) pays -0.0008 at T0, so long A / short B opens on the first hour."""
    a = pd.Series(
        [-0.0008, -0.0004, 0.0001, -0.0002][: (n - 1) // 8 + 1],
        index=T0 + pd.to_timedelta([0, 8, 16, 24][: (n - 1) // 8 + 1], "h"),
    )
    b = pd.Series(rate_b, index=hours(n))
    return market(a, b, price_a, price_b)


def test_liquidation_price_and_the_buffer_inside_it():
    assert liquidation_price(100.0, 1, 3.0, 0.005) == pytest.approx(100 * (1 - 1 / 3 + 0.005))
    assert liquidation_price(100.0, -1, 3.0, 0.005) == pytest.approx(100 * (1 + 1 / 3 - 0.005))
    assert stop_price(67.0, 1, 0.05) == pytest.approx(70.35)
    assert stop_price(133.0, -1, 0.05) == pytest.approx(126.35)


def test_liquidation_buffer_closes_the_pair_before_the_liquidation_price():
    # long A at 100, leverage 3, maintenance 0.5%: liquidation 67.17, stop 5% inside: 70.53
    path = [100.0, 90.0, 80.0, 71.0, 70.5, 69.0, 69.0, 69.0, 69.0]
    m = long_a_market(len(path), path)
    r = run_pair(arb(leverage=3.0, liq_buffer=0.05), m, fills=scripted({}))
    first = r.trades[0]
    assert first.reason == "liquidation_buffer"
    assert first.closed == T0 + pd.Timedelta(hours=4)  # at 70.5, above liquidation at 67.17
    assert liquidation_price(100.0, 1, 3.0, 0.005) < 70.5
    # without the buffer the same path does not close at 70.5
    r0 = run_pair(arb(leverage=3.0, liq_buffer=0.0), m, fills=scripted({}))
    assert r0.trades[0].reason == "end_of_data"


@pytest.mark.parametrize(
    ("b_path", "reason", "hour"),
    [
        ([100.0, 100.0, 105.0, 110.0, 114.0, 114.0], "stop_loss", 4),  # short B loses 21% of margin
        ([100.0, 100.0, 95.0, 90.0, 86.0, 86.0], "take_profit", 4),  # short B gains 21%
    ],
)
def test_combined_stop_loss_and_take_profit_on_the_pair(b_path, reason, hour):
    # qty = 0.5 x 10000 / 2 x 3 / 100 = 75; margin 5000; a 14-point move = 1050 = 21%
    b_path = b_path + b_path[-1:] * 3  # 9 hours: A's settlements at 0 and 8 bound the clock
    m = long_a_market(len(b_path), 100.0, b_path)
    r = run_pair(arb(stop_loss=0.2, take_profit=0.2), m, fills=scripted({}))
    assert r.trades[0].reason == reason
    assert r.trades[0].closed == T0 + pd.Timedelta(hours=hour)
    assert r.trades[0].qty == pytest.approx(75.0)


def test_funding_on_three_settlements_equals_the_hand_computed_number():
    # long A 75 at 100 from T0 (A's settlement at T0 meets no position); A settles at 8, 16, 24:
    # -75 x 100 x (-0.0004 + 0.0001 - 0.0002) = 3.75; short B receives 75 x 100 x 1e-5 per hour
    # for the 24 hourly settlements 1..24 = 1.8
    m = long_a_market(25, 100.0)
    r = run_pair(arb(), m, fills=scripted({}))
    assert len(r.trades) == 1 and r.trades[0].reason == "end_of_data"
    assert r.stats["funding_pnl_a"] == pytest.approx(3.75, abs=1e-9)
    assert r.stats["funding_pnl_b"] == pytest.approx(1.8, abs=1e-9)
    assert r.stats["price_pnl"] == pytest.approx(0.0, abs=1e-9)
    assert r.stats["total_pnl"] == pytest.approx(5.55, abs=1e-9)


@pytest.fixture(scope="module")
def btc():
    return sample_market("BTC/USDT:USDT", seed=7)


@pytest.mark.parametrize(("direction", "sign"), [("positive", 1), ("negative", -1)])
def test_real_btc_sample_end_to_end_in_each_direction(btc, direction, sign):
    r = run_pair(arb_default(direction=direction), btc, fills=FillModel(0.05, 0.1), seed=7)
    s = r.stats
    assert s["trades"] > 5
    assert {t.direction for t in r.trades} == {sign}
    assert r.book.qty == {"a": 0.0, "b": 0.0}  # every pair closed, nothing naked
    # the split sums to the total, and to the equity the cash ledger gives
    split = s["price_pnl"] + s["funding_pnl"] - s["fees"] - s["slippage"]
    assert split == pytest.approx(s["total_pnl"], abs=1e-9)
    assert r.book.equity() - r.capital == pytest.approx(s["total_pnl"], abs=1e-9)
    assert sum(t.total for t in r.trades) == pytest.approx(s["total_pnl"], abs=1e-9)
    # hedged: the legs' price PnL cancels to a few percent of one leg's
    assert abs(s["price_pnl"]) < 0.05 * abs(s["price_pnl_a"])
    assert s["failed_legs"] > 0 and s["legs_repaired"] > 0
    assert s["fees"] > 0 and s["funding_pnl"] != 0


def arb_default(**params):
    return load_strategy("funding_arb", params, repo_strategies_dir())


def test_pnl_split_per_part_sums_to_total_on_every_hour(btc):
    r = run_pair(arb_default(), btc, fills=FillModel(0.1, 0.2), seed=1)
    p = r.pnl
    split = (
        p["price_a"] + p["price_b"] + p["funding_a"] + p["funding_b"] - p["fees"] - p["slippage"]
    )
    assert (split - (r.equity - r.capital)).abs().max() < 1e-9
    assert len(r.events) > 0


def test_same_seed_same_result(btc):
    one = run_pair(arb_default(), btc, fills=FillModel(0.05, 0.1), seed=3)
    two = run_pair(arb_default(), btc, fills=FillModel(0.05, 0.1), seed=3)
    assert one.stats == two.stats and one.events == two.events


def test_timed_exit_closes_at_max_hold():
    m = long_a_market(9, 100.0)
    r = run_pair(arb(max_hold_hours=3), m, fills=scripted({}))
    assert r.trades[0].reason == "max_hold"
    assert r.trades[0].closed - r.trades[0].opened == pd.Timedelta(hours=3)


def test_spread_exit_when_the_held_spread_turns():
    # at hour 8 A settles +0.0008: long A / short B now pays 0.0001 - 1e-5 per hour
    a = pd.Series([-0.0008, 0.0008], index=T0 + pd.to_timedelta([0, 8], "h"))
    m = market(a, pd.Series(1e-5, index=hours(9)))
    r = run_pair(arb(exit_apr=0.0), m, fills=scripted({}))
    assert r.trades[0].reason == "spread_exit"
    assert r.trades[0].closed == T0 + pd.Timedelta(hours=8)


def test_an_open_where_no_leg_fills_is_logged_and_holds_nothing():
    m = long_a_market(9, 100.0)
    fails = scripted({"a": [0.0] * 200, "b": [0.0] * 200})
    r = run_pair(arb(), m, fills=fails)
    assert r.trades == [] and r.book.qty == {"a": 0.0, "b": 0.0}
    assert "open_failed" in {e.kind for e in r.events}


@pytest.mark.parametrize(("low", "beyond"), [(70.0, False), (66.0, True)])
def test_the_days_low_triggers_the_buffer_even_when_closes_stay_above(low, beyond):
    m = long_a_market(9, 100.0)
    m.frame["low_a"] = float("nan")
    m.frame.loc[T0 + pd.Timedelta(hours=4), "low_a"] = low  # stop 70.53, liquidation 67.17
    r = run_pair(arb(leverage=3.0, liq_buffer=0.05), m, fills=scripted({}))
    assert r.trades[0].reason == "liquidation_buffer"
    assert r.trades[0].closed == T0 + pd.Timedelta(hours=4)
    assert ("beyond_liquidation" in {e.kind for e in r.events}) is beyond


def test_real_sample_carries_the_days_low_and_high_at_its_end():
    m = sample_market("BTC/USDT:USDT", seed=7)
    day_end = pd.Timestamp("2020-01-03", tz="UTC")  # the 2020-01-02 bar: low 6922.00
    assert m.frame.loc[day_end, "low_a"] == pytest.approx(6922.0)
    assert m.frame.loc[day_end, "high_a"] == pytest.approx(7209.59)
    assert m.frame["low_a"].notna().sum() == pytest.approx(len(m.frame) / 24, abs=2)


def test_results_expose_the_event_log_and_trades_as_tables():
    m = long_a_market(9, 100.0)
    r = run_pair(arb(max_hold_hours=3), m, fills=scripted({"b": [0.0, 0.0, 0.0]}))
    events = r.events_frame()
    assert list(events.columns) == ["time", "kind", "leg", "qty", "detail"]
    assert events["kind"].tolist()[:4] == ["leg_failed", "leg_failed", "leg_failed", "unwound"]
    trades = r.trades_frame()
    assert trades.loc[0, "reason"] == "max_hold"
    assert trades["total"].sum() == pytest.approx(r.stats["total_pnl"], abs=1e-9)


def test_report_figure_shows_spread_entries_exits_and_the_pnl_split(btc):
    from quantdesk.arbitrage.report import figure

    r = run_pair(arb_default(), btc.__class__(btc.frame.loc["2024"], btc.venue_a, btc.venue_b, "X"))
    names = [trace.name for trace in figure(r).data]
    assert names[:3] == ["spread APR %", "open", "close"]
    assert {"price (A + B)", "funding binance", "funding synthetic", "total"} <= set(names)
    opens = figure(r).data[1]
    assert len(opens.x) == len(r.trades) > 0
