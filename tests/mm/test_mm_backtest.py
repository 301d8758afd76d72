"""The mm backtest: exact PnL split, adverse selection from informed flow, inventory cap,
risk stops, latency, hooks, determinism and bar data refused."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quantdesk.errors import BacktestError
from quantdesk.mm.backtest import OPTIMISTIC_BARS, MMConfig, run_mm
from quantdesk.mm.fills import VENUES, Latency, ProbQueue, RiskAverse, Venue
from quantdesk.mm.flow import FlowConfig, generate_flow
from quantdesk.mm.quotes import BID, Quote, QuoteLimits
from quantdesk.strategy import QuoteStrategy, load_strategy, repo_strategies_dir
from tests.mm.helpers import book, make_flow, sell

DIR = repo_strategies_dir()


@pytest.fixture(scope="module")
def flow():
    return generate_flow(FlowConfig(hours=0.5), seed=7)


@pytest.fixture(scope="module")
def basic_run(flow):
    return run_mm(load_strategy("basic_mm", {}, DIR), flow)


def test_pnl_split_sums_to_total_exactly(basic_run):
    s = basic_run.stats
    assert s["maker_fills"] > 100
    assert s["total_pnl"] == pytest.approx(
        s["spread_pnl"] + s["inventory_pnl"] + s["fees_pnl"], abs=1e-9
    )
    # the total, independently: the equity path's last point, and cash + inventory x mid
    assert basic_run.paths["total"].iloc[-1] == pytest.approx(s["total_pnl"], abs=1e-6)
    f = basic_run.fills
    cash = -(f["side"] * f["qty"] * f["price"]).sum() - f["fee"].sum()
    inv = (f["side"] * f["qty"]).sum()
    assert cash + inv * basic_run.flow.mid[-1] == pytest.approx(s["total_pnl"], abs=1e-9)
    # each part is real: rebates are income, the spread captured is positive at the touch
    assert s["fees_pnl"] > 0 and s["spread_pnl"] > 0 and s["inventory_pnl"] != 0


def test_stats_are_present_and_sane(basic_run):
    s = basic_run.stats
    for key in (
        "fill_ratio",
        "cancel_ratio",
        "quote_uptime",
        "sharpe",
        "max_drawdown",
        "daily_return",
    ):
        assert math.isfinite(s[key]), key
    assert 0 < s["fill_ratio"] <= 1 and 0.5 < s["quote_uptime"] <= 1
    assert s["adverse_1000ms_bps"] < 0  # vol jumps through the quote and informed flow


def informed_run(prob):
    cfg = FlowConfig(hours=0.5, vol=0.0, depth=60.0, informed_prob=prob, informed_ticks=2)
    mm = MMConfig(queue=ProbQueue(), limits=QuoteLimits(timeout_ns=10**15))
    return run_mm(load_strategy("basic_mm", {}, DIR), generate_flow(cfg, seed=3), mm)


def test_adverse_selection_comes_from_informed_flow():
    # the only mid mover here is informed flow (no volatility, a deep touch that never empties)
    on, off = informed_run(0.5).stats, informed_run(0.0).stats
    assert on["maker_fills"] > 50 and off["maker_fills"] >= 3
    for h in (100, 1000, 10000):
        assert on[f"adverse_{h}ms_bps"] < -0.5
        assert abs(off[f"adverse_{h}ms_bps"]) < 0.05


def test_inventory_never_exceeds_the_max(flow):
    strategy = load_strategy(
        "basic_mm", {"size": 2.0, "levels": 3, "price_skew": 0.0, "size_skew": 0.0}, DIR
    )
    result = run_mm(strategy, flow, MMConfig(max_inventory=3.0))
    inv = np.cumsum(result.fills["side"] * result.fills["qty"])
    assert np.abs(inv).max() <= 3.0 + 1e-9
    assert result.stats["max_inventory"] >= 2.0  # it was pushed to the cap
    assert result.stats["clipped"] > 0


def test_drawdown_stop_flattens_and_stops_quoting(flow):
    result = run_mm(load_strategy("basic_mm", {}, DIR), flow, MMConfig(max_drawdown=1e-6))
    assert "max drawdown" in result.stop_reason
    f = result.fills
    taker = f[~f["maker"]]
    assert 1 <= len(taker) <= 3  # the flatten, again if a resting order filled on the way out
    assert result.stats["final_inventory"] == pytest.approx(0.0, abs=1e-9)
    # no maker fill later than the cancels' travel time (feed + entry latency) after the stop
    stop_t = taker["time_ns"].iloc[0]
    assert (f["maker"] & (f["time_ns"] > stop_t + 15_000_000)).sum() == 0
    assert result.stats["fills"] < 50  # it stopped early on a 0.5 h run


def test_daily_loss_limit_stops_for_the_day(flow):
    result = run_mm(
        load_strategy("basic_mm", {}, DIR), flow, MMConfig(daily_loss_limit=1e-6, max_drawdown=1.0)
    )
    assert "daily loss limit" in result.stop_reason


class Fixed(QuoteStrategy):
    """Bids 1 at 100.00 on every call; counts its hooks."""

    def __init__(self):
        super().__init__()
        self.calls = {"book": 0, "timer": 0, "trade": 0}

    def on_book(self, book, ctx):
        self.calls["book"] += 1
        return [Quote(BID, 1.00, 1.0)]

    def on_timer(self, now, ctx):
        self.calls["timer"] += 1
        return [Quote(BID, 1.00, 1.0)]


class Watcher(Fixed):
    def on_trade(self, trade, ctx):
        self.calls["trade"] += 1
        return []


def latency_flow():
    # the touch moves at 1 ms (the strategy quotes), prints through 1.00 at 10 ms and 40 ms
    return make_flow(
        [
            book(0, 101, 102, 5, 5),
            book(1, 100, 101, 5, 5),
            sell(10, 99, 20, 100, 101, 5, 5),
            book(20, 100, 101, 6, 5),
            sell(40, 99, 20, 100, 101, 5, 5),
            book(60, 100, 101, 5, 5),
        ]
    )


def test_latency_delays_the_first_fill():
    fast = run_mm(
        Fixed(), latency_flow(), MMConfig(latency=Latency(0.0, 2.0), venue=VENUES["zero"])
    )
    slow = run_mm(
        Fixed(), latency_flow(), MMConfig(latency=Latency(5.0, 10.0), venue=VENUES["zero"])
    )
    assert fast.fills["time_ns"].iloc[0] == 10_000_000
    assert slow.fills["time_ns"].iloc[0] == 40_000_000


def test_hooks_timer_and_trades_only_when_overridden(flow):
    cfg = FlowConfig(hours=60 / 3600)
    short = generate_flow(cfg, seed=1)
    fixed, watcher = Fixed(), Watcher()
    run_mm(fixed, short, MMConfig(timer_ms=1000))
    run_mm(watcher, short, MMConfig(timer_ms=1000))
    assert 58 <= fixed.calls["timer"] <= 60 and fixed.calls["trade"] == 0
    trades = int((short.kind == 1).sum())
    assert watcher.calls["trade"] >= trades * 0.9


@pytest.mark.parametrize(
    ("venue", "sign"), [(Venue("r", -0.0001, 0.0004), 1), (Venue("f", 0.0002, 0.0005), -1)]
)
def test_rebate_is_income_and_a_fee_a_cost(flow, venue, sign):
    s = run_mm(load_strategy("basic_mm", {}, DIR), flow, MMConfig(venue=venue)).stats
    assert np.sign(s["fees_pnl"]) == sign


def test_same_seed_same_result(flow, basic_run):
    again = run_mm(load_strategy("basic_mm", {}, DIR), generate_flow(FlowConfig(hours=0.5), seed=7))
    pd.testing.assert_frame_equal(again.fills, basic_run.fills)
    keep = {k: v for k, v in basic_run.stats.items() if k not in ("wall_s", "events_per_s")}
    assert {k: again.stats[k] for k in keep} == pytest.approx(keep, nan_ok=True)


def bars():
    index = pd.date_range("2024-01-01", periods=60, freq="1min", tz="UTC")
    close = 100 + np.cumsum(np.random.default_rng(1).normal(0, 0.05, 60))
    return pd.DataFrame(
        {"open": close, "high": close + 0.05, "low": close - 0.05, "close": close, "volume": 1.0},
        index=index,
    )


def test_bar_data_is_refused_unless_optimistic_is_named():
    with pytest.raises(
        BacktestError, match="OHLCV bars show neither queue position nor the spread"
    ):
        run_mm(load_strategy("basic_mm", {}, DIR), bars())
    result = run_mm(
        load_strategy("basic_mm", {}, DIR), bars(), MMConfig(fill_model=OPTIMISTIC_BARS), tick=0.01
    )
    assert result.stats["maker_fills"] > 0
    with pytest.raises(BacktestError, match="not list"):
        run_mm(load_strategy("basic_mm", {}, DIR), [1, 2, 3])


def test_requote_throttle_spaces_the_book_calls(flow):
    every = run_mm(load_strategy("basic_mm", {}, DIR), flow, MMConfig())
    throttled = run_mm(load_strategy("basic_mm", {}, DIR), flow, MMConfig(requote_ms=250))
    # timer calls (1,800 in 0.5 h) and fill calls stay; touch calls within 250 ms wait
    assert throttled.stats["strategy_calls"] < every.stats["strategy_calls"] - 300
    t = throttled.stats
    parts = t["spread_pnl"] + t["inventory_pnl"] + t["fees_pnl"]
    assert t["total_pnl"] == pytest.approx(parts, abs=1e-9)


def test_prob_queue_fills_more_than_risk_averse():
    # no volatility, orders kept (no timeout): fills come from the queue ahead being consumed,
    # where the cancel model matters (with volatility most fills are the touch moving through
    # the quote, the same under both models)
    flow = generate_flow(FlowConfig(hours=0.5, vol=0.0, depth=60.0, informed_prob=0.2), seed=3)
    keep = QuoteLimits(timeout_ns=10**15)
    fills = {}
    for queue in (RiskAverse(), ProbQueue(power=2.0)):
        config = MMConfig(queue=queue, limits=keep)
        fills[queue.code] = run_mm(load_strategy("basic_mm", {}, DIR), flow, config).stats
    assert fills[1]["maker_fills"] > fills[0]["maker_fills"] + 10


class FillCounter(Fixed):
    def __init__(self):
        super().__init__()
        self.fills = []

    def on_fill(self, fill, ctx):
        self.fills.append((fill.side, fill.qty, ctx.inventory))
        return []


def test_on_fill_sees_each_fill_after_the_inventory_moved():
    strategy = FillCounter()
    run_mm(strategy, latency_flow(), MMConfig(latency=Latency(0.0, 2.0), venue=VENUES["zero"]))
    assert strategy.fills == [(BID, 1.0, 1.0), (BID, 1.0, 2.0)]  # requoted after the first
