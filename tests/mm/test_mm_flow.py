"""The synthetic order flow: seeded, clustered trades, heavy-tailed sizes, a touch that
refills and moves when emptied, informed trades followed by moves, volatility as configured."""

from __future__ import annotations

import numpy as np
import pytest

from quantdesk.errors import BacktestError
from quantdesk.mm.flow import BOOK, TRADE, FlowConfig, generate_flow

SHORT = FlowConfig(hours=0.5)


@pytest.fixture(scope="module")
def flow():
    return generate_flow(SHORT, seed=11)


def test_same_seed_same_arrays_other_seed_differs(flow):
    again = generate_flow(SHORT, seed=11)
    other = generate_flow(SHORT, seed=12)
    for name in ("time_ns", "kind", "side", "price_tick", "size", "bid_tick", "ask_size"):
        assert np.array_equal(getattr(flow, name), getattr(again, name))
    assert len(other) != len(flow) or not np.array_equal(other.size, flow.size)


def test_events_are_ordered_and_the_book_one_tick_wide(flow):
    assert np.all(np.diff(flow.time_ns) >= 0)
    assert np.all(flow.ask_tick - flow.bid_tick == 1)
    assert set(np.unique(flow.kind)) == {BOOK, TRADE}


def trade_gaps(f):
    t = np.unique(f.time_ns[f.kind == TRADE])  # a walk through levels is one order
    return np.diff(t) / 1e9


def test_hawkes_trades_cluster(flow):
    gaps = trade_gaps(flow)
    poisson = trade_gaps(
        generate_flow(FlowConfig(hours=0.5, hawkes_alpha=0.0, trade_rate=2.0), seed=11)
    )
    cv = gaps.std() / gaps.mean()
    assert cv > 1.2  # overdispersed: bursts and lulls
    assert poisson.std() / poisson.mean() == pytest.approx(1.0, abs=0.08)
    assert cv > poisson.std() / poisson.mean() + 0.2


def test_sizes_are_heavy_tailed():
    f = generate_flow(FlowConfig(hours=0.5, depth=1e6), seed=11)  # no walks: sizes as drawn
    sizes = f.size[f.kind == TRADE]
    assert sizes.min() >= 0.5 - 1e-12
    # Pareto 1.6: the 99.9th percentile ~ 0.5 x 1000^(1/1.6) = 37; a normal would be ~4 sd
    assert np.quantile(sizes, 0.999) > 10 * np.median(sizes)


def test_an_emptied_level_moves_the_mid_with_the_trade(flow):
    prev_mid = np.concatenate([[flow.mid[0]], flow.mid[:-1]])
    trades = flow.kind == TRADE
    moved = trades & (flow.mid != prev_mid)
    assert moved.sum() > 10
    assert np.all(np.sign(flow.mid[moved] - prev_mid[moved]) == flow.side[moved])
    # and a trade that left size at the touch did not move it
    assert np.all(flow.mid[trades & ~moved] == prev_mid[trades & ~moved])


def test_depth_refills_faster_when_thin(flow):
    prev_bid = np.concatenate([[flow.bid_size[0]], flow.bid_size[:-1]])
    same = np.concatenate([[False], flow.bid_tick[1:] == flow.bid_tick[:-1]])
    adds = (flow.kind == BOOK) & (flow.side == 1) & same & (flow.bid_size > prev_bid)
    step = flow.bid_size[adds] - prev_bid[adds]
    thin = prev_bid[adds] < flow.config.depth / 3
    assert step[thin].mean() > step[~thin].mean() + 3


def test_informed_trades_are_followed_by_a_move_their_way():
    cfg = FlowConfig(hours=0.5, vol=0.0, depth=1e4, informed_prob=0.3, informed_ticks=2)
    f = generate_flow(cfg, seed=5)
    delay = int(cfg.informed_delay_ms * 1e6)
    for informed, check in ((True, lambda m: m > 1.0), (False, lambda m: abs(m) < 0.3)):
        pick = (f.kind == TRADE) & (f.informed == informed)
        before = f.mid[np.flatnonzero(pick)]
        after = f.mid[np.searchsorted(f.time_ns, f.time_ns[pick] + delay + 1, side="right") - 1]
        move_ticks = np.mean(f.side[pick] * (after - before)) / cfg.tick
        assert check(move_ticks), (informed, move_ticks)


def test_volatility_matches_the_parameter():
    cfg = FlowConfig(hours=4.0, vol=0.8, informed_prob=0.0, depth=1e4, book_rate=1.0)
    f = generate_flow(cfg, seed=2)
    at = np.searchsorted(f.time_ns, np.arange(0, f.time_ns[-1], 60 * 10**9), side="right") - 1
    annual = np.diff(np.log(f.mid[at])).std() * np.sqrt(525_600)
    assert annual == pytest.approx(0.8, rel=0.15)


def test_bad_config_is_refused():
    with pytest.raises(BacktestError, match="hawkes_beta"):
        generate_flow(FlowConfig(hawkes_alpha=5.0, hawkes_beta=4.0))
    with pytest.raises(BacktestError, match="informed_prob"):
        generate_flow(FlowConfig(informed_prob=1.5))


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_bars_to_flow_reads_the_index_in_ns_whatever_its_unit(unit):
    import pandas as pd

    from quantdesk.mm.flow import bars_to_flow

    index = pd.date_range("2024-01-01", periods=3, freq="1min", unit=unit, tz="UTC")
    bars = pd.DataFrame(
        {"open": [100, 101, 102.0], "high": [101, 102, 103.0], "low": [99, 100, 101.0]},
        index=index,
    )
    bars["close"] = [101, 102, 102.5]
    flow = bars_to_flow(bars, 0.01)
    assert flow.config.start_ns == pd.Timestamp("2024-01-01", tz="UTC").value
    assert flow.time_ns[4] == 60 * 10**9 and flow.time_ns[-1] == 165 * 10**9
