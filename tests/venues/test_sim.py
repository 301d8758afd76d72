"""SimVenue: the fill convention over the shared matching core (hand-computed prices)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from quantdesk.model import (
    DuplicateOrder,
    Order,
    OrderStatus,
    OrderType,
    Side,
    SimBar,
    VenueRefused,
)
from quantdesk.venues.models import Bar
from quantdesk.venues.sim import SimVenue

SYM = "BTC/USDT"
D = Decimal


def order(cid: str, side: Side, amount: str, type_: OrderType = OrderType.MARKET, **kw) -> Order:
    return Order(cid, SYM, side, type_, D(amount), created_ms=0, **kw)


def venue(**kw) -> SimVenue:
    return SimVenue([SYM], {"USDT": D(10_000)}, fee=D("0.001"), slippage=D("0.01"), **kw)


async def test_market_order_during_a_bar_fills_at_open_plus_slippage_fee_in_quote() -> None:
    v = venue()
    v.open_bar(SYM, SimBar(0, 100.0, 110.0, 90.0, 105.0))
    reply = await v.create_order(order("a", Side.BUY, "10"))
    assert reply.status is OrderStatus.FILLED
    (fill,) = reply.fills
    assert fill.price == D("101.00")  # 100 * (1 + 0.01)
    assert fill.fee == D("1.0100000")  # 0.1% of 1010
    assert fill.fee_currency == "USDT" and fill.timestamp == 0
    assert v.balances()["USDT"] == D(10_000) - D(1010) - D("1.01")
    assert v.balances()["BTC"] == D(10)  # fee not taken from the asset bought
    v.close_bar(SYM, SimBar(0, 100.0, 110.0, 90.0, 105.0))
    assert v.quote(SYM, Side.SELL) == D("105.0") * D("0.99")


async def test_market_order_between_bars_waits_for_the_next_open() -> None:
    v = venue()
    v.open_bar(SYM, SimBar(0, 100.0, 101.0, 99.0, 100.0))
    v.close_bar(SYM, SimBar(0, 100.0, 101.0, 99.0, 100.0))
    reply = await v.create_order(order("a", Side.BUY, "1"))
    assert reply.status is OrderStatus.NEW and reply.filled == 0
    changed = v.open_bar(SYM, SimBar(60_000, 120.0, 121.0, 119.0, 120.0))
    assert changed == ["a"]
    got = await v.fetch_order_by_client_id(SYM, "a")
    assert got.status is OrderStatus.FILLED
    assert got.average_price == D("121.2") and got.timestamp == 60_000


async def _long(v: SimVenue, amount: str = "10") -> None:
    v.open_bar(SYM, SimBar(0, 100.0, 100.0, 100.0, 100.0))
    await v.create_order(order("entry", Side.BUY, amount))
    v.close_bar(SYM, SimBar(0, 100.0, 100.0, 100.0, 100.0))


@pytest.mark.parametrize(
    ("bar", "expected"),
    [
        (SimBar(1, 99.0, 99.5, 94.0, 96.0), D("95") * D("0.99")),  # touched: trigger price
        (SimBar(1, 93.0, 99.5, 90.0, 96.0), D("93.0") * D("0.99")),  # gapped: the open
        (SimBar(1, 99.0, 99.5, 95.5, 96.0), None),  # not reached
    ],
)
async def test_stop_loss_triggers_on_low_fills_at_trigger_or_gap_open(bar, expected) -> None:
    v = venue()
    await _long(v)
    await v.create_order(order("sl", Side.SELL, "10", OrderType.STOP, trigger_price=D("95")))
    v.open_bar(SYM, bar)
    assert (await v.fetch_order_by_client_id(SYM, "sl")).fills == ()  # the open comes first
    v.range_bar(SYM)
    got = await v.fetch_order_by_client_id(SYM, "sl")
    if expected is None:
        assert got.status is OrderStatus.NEW and not got.fills
    else:
        assert got.status is OrderStatus.FILLED
        assert got.fills[0].price == expected  # a triggered stop pays slippage


async def test_stop_loss_wins_over_take_profit_and_the_other_expires() -> None:
    v = venue()
    await _long(v)
    await v.create_order(order("tp", Side.SELL, "10", OrderType.TAKE_PROFIT, trigger_price=D(105)))
    await v.create_order(order("sl", Side.SELL, "10", OrderType.STOP, trigger_price=D(95)))
    v.open_bar(SYM, SimBar(1, 100.0, 106.0, 94.0, 100.0))
    v.range_bar(SYM)
    sl = await v.fetch_order_by_client_id(SYM, "sl")
    tp = await v.fetch_order_by_client_id(SYM, "tp")
    assert sl.status is OrderStatus.FILLED and sl.fills[0].price == D("95") * D("0.99")
    assert tp.status is OrderStatus.EXPIRED and not tp.fills  # nothing left to sell
    assert v.balances()["BTC"] == 0


async def test_limit_order_rests_in_the_core_and_fills_when_a_bar_crosses_it() -> None:
    v = venue()
    await _long(v)
    await v.create_order(order("lim", Side.SELL, "4", OrderType.LIMIT, price=D(103)))
    assert [o.client_order_id for o in await v.fetch_open_orders()] == ["lim"]
    assert v.close_bar(SYM, SimBar(1, 100.0, 102.0, 99.0, 101.0)) == []
    assert v.close_bar(SYM, SimBar(2, 101.0, 104.0, 100.0, 102.0)) == ["lim"]
    got = await v.fetch_order_by_client_id(SYM, "lim")
    assert got.status is OrderStatus.FILLED and got.fills[0].price == D(103)
    assert await v.fetch_open_orders() == []


async def test_refusals_are_definitive_venue_errors_and_cancel_works() -> None:
    v = venue()
    v.open_bar(SYM, SimBar(0, 100.0, 100.0, 100.0, 100.0))
    with pytest.raises(VenueRefused, match="insufficient"):
        await v.create_order(order("big", Side.BUY, "1000"))
    assert await v.fetch_order_by_client_id(SYM, "big") is None  # never placed
    await v.create_order(order("sl", Side.SELL, "1", OrderType.STOP, trigger_price=D(50)))
    with pytest.raises(DuplicateOrder):
        await v.create_order(order("sl", Side.SELL, "1", OrderType.STOP, trigger_price=D(50)))
    with pytest.raises(VenueRefused):
        await v.create_order(
            order("x", Side.SELL, "1", OrderType.STOP_LIMIT, price=D(49), trigger_price=D(50))
        )
    cancelled = await v.cancel_order(
        order("sl", Side.SELL, "1", OrderType.STOP, trigger_price=D(50))
    )
    assert cancelled.status is OrderStatus.CANCELED
    v.open_bar(SYM, SimBar(1, 40.0, 40.0, 40.0, 40.0))
    v.range_bar(SYM)
    assert (await v.fetch_order_by_client_id(SYM, "sl")).fills == ()


async def test_an_exit_at_the_open_comes_before_a_stop_the_bar_reaches() -> None:
    v = venue()
    await _long(v)
    await v.create_order(order("sl", Side.SELL, "10", OrderType.STOP, trigger_price=D(95)))
    v.open_bar(SYM, SimBar(1, 99.0, 99.5, 90.0, 96.0))  # the bar goes through the stop later
    await v.cancel_order(order("sl", Side.SELL, "10", OrderType.STOP, trigger_price=D(95)))
    exit_ = await v.create_order(order("exit", Side.SELL, "10"))
    assert v.range_bar(SYM) == []
    assert exit_.fills[0].price == D("99.0") * D("0.99")  # the open, less slippage
    assert (await v.fetch_order_by_client_id(SYM, "sl")).status is OrderStatus.CANCELED


async def test_a_stop_placed_at_the_open_is_live_for_the_rest_of_that_bar() -> None:
    v = venue()
    v.open_bar(SYM, SimBar(0, 100.0, 100.0, 100.0, 100.0))
    v.close_bar(SYM, SimBar(0, 100.0, 100.0, 100.0, 100.0))
    v.open_bar(SYM, SimBar(1, 100.0, 101.0, 94.0, 96.0))
    entry = await v.create_order(order("entry", Side.BUY, "10"))
    assert entry.fills[0].price == D(101)  # 100 + 1% slippage
    await v.create_order(order("sl", Side.SELL, "10", OrderType.STOP, trigger_price=D(95)))
    assert v.range_bar(SYM) == ["sl"]
    got = await v.fetch_order_by_client_id(SYM, "sl")
    assert (got.fills[0].price, got.fills[0].timestamp) == (D(95) * D("0.99"), 1)


async def test_perpetual_long_is_closed_by_a_reduce_only_sell() -> None:
    perp = "BTC/USDT:USDT"
    v = SimVenue([perp], {"USDT": D(1_000)}, fee=D("0.001"))
    v.open_bar(perp, SimBar(0, 100.0, 100.0, 100.0, 100.0))
    buy = Order("b", perp, Side.BUY, OrderType.MARKET, D(9), created_ms=0)
    await v.create_order(buy)
    v.close_bar(perp, SimBar(0, 100.0, 100.0, 100.0, 110.0))
    v.open_bar(perp, SimBar(1, 110.0, 110.0, 110.0, 110.0))
    sell = Order("s", perp, Side.SELL, OrderType.MARKET, D(9), created_ms=0, reduce_only=True)
    reply = await v.create_order(sell)
    assert reply.status is OrderStatus.FILLED
    assert v.account.position(perp).qty == 0
    # wallet: 1000 + 9 * (110 - 100) realized - fees 0.9 - 0.99
    assert v.account.wallet_balance("USDT") == D(1090) - D("0.9") - D("0.99")


async def test_a_perpetual_long_at_a_loss_leaves_its_cash_flow_cash_free() -> None:
    """Leverage 1, no fees: 1,000 USDT, a long of 5 at 100 leaves 500 cash (the engine's
    portfolio). At 50 the position lost 250; a buy of 10 at 50 costs 500, what the cash pays
    for: accepted (initial margin at the mark: 1,000 - 250 - 5 x 50 = 500). The core's margin
    at the entry would leave 1,000 - 250 - 500 = 250 and refuse it."""
    perp = "BTC/USDT:USDT"
    v = SimVenue([perp], {"USDT": D(1_000)})
    v.open_bar(perp, SimBar(0, 100.0, 100.0, 100.0, 100.0))
    await v.create_order(Order("a", perp, Side.BUY, OrderType.MARKET, D(5), created_ms=0))
    v.close_bar(perp, SimBar(0, 100.0, 100.0, 100.0, 100.0))
    v.open_bar(perp, SimBar(1, 50.0, 50.0, 50.0, 50.0))
    assert v.account.available(v.core.marks()) == D(500)
    reply = await v.create_order(Order("b", perp, Side.BUY, OrderType.MARKET, D(10), created_ms=1))
    assert reply.status is OrderStatus.FILLED
    assert v.account.available(v.core.marks()) == D(0)
    with pytest.raises(VenueRefused):
        await v.create_order(Order("c", perp, Side.BUY, OrderType.MARKET, D("0.1"), created_ms=1))


async def test_a_perpetual_short_at_a_loss_keeps_the_cores_margin() -> None:
    """A short of 5 at 100 marked at 150: free = 1,000 - 250 (loss) - 5 x 100 (margin at the
    entry, the lower of entry and mark) = 250, the core's own valuation."""
    perp = "BTC/USDT:USDT"
    v = SimVenue([perp], {"USDT": D(1_000)})
    v.open_bar(perp, SimBar(0, 100.0, 100.0, 100.0, 100.0))
    await v.create_order(Order("a", perp, Side.SELL, OrderType.MARKET, D(5), created_ms=0))
    assert v.account.available({perp: D(150)}) == D(250)


