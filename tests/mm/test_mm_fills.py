"""The queue-position fill kernel on hand-made flows: queue ahead, cancels under each queue
model, trade-through, crossing, latency, post-only rejects and the fee sign."""

from __future__ import annotations

import numpy as np
import pytest

from quantdesk.mm import fills as fm
from tests.mm.helpers import TICK, book, make_flow, sell


def run_kernel(flow, orders_spec, qcode=0, qpower=2.0, deep=50.0, fee=0.0):
    """Resting orders (side, ptick, qty, t_active_ms) run through flow; the fill rows."""
    orders = fm.new_orders(8)
    for k, (side, ptick, qty, t_active_ms) in enumerate(orders_spec):
        orders[k, fm.O_LIVE] = fm.PENDING
        orders[k, fm.O_SIDE] = side
        orders[k, fm.O_PTICK] = ptick
        orders[k, fm.O_QTY] = qty
        orders[k, fm.O_T_ACTIVE] = t_active_ms * 1e6
        orders[k, fm.O_ID] = k + 1
    state = np.zeros(fm.S_SIZE)
    state[fm.S_BID], state[fm.S_ASK] = flow.bid_tick[0], flow.ask_tick[0]
    state[fm.S_BSZ], state[fm.S_ASZ] = flow.bid_size[0], flow.ask_size[0]
    fills = np.zeros((1024, fm.F_COLUMNS))
    nfill, i = 0, 1
    arrays = (flow.time_ns, flow.kind, flow.side, flow.price_tick, flow.size)
    arrays += (flow.bid_tick, flow.ask_tick, flow.bid_size, flow.ask_size)
    while i < len(flow):
        i, nfill, _ = fm.advance(
            i,
            *arrays,
            orders,
            state,
            fills,
            nfill,
            fm.NEVER,
            False,
            False,
            0.0,
            qcode,
            qpower,
            deep,
            fee,
            TICK,
        )
    return fills[:nfill], orders, state


def test_an_order_behind_5_fills_only_after_5_traded_at_its_price():
    flow = make_flow(
        [
            book(0, 100, 101, 5, 10),  # 5 ahead when the bid joins
            book(1, 100, 101, 15, 10),  # 10 more join behind it
            sell(2, 100, 3, 100, 101, 12, 10),  # 3 of the 5 ahead
            sell(3, 100, 1, 100, 101, 11, 10),  # 4 of 5
            sell(4, 100, 2, 100, 101, 9, 10),  # the 5th, then 1 of ours
            sell(5, 100, 4, 100, 101, 5, 10),  # the rest of ours (qty 2)
        ]
    )
    rows, _, _ = run_kernel(flow, [(1, 100, 2.0, 0.5)])
    assert rows[:, fm.F_QTY].tolist() == [1.0, 1.0]
    assert rows[:, fm.F_TIME].tolist() == [4e6, 5e6]
    assert rows[0, fm.F_PRICE] == pytest.approx(1.00) and rows[0, fm.F_MAKER] == 1.0


def test_a_trade_through_the_price_fills_the_whole_order():
    # our bid at 99 sits deep (50 ahead); a print at 98 went through it (the touch left as
    # it was, so only the trade-through rule can fill it)
    flow = make_flow([book(0, 100, 101, 5, 10), sell(2, 98, 1, 100, 101, 5, 10)])
    rows, _, _ = run_kernel(flow, [(1, 99, 4.0, 0.5)], deep=50.0)
    assert rows[:, fm.F_QTY].tolist() == [4.0]
    at_price, _, _ = run_kernel(
        make_flow([book(0, 100, 101, 5, 10), sell(2, 99, 1, 100, 101, 5, 10)]), [(1, 99, 4.0, 0.5)]
    )
    assert len(at_price) == 0  # at its price, 1 traded against 50 ahead: nothing


def test_the_opposite_touch_reaching_the_order_fills_it():
    flow = make_flow([book(0, 100, 101, 5, 10), book(1, 99, 100, 5, 2)])  # ask now at our bid
    rows, _, _ = run_kernel(flow, [(1, 100, 3.0, 0.5)])
    assert rows[:, fm.F_QTY].tolist() == [3.0]
    assert rows[0, fm.F_MID] == pytest.approx(1.005)  # the mid before the event


def test_cancel_advance_numbers():
    # 5 ahead, 5 behind, 4 cancelled: P(behind) = 25 / 50 -> front 5 - 0.5 * 4 = 3
    assert fm.cancel_advance(5.0, 5.0, 4.0, 1, 2.0) == pytest.approx(3.0)
    assert fm.cancel_advance(5.0, 5.0, 4.0, 0, 2.0) == 5.0  # risk averse: never
    # nobody behind: every cancel was ahead
    assert fm.cancel_advance(5.0, 0.0, 4.0, 1, 2.0) == pytest.approx(1.0)


