"""Handlers for the Binance REST subset: /api/v3 (spot) and /fapi (USD-M futures).

Each handler takes (sandbox, params, account) and returns the JSON body; routes carry the
request weight and whether the request is signed.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from quantdesk.model import Side, dec
from quantdesk.sandbox import formats as fmt
from quantdesk.sandbox.auth import rate_limits
from quantdesk.sandbox.errors import (
    INSUFFICIENT,
    BinanceError,
    bad_param,
    bad_symbol,
    from_reject,
)
from quantdesk.sandbox.state import Sandbox
from quantdesk.sandbox.userstream import listen_key
from quantdesk.venues.accounts import Account
from quantdesk.venues.book import Book
from quantdesk.venues.models import (
    ZERO,
    MarketSpec,
    Order,
    OrderRejected,
    OrderRequest,
    OrderType,
    Reject,
    TimeInForce,
)

Params = dict[str, str]
# Binance's kline intervals; not 1s (spot) or 1M: 1-minute bars on a fixed grid serve neither.
KLINE_INTERVALS = frozenset(
    ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w"]
)
Handler = Callable[[Sandbox, Params, Account | None], Any]


Weight = int | Callable[[Params], int]


@dataclass(frozen=True)
class Route:
    """One endpoint: handler, request weight (fixed or from the parameters), signed or public,
    spot or futures, whether it counts against the ORDERS limits, and whether it needs the
    API key without a signature (Binance's USER_STREAM endpoints)."""

    handler: Handler
    weight: Weight = 1
    signed: bool = False
    futures: bool = False
    places_order: bool = False
    key_only: bool = False

    def weight_of(self, params: Params) -> int:
        """The request weight of this call, as Binance's docs give it."""
        return self.weight(params) if callable(self.weight) else self.weight


# -- request weights that depend on the parameters (Binance's API docs) ---------------------


def _limit_param(params: Params, default: int) -> int:
    try:
        return int(params.get("limit") or default)
    except ValueError:
        return default


def spot_depth_weight(params: Params) -> int:
    """Spot /depth: 5 up to limit 100, 25 to 500, 50 to 1000, 250 above."""
    limit = _limit_param(params, 100)
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def futures_depth_weight(params: Params) -> int:
    """USD-M /depth: 2 up to limit 50, 5 for 100, 10 for 500, 20 for 1000."""
    limit = _limit_param(params, 500)
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def futures_klines_weight(params: Params) -> int:
    """USD-M /klines: 1 below limit 100, 2 below 500, 5 to 1000, 10 above."""
    limit = _limit_param(params, 500)
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


def _symbol_count(params: Params) -> int | None:
    if params.get("symbol"):
        return 1
    if params.get("symbols"):
        try:
            return len(json.loads(params["symbols"]))
        except (ValueError, TypeError):
            return 1
    return None


def spot_ticker_weight(params: Params) -> int:
    """Spot /ticker/24hr: 2 for 1-20 symbols, 40 for 21-100, 80 above or for all."""
    n = _symbol_count(params)
    return 80 if n is None or n > 100 else 40 if n > 20 else 2


def by_symbol(one: int, every: int) -> Callable[[Params], int]:
    """Weight `one` with a symbol (or symbols), `every` for all symbols."""
    return lambda params: one if _symbol_count(params) is not None else every


# -- parameter helpers --------------------------------------------------------------------------


def _req(params: Params, name: str) -> str:
    value = params.get(name)
    if value in (None, ""):
        raise bad_param(f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


# Binance's grammar for decimal parameters: no sign, no exponent, at most 20+20 digits.
_NUMBER = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")


def _dec(params: Params, name: str) -> Decimal | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    if not _NUMBER.match(value):
        raise BinanceError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '{_NUMBER.pattern}'.",
        )
    return Decimal(value)


def _int(params: Params, name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None


def _spec(sb: Sandbox, params: Params, futures: bool, required: bool = True) -> MarketSpec | None:
    market_id = params.get("symbol")
    if not market_id:
        if required:
            _req(params, "symbol")
        return None
    spec = sb.core.by_id.get((market_id.upper(), futures))
    if spec is None:
        raise bad_symbol()
    return spec


def _specs(sb: Sandbox, futures: bool) -> list[MarketSpec]:
    return [m for m in sb.core.markets.values() if m.perp == futures]


def _limit(params: Params, default: int, maximum: int) -> int:
    limit = _int(params, "limit", default)
    return max(1, min(limit, maximum))


def _window(
    items: list, params: Params, time_of: Callable[[Any], int], default: int, cap: int
) -> list:
    start, end = _int(params, "startTime"), _int(params, "endTime")
    items = [
        x
        for x in items
        if (start is None or time_of(x) >= start) and (end is None or time_of(x) <= end)
    ]
    limit = _limit(params, default, cap)
    return items[:limit] if start is not None else items[-limit:]


# -- public market data ------------------------------------------------------------------------


def ping(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET ping."""
    return {}


def server_time(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET time: wall-clock server time (skewed by the clock-skew fault)."""
    return {"serverTime": sb.server_ms()}


def _filters(spec: MarketSpec) -> list[dict[str, Any]]:
    notional = (
        {"filterType": "MIN_NOTIONAL", "notional": fmt.s(spec.min_notional)}
        if spec.perp
        else {
            "filterType": "NOTIONAL",
            "minNotional": fmt.s(spec.min_notional),
            "applyMinToMarket": True,
            "maxNotional": "9000000",
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        }
    )
    return [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": fmt.s(spec.tick_size),
            "maxPrice": "10000000",
            "tickSize": fmt.s(spec.tick_size),
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": fmt.s(spec.min_qty),
            "maxQty": fmt.s(spec.max_qty),
            "stepSize": fmt.s(spec.step_size),
        },
        {
            "filterType": "MARKET_LOT_SIZE",
            "minQty": fmt.s(spec.min_qty),
            "maxQty": fmt.s(spec.max_qty),
            "stepSize": fmt.s(spec.step_size),
        },
        notional,
    ]


def _symbol_list(text: str) -> list[str]:
    try:
        ids = json.loads(text)
    except ValueError:
        ids = None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BinanceError(400, -1100, "Illegal characters found in parameter 'symbols'.")
    return ids


def _decimals(quantum: Decimal) -> int:
    return max(-quantum.normalize().as_tuple().exponent, 0)


def exchange_info(futures: bool) -> Handler:
    """GET exchangeInfo: symbols with filters and order types."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        symbols = []
        specs = _specs(sb, futures)
        if params.get("symbol") or params.get("symbols"):
            # unknown symbols answer -1121, as on Binance
            ids = [params["symbol"]] if params.get("symbol") else _symbol_list(params["symbols"])
            specs = [_spec(sb, {"symbol": i}, futures) for i in ids]
        for spec in specs:
            entry: dict[str, Any] = {
                "symbol": spec.id,
                "status": "TRADING",
                "baseAsset": spec.base,
                "quoteAsset": spec.quote,
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "filters": _filters(spec),
            }
            if futures:
                entry |= {
                    "pair": spec.id,
                    "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000,
                    "onboardDate": int(sb.times[0]),
                    "marginAsset": spec.quote,
                    "pricePrecision": _decimals(spec.tick_size),
                    "quantityPrecision": _decimals(spec.step_size),
                    "underlyingType": "COIN",
                    "orderTypes": [
                        "LIMIT",
                        "MARKET",
                        "STOP",
                        "STOP_MARKET",
                        "TAKE_PROFIT",
                        "TAKE_PROFIT_MARKET",
                    ],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
                }
            else:
                entry |= {
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": [
                        "LIMIT",
                        "LIMIT_MAKER",
                        "MARKET",
                        "STOP_LOSS",
                        "STOP_LOSS_LIMIT",
                        "TAKE_PROFIT",
                        "TAKE_PROFIT_LIMIT",
                    ],
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "permissions": ["SPOT"],
                }
            symbols.append(entry)
        return {
            "timezone": "UTC",
            "serverTime": sb.server_ms(),
            "rateLimits": rate_limits(
                (sb.futures_limiter if futures else sb.limiter).limit,
                sb.orders[futures].windows,
            ),
            "exchangeFilters": [],
            "symbols": symbols,
        }

    return handler


def _ticker(sb: Sandbox, spec: MarketSpec, futures: bool) -> dict[str, Any]:
    series = sb.series[spec.symbol]
    lo = max(sb.index - 1439, 0)
    window = series.ohlcv[lo : sb.index + 1]
    bar = sb.core.bars[spec.symbol]
    open_ = series.bar(lo).open
    high = fmt.s(dec(window[:, 1].max()).quantize(spec.tick_size))
    low = fmt.s(dec(window[:, 2].min()).quantize(spec.tick_size))
    volume = float(window[:, 4].sum())
    quote = float((window[:, 4] * window[:, 3]).sum())
    change = bar.close - open_
    out: dict[str, Any] = {
        "symbol": spec.id,
        "priceChange": fmt.s(change),
        "priceChangePercent": f"{float(change / open_ * 100):.3f}",
        "weightedAvgPrice": f"{quote / volume:.8f}" if volume else "0",
        "lastPrice": fmt.s(bar.close),
        "lastQty": "0",
        "openPrice": fmt.s(open_),
        "highPrice": high,
        "lowPrice": low,
        "volume": f"{volume:.8f}",
        "quoteVolume": f"{quote:.8f}",
        "openTime": int(series.times[lo]),
        "closeTime": sb.now_ms() - 1,
        "firstId": 0,
        "lastId": 0,
        "count": int(sb.index - lo + 1),
    }
    if not futures:
        book = sb.book(spec.symbol)
        best_bid = book.bids[0] if book.bids else ["0", "0"]
        best_ask = book.asks[0] if book.asks else ["0", "0"]
        out |= {
            "prevClosePrice": fmt.s(series.bar(max(lo - 1, 0)).close),
            "bidPrice": fmt.s(best_bid[0]),
            "bidQty": fmt.s(best_bid[1]),
            "askPrice": fmt.s(best_ask[0]),
            "askQty": fmt.s(best_ask[1]),
        }
    return out


def ticker_24hr(futures: bool) -> Handler:
    """GET ticker/24hr for one symbol, a JSON list of symbols, or all."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        spec = _spec(sb, params, futures, required=False)
        if spec is not None:
            return _ticker(sb, spec, futures)
        if "symbols" in params:
            try:
                ids = json.loads(params["symbols"])
            except ValueError:
                raise bad_param("Illegal characters found in parameter 'symbols'.") from None
            specs = [_spec(sb, {"symbol": i}, futures) for i in ids]
        else:
            specs = _specs(sb, futures)
        return [_ticker(sb, sp, futures) for sp in specs]

    return handler


def klines(futures: bool) -> Handler:
    """GET klines: bars up to the clock, any Binance interval built from 1-minute bars."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        spec = _spec(sb, params, futures)
        interval = _req(params, "interval")
        if interval not in KLINE_INTERVALS:
            raise BinanceError(400, -1120, "Invalid interval.")
        limit = _limit(params, 500, 1500 if futures else 1000)
        return sb.series[spec.symbol].klines(
            interval, sb.index, _int(params, "startTime"), _int(params, "endTime"), limit
        )

    return handler


def depth(futures: bool) -> Handler:
    """GET depth: the current book (derived from the latest bar, minus what takers took)."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        spec = _spec(sb, params, futures)
        bids, asks = sb.book(spec.symbol).snapshot(_limit(params, 100, 5000))
        out: dict[str, Any] = {
            "lastUpdateId": sb.index,
            "bids": [[fmt.s(p), fmt.s(q)] for p, q in bids],
            "asks": [[fmt.s(p), fmt.s(q)] for p, q in asks],
        }
        if futures:
            out |= {"E": sb.now_ms(), "T": sb.now_ms()}
        return out

    return handler


def _next_funding(sb: Sandbox, spec: MarketSpec) -> tuple[int, Decimal]:
    series = sb.series[spec.symbol]
    ptr = sb.funding_next.get(spec.symbol, 0)
    if ptr < len(series.funding_times):
        return int(series.funding_times[ptr]), series.funding_rate(ptr)
    return 0, Decimal(0)


def premium_index(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /fapi/v1/premiumIndex: mark, index, the upcoming funding rate and time."""

    def one(spec: MarketSpec) -> dict[str, Any]:
        nxt, rate = _next_funding(sb, spec)
        spot = sb.core.bars.get(f"{spec.base}/{spec.quote}")
        mark = sb.core.mark(spec.symbol)
        return {
            "symbol": spec.id,
            "markPrice": fmt.s(mark),
            "indexPrice": fmt.s(spot.close if spot else mark),
            "estimatedSettlePrice": fmt.s(mark),
            "lastFundingRate": fmt.s(rate),
            "interestRate": "0.0001",
            "nextFundingTime": nxt,
            "time": sb.now_ms(),
        }

    spec = _spec(sb, params, True, required=False)
    return one(spec) if spec else [one(sp) for sp in _specs(sb, True)]


def funding_rate(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /fapi/v1/fundingRate: settled funding rates up to the clock."""
    spec = _spec(sb, params, True)
    series = sb.series[spec.symbol]
    end = sb.funding_next.get(spec.symbol, 0)
    rows = []
    for i in range(end):
        t = int(series.funding_times[i])
        j = min(int(np.searchsorted(series.times, t)) - 1, sb.index)
        rows.append(
            {
                "symbol": spec.id,
                "fundingTime": t,
                "fundingRate": fmt.s(series.funding_rate(i)),
                "markPrice": fmt.s(series.bar(max(j, 0)).close),
            }
        )
    return _window(rows, params, lambda r: r["fundingTime"], 100, 1000)


# -- account and orders ----------------------------------------------------------------------


def spot_account(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /api/v3/account."""
    assert account is not None
    return {
        "makerCommission": int(sb.core.spot_fees.maker * 10000),
        "takerCommission": int(sb.core.spot_fees.taker * 10000),
        "buyerCommission": 0,
        "sellerCommission": 0,
        "canTrade": True,
        "canWithdraw": False,
        "canDeposit": False,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "updateTime": sb.now_ms(),
        "accountType": "SPOT",
        "balances": [
            {"asset": asset, "free": fmt.s(b.free), "locked": fmt.s(b.locked)}
            for asset, b in sorted(account.balances.items())
        ],
        "permissions": ["SPOT"],
        "uid": zlib.crc32(account.name.encode()),
    }


def futures_account(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /fapi/v2|v3/account."""
    assert account is not None
    specs = sb.core.markets
    return fmt.futures_account(account, specs, sb.core.marks(), sb.now_ms())


def futures_balance(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /fapi/v2|v3/balance."""
    data = futures_account(sb, params, account)
    return [
        {
            "accountAlias": "sandbox",
            "asset": a["asset"],
            "balance": a["walletBalance"],
            "crossWalletBalance": a["crossWalletBalance"],
            "crossUnPnl": a["crossUnPnl"],
            "availableBalance": a["availableBalance"],
            "maxWithdrawAmount": a["maxWithdrawAmount"],
            "marginAvailable": True,
            "updateTime": a["updateTime"],
        }
        for a in data["assets"]
    ]


_SPOT_TYPES = {t.value: t for t in OrderType}
FUTURES_TYPES = fmt.FUTURES_TO_CORE


def _order_request(params: Params, spec: MarketSpec, futures: bool, algo: bool) -> OrderRequest:
    side_text = _req(params, "side").upper()
    if side_text not in ("BUY", "SELL"):
        raise BinanceError(400, -1117, "Invalid side.")
    kind = _req(params, "type").upper()
    table = FUTURES_TYPES if futures else _SPOT_TYPES
    if kind not in table:
        raise BinanceError(400, -1116, "Invalid orderType.")
    order_type = table[kind]
    if futures and order_type.is_conditional != algo:
        raise BinanceError(
            400,
            -4120,
            "Order type not supported for this endpoint. Please use the Algo Order API endpoints"
            " instead.",
        )
    tif_text = params.get("timeInForce")
    if order_type is OrderType.LIMIT_MAKER:
        tif = TimeInForce.GTC
    elif tif_text:
        try:
            tif = TimeInForce(tif_text.upper())
        except ValueError:
            raise BinanceError(400, -1115, "Invalid timeInForce.") from None
        if tif is TimeInForce.GTX and not futures:
            raise BinanceError(400, -1115, "Invalid timeInForce.")
    elif order_type in (OrderType.LIMIT, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
        raise bad_param(
            "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."
        )
    else:
        tif = TimeInForce.GTC
    client_key = "clientAlgoId" if algo else "newClientOrderId"
    return OrderRequest(
        symbol=spec.symbol,
        side=Side.BUY if side_text == "BUY" else Side.SELL,
        type=order_type,
        qty=_dec(params, "quantity"),
        price=_dec(params, "price"),
        stop_price=_dec(params, "triggerPrice" if algo else "stopPrice"),
        quote_qty=_dec(params, "quoteOrderQty"),
        tif=tif,
        client_id=params.get(client_key) or None,
        reduce_only=params.get("reduceOnly", "").lower() == "true",
    )


def _render(
    order: Order, spec: MarketSpec, futures: bool, algo: bool = False, full: bool = False
) -> dict:
    if algo:
        return fmt.algo_order(order, spec)
    return fmt.futures_order(order, spec) if futures else fmt.spot_order(order, spec, full)


def _check_market_funds(account: Account, spec: MarketSpec, req: OrderRequest, book: Book) -> None:
    """Binance refuses a spot market order up front (-2010) when the balance cannot cover it.

    The cost of a buy by quantity is estimated by walking the book, pricing any part beyond
    its depth at the deepest level; sells by quote amount are converted at the best bid.
    """
    quote_free = account.balance(spec.quote).free
    base_free = account.balance(spec.base).free
    if req.side is Side.BUY:
        if req.qty is None:
            need = req.quote_qty or ZERO
        else:
            need, left = ZERO, req.qty
            for price, size in book.asks:
                take = min(left, size)
                need, left = need + take * price, left - take
                if not left:
                    break
            if left and book.asks:
                need += left * book.asks[-1][0]
        enough = need <= quote_free
    else:
        best = book.best(Side.SELL)
        qty = req.qty if req.qty is not None else (req.quote_qty or ZERO) / (best or 1)
        enough = qty <= base_free
    if not enough:
        raise BinanceError(400, -2010, INSUFFICIENT)


def new_order(futures: bool, algo: bool = False) -> Handler:
    """POST order / algoOrder: validate, place, match against the book."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        assert account is not None
        spec = _spec(sb, params, futures)
        req = _order_request(params, spec, futures, algo)
        book = sb.book(spec.symbol)
        if not futures and req.type is OrderType.MARKET:
            _check_market_funds(account, spec, req, book)
        try:
            order = sb.core.submit(account, req)
        except OrderRejected as exc:
            raise from_reject(exc.reason, futures, detail=str(exc)) from None
        resp_type = params.get("newOrderRespType", "FULL" if not futures else "ACK").upper()
        if not futures and resp_type == "ACK":
            return {
                "symbol": spec.id,
                "orderId": order.id,
                "orderListId": -1,
                "clientOrderId": order.client_id,
                "transactTime": order.time,
            }
        return _render(order, spec, futures, algo, full=resp_type == "FULL")

    return handler


def _lookup(
    sb: Sandbox, params: Params, account: Account, futures: bool, algo: bool, cancel: bool
) -> tuple[Order, MarketSpec]:
    spec = _spec(sb, params, futures)
    if algo:
        order_id, client_id = _int(params, "algoId"), params.get("clientAlgoId")
    else:
        order_id = _int(params, "orderId")
        client_id = params.get("origClientOrderId") or params.get("clientOrderId")
    if order_id is None and not client_id:
        raise bad_param(
            "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
        )
    try:
        order = sb.core.find(account, spec.symbol, order_id, client_id)
    except OrderRejected as exc:
        raise from_reject(exc.reason, futures, cancel=cancel) from None
    if futures and order.type.is_conditional != algo:
        raise from_reject(Reject.UNKNOWN_ORDER, futures, cancel=cancel)
    return order, spec


def get_order(futures: bool, algo: bool = False) -> Handler:
    """GET order / algoOrder by id or client id."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        assert account is not None
        order, spec = _lookup(sb, params, account, futures, algo, cancel=False)
        return _render(order, spec, futures, algo)

    return handler


def cancel_order(futures: bool, algo: bool = False) -> Handler:
    """DELETE order / algoOrder."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        assert account is not None
        order, spec = _lookup(sb, params, account, futures, algo, cancel=True)
        try:
            sb.core.cancel(account, spec.symbol, order.id, None)
        except OrderRejected as exc:
            raise from_reject(exc.reason, futures, cancel=True) from None
        if algo:
            return {
                "algoId": order.id,
                "clientAlgoId": order.client_id,
                "code": "200",
                "msg": "success",
            }
        out = _render(order, spec, futures)
        if not futures:
            out["origClientOrderId"] = order.client_id
            out["transactTime"] = sb.now_ms()
        return out

    return handler


def _family(orders: list[Order], futures: bool, algo: bool) -> list[Order]:
    return [o for o in orders if not futures or o.type.is_conditional == algo]


def open_orders(futures: bool, algo: bool = False) -> Handler:
    """GET openOrders / openAlgoOrders (symbol optional)."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        assert account is not None
        spec = _spec(sb, params, futures, required=False)
        if spec is None:
            orders = [
                o
                for o in sb.core.orders_of(account, None, True)
                if sb.core.markets[o.symbol].perp == futures
            ]
        else:
            orders = sb.core.orders_of(account, spec.symbol, True)
        return [
            _render(o, sb.core.markets[o.symbol], futures, algo)
            for o in _family(orders, futures, algo)
        ]

    return handler


def all_orders(futures: bool, algo: bool = False) -> Handler:
    """GET allOrders / allAlgoOrders."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        assert account is not None
        spec = _spec(sb, params, futures)
        orders = _family(sb.core.orders_of(account, spec.symbol, False), futures, algo)
        first = _int(params, "orderId")
        if first is not None:
            orders = [o for o in orders if o.id >= first]
        orders = _window(orders, params, lambda o: o.time, 500, 1000)
        return [_render(o, spec, futures, algo) for o in orders]

    return handler


def cancel_all(futures: bool, algo: bool = False) -> Handler:
    """DELETE openOrders (spot: the cancelled orders) / allOpenOrders / algoOpenOrders."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        assert account is not None
        spec = _spec(sb, params, futures)
        mine = _family(sb.core.orders_of(account, spec.symbol, True), futures, algo)
        for order in mine:
            sb.core.cancel(account, spec.symbol, order.id, None)
        if futures:
            return {"code": 200, "msg": "The operation of cancel all open order is done."}
        return [_render(o, spec, futures) | {"origClientOrderId": o.client_id} for o in mine]

    return handler


def my_trades(futures: bool) -> Handler:
    """GET myTrades / userTrades."""

    def handler(sb: Sandbox, params: Params, account: Account | None) -> Any:
        assert account is not None
        spec = _spec(sb, params, futures)
        fills = sb.core.trades_of(account, spec.symbol)
        order_id = _int(params, "orderId")
        if order_id is not None:
            fills = [f for f in fills if f.order_id == order_id]
        from_id = _int(params, "fromId")
        if from_id is not None:
            fills = [f for f in fills if f.trade_id >= from_id]
        fills = _window(fills, params, lambda f: f.time, 500, 1000)
        render = fmt.futures_trade if futures else fmt.spot_trade
        return [render(f, spec) for f in fills]

    return handler


# -- USD-M positions, leverage, income --------------------------------------------------------


def position_risk(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /fapi/v2|v3/positionRisk."""
    assert account is not None
    spec = _spec(sb, params, True, required=False)
    now = sb.now_ms()
    out = []
    for symbol, pos in account.positions.items():
        if not pos.qty or (spec is not None and symbol != spec.symbol):
            continue
        kind = sb.margin_types.get((account.name, symbol), "cross")
        out.append(fmt.position_risk(pos, sb.core.markets[symbol], sb.core.mark(symbol), now, kind))
    return out


def leverage_bracket(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /fapi/v1/leverageBracket: one bracket per symbol (the simple margin model)."""
    spec = _spec(sb, params, True, required=False)
    specs = [spec] if spec else _specs(sb, True)
    return [
        {
            "symbol": sp.id,
            "notionalCoef": 1.0,
            "brackets": [
                {
                    "bracket": 1,
                    "initialLeverage": 125,
                    "notionalCap": 9000000000,
                    "notionalFloor": 0,
                    "maintMarginRatio": 0.004,
                    "cum": 0.0,
                }
            ],
        }
        for sp in specs
    ]


def set_leverage(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """POST /fapi/v1/leverage."""
    assert account is not None
    spec = _spec(sb, params, True)
    leverage = _int(params, "leverage")
    if leverage is None or not 1 <= leverage <= 125:
        raise BinanceError(400, -4028, "Leverage is not valid")
    sb.core.set_leverage(account, spec.symbol, leverage)
    return {"leverage": leverage, "maxNotionalValue": "9000000000", "symbol": spec.id}


def income(sb: Sandbox, params: Params, account: Account | None) -> Any:
    """GET /fapi/v1/income: funding fees, realized PnL and commissions."""
    assert account is not None
    spec = _spec(sb, params, True, required=False)
    kind = params.get("incomeType")
    rows = [
        e
        for e in account.income
        if (spec is None or e.symbol == spec.symbol) and (kind is None or e.kind == kind)
    ]
    rows = _window(rows, params, lambda e: e.time, 100, 1000)
    return [
        {
            "symbol": sb.core.markets[e.symbol].id,
            "incomeType": e.kind,
            "income": fmt.s(e.amount),
            "asset": e.asset,
            "info": e.info,
            "time": e.time,
            "tranId": e.id,
            "tradeId": "",
        }
        for e in rows
    ]


def routes() -> dict[tuple[str, str], Route]:
    """The endpoint table: (method, path) -> Route, weights as in Binance's docs."""
    table: dict[tuple[str, str], Route] = {}
    for prefix, futures in (("/api/v3", False), ("/fapi/v1", True)):
        table[("GET", f"{prefix}/ping")] = Route(ping, 1, futures=futures)
        table[("GET", f"{prefix}/time")] = Route(server_time, 1, futures=futures)
        table[("POST", f"{prefix}/order")] = Route(new_order(futures), 1, True, futures, True)
        table[("DELETE", f"{prefix}/order")] = Route(cancel_order(futures), 1, True, futures)
    spot: dict[tuple[str, str], Route] = {
        ("GET", "/api/v3/exchangeInfo"): Route(exchange_info(False), 20),
        ("GET", "/api/v3/ticker/24hr"): Route(ticker_24hr(False), spot_ticker_weight),
        ("GET", "/api/v3/klines"): Route(klines(False), 2),
        ("GET", "/api/v3/depth"): Route(depth(False), spot_depth_weight),
        ("GET", "/api/v3/order"): Route(get_order(False), 4, True),
        ("GET", "/api/v3/openOrders"): Route(open_orders(False), by_symbol(6, 80), True),
        ("GET", "/api/v3/allOrders"): Route(all_orders(False), 20, True),
        ("GET", "/api/v3/account"): Route(spot_account, 20, True),
        ("GET", "/api/v3/myTrades"): Route(my_trades(False), 20, True),
        ("DELETE", "/api/v3/openOrders"): Route(cancel_all(False), 1, True),
    }
    table |= spot
    fapi = {
        ("GET", "/fapi/v1/exchangeInfo"): Route(exchange_info(True), 1, futures=True),
        ("GET", "/fapi/v1/ticker/24hr"): Route(ticker_24hr(True), by_symbol(1, 40), futures=True),
        ("GET", "/fapi/v1/klines"): Route(klines(True), futures_klines_weight, futures=True),
        ("GET", "/fapi/v1/depth"): Route(depth(True), futures_depth_weight, futures=True),
        ("GET", "/fapi/v1/order"): Route(get_order(True), 1, True, True),
        ("GET", "/fapi/v1/openOrders"): Route(open_orders(True), by_symbol(1, 40), True, True),
        ("GET", "/fapi/v1/allOrders"): Route(all_orders(True), 5, True, True),
        ("GET", "/fapi/v1/premiumIndex"): Route(premium_index, 1, futures=True),
        ("GET", "/fapi/v1/fundingRate"): Route(funding_rate, 1, futures=True),
        ("DELETE", "/fapi/v1/allOpenOrders"): Route(cancel_all(True), 1, True, True),
        ("GET", "/fapi/v1/userTrades"): Route(my_trades(True), 5, True, True),
        ("GET", "/fapi/v1/income"): Route(income, 30, True, True),
        ("GET", "/fapi/v1/leverageBracket"): Route(leverage_bracket, 1, True, True),
        ("POST", "/fapi/v1/leverage"): Route(set_leverage, 1, True, True),
        ("POST", "/fapi/v1/algoOrder"): Route(new_order(True, True), 1, True, True, True),
        ("GET", "/fapi/v1/algoOrder"): Route(get_order(True, True), 1, True, True),
        ("DELETE", "/fapi/v1/algoOrder"): Route(cancel_order(True, True), 1, True, True),
        ("GET", "/fapi/v1/openAlgoOrders"): Route(open_orders(True, True), 1, True, True),
        ("GET", "/fapi/v1/allAlgoOrders"): Route(all_orders(True, True), 5, True, True),
        ("DELETE", "/fapi/v1/algoOpenOrders"): Route(cancel_all(True, True), 1, True, True),
    }
    table |= fapi
    from quantdesk.sandbox.endpoints import extra_routes  # it builds on this module's helpers

    table |= extra_routes()
    for method in ("POST", "PUT", "DELETE"):  # user data stream keys: weight 2 spot, 1 USD-M
        table[(method, "/api/v3/userDataStream")] = Route(
            listen_key(False, method), 2, key_only=True
        )
        table[(method, "/fapi/v1/listenKey")] = Route(
            listen_key(True, method), 1, futures=True, key_only=True
        )
    for version in ("v2", "v3"):
        table[("GET", f"/fapi/{version}/account")] = Route(futures_account, 5, True, True)
        table[("GET", f"/fapi/{version}/balance")] = Route(futures_balance, 5, True, True)
        table[("GET", f"/fapi/{version}/positionRisk")] = Route(position_risk, 5, True, True)
    return table