async def test_a_flip_needs_margin_for_the_new_side_only() -> None:
    """Leverage 1, no fees: a long of 6 at 100 leaves 400 free. A sell of 10 closes the 6
    (no margin: it frees 600) and opens a short of 4 (400 of margin): accepted, one order. A
    sell of 10 more would need 1,000 of margin with 600 free: refused."""
    perp = "BTC/USDT:USDT"
    v = SimVenue([perp], {"USDT": D(1_000)})
    v.open_bar(perp, SimBar(0, 100.0, 100.0, 100.0, 100.0))
    await v.create_order(Order("a", perp, Side.BUY, OrderType.MARKET, D(6), created_ms=0))
    reply = await v.create_order(Order("b", perp, Side.SELL, OrderType.MARKET, D(10), created_ms=0))
    assert reply.status is OrderStatus.FILLED
    assert v.account.position(perp).qty == D(-4)
    assert v.account.available(v.core.marks()) == D(600)
    with pytest.raises(VenueRefused):
        await v.create_order(Order("c", perp, Side.SELL, OrderType.MARKET, D(10), created_ms=0))


async def test_cash_margin_is_the_backtests_cash_model() -> None:
    """cash_margin: a short sale needs nothing and its proceeds are cash (1,000 + 20 x 100 =
    3,000 free), a buy needs its cost out of that cash, and a short that the price triples is
    not liquidated (the default account closes it: its liquidation price at leverage 1 is
    ~199)."""
    perp = "BTC/USDT:USDT"
    bars = [SimBar(0, 100.0, 100.0, 100.0, 100.0)]
    held = {}
    for cash_margin in (True, False):
        v = SimVenue([perp], {"USDT": D(1_000)}, cash_margin=cash_margin)
        v.open_bar(perp, bars[0])
        amount = D(20) if cash_margin else D(5)
        await v.create_order(Order("s", perp, Side.SELL, OrderType.MARKET, amount, created_ms=0))
        if cash_margin:
            assert v.account.available(v.core.marks()) == D(3_000)
            reply = await v.create_order(
                Order("b", perp, Side.BUY, OrderType.MARKET, D(30), created_ms=0)
            )
            assert reply.status is OrderStatus.FILLED and v.account.position(perp).qty == 10
            with pytest.raises(VenueRefused):
                await v.create_order(
                    Order("c", perp, Side.BUY, OrderType.MARKET, D(1), created_ms=0)
                )
            await v.create_order(Order("t", perp, Side.SELL, OrderType.MARKET, D(30), created_ms=0))
        v.close_bar(perp, bars[0])
        # the core's liquidation pass over a bar that reaches 300 (SimVenue runs it when orders
        # rest in the core)
        v.core.on_bar(perp, Bar(1, D(100), D(300), D(100), D(300), D(0)), 1)
        held[cash_margin] = v.account.position(perp).qty
    assert held == {True: D(-20), False: D(0)}
