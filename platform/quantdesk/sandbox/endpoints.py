"""The endpoints strategies commonly call beyond the order lifecycle: price and book tickers,
the public trade tape, avgPrice, order/test, USD-M commission rate, margin type, position mode,
single open order, and funding rates of every symbol.

The public trade tape has one print per replayed 1-minute bar (its close and volume, the
aggressor side from the bar's direction): the sandbox replays bars, not trades.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from quantdesk.sandbox import formats as fmt
from quantdesk.sandbox.api import (
    Params,
    Route,
    _int,
    _limit,
    _lookup,
    _order_request,
    _render,
    _spec,
    _specs,
    _window,
    by_symbol,
    funding_rate,
)
from quantdesk.sandbox.errors import BinanceError, bad_param, from_reject
from quantdesk.sandbox.market import MINUTE_MS
from quantdesk.sandbox.state import Sandbox
from quantdesk.venues.accounts import Account
from quantdesk.venues.models import MarketSpec, OrderRejected

MARGIN_TYPES = {"CROSSED": "cross", "ISOLATED": "isolated"}


def _one_or_all(sb: Sandbox, params: Params, futures: bool, render: Any) -> Any:
    spec = _spec(sb, params, futures, required=False)
    if spec is not None:
        return render(spec)
    if params.get("symbols"):
        try:
            ids = json.loads(params["symbols"])
        except ValueError:
            raise bad_param("Illegal characters found in parameter 'symbols'.") from None
        return [render(_spec(sb, {"symbol": i}, futures)) for i in ids]
    return [render(sp) for sp in _specs(sb, futures)]


def ticker_price(futures: bool) -> Any:
    """GET ticker/price: last price of one, several or all symbols."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        def one(spec: MarketSpec) -> dict[str, Any]:
            out = {"symbol": spec.id, "price": fmt.s(sb.core.bars[spec.symbol].close)}
            return out | {"time": sb.now_ms()} if futures else out

        return _one_or_all(sb, params, futures, one)

    return handler


def book_ticker(futures: bool) -> Any:
    """GET ticker/bookTicker: best bid and ask of one, several or all symbols."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        def one(spec: MarketSpec) -> dict[str, Any]:
            book = sb.book(spec.symbol)
            bid = book.bids[0] if book.bids else [Decimal(0), Decimal(0)]
            ask = book.asks[0] if book.asks else [Decimal(0), Decimal(0)]
            out = {
                "symbol": spec.id,
                "bidPrice": fmt.s(bid[0]),
                "bidQty": fmt.s(bid[1]),
                "askPrice": fmt.s(ask[0]),
                "askQty": fmt.s(ask[1]),
            }
            return out | {"time": sb.now_ms(), "lastUpdateId": sb.index} if futures else out

        return _one_or_all(sb, params, futures, one)

    return handler


def _prints(sb: Sandbox, spec: MarketSpec, lo: int, hi: int) -> list[dict[str, Any]]:
    """Bar prints lo..hi (inclusive) as trades: id = bar index."""
    series = sb.series[spec.symbol]
    out = []
    for i in range(max(lo, 0), min(hi, sb.index) + 1):
        bar = series.bar(i)
        if not bar.volume:
            continue
        out.append(
            {
                "id": i,
                "price": bar.close,
                "qty": bar.volume,
                "time": int(series.times[i]) + MINUTE_MS - 1,
                "isBuyerMaker": bar.close < bar.open,
            }
        )
    return out


def recent_trades(futures: bool) -> Any:
    """GET trades: the latest prints."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        spec = _spec(sb, params, futures)
        limit = _limit(params, 500, 1000)
        rows = _prints(sb, spec, sb.index - limit + 1, sb.index)
        return [
            {
                "id": r["id"],
                "price": fmt.s(r["price"]),
                "qty": fmt.s(r["qty"]),
                "quoteQty": fmt.s(spec.round_price(r["price"] * r["qty"])),
                "time": r["time"],
                "isBuyerMaker": r["isBuyerMaker"],
            }
            | ({} if futures else {"isBestMatch": True})
            for r in rows
        ]

    return handler


