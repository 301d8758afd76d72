"""CcxtVenue against the sandbox over HTTP with real ccxt: orders, itemized fills, limits,
balances, and the order manager surviving the sandbox's injected faults without doubling."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from decimal import Decimal as D
from decimal import getcontext

import pytest

from quantdesk.engine.order_manager import MemoryJournal, OrderManager
from quantdesk.model import (
    Order,
    OrderStatus,
    OrderType,
    RetryPolicy,
    Side,
    VenueRefused,
    client_order_id,
)
from quantdesk.venues import sandbox_client
from quantdesk.venues.ccxt_venue import CcxtVenue
from tests.sandbox.conftest import Admin, admin, sandbox, url  # noqa: F401

S = OrderStatus
BTC = "BTC/USDT"
# generous: a loaded CI machine answers slowly; only the hang fault waits it out (once)
TIMEOUT_MS = 4000


@pytest.fixture
async def venue(url: str, admin: Admin) -> AsyncIterator[CcxtVenue]:  # noqa: F811
    ex = sandbox_client("binance", url, async_=True, enableRateLimit=False, timeout=TIMEOUT_MS)
    v = CcxtVenue(ex, "sandbox")
    await v.load()
    yield v
    await v.close()


def order(seq: int, amount: str, type_: OrderType = OrderType.MARKET, **kw: object) -> Order:
    return Order(
        client_order_id=client_order_id("t", BTC, 0, seq),
        symbol=BTC,
        side=kw.pop("side", Side.BUY),  # type: ignore[arg-type]
        type=type_,
        amount=D(amount),
        created_ms=0,
        **kw,  # type: ignore[arg-type]
    )


async def no_sleep(_: float) -> None:
    return None


def manager(venue: CcxtVenue, journal: MemoryJournal) -> OrderManager:
    return OrderManager(
        venue,
        journal,
        clock=lambda: 0,
        rng=random.Random(1),
        sleep=no_sleep,
        policy=RetryPolicy(base=0.01, cap=0.05, max_attempts=6),
    )


async def venue_orders(venue: CcxtVenue) -> list[dict]:
    return await venue.exchange.fetch_orders(BTC)


async def test_market_order_fills_itemized_with_venue_trade_ids(
    venue: CcxtVenue,
    admin: Admin,  # noqa: F811
) -> None:
    o = order(1, "0.05")
    reply = await venue.create_order(o)
    assert reply.status is S.FILLED and reply.client_order_id == o.client_order_id
    venue_fills = admin("GET", "fills")
    assert sorted(f.trade_id for f in reply.fills) == sorted(str(f["tradeId"]) for f in venue_fills)
    assert reply.filled == D("0.05") == sum(D(f["qty"]) for f in venue_fills)
    # Binance charges a spot buy's fee in the asset bought
    assert {f.fee_currency for f in reply.fills} == {"BTC"}
    assert reply.fee == sum(D(f["commission"]) for f in venue_fills)
    again = await venue.fetch_order_by_client_id(BTC, o.client_order_id)
    assert again is not None and again.fills == reply.fills and again.status is S.FILLED
    assert await venue.fetch_order_by_client_id(BTC, "qd-never-sent") is None


async def test_limit_order_rests_is_listed_and_cancelled_by_client_id(venue: CcxtVenue) -> None:
    last = D(str((await venue.exchange.fetch_ticker(BTC))["last"]))
    price = venue.rules[BTC].round_price(last * D("0.95"), Side.BUY)
    o = order(2, "0.01", OrderType.LIMIT, price=price)
    reply = await venue.create_order(o)
    assert reply.status is S.NEW and reply.filled == 0 and reply.venue_order_id
    [listed] = await venue.fetch_open_orders(BTC)
    assert listed.client_order_id == o.client_order_id
    o.venue_order_id = reply.venue_order_id
    cancelled = await venue.cancel_order(o)
    assert cancelled.status is S.CANCELED
    assert await venue.fetch_open_orders() == []


async def test_precision_and_limits_refused_before_sending(venue: CcxtVenue) -> None:
    before = getcontext().copy()
    step = venue.rules[BTC].amount_step
    with pytest.raises(VenueRefused, match="step"):
        await venue.create_order(order(3, str(D("0.01") + step / 2)))
    last = D(str((await venue.exchange.fetch_ticker(BTC))["last"]))
    with pytest.raises(VenueRefused, match="notional"):
        await venue.create_order(order(4, str(step), OrderType.LIMIT, price=last.quantize(D(1))))
    assert await venue_orders(venue) == []  # nothing reached the venue
    # ccxt's formatting sets ROUND_HALF_UP on the context it runs under: kept to a copy
    assert getcontext().rounding == before.rounding and getcontext().traps == before.traps


async def test_balances_follow_fills(venue: CcxtVenue) -> None:
    before = await venue.fetch_balances()
    assert before["USDT"].total == D("100000") and before["BTC"].total == D("1")
    reply = await venue.create_order(order(5, "0.1"))
    after = await venue.fetch_balances()
    assert after["BTC"].total == D("1") + reply.filled - reply.fee
    assert after["USDT"].total == D("100000") - sum(f.notional for f in reply.fills)
    assert await venue.fetch_positions() == {}


async def test_closed_bars_only(venue: CcxtVenue, admin: Admin) -> None:  # noqa: F811
    admin.advance(30)  # half an hour into an hour: the current 1h candle is partial
    clock = admin("GET", "clock")
    bars = await venue.fetch_closed_bars(BTC, "1h", None, limit=5)
    assert bars and all(b[0] + 3_600_000 <= clock["time"] for b in bars)
    raw = await venue.exchange.fetch_ohlcv(BTC, "1h", None, 5)
    assert raw[-1][0] + 3_600_000 > clock["time"]  # the exchange does list the partial one
    minutes = await venue.fetch_closed_bars(BTC, "1m", None, limit=3)
    assert minutes[-1][0] + 60_000 == clock["time"]


# --- faults: the order manager over CcxtVenue never doubles an order --------------------------


@pytest.mark.parametrize(
    ("fault", "attempts"),
    [
        ({"drop_orders": 1}, 1),  # executed, answer lost: found by client id
        ({"hang_orders": 1}, 1),  # executed, request timed out: found by client id
        ({"reset_requests": 1}, 2),  # never executed: proven absent, resent under the same id
        ({"rate_limit_burst": 3}, 2),  # 429 on the send and on the first lookups
    ],
)
async def test_fault_on_send_places_exactly_one_order(
    venue: CcxtVenue,
    admin: Admin,  # noqa: F811
    fault: dict,
    attempts: int,
) -> None:
    journal = MemoryJournal()
    om = manager(venue, journal)
    admin.faults(**fault)
    o = await om.submit(order(6, "0.02"))
    assert o.status is S.FILLED and o.filled == D("0.02")
    assert o.submit_attempts == attempts
    placed = await venue_orders(venue)
    assert [p["clientOrderId"] for p in placed] == [o.client_order_id]
    assert len(journal.fills) == len(admin("GET", "fills")) > 0


async def test_server_errors_retried_until_placed_once(venue: CcxtVenue, admin: Admin) -> None:  # noqa: F811
    journal = MemoryJournal()
    om = manager(venue, journal)
    admin.faults(error_rate=0.5, seed=2)
    orders = [await om.submit(order(10 + i, "0.01")) for i in range(4)]
    admin("DELETE", "faults")
    await om.resolve_in_flight()
    placed = await venue_orders(venue)
    ids = [p["clientOrderId"] for p in placed]
    assert len(ids) == len(set(ids))  # never twice
    for o in orders:
        # each order is either at the venue and filled, or proven absent and rejected
        assert (o.status is S.FILLED) == (o.client_order_id in ids)
        assert o.status in (S.FILLED, S.REJECTED)
    assert sum(o.filled for o in orders) == sum(D(f["qty"]) for f in admin("GET", "fills"))
    assert any(o.status is S.FILLED for o in orders)


async def test_partial_fill_then_cancel_keeps_every_trade(venue: CcxtVenue, admin: Admin) -> None:  # noqa: F811
    last = D(str((await venue.exchange.fetch_ticker(BTC))["last"]))
    tick = venue.rules[BTC].price_tick
    ask1, ask2 = (last + 10 * tick).quantize(tick), (last + 20 * tick).quantize(tick)
    admin(
        "POST",
        "book",
        {
            "symbol": BTC,
            "bids": [[str(last - tick), "1"]],
            "asks": [[str(ask1), "0.01"], [str(ask2), "0.02"]],
        },
    )
    journal = MemoryJournal()
    om = manager(venue, journal)
    o = await om.submit(order(20, "0.05", OrderType.LIMIT, price=ask2))
    assert o.status is S.PARTIALLY_FILLED and o.filled == D("0.03")
    assert len(o.fill_ids) == 2
    assert o.average_price == (ask1 * D("0.01") + ask2 * D("0.02")) / D("0.03")
    await om.cancel(o.client_order_id)
    assert o.status is S.CANCELED and o.filled == D("0.03")
    assert len(journal.fills) == len(admin("GET", "fills")) == 2


# --- USD-M perpetuals ---------------------------------------------------------------------------

PERP = "BTC/USDT:USDT"


@pytest.fixture
async def perp_venue(url: str, admin: Admin) -> AsyncIterator[CcxtVenue]:  # noqa: F811
    ex = sandbox_client("binanceusdm", url, async_=True, enableRateLimit=False, timeout=TIMEOUT_MS)
    v = CcxtVenue(ex, "sandbox-usdm", market="usdm")
    await v.load()
    yield v
    await v.close()


def perp_order(
    seq: int, side: Side, amount: str, type_: OrderType = OrderType.MARKET, **kw: object
) -> Order:
    return Order(
        client_order_id=client_order_id("p", PERP, 0, seq),
        symbol=PERP,
        side=side,
        type=type_,
        amount=D(amount),
        created_ms=0,
        **kw,  # type: ignore[arg-type]
    )


async def test_perp_position_reduce_only_and_stop_by_client_id(perp_venue: CcxtVenue) -> None:
    opened = await perp_venue.create_order(perp_order(1, Side.SELL, "0.05"))
    assert opened.status is S.FILLED and {f.fee_currency for f in opened.fills} == {"USDT"}
    [pos] = (await perp_venue.fetch_positions()).values()
    assert (pos.symbol, pos.quantity) == (PERP, D("-0.05"))
    assert pos.entry_price == opened.average_price
    # a protective stop above the short: USD-M conditional orders live on the algo endpoints
    stop_price = perp_venue.rules[PERP].round_price(opened.average_price * D("1.05"))
    stop = perp_order(
        2, Side.BUY, "0.05", OrderType.STOP, trigger_price=stop_price, reduce_only=True
    )
    placed = await perp_venue.create_order(stop)
    assert placed.status is S.NEW and placed.client_order_id == stop.client_order_id
    found = await perp_venue.fetch_order_by_client_id(PERP, stop.client_order_id)
    assert found is not None and found.status is S.NEW
    [listed] = await perp_venue.fetch_open_engine_orders(PERP)
    assert (listed.client_order_id, listed.type, listed.trigger_price) == (
        stop.client_order_id,
        OrderType.STOP,
        stop_price,
    )
    assert (await perp_venue.cancel_order(stop)).status is S.CANCELED
    # reduce-only cannot flip the position: a larger buy only closes it
    close = perp_order(3, Side.BUY, "0.05", reduce_only=True)
    assert (await perp_venue.create_order(close)).status is S.FILLED
    assert await perp_venue.fetch_positions() == {}


async def test_make_exchange_reads_credentials_from_env_only() -> None:
    from quantdesk.config import VenueConfig
    from quantdesk.errors import ConfigError
    from quantdesk.venues.ccxt_venue import make_exchange

    config = VenueConfig(exchange="binance", market="usdm", api_key_env="K", api_secret_env="S")
    ex = make_exchange(config, {"K": "my-key", "S": "my-secret"})
    try:
        assert (ex.id, ex.apiKey, ex.secret) == ("binanceusdm", "my-key", "my-secret")
        assert ex.urls["api"]["fapiPrivate"].startswith("https://")  # the real exchange
        assert CcxtVenue(ex, "prod", market="usdm")._create_key == "newClientOrderId"
    finally:
        await ex.close()
    with pytest.raises(ConfigError, match="K"):
        make_exchange(config, {})
    with pytest.raises(ConfigError, match="unknown ccxt exchange"):
        make_exchange(VenueConfig(exchange="nosuchexchange"), {})


@pytest.mark.parametrize("sandbox_url", [None, "http://127.0.0.1:8800"])
async def test_rate_limit_ms_sets_ccxts_pacing(sandbox_url: str | None) -> None:
    from quantdesk.config import VenueConfig
    from quantdesk.venues.ccxt_venue import make_exchange

    env = {"K": "k", "S": "s"}
    base = {"exchange": "binance", "sandbox_url": sandbox_url}
    keys = {"api_key_env": "K", "api_secret_env": "S"}
    default = make_exchange(VenueConfig(**base, **keys), env)
    paced = make_exchange(VenueConfig(**base, **keys, rate_limit_ms=2), env)
    real = make_exchange(VenueConfig(exchange="binance", **keys, rate_limit_ms=3), env)
    try:
        assert default.rateLimit == 50 and default.tokenBucket["refillRate"] == 1 / 50
        assert paced.rateLimit == 2 and paced.tokenBucket["refillRate"] == 1 / 2
        assert real.rateLimit == 3  # the real exchange's client is paced the same way
    finally:
        await default.close()
        await paced.close()
        await real.close()
    with pytest.raises(ValueError, match="rate_limit_ms"):
        VenueConfig(**base, rate_limit_ms=0)
