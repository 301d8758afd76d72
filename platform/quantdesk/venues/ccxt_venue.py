"""CcxtVenue: the engine's `Venue` over a real exchange (or the sandbox) through ccxt.async_support.

Fills are ITEMIZED (see `VenueOrder`): whenever the exchange reports an order with a filled
amount, its trades are fetched (`fetch_my_trades` filtered by the order id) and the reply's
`filled` is the sum of those trades. Trade ids are the exchange's, so the same execution seen
through an order reply and through reconciliation is one fill. If the trade list lags behind the
order's cumulative fill, the reply says less (and stays open) rather than inventing a fill:
a later refresh or reconciliation picks up the rest.

Amounts and prices go out formatted by ccxt's `amount_to_precision` / `price_to_precision`; an
amount off the exchange's step grid, or outside its limits, is refused before any request
(ccxt.InvalidOrder, a definitive failure), so the venue never works a different amount than the
engine tracks.

ccxt's exception classes are translated into `model.ports.VenueError` here and nowhere else
(`map_ccxt_error`): every public coroutine of CcxtVenue raises only VenueError subclasses (or a
transport's own TimeoutError/OSError, which the engine treats as ambiguous).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal, localcontext
from typing import Any, ParamSpec, TypeVar

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro

from quantdesk.config import VenueConfig
from quantdesk.errors import ConfigError
from quantdesk.model import (
    ZERO,
    DuplicateOrder,
    Fill,
    Instrument,
    Operation,
    Order,
    OrderStatus,
    OrderType,
    Side,
    VenueAmbiguous,
    VenueBalance,
    VenueError,
    VenueNotFound,
    VenueOrder,
    VenuePosition,
    VenueRefused,
)
from quantdesk.model import (
    dec as model_dec,
)
from quantdesk.venues.client import sandbox_client, sandbox_pro_client

log = logging.getLogger(__name__)
S = OrderStatus
P = ParamSpec("P")
T = TypeVar("T")

# Refusals. DuplicateOrderId and OrderNotFound are InvalidOrder subclasses but need care (below).
_DEFINITIVE: tuple[type[BaseException], ...] = (
    ccxt.InsufficientFunds,
    ccxt.InvalidOrder,
    ccxt.BadRequest,  # includes BadSymbol
    ccxt.AuthenticationError,  # includes PermissionDenied, AccountSuspended
    ccxt.ArgumentsRequired,
    ccxt.NotSupported,
    ccxt.OperationRejected,  # includes MarketClosed
    ccxt.InvalidAddress,
)

# Requests the venue refused to process at all because of load: retry later, more slowly.
_THROTTLED: tuple[type[BaseException], ...] = (ccxt.DDoSProtection, ccxt.RateLimitExceeded)


def map_ccxt_error(exc: BaseException, operation: Operation = Operation.CREATE) -> VenueError:
    """The VenueError for a ccxt exception raised by a request of kind `operation`."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ccxt.DuplicateOrderId):
        # Our client id already exists at the venue: an earlier attempt did land. Ambiguous on
        # create so the caller looks the order up by client id and adopts it.
        if operation is Operation.CREATE:
            return DuplicateOrder(message)
        return VenueRefused(message)
    if isinstance(exc, ccxt.OrderNotFound):
        return VenueNotFound(message)
    if isinstance(exc, ccxt.CancelPending):
        return VenueAmbiguous(message)
    if isinstance(exc, _DEFINITIVE):
        return VenueRefused(message)
    # NetworkError (RequestTimeout, ExchangeNotAvailable, OnMaintenance, DDoSProtection,
    # RateLimitExceeded, InvalidNonce), BadResponse/NullResponse, a bare ExchangeError with an
    # unmapped code: all say nothing about what the venue did.
    return VenueAmbiguous(message, throttled=isinstance(exc, _THROTTLED))


