"""The same sandbox through ccxt.async_support (what CcxtVenue and the benchmark use)."""

from __future__ import annotations

from decimal import Decimal

import ccxt

from quantdesk.venues import sandbox_client
from tests.sandbox.conftest import Admin, dec


async def test_async_spot_and_usdm_round_trip(url: str, admin: Admin) -> None:
    spot = sandbox_client("binance", url, async_=True, enableRateLimit=False)
    perp = sandbox_client("binanceusdm", url, async_=True, enableRateLimit=False)
    try:
        await spot.load_markets()
        await perp.load_markets()
        assert await spot.fetch_time() > 0
        ticker = await spot.fetch_ticker("BTC/USDT")
        assert (await spot.fetch_order_book("BTC/USDT"))["asks"][0][0] > ticker["last"]
        assert len(await spot.fetch_ohlcv("BTC/USDT", "5m", limit=3)) == 3
        order = await spot.create_order("BTC/USDT", "limit", "buy", 0.01, 30000)
        assert (await spot.fetch_open_orders("BTC/USDT"))[0]["id"] == order["id"]
        assert (await spot.cancel_order(order["id"], "BTC/USDT"))["status"] == "canceled"
        bought = await spot.create_order("BTC/USDT", "market", "buy", 0.01)
        assert len(await spot.fetch_my_trades("BTC/USDT")) == len(bought["info"]["fills"])
        balance = await spot.fetch_balance()
        assert dec(balance["BTC"]["total"]) == Decimal("1.00999")

        await perp.set_leverage(3, "ETH/USDT:USDT")
        await perp.create_order("ETH/USDT:USDT", "market", "sell", 1)
        [pos] = await perp.fetch_positions(["ETH/USDT:USDT"])
        assert pos["side"] == "short" and pos["leverage"] == 3
        assert (await perp.fetch_funding_rate("ETH/USDT:USDT"))["fundingRate"] is not None
        assert len(await perp.fetch_funding_rate_history("ETH/USDT:USDT")) > 0
        try:
            await perp.fetch_order("999", "ETH/USDT:USDT")
        except ccxt.OrderNotFound:
            pass
        else:
            raise AssertionError("expected OrderNotFound")
    finally:
        await spot.close()
        await perp.close()


async def test_async_dropped_order_is_found_by_client_id(url: str, admin: Admin) -> None:
    ex = sandbox_client("binance", url, async_=True, enableRateLimit=False)
    try:
        await ex.load_markets()
        admin.faults(drop_orders=1)
        try:
            await ex.create_order("BTC/USDT", "market", "buy", 0.02, params={"clientOrderId": "c1"})
        except ccxt.NetworkError:
            pass
        else:
            raise AssertionError("the response should have been dropped")
        found = await ex.fetch_order(None, "BTC/USDT", {"clientOrderId": "c1"})
        assert found["status"] == "closed" and found["filled"] == 0.02
        assert dec((await ex.fetch_balance())["BTC"]["total"]) == Decimal("1") + Decimal("0.02") * (
            1 - Decimal("0.001")
        )
    finally:
        await ex.close()
