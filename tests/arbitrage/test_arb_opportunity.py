"""The opportunity net of both legs' fees and slippage."""

from __future__ import annotations

import pytest

from quantdesk.arbitrage.opportunity import cost_apr, direction_aprs, net_apr, round_trip_cost
from quantdesk.arbitrage.rates import Venue

A = Venue("a", 8, taker_fee=0.0005, maker_fee=0.0002)
B = Venue("b", 1, taker_fee=0.0003, maker_fee=0.0001)


def test_round_trip_counts_both_legs_both_ways_with_slippage():
    # open and close, each leg: 2 x (0.0005 + 0.0002) + 2 x (0.0003 + 0.0002)
    assert round_trip_cost(A, B, slippage_bps=2.0) == pytest.approx(0.0024)
    assert round_trip_cost(A, B, slippage_bps=0.0, maker=True) == pytest.approx(0.0006)


def test_net_apr_subtracts_the_cost_spread_over_the_hold():
    cost = round_trip_cost(A, B, 2.0)
    assert cost_apr(cost, 168) == pytest.approx(0.0024 * 8760 / 168)
    assert net_apr(0.30, cost, 168) == pytest.approx(0.30 - 0.0024 * 8760 / 168)
    # the shorter the expected hold, the more the same fees weigh
    assert net_apr(0.30, cost, 24) < net_apr(0.30, cost, 168)


def test_both_directions_pay_the_cost():
    long_a, short_a = direction_aprs(0.2, 0.0024, 168)
    c = 0.0024 * 8760 / 168
    assert long_a == pytest.approx(0.2 - c) and short_a == pytest.approx(-0.2 - c)


def test_hold_must_be_positive():
    with pytest.raises(ValueError):
        cost_apr(0.001, 0)