def _mapped(
    operation: Operation,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Decorate a coroutine so ccxt exceptions leave it as VenueError."""

    def wrap(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(fn)
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return await fn(*args, **kwargs)
            except ccxt.BaseError as exc:
                raise map_ccxt_error(exc, operation) from exc

        return call

    return wrap


_EXCHANGE_IDS = {("binance", "spot"): "binance", ("binance", "usdm"): "binanceusdm"}
_UNIFIED_STATUS = {
    "closed": S.FILLED,
    "canceled": S.CANCELED,
    "cancelled": S.CANCELED,
    "expired": S.EXPIRED,
    "rejected": S.REJECTED,
}


def dec(value: Any) -> Decimal:
    """Decimal from a ccxt number or string (None -> 0); floats through their shortest repr."""
    if value is None or value == "":
        return ZERO
    if isinstance(value, float) and value.is_integer():
        return Decimal(int(value))  # 100250.0 -> 100250, as the exchange printed it
    return model_dec(value)


# ccxt measures the venue's clock at load_markets and signs with it: a skewed local clock
# (Binance -1021, "timestamp outside recvWindow") is then corrected instead of failing every call.
CLOCK_SYNC = {"adjustForTimeDifference": True}


def make_exchange(config: VenueConfig, env: Mapping[str, str] | None = None) -> Any:
    """An async ccxt client for a configured venue; credentials come from the environment.

    A venue with `sandbox_url` talks to a quantdesk sandbox (the sandbox's default key pair is
    used when the config names no credential variables).
    """
    exchange_id = _EXCHANGE_IDS.get((config.exchange, config.market), config.exchange)
    # feed = streams needs a ccxt.pro class (which does REST too); without one the venue is
    # the plain async client and sessions poll (CcxtVenue.streams is then False)
    pro = config.feed == "streams" and hasattr(ccxt_pro, exchange_id)
    if config.sandbox_url:
        if config.api_key_env or config.api_secret_env:
            key, secret = config.credentials(env)
            creds = {"key": key.get_secret_value(), "secret": secret.get_secret_value()}
        else:
            creds = {}
        if pro:
            return sandbox_pro_client(
                exchange_id, config.sandbox_url, options=dict(CLOCK_SYNC), **_pace(config), **creds
            )
        return sandbox_client(
            exchange_id,
            config.sandbox_url,
            async_=True,
            options=dict(CLOCK_SYNC),
            **_pace(config),
            **creds,
        )
    if not hasattr(ccxt_async, exchange_id):
        raise ConfigError(f"unknown ccxt exchange {config.exchange!r}")
    key, secret = config.credentials(env)
    options = {"defaultType": "swap"} if config.market == "usdm" else {}
    options.update(CLOCK_SYNC)
    return getattr(ccxt_pro if pro else ccxt_async, exchange_id)(
        {
            "apiKey": key.get_secret_value(),
            "secret": secret.get_secret_value(),
            "enableRateLimit": True,
            "options": options,
            **_pace(config),
        }
    )


def _pace(config: VenueConfig) -> dict[str, float]:
    """ccxt's own request pacing unless the config names another (its rateLimit)."""
    return {} if config.rate_limit_ms is None else {"rateLimit": config.rate_limit_ms}


class CcxtVenue:
    """One exchange account through ccxt.async_support (implements the engine's `Venue`)."""

    def __init__(self, exchange: Any, name: str, *, market: str = "spot") -> None:
        """exchange: an async ccxt client (not yet loaded is fine); market: spot or usdm."""
        self.exchange = exchange
        self.name = name
        self.market = market
        self.rules: dict[str, Instrument] = {}
        self.marks: dict[str, Decimal] = {}  # reference prices for market-order notional checks
        binance = exchange.id.startswith("binance")
        self._create_key = "newClientOrderId" if binance else "clientOrderId"
        self._fetch_key = "origClientOrderId" if binance else "clientOrderId"
        # (market id, interval, open ms) -> (closed flag, event ms) of the latest kline message
        self._klines: dict[tuple[str, str, int], tuple[bool, int]] = {}
        if self.streams and binance:
            _keep_kline_flags(exchange, self._klines)

    @classmethod
    def from_config(
        cls, name: str, config: VenueConfig, env: Mapping[str, str] | None = None
    ) -> CcxtVenue:
        """A venue from quantdesk.toml's [venues.NAME]."""
        return cls(make_exchange(config, env), name, market=config.market)

    @_mapped(Operation.FETCH)
    @_mapped(Operation.FETCH)
    async def load(self) -> dict[str, Instrument]:
        """Load markets and build each market's rules (steps, ticks, limits)."""
        markets = await self.exchange.load_markets()
        mode = self.exchange.precisionMode
        self.rules = {s: Instrument.from_ccxt(m, mode) for s, m in markets.items()}
        return self.rules

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.exchange.close()

    # --- Venue protocol -----------------------------------------------------------------------

    @_mapped(Operation.CREATE)
    async def create_order(self, order: Order) -> VenueOrder:
        """Place the order under its client id, after precision and limit checks."""
        if not self.rules:
            await self.load()
        amount, price, params = self._request(order)
        kind = "limit" if order.type.needs_price else "market"
        raw = await self.exchange.create_order(
            order.symbol, kind, order.side.value, amount, price, params
        )
        return await self._reply(raw, order.symbol, order.client_order_id)

    @_mapped(Operation.FETCH)
    async def fetch_order_by_client_id(
        self, symbol: str, client_order_id: str
    ) -> VenueOrder | None:
        """The order with this client id, or None if the venue says it has no such order."""
        families: list[dict[str, Any]] = [{}]
        if self.market == "usdm":
            families.append({"trigger": True})  # conditional orders: Binance's algo endpoints
        for family in families:
            try:
                raw = await self.exchange.fetch_order(
                    None, symbol, {self._fetch_key: client_order_id, **family}
                )
            except ccxt.OrderNotFound:
                continue  # "no such order" in this family: look in the next
            return await self._reply(raw, symbol, client_order_id)
        return None

    @_mapped(Operation.CANCEL)
    async def cancel_order(self, order: Order) -> VenueOrder:
        """Cancel by client id; returns the order as the venue reports it afterwards."""
        params = {self._fetch_key: order.client_order_id, **self._family(order.symbol, order)}
        raw = await self.exchange.cancel_order(None, order.symbol, params)
        if raw.get("status") is None:
            # some endpoints (Binance algo orders) acknowledge a cancel without the order's state
            found = await self.fetch_order_by_client_id(order.symbol, order.client_order_id)
            if found is not None:
                return found
        return await self._reply(raw, order.symbol, order.client_order_id)

    @_mapped(Operation.FETCH)
    async def fetch_open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """All open orders (of every symbol when symbol is None)."""
        raws = await self._open_orders(symbol)
        return [await self._reply(r, r["symbol"], r.get("clientOrderId") or "") for r in raws]

    async def _open_orders(self, symbol: str | None) -> list[dict[str, Any]]:
        raws = list(await self.exchange.fetch_open_orders(symbol))
        if self.market == "usdm":
            raws += await self.exchange.fetch_open_orders(symbol, None, None, {"trigger": True})
        return raws

    @_mapped(Operation.FETCH)
    async def fetch_time_ms(self, symbol: str) -> int:
        """The venue's clock (its last ticker time for `symbol`), ms UTC."""
        ticker = await self.exchange.fetch_ticker(symbol)
        return int(ticker.get("timestamp") or 0)

    # --- what reconciliation reads -----------------------------------------------------------

    @_mapped(Operation.FETCH)
    async def fetch_fills(self, symbol: str, since_ms: int | None = None) -> list[Fill]:
        """Our trades in `symbol` at or after since_ms, oldest first (client id left empty:
        trades carry only the venue order id)."""
        # no start at all rather than epoch 0: ccxt's binanceusdm turns a start into a 7-day window
        trades = await self.exchange.fetch_my_trades(symbol, since_ms or None)
        return [self._fill(t, "") for t in trades]

    @_mapped(Operation.FETCH)
    async def fetch_order_client_id(self, symbol: str, venue_order_id: str) -> str:
        """The client id of an order known by its venue id."""
        raw = await self.exchange.fetch_order(venue_order_id, symbol)
        return raw.get("clientOrderId") or ""

    @_mapped(Operation.FETCH)
    async def fetch_open_engine_orders(self, symbol: str | None = None) -> list[Order]:
        """Open venue orders as engine orders in SUBMITTED state (for adoption or cancelling):
        their fills and status are then read through `fetch_order_by_client_id`."""
        out = []
        for raw in await self._open_orders(symbol):
            price = dec(raw.get("price")) or None
            trigger = dec(raw.get("triggerPrice") or raw.get("stopPrice")) or None
            if trigger is not None:
                kind = (
                    OrderType.STOP_LIMIT
                    if price and raw.get("type") != "market"
                    else OrderType.STOP
                )
                price = price if kind is OrderType.STOP_LIMIT else None
            else:
                kind = OrderType.LIMIT if raw.get("type") == "limit" else OrderType.MARKET
                price = price if kind is OrderType.LIMIT else None
            out.append(
                Order(
                    client_order_id=raw.get("clientOrderId") or f"venue-{raw['id']}",
                    symbol=raw["symbol"],
                    side=Side(raw["side"]),
                    type=kind,
                    amount=dec(raw["amount"]),
                    created_ms=int(raw.get("timestamp") or 0),
                    price=price,
                    trigger_price=trigger,
                    reduce_only=bool(raw.get("reduceOnly")),
                    strategy_id="adopted",
                    venue=self.name,
                    status=S.SUBMITTED,
                    venue_order_id=str(raw["id"]),
                )
            )
        return out

    @_mapped(Operation.FETCH)
    async def fetch_balances(self) -> dict[str, VenueBalance]:
        """Non-zero balances per asset (spot wallet, or the futures wallet balance)."""
        raw = await self.exchange.fetch_balance()
        out = {}
        for asset, total in (raw.get("total") or {}).items():
            if total is None:
                continue
            free = (raw.get("free") or {}).get(asset)
            bal = VenueBalance(asset, dec(total), dec(free))
            if bal.total or bal.free:
                out[asset] = bal
        return out

    @_mapped(Operation.FETCH)
    async def fetch_positions(self) -> dict[str, VenuePosition]:
        """Open derivative positions by symbol (spot venues have none)."""
        if self.market != "usdm":
            return {}
        out = {}
        for p in await self.exchange.fetch_positions():
            qty = dec(p.get("contracts")) * dec(p.get("contractSize") or 1)
            if not qty:
                continue
            if p.get("side") == "short":
                qty = -qty
            out[p["symbol"]] = VenuePosition(p["symbol"], qty, dec(p.get("entryPrice")))
        return out

    @_mapped(Operation.FETCH)
    async def fetch_closed_bars(
        self, symbol: str, timeframe: str, since_ms: int | None, limit: int = 500
    ) -> list[list[Any]]:
        """Closed candles [open_ms, o, h, l, c, v] with open_ms >= since_ms.

        A candle is closed when its end is at or before the venue's current time, taken from
        the ticker (the sandbox replays history, so the local wall clock says nothing).
        """
        # The clock is read BEFORE the candles: a candle closed by then is final in any later
        # answer, while the other order could pair old candles with a newer clock.
        ticker = await self.exchange.fetch_ticker(symbol)
        now = int(ticker.get("timestamp") or 0) + 1  # closeTime is the last ms of the window
        rows = await self.exchange.fetch_ohlcv(symbol, timeframe, since_ms, limit)
        span = self.exchange.parse_timeframe(timeframe) * 1000
        return [r for r in rows if r[0] + span <= now]

    # --- streams (ccxt.pro) ---------------------------------------------------------------

    @property
    def streams(self) -> bool:
        """Whether the client is a ccxt.pro one that streams candles (feed = streams)."""
        return bool(getattr(self.exchange, "has", {}).get("ws")) and bool(
            self.exchange.has.get("watchOHLCV")
        )

    @_mapped(Operation.FETCH)
    async def watch_candles(self, symbol: str, timeframe: str) -> list[tuple[list[Any], bool]]:
        """The next candle updates from the kline stream, oldest first, each as
        ([open_ms, o, h, l, c, v], closed).

        closed: Binance's final-update flag (k.x), or the venue's event time at or past the
        candle's end; other exchanges: the local clock past its end. A candle that is not yet
        closed is closed by the next one opening (the caller's rule: it sees the order).
        """
        span = self.exchange.parse_timeframe(timeframe) * 1000
        market_id = self.exchange.market(symbol)["id"]
        interval = self.exchange.timeframes.get(timeframe, timeframe)
        if not self._klines_of(market_id, interval):
            rows = await self.exchange.watch_ohlcv(symbol, timeframe)
        else:
            # messages came in since the last call: ccxt would hand them over only with the
            # next message (a watch waits for a new one), so a burst's last candle would wait
            rows = []
        times = self._klines_of(market_id, interval)
        if times:  # Binance: what the messages updated, read from ccxt's candle cache
            cache = (self.exchange.ohlcvs.get(symbol) or {}).get(timeframe) or []
            # ArrayCacheByTimestamp keys its rows by open time; any other cache is scanned
            by_time = getattr(cache, "hashmap", None) or {int(r[0]): r for r in cache}
            out = []
            for t in times:
                closed, event_ms = self._klines.pop((market_id, interval, t))
                if t in by_time:  # (else the cache dropped it: the feed backfills the hole)
                    out.append((list(by_time[t][:6]), closed or event_ms >= t + span))
            return out
        now = self.exchange.milliseconds()
        return [(list(r[:6]), now >= int(r[0]) + span) for r in sorted(rows, key=lambda r: r[0])]

    def _klines_of(self, market_id: str, interval: str) -> list[int]:
        """Open times of the kline messages of one stream not yet handed over, oldest first."""
        return sorted(t for m, i, t in self._klines if m == market_id and i == interval)

    @_mapped(Operation.FETCH)
    async def reset_streams(self) -> None:
        """Close every stream connection: the next watch connects and subscribes afresh (a
        stalled connection may be open but dead)."""
        clients = list(self.exchange.clients.items())
        for url, client in clients:
            # dropped first, so a watch made while these close connects afresh (ccxt's own
            # close_ws_clients would also drop a connection opened meanwhile)
            if self.exchange.clients.get(url) is client:
                del self.exchange.clients[url]
            client.error = ccxt.NetworkError("stream reset by the session")
            # every watcher on it fails now and reconnects, instead of waiting out its stall
            client.reject(client.error)
        await asyncio.gather(*(c.close() for _, c in clients), return_exceptions=True)

    # --- helpers ------------------------------------------------------------------------------

    def _family(self, symbol: str, order: Order | None) -> dict[str, Any]:
        """USD-M conditional orders live on Binance's algo endpoints: tell ccxt so."""
        if self.market == "usdm" and order is not None and order.type.needs_trigger:
            return {"trigger": True}
        return {}

    def _request(self, order: Order) -> tuple[str, str | None, dict[str, Any]]:
        """Formatted amount/price and params; InvalidOrder for what the venue would refuse."""
        rules = self.rules.get(order.symbol)
        if rules is None:
            raise ccxt.BadSymbol(f"{self.name}: no market {order.symbol}")
        ex = self.exchange
        with localcontext():  # ccxt's rounding helpers rewrite the context they run under
            amount = ex.amount_to_precision(order.symbol, str(order.amount))
            price = ex.price_to_precision(order.symbol, str(order.price)) if order.price else None
            trigger = (
                ex.price_to_precision(order.symbol, str(order.trigger_price))
                if order.trigger_price is not None
                else None
            )
        if Decimal(amount) != order.amount:
            raise ccxt.InvalidOrder(
                f"amount {order.amount} is not on the {order.symbol} step {rules.amount_step}"
            )
        if order.amount < rules.min_amount:
            raise ccxt.InvalidOrder(f"amount {order.amount} below minimum {rules.min_amount}")
        if rules.max_amount is not None and order.amount > rules.max_amount:
            raise ccxt.InvalidOrder(f"amount {order.amount} above maximum {rules.max_amount}")
        ref = order.price or order.trigger_price or self.marks.get(order.symbol)
        if not order.reduce_only and ref and order.amount * ref < rules.min_notional:
            raise ccxt.InvalidOrder(
                f"notional {order.amount * ref} below minimum {rules.min_notional}"
            )
        params: dict[str, Any] = {self._create_key: order.client_order_id}
        if trigger is not None:
            stop = order.type in (OrderType.STOP, OrderType.STOP_LIMIT)
            params["stopLossPrice" if stop else "takeProfitPrice"] = trigger
        if order.type.needs_price:
            params["timeInForce"] = order.time_in_force.value
        if order.reduce_only and self.market == "usdm":
            params["reduceOnly"] = True  # spot has no such flag: a sell only spends what is held
        return amount, price, params

    async def _reply(self, raw: Mapping[str, Any], symbol: str, client_order_id: str) -> VenueOrder:
        """A VenueOrder from a ccxt order, its fills itemized from the trade list."""
        cid = raw.get("clientOrderId") or client_order_id
        venue_id = str(raw["id"]) if raw.get("id") is not None else None
        reported = dec(raw.get("filled"))
        fills: tuple[Fill, ...] = ()
        if reported > 0 and venue_id is not None:
            trades = await self.exchange.fetch_my_trades(symbol, None, None, {"orderId": venue_id})
            fills = tuple(self._fill(t, cid) for t in trades if str(t.get("order")) == venue_id)
        filled = sum((f.amount for f in fills), ZERO)
        status = _UNIFIED_STATUS.get(raw.get("status") or "", S.NEW)
        if filled < reported:
            log.warning("order %s: trades lag the order (%s < %s)", cid, filled, reported)
            status = S.PARTIALLY_FILLED if filled else S.NEW
        elif status is S.NEW and filled > 0:
            status = S.PARTIALLY_FILLED
        fee_ccy = fills[0].fee_currency if fills else ""
        return VenueOrder(
            client_order_id=cid,
            status=status,
            venue_order_id=venue_id,
            filled=filled,
            average_price=sum((f.notional for f in fills), ZERO) / filled if filled else None,
            fee=sum((f.fee for f in fills), ZERO),
            fee_currency=fee_ccy,
            fills=fills,
            timestamp=int(raw.get("lastUpdateTimestamp") or raw.get("timestamp") or 0),
            reason=str((raw.get("info") or {}).get("status", "")).lower(),
        )

    def _fill(self, trade: Mapping[str, Any], client_order_id: str) -> Fill:
        fee = trade.get("fee") or {}
        return Fill(
            trade_id=str(trade["id"]),
            client_order_id=client_order_id,
            symbol=trade["symbol"],
            side=Side(trade["side"]),
            amount=dec(trade["amount"]),
            price=dec(trade["price"]),
            fee=dec(fee.get("cost")),
            fee_currency=fee.get("currency") or "",
            timestamp=int(trade.get("timestamp") or 0),
            venue=self.name,
            venue_order_id=str(trade.get("order")) if trade.get("order") is not None else None,
        )


def _keep_kline_flags(exchange: Any, flags: dict[tuple[str, str, int], tuple[bool, int]]) -> None:
    """Record each kline message's closed flag and event time before ccxt parses it.

    ccxt's unified candles drop Binance's k.x and E: without them a finished candle would only
    count as closed when the next one opens, a whole bar late.
    """
    handle = exchange.handle_ohlcv

    def handle_ohlcv(client: Any, message: dict[str, Any]) -> Any:
        kline = message.get("k") or {}
        if "t" in kline:
            key = (str(kline.get("s") or kline.get("ps")), str(kline.get("i")), int(kline["t"]))
            flags[key] = (bool(kline.get("x")), int(message.get("E") or 0))
            if len(flags) > 10_000:  # updates nobody watched any more (a symbol unsubscribed)
                for old in list(flags)[:5_000]:
                    del flags[old]
        return handle(client, message)

    exchange.handle_ohlcv = handle_ohlcv
