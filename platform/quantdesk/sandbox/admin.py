"""The /sandbox/ admin endpoints: a bearer token on every call, every body field validated.

Admin calls can move money and the clock, so each needs `Authorization: Bearer <token>` (the
token `quantdesk sandbox` prints at start or takes from QUANTDESK_SANDBOX_ADMIN_TOKEN). Bodies
are JSON objects; an unknown key, a wrong type or an out-of-range value is a 400 naming it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from quantdesk.errors import ConfigError
from quantdesk.model import dec
from quantdesk.sandbox import formats as fmt
from quantdesk.sandbox.faults import Faults
from quantdesk.sandbox.state import Sandbox
from quantdesk.sandbox.streams import HUB_KEY

SANDBOX_KEY = web.AppKey("sandbox", Sandbox)
AdminHandler = Callable[[Sandbox, web.Request], Awaitable[Any]]
MAX_AMOUNT = Decimal("1e15")  # far above any balance a rehearsal needs, far below overflow
MAX_WEIGHT_LIMIT = 10**9
MAX_BARS = 10**8


class AdminInputError(ConfigError):
    """An admin request body that does not validate (answered 400)."""


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, separators=(",", ":")), status=status, content_type="application/json"
    )


def authorized(request: web.Request, token: str) -> bool:
    """Does the request carry the admin bearer token? (constant-time compare)"""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


async def _body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise AdminInputError("body must be JSON") from None
    if not isinstance(data, dict):
        raise AdminInputError("body must be a JSON object")
    unknown = set(data) - allowed
    if unknown:
        raise AdminInputError(f"unknown field(s): {', '.join(sorted(unknown))}")
    return data


def integer(data: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    """data[name] as an int within lo..hi (JSON booleans and fractions are refused)."""
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdminInputError(f"{name} must be an integer")
    if not lo <= value <= hi:
        raise AdminInputError(f"{name} must be within {lo}..{hi}")
    return value


def amount(value: Any, what: str, positive: bool = False) -> Decimal:
    """A JSON number or numeric string as a finite Decimal in 0..MAX_AMOUNT."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise AdminInputError(f"{what} must be a number")
    try:
        out = dec(value)
    except InvalidOperation:
        raise AdminInputError(f"{what}: {value!r} is not a number") from None
    if not out.is_finite() or out < 0 or out > MAX_AMOUNT or (positive and out == 0):
        low = "above 0" if positive else "0"
        raise AdminInputError(f"{what} must be within {low}..{MAX_AMOUNT:f}")
    return out


def _account_key(sb: Sandbox, key: Any) -> str:
    if not isinstance(key, str) or key not in sb.core.accounts:
        raise AdminInputError("unknown api_key")
    return key


def _levels(rows: Any, what: str, descending: bool) -> list[list[Decimal]]:
    if not isinstance(rows, list):
        raise AdminInputError(f"{what} must be a list of [price, qty]")
    out = []
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) != 2:
            raise AdminInputError(f"{what} must be a list of [price, qty]")
        out.append([amount(row[0], f"{what} price", True), amount(row[1], f"{what} qty", True)])
    prices = [p for p, _ in out]
    ordered = sorted(set(prices), reverse=descending)
    if prices != ordered:
        order = "descending" if descending else "ascending"
        raise AdminInputError(f"{what} prices must be distinct and {order}")
    return out


def _clock_view(sb: Sandbox) -> dict[str, Any]:
    return {"time": sb.now_ms(), "index": sb.index, "bars": sb.n_bars, "speed": sb.clock.speed}


async def clock(sb: Sandbox, request: web.Request) -> Any:
    """GET /sandbox/clock."""
    sb.sync()
    return _clock_view(sb)


async def advance(sb: Sandbox, request: web.Request) -> Any:
    """POST /sandbox/advance {"bars": n}."""
    bars = integer(await _body(request, {"bars"}), "bars", 1, 0, MAX_BARS)
    sb.sync()
    sb.advance(bars)
    return _clock_view(sb)


async def reset(sb: Sandbox, request: web.Request) -> Any:
    """POST /sandbox/reset."""
    sb.reset()
    return _clock_view(sb)


async def balances(sb: Sandbox, request: web.Request) -> Any:
    """POST /sandbox/balances {"api_key", "balances": {asset: amount}, "futures": bool}."""
    data = await _body(request, {"api_key", "balances", "futures"})
    account = sb.core.accounts[_account_key(sb, data.get("api_key"))]
    given = data.get("balances")
    if not isinstance(given, dict) or not given:
        raise AdminInputError("balances must be a non-empty object {asset: amount}")
    amounts = {}
    for asset, value in given.items():
        if not (asset.isascii() and asset.isalnum() and asset.isupper() and len(asset) <= 20):
            raise AdminInputError(f"asset {asset!r} must be upper-case letters and digits")
        amounts[asset] = amount(value, f"balance {asset}")
    futures = data.get("futures", False)
    if not isinstance(futures, bool):
        raise AdminInputError("futures must be true or false")
    if futures:
        sb.core.set_balances(account, {}, amounts)
    else:
        sb.core.set_balances(account, amounts, None)
    return {"ok": True}


