"""basic_mm and avellaneda_stoikov: their rules against hand-computed numbers, typed params."""

from __future__ import annotations

import math

import pytest

from quantdesk.mm.backtest import Book, MMContext
from quantdesk.mm.quotes import ASK, BID
from quantdesk.mm.volatility import ewma_variance
from quantdesk.strategy import (
    ParamError,
    QuoteStrategy,
    load_strategy,
    repo_strategies_dir,
    strategy_class,
)

DIR = repo_strategies_dir()
basic = strategy_class("basic_mm", DIR)
avst = strategy_class("avellaneda_stoikov", DIR)
mod_basic = __import__(basic.__module__)
mod_as = __import__(avst.__module__)


def test_ewma_variance():
    # half-life 1 s, a change of 0.02 over 1 s: weight 1/2 of 0.0004 / 1
    assert ewma_variance(0.0, 0.02, 1.0, 1.0) == pytest.approx(0.0002)
    assert ewma_variance(0.5, 0.02, 0.0, 1.0) == 0.5


def test_basic_half_spread_is_clamped():
    assert mod_basic.half_spread_ticks(3.0, 2.0, 1.0, 10.0) == 6.0
    assert mod_basic.half_spread_ticks(0.1, 2.0, 1.0, 10.0) == 1.0
    assert mod_basic.half_spread_ticks(20.0, 2.0, 1.0, 10.0) == 10.0


def test_basic_inventory_skew():
    # half-full long: center 2 x 0.5 = 1 tick lower; bid shrinks by a quarter, ask grows
    assert mod_basic.skewed_center(100.0, 5.0, 10.0, 2.0, 0.01) == pytest.approx(99.99)
    assert mod_basic.skewed_sizes(1.0, 5.0, 10.0, 0.5) == pytest.approx((0.75, 1.25))
    assert mod_basic.skewed_sizes(1.0, 10.0, 10.0, 1.0) == pytest.approx((0.0, 2.0))


def test_basic_ladder_rounds_outward_and_steps():
    quotes = mod_basic.ladder(100.005, 1.0, 2, 1, 0.01, 1.0, 1.0, 100.00, 100.01)
    bids = [q.price for q in quotes if q.side == BID]
    asks = [q.price for q in quotes if q.side == ASK]
    assert bids == pytest.approx([99.99, 99.98]) and asks == pytest.approx([100.02, 100.03])
    assert [q.level for q in quotes if q.side == BID] == [0, 1]
    # a center far above the touch never quotes a bid through the ask
    high = mod_basic.ladder(100.5, 1.0, 1, 1, 0.01, 1.0, 1.0, 100.00, 100.01)
    assert [q.price for q in high if q.side == BID] == pytest.approx([100.00])


def test_as_reservation_and_spread():
    # r = 100 - 2 x 0.1 x 1e-4 x 300 = 99.994
    assert mod_as.reservation_price(100.0, 2.0, 0.1, 1e-4, 300.0) == pytest.approx(99.994)
    # delta = 0.1 x 1e-4 x 300 + 20 x ln(1.001) = 0.003 + 0.0199900067
    assert mod_as.optimal_spread(0.1, 1e-4, 300.0, 100.0) == pytest.approx(0.0229900067, abs=1e-9)
    bid, ask = mod_as.as_quotes(99.994, 0.0229900067, 0.01, 1.0, 99.99, 100.00)
    assert (bid, ask) == pytest.approx((99.98, 100.01))


def ctx(inventory=0.0, tick=0.01):
    book = Book(10**9, 99.99, 100.00, 5.0, 5.0)
    return MMContext(10**9, 0, 3600 * 10**9, tick, book, inventory, 10.0)


def test_as_stops_the_side_beyond_the_inventory_cap():
    s = load_strategy("avellaneda_stoikov", {"sigma": 0.01}, DIR)
    c = ctx(inventory=10.0)
    sides = {q.side for q in s.on_book(c.book, c)}
    assert sides == {ASK}
    c = ctx(inventory=0.0)
    assert {q.side for q in s.on_book(c.book, c)} == {BID, ASK}


def test_basic_on_book_quotes_levels_and_timer_requotes():
    s = load_strategy("basic_mm", {"levels": 3}, DIR)
    c = ctx()
    quotes = s.on_book(c.book, c)
    assert len(quotes) == 6 and all(q.size == 1.0 for q in quotes)
    assert s.on_timer(c.now_ns, c) == quotes


def test_typed_params_and_class():
    assert issubclass(basic, QuoteStrategy) and issubclass(avst, QuoteStrategy)
    with pytest.raises(ParamError, match="levels=0 is out of range"):
        load_strategy("basic_mm", {"levels": 0}, DIR)
    with pytest.raises(ParamError, match="gamma"):
        load_strategy("avellaneda_stoikov", {"gamma": -1.0}, DIR)
    assert math.isclose(load_strategy("avellaneda_stoikov", {}, DIR).kappa, 100.0)