def cancels_then_trades():
    return make_flow(
        [
            book(0, 100, 101, 5, 10),  # 5 ahead
            book(1, 100, 101, 10, 10),  # 5 behind
            book(2, 100, 101, 6, 10),  # 4 cancelled somewhere in the level
            *[sell(3 + j, 100, 1, 100, 101, 5 - j, 10) for j in range(5)],
        ]
    )


def test_prob_queue_fills_before_risk_averse():
    averse, _, _ = run_kernel(cancels_then_trades(), [(1, 100, 1.0, 0.5)], qcode=0)
    prob, _, _ = run_kernel(cancels_then_trades(), [(1, 100, 1.0, 0.5)], qcode=1, qpower=2.0)
    # risk averse: queue stays 5 (min with the 6 shown), fills after 5 trades of 1 -> never
    # here (only 5 trade, exactly consuming the queue); prob: 3 ahead, fills on the 4th trade
    assert len(averse) == 0
    assert prob[:, fm.F_TIME].tolist() == [6e6]


def test_latency_an_order_is_not_live_before_it_arrives():
    # two prints through our bid at 100 (the touch kept): at 10 ms and 30 ms
    events = [book(0, 100, 101, 5, 10), sell(10, 99, 20, 100, 101, 5, 10)]
    events += [book(20, 100, 101, 5, 10), sell(30, 99, 20, 100, 101, 5, 10)]
    early, _, _ = run_kernel(make_flow(events), [(1, 100, 1.0, 5)])
    late, _, _ = run_kernel(make_flow(events), [(1, 100, 1.0, 15)])
    assert early[:, fm.F_TIME].tolist() == [10e6]
    assert late[:, fm.F_TIME].tolist() == [30e6]
    assert fm.Latency(feed_ms=5, entry_ms=10).action_ns == 15_000_000


def test_a_crossing_order_is_rejected_post_only():
    rows, orders, state = run_kernel(
        make_flow([book(0, 100, 101, 5, 10), book(1, 100, 101, 6, 10)]), [(1, 101, 1.0, 0.5)]
    )
    assert len(rows) == 0 and state[fm.S_REJECTS] == 1 and orders[0, fm.O_LIVE] == fm.FREE


def test_cancelled_order_never_fills():
    flow = make_flow(
        [book(0, 100, 101, 0, 10), book(1, 100, 101, 0, 10), sell(3, 100, 5, 100, 101, 0, 10)]
    )
    orders_spec = [(1, 100, 1.0, 0.5)]
    rows, _, _ = run_kernel(flow, orders_spec)
    assert len(rows) == 1  # nothing ahead: the trade fills it
    flow2 = make_flow(
        [
            book(0, 100, 101, 0, 10),
            book(1, 100, 101, 0, 10),
            book(2.5, 100, 101, 0, 10),
            sell(3, 100, 5, 100, 101, 0, 10),
        ]
    )
    orders = fm.new_orders(8)
    orders[0, [fm.O_LIVE, fm.O_SIDE, fm.O_PTICK, fm.O_QTY, fm.O_T_ACTIVE, fm.O_T_CANCEL]] = (
        fm.PENDING,
        1,
        100,
        1.0,
        0.5e6,
        2e6,
    )
    state = np.zeros(fm.S_SIZE)
    state[[fm.S_BID, fm.S_ASK, fm.S_BSZ, fm.S_ASZ]] = (100, 101, 0, 10)
    fills = np.zeros((1024, fm.F_COLUMNS))
    arrays = (flow2.time_ns, flow2.kind, flow2.side, flow2.price_tick, flow2.size)
    arrays += (flow2.bid_tick, flow2.ask_tick, flow2.bid_size, flow2.ask_size)
    _, nfill, _ = fm.advance(
        1, *arrays, orders, state, fills, 0, fm.NEVER, False, False, 0.0, 0, 1.0, 0.0, 0.0, TICK
    )
    assert nfill == 0


@pytest.mark.parametrize(("fee", "sign"), [(-0.0001, -1), (0.0002, 1)])
def test_fee_sign_negative_is_a_rebate(fee, sign):
    flow = make_flow([book(0, 100, 101, 0, 10), sell(2, 99, 1, 99, 100, 7, 3)])
    rows, _, _ = run_kernel(flow, [(1, 100, 2.0, 0.5)], fee=fee)
    assert np.sign(rows[0, fm.F_FEE]) == sign
    assert rows[0, fm.F_FEE] == pytest.approx(fee * 1.00 * 2.0)
