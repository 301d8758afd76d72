"""Routing across venues' books: cheapest all-in levels first, the slippage cap, best venue."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from quantdesk.execution.books import ExecutionError, book
from quantdesk.execution.routing import best_venue, reference_price, route
from quantdesk.model import Side


def two_venues():
    """A: tight touch, 0.1% fee, thin; B: a tick wider, no fee, deep."""
    a = book(
        "A",
        [(D("99.9"), D("1")), (D("99.8"), D("2"))],
        [(D("100.0"), D("1")), (D("100.1"), D("2"))],
        D("0.001"),
    )
    b = book("B", [(D("99.85"), D("5"))], [(D("100.05"), D("5")), (D("100.2"), D("10"))], D("0"))
    return a, b


def test_buy_takes_the_cheapest_all_in_levels_across_venues():
    a, b = two_venues()
    # all-in asks: B 100.05, A 100.0 x 1.001 = 100.1, A 100.1 x 1.001 = 100.2001, B 100.2
    r = route([a, b], Side.BUY, D("7"))
    parts = {s.venue: s for s in r.slices}
    assert parts["B"].amount == D("6") and parts["B"].limit == D("100.2")  # 5 @ 100.05, 1 @ 100.2
    assert parts["A"].amount == D("1") and parts["A"].limit == D("100.0")
    assert parts["A"].fee == D("0.1000")  # 100 notional x 0.1%
    assert r.filled == D("7") and r.unfilled == 0
    assert r.average == (D("5") * D("100.05") + D("100.2") + D("100.0")) / 7


def test_sell_takes_the_highest_bids_net_of_fees():
    a, b = two_venues()
    # all-in bids: A 99.9 x 0.999 = 99.8001, B 99.85, A 99.8 x 0.999 = 99.7002
    r = route([a, b], Side.SELL, D("5.5"))
    parts = {s.venue: s.amount for s in r.slices}
    assert parts == {"B": D("5"), "A": D("0.5")}


def test_the_slippage_cap_stops_before_a_level_too_far_from_the_reference():
    a, b = two_venues()
    ref = reference_price([a, b])
    assert ref == (D("99.9") + D("100.0")) / 2  # best bid A, best ask A
    r = route([a, b], Side.BUY, D("20"), slippage_cap=D("0.002"))  # up to 100.1499
    assert max(s.limit for s in r.slices) <= ref * D("1.002")
    assert r.filled == D("8")  # B 5 @ 100.05, A 1 @ 100.0, A 2 @ 100.1; B's 100.2 is past the cap
    assert r.unfilled == D("12")


def test_shortfall_counts_price_and_fees_against_arrival():
    a, _ = two_venues()
    r = route([a], Side.BUY, D("1"))
    # paid 100.0 + 0.1 fee for 1 against an arrival mid of 99.95
    assert r.shortfall_bps(D("99.95")) == (D("100.1") - D("99.95")) / D("99.95") * 10_000


def test_best_venue_is_the_one_that_fills_most_at_the_best_all_in_price():
    a, b = two_venues()
    assert best_venue([a, b], Side.BUY, D("1")).slices[0].venue == "B"  # 100.05 < 100.1 all-in
    assert best_venue([a, b], Side.BUY, D("4")).slices[0].venue == "B"  # A holds only 3
    cheap_a = book("A", a.bids, a.asks, D("0"))
    assert best_venue([cheap_a, b], Side.BUY, D("1")).slices[0].venue == "A"


@pytest.mark.parametrize(
    "make",
    [
        lambda: book("A", [(D("101"), D("1"))], [(D("100"), D("1"))], D("0")),  # crossed
        lambda: book("A", [(D("99"), D("1")), (D("99.5"), D("1"))], [], D("0")),  # not best first
        lambda: book("A", [(D("99"), D("-1"))], [], D("0")),
        lambda: book("A", [], [], D("0.2")),
    ],
)
def test_bad_books_are_refused(make):
    with pytest.raises(ExecutionError):
        make()


def test_bad_requests_are_refused():
    a, b = two_venues()
    with pytest.raises(ExecutionError, match="positive"):
        route([a, b], Side.BUY, D("0"))
    with pytest.raises(ExecutionError, match="one book per venue"):
        route([a, a], Side.BUY, D("1"))
    with pytest.raises(ExecutionError, match="cap"):
        route([a, b], Side.BUY, D("1"), slippage_cap=D("1.5"))
    with pytest.raises(ExecutionError, match="at least one"):
        route([], Side.BUY, D("1"))
