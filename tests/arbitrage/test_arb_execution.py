"""Matched slices: partial fills and failed legs end hedged or unwound, never naked, and logged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.arbitrage.execution import Book, ExecConfig, FillModel, execute_pair, scripted

T = pd.Timestamp("2024-01-01", tz="UTC")
OPEN = {"a": 4.0, "b": -4.0}


def book(fee: float = 0.0, slippage: float = 0.0) -> Book:
    b = Book({"a": fee, "b": fee}, slippage, cash=1000.0)
    b.set_mark("a", 100.0)
    b.set_mark("b", 100.0)
    return b


def kinds(log):
    return [(e.kind, e.leg) for e in log]


def test_all_filled_opens_both_legs_in_slices_without_events():
    b, log = book(), []
    execute_pair(b, OPEN, scripted({}), ExecConfig(slices=4), T, log)
    assert b.qty == {"a": 4.0, "b": -4.0} and log == []


def test_failed_leg_is_hedged_by_a_retry():
    b, log = book(), []
    # slice 1: leg b fails, its first retry fills
    execute_pair(b, OPEN, scripted({"b": [0.0, 1.0]}), ExecConfig(slices=4, retries=2), T, log)
    assert b.qty == {"a": 4.0, "b": -4.0}
    assert kinds(log) == [("leg_failed", "b"), ("repaired", "pair")]
    assert log[0].qty == pytest.approx(-1.0)


def test_failed_leg_whose_retries_fail_is_unwound_not_left_naked():
    b, log = book(), []
    # leg b fails on slice 1 and on both retries: the filled leg a is cut back
    fill = scripted({"b": [0.0, 0.0, 0.0]})
    execute_pair(b, OPEN, fill, ExecConfig(slices=4, retries=2), T, log)
    assert b.net == 0.0
    assert kinds(log)[:4] == [("leg_failed", "b")] * 3 + [("unwound", "a")]
    assert log[3].qty == pytest.approx(-1.0)
    # the later slices catch up: the pair still reaches its target, hedged
    assert b.qty == {"a": 4.0, "b": -4.0}


def test_partial_fill_above_tolerance_is_repaired_below_it_squared_at_the_end():
    b, log = book(), []
    # slice 1: b fills 50% (gap 0.5 > 5% of 1.0): retried, fills
    execute_pair(b, OPEN, scripted({"b": [0.5, 1.0]}), ExecConfig(slices=4), T, log)
    assert kinds(log) == [("partial_fill", "b"), ("repaired", "pair")]
    assert b.net == 0.0
    b2, log2 = book(), []
    # last slice: b fills 98% (gap 0.02 <= 5% of 1.0): tolerated, then squared after the slice
    fill = scripted({"b": [1.0, 1.0, 1.0, 0.98]})
    execute_pair(b2, OPEN, fill, ExecConfig(slices=4, tolerance=0.05), T, log2)
    assert kinds(log2) == [("partial_fill", "b"), ("squared", "a")]
    assert b2.net == pytest.approx(0.0, abs=1e-12)
    assert b2.qty["a"] == pytest.approx(3.98)


def test_close_with_a_failed_leg_retries_it_and_ends_flat():
    b, log = book(), []
    execute_pair(b, OPEN, scripted({}), ExecConfig(slices=2), T, log)
    # closing: a's close fails in slice 1 and on every retry; the reduce-only square closes it
    execute_pair(b, {"a": 0.0, "b": 0.0}, scripted({"a": [0.0, 0.0, 0.0]}), ExecConfig(2), T, log)
    assert b.qty == {"a": 0.0, "b": 0.0}
    assert ("unwound", "a") in kinds(log)


def test_close_where_every_order_fails_is_forced_flat_and_logged():
    b, log = book(), []
    execute_pair(b, OPEN, scripted({}), ExecConfig(slices=1), T, log)
    fill = scripted({"a": [0.0] * 10, "b": [0.0] * 10})
    execute_pair(b, {"a": 0.0, "b": 0.0}, fill, ExecConfig(slices=2), T, log)
    assert b.qty == {"a": 0.0, "b": 0.0}
    assert kinds(log)[-1] == ("forced_close", "pair")


@pytest.mark.parametrize("seed", range(20))
def test_seeded_failures_never_leave_net_exposure(seed):
    rng = np.random.default_rng(seed)
    fill = FillModel(fail_prob=0.3, partial_prob=0.3).filler(rng)
    b, log = book(fee=0.0005, slippage=0.0002), []
    execute_pair(b, OPEN, fill, ExecConfig(slices=5, retries=1), T, log)
    assert b.net == pytest.approx(0.0, abs=1e-12)
    assert b.qty["a"] > 0
    execute_pair(b, {"a": 0.0, "b": 0.0}, fill, ExecConfig(slices=5, retries=1), T, log)
    assert b.qty == {"a": 0.0, "b": 0.0}
    assert b.equity() - 1000.0 == pytest.approx(b.total(), abs=1e-9)


def test_book_funding_on_three_settlements_by_hand():
    b = Book({"a": 0.0, "b": 0.0}, 0.0)
    b.set_mark("a", 50_000.0)
    b.trade("a", 2.0)
    for rate in (0.0001, -0.00005, 0.0003):
        b.settle("a", rate)
    # a long pays: -2 x 50000 x (0.0001 - 0.00005 + 0.0003) = -35
    assert b.funding["a"] == pytest.approx(-35.0, abs=1e-9)
