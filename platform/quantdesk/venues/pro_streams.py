"""ccxt.pro streams a market maker runs on: the touch (watch_order_book), market trades
(watch_trades) and our own orders and trades (watch_orders / watch_my_trades).

Each stream is a loop that hands every update to a callback and survives anything the library
raises: a failed watch is counted as a reconnect, the `on_reconnect` callback runs (the session
backfills over REST what the gap may have hidden) and the watch is called again after a short
backoff, which makes ccxt.pro open a fresh connection and resubscribe. No ccxt exception class is
named here (they are mapped in ccxt_venue.py only): any failure of a stream means the same thing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ccxt.pro

from quantdesk.config import VenueConfig
from quantdesk.errors import ConfigError
from quantdesk.model import Fill, OrderStatus, Side, dec
from quantdesk.venues.client import sandbox_pro_client

log = logging.getLogger(__name__)

_STATUS = {
    "open": OrderStatus.NEW,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


@dataclass(frozen=True, slots=True)
class Touch:
    """Best bid and ask with their sizes; time_ms is the venue's (0 when it sent none)."""

    time_ms: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float


@dataclass(frozen=True, slots=True)
class MarketTrade:
    """A trade on the market: aggressor side (+1 buy, -1 sell), price, size, venue time."""

    time_ms: int
    side: int
    price: float
    size: float
    trade_id: str


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One of our orders as the user stream reported it (cumulative filled amount)."""

    client_order_id: str
    status: OrderStatus
    filled: Decimal
    venue_order_id: str | None
    time_ms: int


def exchange_id(config: VenueConfig) -> str:
    """The ccxt id of a configured venue (binance spot -> binance, USD-M -> binanceusdm)."""
    if config.exchange == "binance" and config.market == "usdm":
        return "binanceusdm"
    return config.exchange


def pro_exchange(config: VenueConfig, env: Mapping[str, str] | None = None) -> Any:
    """A ccxt.pro client for a configured venue; a sandbox venue's REST and stream URLs are
    pointed at the sandbox (its default key pair unless the config names credentials)."""
    ident = exchange_id(config)
    if not hasattr(ccxt.pro, ident):
        raise ConfigError(f"ccxt.pro has no streams for {ident!r}: market making needs them")
    creds: dict[str, str] = {}
    if config.api_key_env or config.api_secret_env or not config.sandbox_url:
        key, secret = config.credentials(env)
        creds = {"apiKey": key.get_secret_value(), "secret": secret.get_secret_value()}
    if not config.sandbox_url:
        options = {"defaultType": "swap"} if config.market == "usdm" else {}
        return getattr(ccxt.pro, ident)({**creds, "enableRateLimit": True, "options": options})
    creds = creds or {"apiKey": "sandbox-key", "secret": "sandbox-secret"}
    return sandbox_pro_client(
        ident, config.sandbox_url, creds["apiKey"], creds["secret"], enableRateLimit=False
    )


def touch_of(book: Mapping[str, Any]) -> Touch | None:
    """The touch of a ccxt order book (None while one side is empty)."""
    bids, asks = book.get("bids") or [], book.get("asks") or []
    if not bids or not asks:
        return None
    ts = int(book.get("timestamp") or 0)
    return Touch(ts, float(bids[0][0]), float(asks[0][0]), float(bids[0][1]), float(asks[0][1]))


def trade_of(raw: Mapping[str, Any]) -> MarketTrade:
    """A ccxt public trade as a MarketTrade (side is the taker's)."""
    side = 1 if raw.get("side") == "buy" else -1
    return MarketTrade(
        int(raw.get("timestamp") or 0),
        side,
        float(raw["price"]),
        float(raw["amount"]),
        str(raw.get("id")),
    )


def fill_of(raw: Mapping[str, Any], venue: str) -> Fill:
    """One of our trades from watch_my_trades as a Fill (client id from the execution report)."""
    info = raw.get("info") or {}
    cid = raw.get("clientOrderId") or info.get("c") or ""
    fee = raw.get("fee") or {}
    return Fill(
        trade_id=str(raw["id"]),
        client_order_id=str(cid),
        symbol=raw["symbol"],
        side=Side(raw["side"]),
        amount=dec(raw["amount"]),
        price=dec(raw["price"]),
        fee=dec(fee.get("cost") or 0),
        fee_currency=fee.get("currency") or "",
        timestamp=int(raw.get("timestamp") or 0),
        venue=venue,
        venue_order_id=str(raw["order"]) if raw.get("order") is not None else None,
    )


def update_of(raw: Mapping[str, Any]) -> OrderUpdate:
    """One of our orders from watch_orders."""
    return OrderUpdate(
        str(raw.get("clientOrderId") or ""),
        _STATUS.get(raw.get("status") or "", OrderStatus.NEW),
        dec(raw.get("filled") or 0),
        str(raw["id"]) if raw.get("id") is not None else None,
        int(raw.get("lastUpdateTimestamp") or raw.get("timestamp") or 0),
    )


class ProStreams:
    """The four streams of one symbol on one ccxt.pro client, each with reconnects."""

    def __init__(
        self, exchange: Any, symbol: str, venue: str, *, backoff_s: float = 0.2, cap_s: float = 5.0
    ) -> None:
        """exchange: a ccxt.pro client; venue: the venue name fills are tagged with."""
        self.exchange = exchange
        self.symbol = symbol
        self.venue = venue
        self.backoff_s = backoff_s
        self.cap_s = cap_s
        self.reconnects: dict[str, int] = {}
        self.messages = 0

    async def _loop(
        self,
        name: str,
        watch: Callable[[], Any],
        handle: Callable[[Any], None],
        on_reconnect: Callable[[], Any] | None,
    ) -> None:
        failures = 0
        while True:
            try:
                got = await watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any stream failure: reconnect and resubscribe
                failures += 1
                self.reconnects[name] = self.reconnects.get(name, 0) + 1
                log.warning("%s stream failed (%s); reconnecting", name, type(exc).__name__)
                await asyncio.sleep(min(self.backoff_s * 2 ** (failures - 1), self.cap_s))
                if on_reconnect is not None:
                    result = on_reconnect()
                    if asyncio.iscoroutine(result):
                        await result
                continue
            failures = 0
            self.messages += 1
            try:
                handle(got)
            except (KeyError, TypeError, ValueError) as exc:  # one malformed message: skip it
                log.warning("%s stream: unreadable message (%s)", name, exc)

    async def touches(self, put: Callable[[Touch], None], on_reconnect: Any = None) -> None:
        """watch_order_book forever: each new touch to put (unchanged ones too: sizes move)."""

        def handle(book: Any) -> None:
            touch = touch_of(book)
            if touch is not None:
                put(touch)

        await self._loop(
            "book", lambda: self.exchange.watch_order_book(self.symbol), handle, on_reconnect
        )

    async def trades(self, put: Callable[[MarketTrade], None], on_reconnect: Any = None) -> None:
        """watch_trades forever: each trade once (by id) to put."""
        seen: set[str] = set()

        def handle(batch: Any) -> None:
            for raw in batch:
                trade = trade_of(raw)
                if trade.trade_id not in seen:
                    seen.add(trade.trade_id)
                    put(trade)

        await self._loop(
            "trades", lambda: self.exchange.watch_trades(self.symbol), handle, on_reconnect
        )

    async def my_trades(self, put: Callable[[Fill], None], on_reconnect: Any = None) -> None:
        """watch_my_trades forever: each of our fills to put (the engine dedupes by trade id)."""

        def handle(batch: Any) -> None:
            for raw in batch:
                put(fill_of(raw, self.venue))

        await self._loop(
            "my_trades", lambda: self.exchange.watch_my_trades(self.symbol), handle, on_reconnect
        )

    async def orders(self, put: Callable[[OrderUpdate], None], on_reconnect: Any = None) -> None:
        """watch_orders forever: each order update to put."""

        def handle(batch: Any) -> None:
            for raw in batch:
                put(update_of(raw))

        await self._loop(
            "orders", lambda: self.exchange.watch_orders(self.symbol), handle, on_reconnect
        )

    async def close(self) -> None:
        """Close the client's connections."""
        await self.exchange.close()
