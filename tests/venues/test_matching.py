"""The matching core in-process: books, fills, fees, locks, stops, positions, funding."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from quantdesk.model import Side
from quantdesk.venues import (
    Bar,
    BookConfig,
    MarketSpec,
    MatchingCore,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    Reject,
    TimeInForce,
)

SPOT = MarketSpec(
    "BTC/USDT",
    "BTCUSDT",
    "BTC",
    "USDT",
    False,
    D("0.01"),
    D("0.001"),
    D("0.001"),
    D("1000"),
    D("5"),
)
PERP = MarketSpec(
    "BTC/USDT:USDT",
    "BTCUSDT",
    "BTC",
    "USDT",
    True,
    D("0.1"),
    D("0.001"),
    D("0.001"),
    D("1000"),
    D("5"),
)


def bar(t: int, o: str, h: str, l: str, c: str, v: str = "100") -> Bar:  # noqa: E741
    return Bar(t, D(o), D(h), D(l), D(c), D(v))


@pytest.fixture
def core() -> MatchingCore:
    core = MatchingCore(
        [SPOT, PERP],
        BookConfig(
            spread_bps=D("1"), level_step_bps=D("1"), levels=3, level_volume_fraction=D("0.01")
        ),
    )
    core.add_account("a", {"USDT": D("100000"), "BTC": D("1")})
    for sym in (SPOT.symbol, PERP.symbol):
        core.on_bar(sym, bar(0, "40000", "40010", "39990", "40000"), 60_000)
    return core


def test_book_from_bar_levels(core: MatchingCore) -> None:
    book = core.books[SPOT.symbol]
    # spread 1bp of 40000 = 4; step 1bp = 4; size = 1% of 100 = 1
    assert book.bids == [
        [D("39996.00"), D("1.000")],
        [D("39992.00"), D("1.000")],
        [D("39988.00"), D("1.000")],
    ]
    assert book.asks[0] == [D("40004.00"), D("1.000")]


def test_market_buy_walks_book_and_charges_base_commission(core: MatchingCore) -> None:
    acct = core.accounts["a"]
    order = core.submit(acct, OrderRequest(SPOT.symbol, Side.BUY, OrderType.MARKET, qty=D("1.5")))
    assert order.status is OrderStatus.FILLED
    assert [(f.price, f.qty) for f in order.fills] == [
        (D("40004.00"), D("1")),
        (D("40008.00"), D("0.5")),
    ]
    cost = D("40004") + D("20004")
    assert acct.balance("USDT").free == D("100000") - cost
    assert acct.balance("BTC").free == D("1") + D("1.5") - D("0.0015")
    # the book stays consumed until the next bar
    assert core.books[SPOT.symbol].asks[0] == [D("40008.00"), D("0.500")]


def test_market_order_larger_than_book_expires_partially(core: MatchingCore) -> None:
    order = core.submit(
        core.accounts["a"], OrderRequest(SPOT.symbol, Side.SELL, OrderType.MARKET, qty=D("0.5"))
    )
    assert order.status is OrderStatus.FILLED
    core.add_account("whale", {"BTC": D("10")})
    big = core.submit(
        core.accounts["whale"], OrderRequest(SPOT.symbol, Side.SELL, OrderType.MARKET, qty=D("5"))
    )
    assert big.status is OrderStatus.EXPIRED
    assert big.filled == D("2.5")  # 3 levels of 1, minus the 0.5 already taken
    assert core.accounts["whale"].balance("BTC").free == D("7.5")
    assert core.accounts["whale"].balance("BTC").locked == 0


def test_limit_rests_locks_then_fills_on_bar_with_maker_fee(core: MatchingCore) -> None:
    acct = core.accounts["a"]
    order = core.submit(
        acct, OrderRequest(SPOT.symbol, Side.BUY, OrderType.LIMIT, qty=D("0.5"), price=D("39900"))
    )
    assert order.status is OrderStatus.NEW
    assert acct.balance("USDT").locked == D("19950")
    core.on_bar(SPOT.symbol, bar(60_000, "40000", "40000", "39950", "39960"), 120_000)
    assert order.status is OrderStatus.NEW  # low 39950 never trades through 39900
    fills = core.on_bar(SPOT.symbol, bar(120_000, "39960", "39970", "39850", "39890"), 180_000)
    assert order.status is OrderStatus.FILLED and fills[0].maker
    assert fills[0].price == D("39900")
    assert acct.balance("USDT").locked == 0
    assert acct.balance("USDT").free == D("100000") - D("19950")
    assert acct.balance("BTC").free == D("1.5") - D("0.0005")


def test_cancel_releases_lock(core: MatchingCore) -> None:
    acct = core.accounts["a"]
    order = core.submit(
        acct, OrderRequest(SPOT.symbol, Side.SELL, OrderType.LIMIT, qty=D("0.4"), price=D("41000"))
    )
    assert acct.balance("BTC").locked == D("0.4")
    core.cancel(acct, SPOT.symbol, order.id, None)
    assert order.status is OrderStatus.CANCELED
    assert acct.balance("BTC").free == D("1") and acct.balance("BTC").locked == 0
    with pytest.raises(OrderRejected) as exc:
        core.cancel(acct, SPOT.symbol, order.id, None)
    assert exc.value.reason is Reject.UNKNOWN_ORDER


@pytest.mark.parametrize(
    ("req", "reason"),
    [
        (
            OrderRequest(
                SPOT.symbol, Side.BUY, OrderType.LIMIT, qty=D("0.1"), price=D("40000.005")
            ),
            Reject.PRICE_FILTER,
        ),
        (
            OrderRequest(SPOT.symbol, Side.BUY, OrderType.LIMIT, qty=D("0.0015"), price=D("40000")),
            Reject.LOT_SIZE,
        ),
        (
            OrderRequest(SPOT.symbol, Side.BUY, OrderType.LIMIT, qty=D("0.001"), price=D("4000")),
            Reject.NOTIONAL,
        ),
        (
            OrderRequest(SPOT.symbol, Side.BUY, OrderType.LIMIT, qty=D("3"), price=D("40000")),
            Reject.INSUFFICIENT_FUNDS,
        ),
        (
            OrderRequest(
                SPOT.symbol, Side.BUY, OrderType.LIMIT_MAKER, qty=D("0.1"), price=D("40004")
            ),
            Reject.WOULD_TAKE,
        ),
        (
            OrderRequest(
                SPOT.symbol, Side.SELL, OrderType.STOP_LOSS, qty=D("0.1"), stop_price=D("40100")
            ),
            Reject.WOULD_TRIGGER,
        ),
        (OrderRequest("NOPE/USDT", Side.BUY, OrderType.MARKET, qty=D("1")), Reject.BAD_SYMBOL),
    ],
)
def test_rejections(core: MatchingCore, req: OrderRequest, reason: Reject) -> None:
    with pytest.raises(OrderRejected) as exc:
        core.submit(core.accounts["a"], req)
    assert exc.value.reason is reason
    assert core.accounts["a"].balance("USDT").locked == 0


def test_duplicate_client_id_only_among_open_orders(core: MatchingCore) -> None:
    acct = core.accounts["a"]
    req = OrderRequest(
        SPOT.symbol, Side.BUY, OrderType.LIMIT, qty=D("0.1"), price=D("39000"), client_id="x1"
    )
    first = core.submit(acct, req)
    with pytest.raises(OrderRejected) as exc:
        core.submit(acct, req)
    assert exc.value.reason is Reject.DUPLICATE_ORDER
    core.cancel(acct, SPOT.symbol, None, "x1")
    assert first.status is OrderStatus.CANCELED
    assert core.submit(acct, req).id != first.id


def test_ioc_and_fok(core: MatchingCore) -> None:
    acct = core.accounts["a"]
    ioc = core.submit(
        acct,
        OrderRequest(
            SPOT.symbol,
            Side.BUY,
            OrderType.LIMIT,
            qty=D("1.5"),
            price=D("40004"),
            tif=TimeInForce.IOC,
        ),
    )
    assert ioc.status is OrderStatus.EXPIRED and ioc.filled == D("1")
    fok = core.submit(
        acct,
        OrderRequest(
            SPOT.symbol,
            Side.BUY,
            OrderType.LIMIT,
            qty=D("1.4"),
            price=D("40008"),
            tif=TimeInForce.FOK,
        ),
    )
    assert fok.status is OrderStatus.EXPIRED and fok.filled == 0
    assert acct.balance("USDT").locked == 0
    with pytest.raises(OrderRejected) as exc:  # perps reject an unfillable FOK outright
        core.submit(
            acct,
            OrderRequest(
                PERP.symbol,
                Side.BUY,
                OrderType.LIMIT,
                qty=D("5"),
                price=D("40100"),
                tif=TimeInForce.FOK,
            ),
        )
    assert exc.value.reason is Reject.FOK_UNFILLED


def test_stop_loss_triggers_at_stop_or_gap_open(core: MatchingCore) -> None:
    acct = core.accounts["a"]
    stop = core.submit(
        acct,
        OrderRequest(
            SPOT.symbol, Side.SELL, OrderType.STOP_LOSS, qty=D("0.2"), stop_price=D("39900")
        ),
    )
    gap = core.submit(
        acct,
        OrderRequest(
            SPOT.symbol, Side.SELL, OrderType.STOP_LOSS, qty=D("0.2"), stop_price=D("39950")
        ),
    )
    core.on_bar(SPOT.symbol, bar(60_000, "39940", "39960", "39800", "39850"), 120_000)
    assert stop.fills[0].price == D("39900")  # touched inside the bar
    assert gap.fills[0].price == D("39940")  # opened through the stop
    assert not stop.fills[0].maker


def test_stop_limit_and_take_profit(core: MatchingCore) -> None:
    acct = core.accounts["a"]
    sl = core.submit(
        acct,
        OrderRequest(
            SPOT.symbol,
            Side.SELL,
            OrderType.STOP_LOSS_LIMIT,
            qty=D("0.1"),
            stop_price=D("39900"),
            price=D("39950"),
        ),
    )
    tp = core.submit(
        acct,
        OrderRequest(
            SPOT.symbol, Side.SELL, OrderType.TAKE_PROFIT, qty=D("0.1"), stop_price=D("40100")
        ),
    )
    core.on_bar(SPOT.symbol, bar(60_000, "40000", "40000", "39890", "39890"), 120_000)
    assert sl.triggered and sl.status is OrderStatus.NEW  # limit above the trigger: rests
    core.on_bar(SPOT.symbol, bar(120_000, "39890", "40200", "39880", "40150"), 180_000)
    assert sl.status is OrderStatus.FILLED and sl.fills[0].price == D("39950") and sl.fills[0].maker
    assert tp.status is OrderStatus.FILLED and tp.fills[0].price == D("40100")


def test_perp_position_pnl_fees_and_liquidation(core: MatchingCore) -> None:
    acct = core.accounts["a"]
    core.set_leverage(acct, PERP.symbol, 10)
    core.submit(acct, OrderRequest(PERP.symbol, Side.BUY, OrderType.MARKET, qty=D("0.5")))
    pos = acct.positions[PERP.symbol]
    assert pos.qty == D("0.5") and pos.entry == D("40004.0")
    fee_open = D("0.5") * D("40004") * D("0.0004")
    assert acct.wallet_balance() == D("100000") - fee_open
    assert pos.liquidation_price == D("40004") * D("0.9") / D("0.996")
    core.on_bar(PERP.symbol, bar(60_000, "40000", "41010", "39990", "41000"), 120_000)
    assert pos.unrealized(core.mark(PERP.symbol)) == D("0.5") * (D("41000") - D("40004"))
    close = core.submit(
        acct, OrderRequest(PERP.symbol, Side.SELL, OrderType.MARKET, qty=D("0.5"), reduce_only=True)
    )
    px = close.fills[0].price
    assert pos.qty == 0
    assert close.fills[0].realized_pnl == D("0.5") * (px - D("40004"))
    fee_close = D("0.5") * px * D("0.0004")
    assert acct.wallet_balance() == D("100000") - fee_open - fee_close + D("0.5") * (
        px - D("40004")
    )
    assert acct.order_margin == 0


def test_perp_flip_and_average_entry(core: MatchingCore) -> None:
    acct = core.accounts["a"]
    core.set_book(
        PERP.symbol, [[D("39990"), D("10")]], [[D("40000"), D("1")], [D("40010"), D("10")]]
    )
    core.submit(acct, OrderRequest(PERP.symbol, Side.BUY, OrderType.MARKET, qty=D("2")))
    pos = acct.positions[PERP.symbol]
    assert pos.entry == (D("40000") + D("40010")) / 2
    core.submit(acct, OrderRequest(PERP.symbol, Side.SELL, OrderType.MARKET, qty=D("3")))
    assert pos.qty == D("-1") and pos.entry == D("39990")


def test_funding_paid_by_longs_received_by_shorts(core: MatchingCore) -> None:
    core.add_account("b", {"USDT": D("100000")})
    a, b = core.accounts["a"], core.accounts["b"]
    core.submit(a, OrderRequest(PERP.symbol, Side.BUY, OrderType.MARKET, qty=D("1")))
    core.submit(b, OrderRequest(PERP.symbol, Side.SELL, OrderType.MARKET, qty=D("1")))
    wa, wb = a.wallet_balance(), b.wallet_balance()
    entries = core.settle_funding(PERP.symbol, D("0.0001"), 8 * 3600_000)
    assert {e.amount for e in entries} == {D("-4"), D("4")}
    assert a.wallet_balance() == wa - D("4") and b.wallet_balance() == wb + D("4")


def test_perp_insufficient_margin(core: MatchingCore) -> None:
    core.add_account("poor", {"USDT": D("100")})
    with pytest.raises(OrderRejected) as exc:
        core.submit(
            core.accounts["poor"], OrderRequest(PERP.symbol, Side.BUY, OrderType.MARKET, qty=D("1"))
        )
    assert exc.value.reason is Reject.INSUFFICIENT_FUNDS


def test_reduce_only_never_flips_a_position(core: MatchingCore) -> None:
    acct = core.accounts["a"]
    core.submit(acct, OrderRequest(PERP.symbol, Side.BUY, OrderType.MARKET, qty=D("0.5")))
    stop = core.submit(
        acct,
        OrderRequest(
            PERP.symbol,
            Side.SELL,
            OrderType.STOP_LOSS,
            qty=D("2"),
            stop_price=D("39000"),
            reduce_only=True,
        ),
    )
    closer = core.submit(
        acct, OrderRequest(PERP.symbol, Side.SELL, OrderType.MARKET, qty=D("2"), reduce_only=True)
    )
    assert closer.filled == D("0.5") and closer.status is OrderStatus.EXPIRED
    assert acct.positions[PERP.symbol].qty == 0
    core.on_bar(PERP.symbol, bar(60_000, "39500", "39500", "38000", "38500"), 120_000)
    assert stop.status is OrderStatus.EXPIRED and stop.filled == 0  # nothing left to reduce
    assert acct.positions[PERP.symbol].qty == 0


def test_gapped_stop_buy_expires_rather_than_overdraw(core: MatchingCore) -> None:
    core.add_account("thin", {"USDT": D("4100")})
    thin = core.accounts["thin"]
    stop = core.submit(
        thin,
        OrderRequest(
            SPOT.symbol, Side.BUY, OrderType.STOP_LOSS, qty=D("0.1"), stop_price=D("40500")
        ),
    )
    assert thin.balance("USDT").locked == D("4050")
    core.on_bar(SPOT.symbol, bar(60_000, "45000", "45000", "44000", "44500"), 120_000)
    assert stop.status is OrderStatus.EXPIRED and stop.filled == 0
    assert thin.balance("USDT").free == D("4100") and thin.balance("USDT").locked == 0


def test_liquidation_closes_at_the_liquidation_price(core: MatchingCore) -> None:
    acct = core.accounts["a"]
    core.set_leverage(acct, PERP.symbol, 10)
    core.submit(acct, OrderRequest(PERP.symbol, Side.BUY, OrderType.MARKET, qty=D("1")))
    resting = core.submit(
        acct, OrderRequest(PERP.symbol, Side.BUY, OrderType.LIMIT, qty=D("0.1"), price=D("30000"))
    )
    pos = acct.positions[PERP.symbol]
    liq = PERP.round_price(pos.liquidation_price, up=True)
    wallet = acct.wallet_balance()
    core.on_bar(PERP.symbol, bar(60_000, "40000", "40000", str(liq + 1), "39000"), 120_000)
    assert pos.qty == D("1")  # not reached yet
    fills = core.on_bar(PERP.symbol, bar(120_000, "39000", "39000", "36000", "36500"), 180_000)
    [fill] = fills
    order = core.orders[fill.order_id]
    assert order.client_id.startswith("autoclose-") and order.status is OrderStatus.FILLED
    assert fill.price == liq and fill.commission == 0
    assert pos.qty == 0 and resting.status is OrderStatus.CANCELED
    assert acct.wallet_balance() == wallet + (liq - D("40004.0"))
    assert acct.order_margin == 0


def test_quote_quantity_market_orders(core: MatchingCore) -> None:
    acct = core.accounts["a"]
    buy = core.submit(
        acct, OrderRequest(SPOT.symbol, Side.BUY, OrderType.MARKET, quote_qty=D("60006"))
    )
    # 1 BTC at 40004 then 0.5 at 40008 spends 60008 > 60006, so the second level takes 0.499
    assert [(f.price, f.qty) for f in buy.fills] == [
        (D("40004.00"), D("1")),
        (D("40008.00"), D("0.499")),
    ]
    assert buy.status is OrderStatus.FILLED and buy.qty == D("1.499")
    sell = core.submit(
        acct, OrderRequest(SPOT.symbol, Side.SELL, OrderType.MARKET, quote_qty=D("20000"))
    )
    assert sell.fills[0].qty == D("0.500") and sell.fills[0].price == D("39996.00")
    assert acct.balance("BTC").locked == 0
    assert acct.balance("BTC").free == D("1") + D("1.499") * (1 - D("0.001")) - D("0.5")