def agg_trades(futures: bool) -> Any:
    """GET aggTrades: prints by fromId or startTime/endTime, Binance's short field names."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        spec = _spec(sb, params, futures)
        limit = _limit(params, 500, 1000)
        from_id = _int(params, "fromId")
        start, end = _int(params, "startTime"), _int(params, "endTime")
        if start is not None and end is not None and end - start > 3_600_000:
            raise bad_param("startTime and endTime must be within 1 hour of each other.")
        if from_id is not None:
            rows = _prints(sb, spec, from_id, from_id + limit - 1)
        else:
            rows = _window(_prints(sb, spec, 0, sb.index), params, lambda r: r["time"], 500, 1000)
        return [
            {
                "a": r["id"],
                "p": fmt.s(r["price"]),
                "q": fmt.s(r["qty"]),
                "f": r["id"],
                "l": r["id"],
                "T": r["time"],
                "m": r["isBuyerMaker"],
            }
            | ({} if futures else {"M": True})
            for r in rows
        ]

    return handler


def avg_price(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /api/v3/avgPrice: volume-weighted price of the last 5 minutes."""
    spec = _spec(sb, params, False)
    series = sb.series[spec.symbol]
    window = series.ohlcv[max(sb.index - 4, 0) : sb.index + 1]
    volume = float(window[:, 4].sum())
    price = float((window[:, 4] * window[:, 3]).sum() / volume) if volume else window[-1, 3]
    return {"mins": 5, "price": f"{price:.8f}", "closeTime": sb.now_ms() - 1}


