"""User data streams: listenKeys, and real ccxt.pro watch_orders / watch_my_trades /
watch_balance / watch_positions against the sandbox, plus raw Binance stream formats."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt
import pytest
import requests

from quantdesk.sandbox import Sandbox
from quantdesk.sandbox.streams import pro_client
from tests.sandbox.conftest import KEY, Admin, dec, landed

BTC, PERP = "BTC/USDT", "BTC/USDT:USDT"


async def _until(watch: Any, done: Any, first: Any = None, timeout: float = 10) -> Any:
    """The pending `first` watch's result, or a new watch_* call's, until done(result) holds
    (updates arrive one event at a time)."""
    deadline = time.monotonic() + timeout
    while True:
        pending = first if first is not None else watch()
        first = None
        got = await asyncio.wait_for(pending, max(deadline - time.monotonic(), 0.1))
        if done(got):
            return got


def _below(sandbox: Sandbox, symbol: str, bps: int = 10) -> float:
    """A limit buy price under the market: rests now, fills once a bar trades down to it."""
    mark = sandbox.core.mark(symbol)
    tick = sandbox.core.markets[symbol].tick_size
    return float((mark * (1 - Decimal(bps) / 10_000)).quantize(tick))


# -- listenKey endpoints ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "weight"), [("/api/v3/userDataStream", 2), ("/fapi/v1/listenKey", 1)]
)
def test_listen_key_endpoints_need_the_api_key(url: str, admin: Admin, path: str,
                                               weight: int) -> None:  # fmt: skip
    missing = requests.post(url + path, timeout=10)
    assert missing.status_code == 401
    assert missing.json() == {"code": -2014, "msg": "API-key format invalid."}
    wrong = requests.post(url + path, headers={"X-MBX-APIKEY": "nobody"}, timeout=10)
    assert wrong.status_code == 401
    assert wrong.json() == {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
    auth = {"X-MBX-APIKEY": KEY}
    first = requests.post(url + path, headers=auth, timeout=10)
    again = requests.post(url + path, headers=auth, timeout=10)
    key = first.json()["listenKey"]
    assert len(key) == 60 and key.isalnum()
    assert again.json() == {"listenKey": key}  # an active key is returned again, extended
    used = int(again.headers["X-MBX-USED-WEIGHT-1M"]) - int(first.headers["X-MBX-USED-WEIGHT-1M"])
    assert used == weight
    spot = path.startswith("/api")
    query = {"listenKey": key} if spot else {}
    keep = requests.put(url + path, params=query, headers=auth, timeout=10)
    assert keep.status_code == 200 and keep.json() == ({} if spot else {"listenKey": key})
    assert requests.put(url + path, params=query, timeout=10).json()["code"] == -2014
    assert requests.delete(url + path, params=query, headers=auth, timeout=10).json() == {}
    gone = requests.put(url + path, params=query, headers=auth, timeout=10)
    assert gone.status_code == 400
    assert gone.json() == {"code": -1125, "msg": "This listenKey does not exist."}
    if spot:
        bad = requests.put(url + path, headers=auth, timeout=10).json()
        assert bad["code"] == -1102 and "listenKey" in bad["msg"]


async def test_a_stream_on_an_unknown_or_deleted_listen_key(url: str, admin: Admin) -> None:
    auth = {"X-MBX-APIKEY": KEY}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(f"{url}/fstream/ws/{'x' * 60}")
        async with http.post(f"{url}/fapi/v1/listenKey", headers=auth) as resp:
            key = (await resp.json())["listenKey"]
        with pytest.raises(aiohttp.WSServerHandshakeError):  # a USD-M key on the spot stream
            await http.ws_connect(f"{url}/ws/{key}")
        async with http.ws_connect(f"{url}/fstream/ws/{key}") as ws:
            await landed(admin, user=True)
            async with http.delete(f"{url}/fapi/v1/listenKey", headers=auth) as resp:
                assert await resp.json() == {}
            event = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
            assert event["e"] == "listenKeyExpired" and event["listenKey"] == key
            closing = await asyncio.wait_for(ws.receive(), 10)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


# -- spot through ccxt.pro (the WebSocket API subscription ccxt.pro's binance uses) ------------


async def test_watch_orders_sees_new_then_the_fill_and_watch_my_trades_the_rest_trade(
    url: str, admin: Admin, sandbox: Sandbox
) -> None:
    ex = pro_client("binance", url)
    try:
        await ex.load_markets()
        watch = asyncio.ensure_future(ex.watch_orders(BTC))
        await landed(admin, user=True)
        placed = await ex.create_order(BTC, "limit", "buy", 0.01, _below(sandbox, BTC))
        orders = await asyncio.wait_for(watch, 10)
        new = orders[-1]
        assert (new["id"], new["status"], new["filled"]) == (placed["id"], "open", 0)
        assert new["info"]["x"] == "NEW" and new["info"]["w"] is True
        assert new["price"] == placed["price"] and new["amount"] == 0.01
        trades = asyncio.ensure_future(ex.watch_my_trades(BTC))
        orders = asyncio.ensure_future(ex.watch_orders(BTC))
        await asyncio.sleep(0.1)
        for _ in range(300):  # replay bars until one trades down to the limit
            await asyncio.to_thread(admin.advance, 1)
            if not sandbox.core.open_orders:
                break
        filled = await _until(lambda: ex.watch_orders(BTC), lambda o: o[-1]["status"] == "closed",
                              orders)  # fmt: skip
        order = filled[-1]
        assert order["id"] == placed["id"] and order["filled"] == 0.01
        assert order["info"]["x"] == "TRADE" and order["info"]["X"] == "FILLED"
        mine = (await asyncio.wait_for(trades, 10))[-1]
        rest = (await ex.fetch_my_trades(BTC))[-1]
        assert mine["id"] == rest["id"] and mine["order"] == placed["id"]
        assert (mine["price"], mine["amount"]) == (rest["price"], rest["amount"])
        assert mine["fee"]["cost"] == rest["fee"]["cost"] and mine["takerOrMaker"] == "maker"
        assert mine["price"] == placed["price"]  # a resting limit fills at its own price
    finally:
        await ex.close()


async def test_watch_balance_reflects_a_market_fill(url: str, admin: Admin) -> None:
    ex = pro_client("binance", url)
    try:
        await ex.load_markets()
        before = await ex.fetch_balance()
        watch = asyncio.ensure_future(ex.watch_balance())
        await landed(admin, user=True)
        await ex.create_order(BTC, "market", "buy", 0.01)
        trade = (await ex.fetch_my_trades(BTC))[-1]
        # bought 0.01 BTC, commission paid in BTC; paid price * qty in USDT
        btc = dec(before["BTC"]["free"]) + Decimal("0.01") - dec(trade["fee"]["cost"])
        usdt = dec(before["USDT"]["free"]) - dec(trade["cost"])
        balance = await _until(
            ex.watch_balance, lambda b: "BTC" in b and dec(b["BTC"]["free"]) == btc, watch
        )
        assert dec(balance["USDT"]["free"]) == usdt and balance["BTC"]["used"] == 0
        rest = await ex.fetch_balance()
        assert dec(rest["BTC"]["free"]) == btc and dec(rest["USDT"]["free"]) == usdt
    finally:
        await ex.close()


async def test_spot_cancel_is_reported_with_the_lock_released(
    url: str, admin: Admin, sandbox: Sandbox
) -> None:
    ex = pro_client("binance", url)
    try:
        await ex.load_markets()
        watch = asyncio.ensure_future(ex.watch_orders(BTC))
        balance = asyncio.ensure_future(ex.watch_balance())
        await landed(admin, user=True)
        price = _below(sandbox, BTC, 500)
        placed = await ex.create_order(BTC, "limit", "buy", 0.02, price)
        await asyncio.wait_for(watch, 10)
        locked = await _until(ex.watch_balance, lambda b: b.get("USDT", {}).get("used"), balance)
        assert dec(locked["USDT"]["used"]) == Decimal("0.02") * Decimal(str(price))
        orders = asyncio.ensure_future(ex.watch_orders(BTC))
        balance = asyncio.ensure_future(ex.watch_balance())
        await asyncio.sleep(0.1)
        await ex.cancel_order(placed["id"], BTC)
        gone = await _until(lambda: ex.watch_orders(BTC), lambda o: o[-1]["status"] == "canceled",
                            orders)  # fmt: skip
        assert gone[-1]["info"]["C"] == placed["clientOrderId"]
        freed = await _until(ex.watch_balance, lambda b: b["USDT"]["used"] == 0, balance)
        assert dec(freed["USDT"]["free"]) == Decimal("100000")
    finally:
        await ex.close()


# -- USD-M through ccxt.pro (listenKey stream) ----------------------------------------------


async def test_usdm_watch_positions_orders_and_balance_after_a_market_order(
    url: str, admin: Admin, sandbox: Sandbox
) -> None:
    ex = pro_client("binanceusdm", url)
    try:
        await ex.load_markets()
        assert await asyncio.wait_for(ex.watch_positions([PERP]), 10) == []  # REST snapshot
        positions = asyncio.ensure_future(ex.watch_positions([PERP]))
        orders = asyncio.ensure_future(ex.watch_orders(PERP))
        balance = asyncio.ensure_future(ex.watch_balance())
        await landed(admin, user=True)
        placed = await ex.create_order(PERP, "market", "buy", 0.01)
        pos = (await asyncio.wait_for(positions, 10))[-1]
        rest = (await ex.fetch_positions([PERP]))[0]
        assert (pos["symbol"], pos["side"], pos["contracts"]) == (PERP, "long", 0.01)
        assert pos["entryPrice"] == rest["entryPrice"] and pos["marginMode"] == "cross"
        order = await _until(lambda: ex.watch_orders(PERP), lambda o: o[-1]["status"] == "closed",
                             orders)  # fmt: skip
        assert order[-1]["id"] == placed["id"] and order[-1]["info"]["x"] == "TRADE"
        assert order[-1]["average"] == rest["entryPrice"]
        account = sandbox.core.accounts[KEY]
        wallet = await asyncio.wait_for(balance, 10)
        # the wallet moved by the commission only (no realized PnL on an opening trade)
        fees = sum(dec(t["fee"]["cost"]) for t in await ex.fetch_my_trades(PERP))
        assert dec(wallet["USDT"]["total"]) == Decimal("100000") - fees == account.wallet["USDT"]
        closing = asyncio.ensure_future(ex.watch_positions([PERP]))
        await asyncio.sleep(0.1)
        await ex.create_order(PERP, "market", "sell", 0.01, params={"reduceOnly": True})
        flat = await _until(
            lambda: ex.watch_positions([PERP]), lambda p: p[-1]["contracts"] == 0, closing
        )
        # "cr": realized PnL accumulated over the symbol's fills (here the spread crossed twice)
        realized = sum(dec(t["info"]["realizedPnl"]) for t in await ex.fetch_my_trades(PERP))
        assert dec(flat[-1]["info"]["cr"]) == realized < 0
    finally:
        await ex.close()


async def test_usdm_client_keeps_its_listen_key_alive(url: str, admin: Admin,
                                                      sandbox: Sandbox) -> None:  # fmt: skip
    ex = pro_client("binanceusdm", url, options={"listenKeyRefreshRate": 400})
    try:
        await ex.load_markets()
        watch = asyncio.ensure_future(ex.watch_orders(PERP))
        await landed(admin, user=True)
        key = ex.options["linear"]["listenKey"]
        lk = sandbox.listen_keys.get(key)
        assert lk is not None and (lk.account, lk.futures) == (KEY, True)
        first = lk.expires
        deadline = time.monotonic() + 30
        while lk.expires == first:  # ccxt PUTs /fapi/v1/listenKey every listenKeyRefreshRate ms
            assert time.monotonic() < deadline, "no keepalive extended the listenKey"
            await asyncio.sleep(0.05)
        assert lk.expires > first  # extended by a keepalive
        await ex.create_order(PERP, "market", "sell", 0.01)
        assert (await asyncio.wait_for(watch, 10))[-1]["side"] == "sell"
    finally:
        await ex.close()


# -- faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("exchange", "symbol"), [("binance", BTC), ("binanceusdm", PERP)])
async def test_a_dropped_user_stream_is_survived_by_watching_again(
    url: str, admin: Admin, exchange: str, symbol: str
) -> None:
    ex = pro_client(exchange, url)
    try:
        await ex.load_markets()
        first = asyncio.ensure_future(ex.watch_orders(symbol))
        await landed(admin, user=True)
        admin.faults(stream_disconnects=1)
        await ex.create_order(symbol, "market", "buy", 0.01)
        # ccxt.pro rejects the pending watch with a NetworkError when the connection drops;
        # the event published at that moment is lost (REST fetch_orders backfills it)
        with pytest.raises(ccxt.NetworkError):
            await asyncio.wait_for(first, 10)
        assert admin("GET", "faults")["stream_disconnects"] == 0
        again = asyncio.ensure_future(ex.watch_orders(symbol))  # reconnects and resubscribes
        await landed(admin, user=True)
        placed = await ex.create_order(symbol, "market", "sell", 0.01)
        seen = await _until(lambda: ex.watch_orders(symbol), lambda o: o[-1]["id"] == placed["id"],
                            again)  # fmt: skip
        assert seen[-1]["side"] == "sell"
    finally:
        await ex.close()


async def test_stall_fault_holds_user_events_then_delivers_them_in_order(
    url: str, admin: Admin, client: Any
) -> None:
    rest = client("binance")
    auth = {"X-MBX-APIKEY": KEY}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/v3/userDataStream", headers=auth) as resp:
            key = (await resp.json())["listenKey"]
        async with http.ws_connect(f"{url}/ws/{key}") as ws:
            await landed(admin, user=True)
            admin.faults(stream_stall_ms=1000)
            start = time.monotonic()
            await asyncio.to_thread(rest.create_order, BTC, "market", "buy", 0.01)
            events = [json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
                      for _ in range(3)]  # fmt: skip
            assert time.monotonic() - start >= 0.8
    kinds = [(e["e"], e.get("x")) for e in events]
    assert kinds == [
        ("executionReport", "NEW"),
        ("executionReport", "TRADE"),
        ("outboundAccountPosition", None),
    ]
    trade = rest.fetch_my_trades(BTC)[-1]
    report = events[1]
    assert report["t"] == int(trade["id"]) and report["i"] == int(trade["order"])
    assert Decimal(report["l"]) == Decimal("0.01") and report["X"] == "FILLED"
    assert Decimal(report["Z"]) == Decimal(report["Y"]) == dec(trade["cost"])
    assert report["N"] == "BTC" and dec(report["n"]) == dec(trade["fee"]["cost"])
    assert {b["a"] for b in events[2]["B"]} == {"BTC", "USDT"}


async def test_ws_api_refuses_a_bad_signature(url: str, admin: Admin) -> None:
    params = {"apiKey": KEY, "timestamp": int(time.time() * 1000), "signature": "0" * 64}
    request = {"id": "1", "method": "userDataStream.subscribe.signature", "params": params}
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws-api/v3") as ws:
        await ws.send_json(request)
        answer = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        await ws.send_json({"id": 2, "method": "session.subscriptions"})
        listed = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
    assert answer == {
        "id": "1",
        "status": 400,
        "error": {"code": -1022, "msg": "Signature for this request is not valid."},
    }
    assert listed == {"id": 2, "status": 200, "result": []}


async def test_usdm_raw_stream_reports_deposits_and_funding(
    url: str, admin: Admin, sandbox: Sandbox, client: Any
) -> None:
    perp = client("binanceusdm")
    perp.create_order(PERP, "market", "buy", 0.05)
    auth = {"X-MBX-APIKEY": KEY}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/fapi/v1/listenKey", headers=auth) as resp:
            key = (await resp.json())["listenKey"]
        async with http.ws_connect(f"{url}/fstream/private/ws?listenKey={key}") as ws:
            await landed(admin, user=True)
            body = {"api_key": KEY, "balances": {"USDT": "20000"}, "futures": True}
            await asyncio.to_thread(admin, "POST", "balances", body)
            deposit = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
            ptr = sandbox.funding_next[PERP]
            due = int(sandbox.series[PERP].funding_times[ptr])
            await asyncio.to_thread(admin.advance, (due - sandbox.now_ms()) // 60_000 + 1)
            funding = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
    assert deposit["e"] == "ACCOUNT_UPDATE" and deposit["a"]["m"] == "DEPOSIT"
    assert deposit["a"]["B"] == [{"a": "USDT", "wb": "20000", "cw": "20000", "bc": "0"}]
    assert funding["e"] == "ACCOUNT_UPDATE" and funding["a"]["m"] == "FUNDING_FEE"
    assert funding["a"]["P"] == []  # a cross position's funding pushes the balance only
    paid = perp.fetch_funding_history(PERP)[-1]
    wallet = Decimal(funding["a"]["B"][0]["wb"])
    assert wallet - Decimal("20000") == dec(paid["amount"]) != 0
    assert wallet == sandbox.core.accounts[KEY].wallet["USDT"]


async def test_a_listen_key_without_keepalive_expires(
    url: str, admin: Admin, sandbox: Sandbox
) -> None:
    auth = {"X-MBX-APIKEY": KEY}
    ttl = sandbox.listen_keys.ttl_s
    sandbox.listen_keys.ttl_s = 1.0  # Binance: 60 minutes
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/api/v3/userDataStream", headers=auth) as resp:
                key = (await resp.json())["listenKey"]
            async with http.ws_connect(f"{url}/ws/{key}") as ws:
                start = time.monotonic()
                event = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
                waited = time.monotonic() - start
            async with http.put(f"{url}/api/v3/userDataStream", params={"listenKey": key},
                                headers=auth) as resp:  # fmt: skip
                late = await resp.json()
    finally:
        sandbox.listen_keys.ttl_s = ttl
    assert event == {"e": "listenKeyExpired", "E": event["E"], "listenKey": key}
    assert 0.5 < waited < 5
    assert late == {"code": -1125, "msg": "This listenKey does not exist."}


async def test_combined_stream_wraps_and_carries_only_later_events(
    url: str, admin: Admin, client: Any
) -> None:
    rest = client("binance")
    auth = {"X-MBX-APIKEY": KEY}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/api/v3/userDataStream", headers=auth) as resp:
            key = (await resp.json())["listenKey"]
        before = await asyncio.to_thread(rest.create_order, BTC, "market", "buy", 0.01)
        async with http.ws_connect(f"{url}/stream?streams={key}") as ws:
            after = await asyncio.to_thread(rest.create_order, BTC, "market", "sell", 0.01)
            first = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
    assert first["stream"] == key and first["data"]["e"] == "executionReport"
    assert first["data"]["i"] == int(after["id"]) != int(before["id"])
    assert (first["data"]["x"], first["data"]["S"]) == ("NEW", "SELL")