async def book(sb: Sandbox, request: web.Request) -> Any:
    """POST /sandbox/book {"symbol", "bids": [[p, q]], "asks": [[p, q]]}."""
    data = await _body(request, {"symbol", "bids", "asks"})
    symbol = data.get("symbol")
    if not isinstance(symbol, str) or symbol not in sb.core.markets:
        raise AdminInputError(f"unknown symbol {symbol!r}: use {', '.join(sb.core.markets)}")
    bids = _levels(data.get("bids", []), "bids", descending=True)
    asks = _levels(data.get("asks", []), "asks", descending=False)
    if bids and asks and bids[0][0] >= asks[0][0]:
        raise AdminInputError("the book is crossed: best bid must be below best ask")
    sb.sync()
    sb.set_book(symbol, bids, asks)
    return {"ok": True}


async def faults_get(sb: Sandbox, request: web.Request) -> Any:
    """GET /sandbox/faults."""
    return sb.faults.as_dict()


async def faults_set(sb: Sandbox, request: web.Request) -> Any:
    """POST /sandbox/faults {...}: replaces the active faults."""
    data = await _body(request, set(Faults().as_dict()))
    sb.faults = Faults.from_dict(data)
    return sb.faults.as_dict()


async def faults_clear(sb: Sandbox, request: web.Request) -> Any:
    """DELETE /sandbox/faults: no faults, weights forgotten."""
    sb.faults = Faults()
    for limiter in (sb.limiter, sb.futures_limiter):
        limiter.reset()
    return sb.faults.as_dict()


async def limits(sb: Sandbox, request: web.Request) -> Any:
    """POST /sandbox/limits {"weight_limit", "strikes"}."""
    data = await _body(request, {"weight_limit", "futures_weight_limit", "strikes"})
    limit = integer(data, "weight_limit", sb.limiter.limit, 1, MAX_WEIGHT_LIMIT)
    # weight_limit alone lifts (or lowers) both markets; futures_weight_limit sets USD-M apart
    default = limit if "weight_limit" in data else sb.futures_limiter.limit
    futures = integer(data, "futures_weight_limit", default, 1, MAX_WEIGHT_LIMIT)
    strikes = integer(data, "strikes", sb.limiter.strikes, 0, 1000)
    for limiter, value in ((sb.limiter, limit), (sb.futures_limiter, futures)):
        limiter.limit, limiter.strikes = value, strikes
        limiter.reset()
    return {"weight_limit": limit, "futures_weight_limit": futures, "strikes": strikes}


async def fills(sb: Sandbox, request: web.Request) -> Any:
    """GET /sandbox/fills[?api_key=k]: the fill report."""
    key = request.query.get("api_key")
    if key is not None:
        _account_key(sb, key)
    sb.sync()
    return [
        {
            "account": f.account,
            "symbol": f.symbol,
            "orderId": f.order_id,
            "tradeId": f.trade_id,
            "side": f.side.value,
            "price": fmt.s(f.price),
            "qty": fmt.s(f.qty),
            "commission": fmt.s(f.commission),
            "commissionAsset": f.commission_asset,
            "maker": f.maker,
            "realizedPnl": fmt.s(f.realized_pnl),
            "time": f.time,
        }
        for f in sb.core.fills
        if key is None or f.account == key
    ]


async def streams(sb: Sandbox, request: web.Request) -> Any:
    """GET /sandbox/streams: every connected stream client and what it subscribed to."""
    hub = request.app.get(HUB_KEY)
    return {"clients": hub.view() if hub is not None else []}


def _guarded(handler: AdminHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def wrapped(request: web.Request) -> web.Response:
        sb = request.app[SANDBOX_KEY]
        if not authorized(request, sb.config.admin_token):
            return _json({"error": "admin token required: Authorization: Bearer <token>"}, 401)
        try:
            return _json(await handler(sb, request))
        except ConfigError as exc:
            return _json({"error": str(exc)}, 400)

    return wrapped


def add_admin_routes(app: web.Application) -> None:
    """Register the /sandbox/ endpoints on app (which must hold the sandbox at SANDBOX_KEY)."""
    r = app.router
    r.add_get("/sandbox/clock", _guarded(clock))
    r.add_post("/sandbox/advance", _guarded(advance))
    r.add_post("/sandbox/reset", _guarded(reset))
    r.add_post("/sandbox/balances", _guarded(balances))
    r.add_post("/sandbox/book", _guarded(book))
    r.add_get("/sandbox/faults", _guarded(faults_get))
    r.add_post("/sandbox/faults", _guarded(faults_set))
    r.add_delete("/sandbox/faults", _guarded(faults_clear))
    r.add_post("/sandbox/limits", _guarded(limits))
    r.add_get("/sandbox/fills", _guarded(fills))
    r.add_get("/sandbox/streams", _guarded(streams))