def order_test(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """POST /api/v3/order/test: validate as a new order would be, place nothing."""
    assert account is not None
    spec = _spec(sb, params, False)
    req = _order_request(params, spec, False, False)
    try:
        # the core's own order checks (filters, notional, post-only...), with nothing placed
        sb.core._validate(account, spec, req)
    except OrderRejected as exc:
        raise from_reject(exc.reason, False, detail=str(exc)) from None
    if params.get("computeCommissionRates", "").lower() == "true":
        fees = sb.core.spot_fees
        return {
            "standardCommissionForOrder": {"maker": fmt.s(fees.maker), "taker": fmt.s(fees.taker)},
            "taxCommissionForOrder": {"maker": "0", "taker": "0"},
            "discount": {
                "enabledForAccount": False,
                "enabledForSymbol": False,
                "discountAsset": "BNB",
                "discount": "0",
            },
        }
    return {}


def commission_rate(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /fapi/v1/commissionRate."""
    spec = _spec(sb, params, True)
    fees = sb.core.perp_fees
    return {
        "symbol": spec.id,
        "makerCommissionRate": fmt.s(fees.maker),
        "takerCommissionRate": fmt.s(fees.taker),
    }


def margin_type(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """POST /fapi/v1/marginType CROSSED | ISOLATED (cross is Binance's default)."""
    assert account is not None
    spec = _spec(sb, params, True)
    wanted = (params.get("marginType") or "").upper()
    if wanted not in MARGIN_TYPES:
        raise BinanceError(400, -1130, "Invalid marginType.")
    key = (account.name, spec.symbol)
    if sb.margin_types.get(key, "cross") == MARGIN_TYPES[wanted]:
        raise BinanceError(400, -4046, "No need to change margin type.")
    if account.positions.get(spec.symbol) and account.positions[spec.symbol].qty:
        raise BinanceError(400, -4048, "Margin type cannot be changed if there exists position.")
    sb.margin_types[key] = MARGIN_TYPES[wanted]
    return {"code": 200, "msg": "success"}


def position_mode(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /fapi/v1/positionSide/dual: always one-way (the sandbox has no hedge mode)."""
    return {"dualSidePosition": False}


def set_position_mode(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """POST /fapi/v1/positionSide/dual: one-way is accepted, hedge mode refused."""
    dual = (params.get("dualSidePosition") or "").lower()
    if dual not in ("true", "false"):
        raise bad_param(
            "Mandatory parameter 'dualSidePosition' was not sent, was empty/null, or malformed."
        )
    if dual == "false":
        raise BinanceError(400, -4059, "No need to change position side.")
    raise BinanceError(400, -1130, "Hedge mode (dualSidePosition=true) is not supported here.")


def open_order(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /fapi/v1/openOrder: one order while it is open, else -2013."""
    assert account is not None
    order, spec = _lookup(sb, params, account, True, False, cancel=False)
    if not order.status.is_open:
        raise BinanceError(400, -2013, "Order does not exist.")
    return _render(order, spec, True)


def all_funding_rates(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /fapi/v1/fundingRate, with or without a symbol (then every perpetual's)."""
    if params.get("symbol"):
        return funding_rate(sb, params, account)
    rows = []
    for spec in _specs(sb, True):
        rows += funding_rate(sb, {**params, "symbol": spec.id, "limit": "1000"}, account)
    rows.sort(key=lambda r: (r["fundingTime"], r["symbol"]))
    return _window(rows, params, lambda r: r["fundingTime"], 100, 1000)


def symbol_config(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /fapi/v1/symbolConfig: margin type and leverage per perpetual."""
    assert account is not None
    spec = _spec(sb, params, True, required=False)
    specs = [spec] if spec else _specs(sb, True)
    return [
        {
            "symbol": sp.id,
            "marginType": sb.margin_types.get((account.name, sp.symbol), "cross")
            .upper()
            .replace("CROSS", "CROSSED"),
            "isAutoAddMargin": False,
            "leverage": account.position(sp.symbol).leverage,
            "maxNotionalValue": "9000000000",
        }
        for sp in specs
    ]


def account_config(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /fapi/v1/accountConfig: fee tier 0, one-way positions, single-asset margin."""
    return {
        "feeTier": 0,
        "canTrade": True,
        "canDeposit": False,
        "canWithdraw": False,
        "dualSidePosition": False,
        "updateTime": 0,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
    }


def extra_routes() -> dict[tuple[str, str], Route]:
    """These endpoints with Binance's weights."""
    table: dict[tuple[str, str], Route] = {
        ("GET", "/api/v3/ticker/price"): Route(ticker_price(False), by_symbol(2, 4)),
        ("GET", "/api/v3/ticker/bookTicker"): Route(book_ticker(False), by_symbol(2, 4)),
        ("GET", "/api/v3/trades"): Route(recent_trades(False), 25),
        ("GET", "/api/v3/aggTrades"): Route(agg_trades(False), 4),
        ("GET", "/api/v3/avgPrice"): Route(avg_price, 2),
        ("POST", "/api/v3/order/test"): Route(order_test, 1, True),
        ("GET", "/fapi/v1/ticker/price"): Route(ticker_price(True), by_symbol(1, 2), futures=True),
        ("GET", "/fapi/v2/ticker/price"): Route(ticker_price(True), by_symbol(1, 2), futures=True),
        ("GET", "/fapi/v1/ticker/bookTicker"): Route(
            book_ticker(True), by_symbol(2, 5), futures=True
        ),
        ("GET", "/fapi/v1/trades"): Route(recent_trades(True), 5, futures=True),
        ("GET", "/fapi/v1/aggTrades"): Route(agg_trades(True), 20, futures=True),
        ("GET", "/fapi/v1/fundingRate"): Route(all_funding_rates, 1, futures=True),
        ("GET", "/fapi/v1/commissionRate"): Route(commission_rate, 20, True, True),
        ("POST", "/fapi/v1/marginType"): Route(margin_type, 1, True, True),
        ("GET", "/fapi/v1/positionSide/dual"): Route(position_mode, 30, True, True),
        ("POST", "/fapi/v1/positionSide/dual"): Route(set_position_mode, 1, True, True),
        ("GET", "/fapi/v1/openOrder"): Route(open_order, 1, True, True),
        ("GET", "/fapi/v1/symbolConfig"): Route(symbol_config, 5, True, True),
        ("GET", "/fapi/v1/accountConfig"): Route(account_config, 5, True, True),
    }
    return table
