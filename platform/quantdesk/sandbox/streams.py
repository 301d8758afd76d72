"""Binance market streams over websockets: kline, trade, aggTrade, bookTicker, depth diffs
(U/u sequence numbers matching the REST snapshot's lastUpdateId) and USD-M markPrice.

Spot streams are served at `/ws[/<name>]` and `/stream?streams=a/b`, USD-M ones under
`/fstream/` (also `/fstream/public/ws` and `/fstream/market/ws`, the paths ccxt.pro builds).
Clients SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS as on Binance. A pump follows the clock:
every replayed bar is sent once to its subscribers; the update id is the bar index, so a depth
event's U..u spans the bars replayed since the previous one.

User data streams (events from userstream.py): spot at `/ws/<listenKey>` and on the WebSocket
API `/ws-api/v3` (`userDataStream.subscribe.signature`, what ccxt.pro's binance uses; events
arrive as `{"subscriptionId", "event"}`), USD-M at `/fstream/ws/<listenKey>` and
`/fstream/private/ws?listenKey=` (ccxt.pro's binanceusdm). An expired or deleted listenKey
gets `listenKeyExpired` and its streams are closed. Faults: `stream_disconnects`,
`stream_stall_ms` (market and user streams alike), `depth_gaps` (see faults.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from quantdesk.sandbox import formats as fmt
from quantdesk.sandbox.errors import BinanceError
from quantdesk.sandbox.market import MINUTE_MS
from quantdesk.sandbox.state import Sandbox
from quantdesk.sandbox.userstream import NO_LISTEN_KEY, verify_ws_signature
from quantdesk.venues import sandbox_pro_client
from quantdesk.venues.models import MarketSpec

PUMP_S = 0.02  # how often the pump looks at the clock
LISTEN_KEY_MIN = 20  # Binance's listenKeys are 60-64 characters
HUB_KEY = web.AppKey("stream_hub", object)  # the app's StreamHub (admin: GET /sandbox/streams)


@dataclass
class _Client:
    ws: web.WebSocketResponse
    futures: bool
    combined: bool
    streams: set[str] = field(default_factory=set)
    listen_key: str | None = None  # a user data stream connection
    # WebSocket API: subscriptionId -> (api key, last user event before it subscribed)
    subs: dict[int, tuple[str, int]] = field(default_factory=dict)
    since: int = 0  # the listenKey stream: last user event before it connected


class StreamHub:
    """Subscriptions of every connected client, and the pump that feeds them."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox
        self.clients: list[_Client] = []
        self.sent_index = sandbox.index
        self._resets = sandbox.resets
        self._sub_ids = itertools.count(0)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One websocket connection: named streams from the path or query, then requests."""
        path = request.path
        futures = path.startswith("/fstream")
        combined = path.rstrip("/").endswith("/stream")
        tail = path.split("/ws/", 1)[1] if "/ws/" in path else ""
        names = request.query.get("streams", "").split("/") + tail.split("/")
        # a long name without "@" is a listenKey (Binance: /ws/<listenKey>, ?listenKey=);
        # short ones are ccxt.pro's stream numbers (/ws/0)
        keys = [n for n in names if len(n) >= LISTEN_KEY_MIN and "@" not in n]
        if request.query.get("listenKey"):
            keys.append(request.query["listenKey"])
        listen_key = None
        if keys:
            lk = self.sb.listen_keys.get(keys[0])
            if lk is None or lk.futures != futures:
                status, code, msg = NO_LISTEN_KEY
                return web.json_response({"code": code, "msg": msg}, status=status)
            listen_key = lk.key
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        client = _Client(ws, futures, combined, listen_key=listen_key)
        client.since = self.sb.user_events.seq
        client.streams |= {n for n in names if "@" in n}
        self.clients.append(client)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._request(client, msg.data)
        finally:
            with suppress(ValueError):  # the disconnect fault may have removed it already
                self.clients.remove(client)
        return ws

    async def handle_api(self, request: web.Request) -> web.WebSocketResponse:
        """The spot WebSocket API, as far as user data streams go: subscribe by signature."""
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        client = _Client(ws, False, False)
        self.clients.append(client)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await ws.send_json(self._api_request(client, msg.data))
        finally:
            with suppress(ValueError):  # the disconnect fault may have removed it already
                self.clients.remove(client)
        return ws

    def view(self) -> list[dict[str, Any]]:
        """What each connected client listens to (GET /sandbox/streams): a test or an operator
        waits on a subscription instead of sleeping until it has surely landed."""
        return [
            {
                "futures": c.futures,
                "streams": sorted(c.streams),
                "user_stream": c.listen_key is not None,
                "user_subscriptions": len(c.subs),
            }
            for c in self.clients
            if not c.ws.closed  # a client that said goodbye is no longer listening
        ]

    def _api_request(self, client: _Client, text: str) -> dict[str, Any]:
        try:
            req = json.loads(text)
            method, rid = req["method"], req.get("id")
            params = req.get("params") or {}
            if not isinstance(params, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError):
            return _api_error(None, BinanceError(400, -1000, "Malformed request."))
        try:
            if method == "userDataStream.subscribe.signature":
                key = verify_ws_signature(self.sb.secrets, params, self.sb.server_ms())
                # Binance allows one subscription per account and connection; the error codes
                # here (-1210, -2035, -1020) are the sandbox's, not confirmed from Binance's docs
                if any(k == key for k, _ in client.subs.values()):
                    raise BinanceError(400, -1210, "User Data Stream subscription already active.")
                sid = next(self._sub_ids)
                client.subs[sid] = (key, self.sb.user_events.seq)
                result: Any = {"subscriptionId": sid}
            elif method == "userDataStream.unsubscribe":
                sid = params.get("subscriptionId")
                if sid is None:
                    client.subs.clear()
                elif client.subs.pop(sid, None) is None:
                    raise BinanceError(400, -2035, "User Data Stream subscription not active.")
                result = {}
            elif method == "session.subscriptions":
                result = [{"subscriptionId": sid} for sid in client.subs]
            elif method == "ping":
                result = {}
            else:
                raise BinanceError(400, -1020, "This operation is not supported.")
        except BinanceError as exc:
            return _api_error(rid, exc)
        return {"id": rid, "status": 200, "result": result}

    async def _request(self, client: _Client, text: str) -> None:
        try:
            req = json.loads(text)
            method, rid = req["method"], req.get("id")
        except (ValueError, KeyError, TypeError):
            await client.ws.send_json({"code": 3, "msg": "Invalid JSON: expected a request"})
            return
        params = req.get("params") or []
        if method == "SUBSCRIBE":
            client.streams |= set(params)
            reply: Any = None
        elif method == "UNSUBSCRIBE":
            client.streams -= set(params)
            reply = None
        elif method == "LIST_SUBSCRIPTIONS":
            reply = sorted(client.streams)
        else:
            await client.ws.send_json({"code": 2, "msg": f"Invalid request: {method}", "id": rid})
            return
        await client.ws.send_json({"result": reply, "id": rid})

    async def pump(self) -> None:
        """Follow the clock forever, publishing each newly replayed bar."""
        while True:
            await asyncio.sleep(PUMP_S)
            if self.sb.resets != self._resets:
                # an admin reset rewound the clock: publish from its start, including bars
                # advanced since the reset and before this look
                self._resets = self.sb.resets
                self.sent_index = self.sb.start_index
            faults = self.sb.faults
            if faults.stream_stall_ms:
                stall, faults.stream_stall_ms = faults.stream_stall_ms, 0
                await asyncio.sleep(stall / 1000)
            self.sb.sync()
            user = self.sb.user_events.drain()
            new_bars = self.sb.index > self.sent_index
            # user events only count as a publish when some connection takes user data
            user = user if any(c.listen_key or c.subs for c in self.clients) else []
            if (new_bars or user) and self.clients:
                await self._drop(faults)
            if new_bars and self.clients:
                await self._publish(self.sent_index + 1, self.sb.index)
            self.sent_index = max(self.sent_index, self.sb.index)
            if user:
                await self._publish_user(user)
            await self._expire()

    async def _drop(self, faults: Any) -> None:
        """The disconnect fault: close the oldest connections without a goodbye."""
        while faults.stream_disconnects and self.clients:
            faults.stream_disconnects -= 1
            client = self.clients.pop(0)
            with suppress(ConnectionError, RuntimeError):
                await client.ws.close(code=1006)

    async def _publish_user(self, events: list[tuple[int, str, bool, dict]]) -> None:
        """Each account's events to its listenKey streams and WebSocket API subscriptions."""
        keys = self.sb.listen_keys
        for client in list(self.clients):
            lk = keys.get(client.listen_key) if client.listen_key else None
            for seq, account, futures, data in events:
                out = []
                mine = lk is not None and (lk.account, lk.futures) == (account, futures)
                if mine and seq > client.since:
                    out.append({"stream": lk.key, "data": data} if client.combined else data)
                if not futures:
                    out += [{"subscriptionId": i, "event": data}
                            for i, (k, since) in client.subs.items()
                            if k == account and seq > since]  # fmt: skip
                for payload in out:
                    with suppress(ConnectionError, RuntimeError):
                        await client.ws.send_str(json.dumps(payload, separators=(",", ":")))

    async def _expire(self) -> None:
        """Close the streams of listenKeys that expired or were deleted, as Binance does."""
        for client in [c for c in self.clients if c.listen_key]:
            key = client.listen_key
            if key is None or self.sb.listen_keys.get(key) is not None:
                continue
            client.listen_key = None
            event = {"e": "listenKeyExpired", "E": self.sb.now_ms(), "listenKey": key}
            with suppress(ConnectionError, RuntimeError):
                await client.ws.send_str(json.dumps(event, separators=(",", ":")))
                await client.ws.close()

    async def _publish(self, first: int, last: int) -> None:
        for spec in self.sb.core.markets.values():
            wanted = {
                s
                for c in self.clients
                if c.futures == spec.perp
                for s in c.streams
                if s.startswith(spec.id.lower() + "@")
            }
            if not wanted:
                continue
            events = self._events(spec, wanted, first, last)
            for client in self.clients:
                if client.futures != spec.perp:
                    continue
                for name, data in events:
                    if name in client.streams:
                        payload = {"stream": name, "data": data} if client.combined else data
                        with suppress(ConnectionError, RuntimeError):
                            await client.ws.send_str(json.dumps(payload, separators=(",", ":")))

    def _events(
        self, spec: MarketSpec, wanted: set[str], first: int, last: int
    ) -> list[tuple[str, dict]]:
        sb, sid = self.sb, spec.id
        series = sb.series[spec.symbol]
        now = sb.now_ms()
        out: list[tuple[str, dict]] = []
        for name in sorted(wanted):
            channel = name.split("@", 1)[1]
            if channel.startswith("kline_"):
                interval = channel[len("kline_") :]
                for i in range(first, last + 1):
                    rows = series.klines(interval, i, None, None, 1)
                    if rows:
                        out.append((name, _kline(sid, interval, rows[-1], i, series, now)))
            elif channel in ("trade", "aggTrade"):
                for i in range(first, last + 1):
                    bar = series.bar(i)
                    t = int(series.times[i]) + MINUTE_MS - 1
                    common = {"E": now, "s": sid, "p": fmt.s(bar.close), "q": fmt.s(bar.volume)}
                    common |= {"T": t, "m": bar.close < bar.open}
                    if channel == "trade":
                        out.append((name, {"e": "trade", "t": i, **common, "M": True}))
                    else:
                        out.append((name, {"e": "aggTrade", "a": i, "f": i, "l": i, **common}))
            elif channel == "bookTicker":
                book = sb.book(spec.symbol)
                bid, ask = book.bids[0], book.asks[0]
                data = {"u": last, "s": sid, "b": fmt.s(bid[0]), "B": fmt.s(bid[1])}
                data |= {"a": fmt.s(ask[0]), "A": fmt.s(ask[1])}
                if spec.perp:
                    data = {"e": "bookTicker", "E": now, "T": now, **data}
                out.append((name, data))
            elif channel.startswith("depth") and not channel[5:6].isdigit():
                out.append((name, self._depth_diff(spec, first, last, now)))
            elif channel.startswith("markPrice") and spec.perp:
                out.append((name, _mark_price(sb, spec, now)))
        return out

    def _depth_diff(self, spec: MarketSpec, first: int, last: int, now: int) -> dict:
        """The whole book at `last`, plus quantity 0 for every price a book served since the
        previous event had and this one has not: right for a snapshot taken at any of them."""
        book = self.sb.book(spec.symbol)
        served = self.sb.book_prices.get(spec.symbol, {})
        gone_bids: set[Decimal] = set()
        gone_asks: set[Decimal] = set()
        for i, (bids, asks) in served.items():
            if first - 1 <= i < last:
                gone_bids |= bids
                gone_asks |= asks
        sides = []
        for levels, gone in ((book.bids, gone_bids), (book.asks, gone_asks)):
            now_prices = {p for p, _ in levels}
            rows = [[fmt.s(p), fmt.s(q)] for p, q in levels]
            sides.append(rows + [[fmt.s(p), "0"] for p in sorted(gone - now_prices)])
        if self.sb.faults.take("depth_gaps"):
            first += 1  # one update id never published: clients must resync from REST
        data = {"e": "depthUpdate", "E": now, "s": spec.id, "U": first, "u": last}
        data |= {"b": sides[0], "a": sides[1]}
        if spec.perp:
            data |= {"T": now, "pu": first - 1}
        return data


