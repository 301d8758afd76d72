"""Market streams over websockets, through ccxt.pro and raw Binance stream requests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from quantdesk.sandbox import Sandbox
from quantdesk.sandbox.streams import pro_client
from tests.sandbox.conftest import Admin, landed

BTC, PERP = "BTC/USDT", "BTC/USDT:USDT"


async def _advance(admin: Admin, *streams: str, bars: int = 1) -> None:
    await landed(admin, *streams)  # an event before its subscription lands is not sent
    for _ in range(bars):
        await asyncio.to_thread(admin.advance, 1)
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(("exchange", "symbol"), [("binance", BTC), ("binanceusdm", PERP)])
async def test_pro_watch_ohlcv_and_trades(url: str, admin: Admin, sandbox: Sandbox,
                                          exchange: str, symbol: str) -> None:  # fmt: skip
    ex = pro_client(exchange, url)
    try:
        await ex.load_markets()
        watch = asyncio.ensure_future(ex.watch_ohlcv(symbol, "1m"))
        await _advance(admin, "@kline_1m")
        candle = (await asyncio.wait_for(watch, 10))[-1]
        i = sandbox.index
        bar = sandbox.series[symbol].bar(i)
        assert candle[0] == int(sandbox.series[symbol].times[i])
        assert (candle[1], candle[4]) == (float(bar.open), float(bar.close))
        watch = asyncio.ensure_future(ex.watch_trades(symbol))
        await _advance(admin, "trade")
        trade = (await asyncio.wait_for(watch, 10))[-1]
        assert trade["price"] == float(sandbox.series[symbol].bar(sandbox.index).close)
    finally:
        await ex.close()


@pytest.mark.parametrize(("exchange", "symbol"), [("binance", BTC), ("binanceusdm", PERP)])
async def test_pro_watch_order_book_follows_the_rest_book(url: str, admin: Admin,
                                                          sandbox: Sandbox, exchange: str,
                                                          symbol: str) -> None:  # fmt: skip
    ex = pro_client(exchange, url)
    try:
        await ex.load_markets()
        watch = asyncio.ensure_future(ex.watch_order_book(symbol))
        await _advance(admin, "@depth", bars=3)
        book = await asyncio.wait_for(watch, 10)
        for _ in range(20):  # the cached book catches up with the last event
            if book["nonce"] == sandbox.index:
                break
            book = await asyncio.wait_for(ex.watch_order_book(symbol), 10)
        assert book["nonce"] == sandbox.index
        rest = await ex.fetch_order_book(symbol, 1000)
        assert book["bids"][:50] == rest["bids"][:50] and book["asks"][:50] == rest["asks"][:50]
        assert len(book["bids"]) == len(rest["bids"])  # stale levels were removed
    finally:
        await ex.close()


async def _recv(ws: aiohttp.ClientWebSocketResponse) -> Any:
    return json.loads((await asyncio.wait_for(ws.receive(), 10)).data)


async def test_raw_streams_subscribe_combined_and_depth_sequence(url: str, admin: Admin) -> None:
    async with aiohttp.ClientSession() as http:
        combined = f"{url}/stream?streams=btcusdt@kline_5m/btcusdt@bookTicker"
        async with http.ws_connect(combined) as ws, http.ws_connect(f"{url}/ws") as raw:
            await raw.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@depth"], "id": 7})
            assert await _recv(raw) == {"result": None, "id": 7}
            await raw.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 8})
            assert await _recv(raw) == {"result": ["ethusdt@depth"], "id": 8}
            await _advance(admin, "@kline_5m", "@bookTicker", "ethusdt@depth", bars=3)
            got = [await _recv(ws) for _ in range(2)]
            assert {g["stream"] for g in got} == {"btcusdt@kline_5m", "btcusdt@bookTicker"}
            kline = next(g["data"]["k"] for g in got if g["stream"].endswith("kline_5m"))
            assert kline["i"] == "5m" and kline["t"] % 300_000 == 0
            events = [await _recv(raw) for _ in range(2)]
            assert all(e["e"] == "depthUpdate" and e["s"] == "ETHUSDT" for e in events)
            assert events[1]["U"] == events[0]["u"] + 1  # no gap in the sequence


async def test_futures_mark_price_stream(url: str, admin: Admin, sandbox: Sandbox) -> None:
    stream = f"{url}/fstream/market/ws/btcusdt@markPrice@1s"
    async with aiohttp.ClientSession() as http, http.ws_connect(stream) as ws:
        await _advance(admin, "@markPrice")
        event = await _recv(ws)
    assert event["e"] == "markPriceUpdate" and event["s"] == "BTCUSDT"
    assert float(event["p"]) == float(sandbox.core.mark(PERP))
    assert event["T"] > event["E"] and "r" in event


async def test_a_bar_advanced_right_after_a_reset_is_still_published(
    url: str, admin: Admin, sandbox: Sandbox
) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws/btcusdt@trade") as ws:
        await _advance(admin, "btcusdt@trade", bars=3)
        for _ in range(3):
            await _recv(ws)
        # reset and advance back to back, before the pump's next look at the clock
        await asyncio.to_thread(lambda: (admin("POST", "reset"), admin.advance(1)))
        event = await _recv(ws)
    assert event["p"] == str(sandbox.series[BTC].bar(sandbox.index).close)


async def test_admin_lists_each_open_stream_client_and_its_subscriptions(
    url: str, admin: Admin
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{url}/stream?streams=btcusdt@trade/ethusdt@kline_1m") as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@depth"], "id": 1})
            assert await _recv(ws) == {"result": None, "id": 1}
            clients = (await asyncio.to_thread(admin, "GET", "streams"))["clients"]
            assert clients == [
                {
                    "futures": False,
                    "streams": ["btcusdt@depth", "btcusdt@trade", "ethusdt@kline_1m"],
                    "user_stream": False,
                    "user_subscriptions": 0,
                }
            ]
        deadline = asyncio.get_running_loop().time() + 10
        while (await asyncio.to_thread(admin, "GET", "streams"))["clients"]:
            assert asyncio.get_running_loop().time() < deadline, "a closed client is still listed"
            await asyncio.sleep(0.02)