def _api_error(rid: Any, exc: BinanceError) -> dict[str, Any]:
    return {"id": rid, "status": exc.status, "error": {"code": exc.code, "msg": exc.msg}}


def _kline(sid: str, interval: str, row: list, i: int, series: Any, now: int) -> dict:
    closed = row[6] == int(series.times[i]) + MINUTE_MS - 1
    k = {
        "t": row[0], "T": row[6], "s": sid, "i": interval, "f": -1, "L": -1,
        "o": row[1], "c": row[4], "h": row[2], "l": row[3], "v": row[5], "n": row[8],
        "x": closed, "q": row[7], "V": row[9], "Q": row[10], "B": "0",
    }  # fmt: skip
    return {"e": "kline", "E": now, "s": sid, "k": k}


def _mark_price(sb: Sandbox, spec: MarketSpec, now: int) -> dict:
    from quantdesk.sandbox.api import _next_funding

    nxt, rate = _next_funding(sb, spec)
    spot = sb.core.bars.get(f"{spec.base}/{spec.quote}")
    mark = sb.core.mark(spec.symbol)
    return {
        "e": "markPriceUpdate", "E": now, "s": spec.id, "p": fmt.s(mark),
        "i": fmt.s(spot.close if spot else mark), "P": fmt.s(mark),
        "r": fmt.s(rate), "T": nxt,
    }  # fmt: skip


def add_stream_routes(app: web.Application, sandbox: Sandbox) -> None:
    """Serve the market streams on app and run the pump while the app runs."""
    hub = StreamHub(sandbox)
    app[HUB_KEY] = hub
    for path in ("/ws", "/ws/{tail:.*}", "/stream", "/fstream/{tail:.*}"):
        app.router.add_get(path, hub.handle)
    app.router.add_get("/ws-api/v3", hub.handle_api)

    async def pump_ctx(app: web.Application) -> Any:
        task = asyncio.create_task(hub.pump())
        yield
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(pump_ctx)


def pro_client(exchange: str, url: str, key: str = "sandbox-key", secret: str = "sandbox-secret",
               **config: Any) -> Any:  # fmt: skip
    """A ccxt.pro binance / binanceusdm client whose REST and stream URLs point at the sandbox."""
    return sandbox_pro_client(exchange, url, key, secret, **config)
