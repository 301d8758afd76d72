"""Orders, fills, markets and rejections of the matching core (Decimal money throughout).

Statuses and time in force are the model's (`quantdesk.model`); the core's orders use NEW,
PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED and REJECTED, and change status only through
`Order.apply` (the model's transition table). Order types here are Binance's, which the sandbox
speaks; the engine's own order types are `model.OrderType`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from enum import StrEnum

from quantdesk.model import (
    ZERO,
    OrderStatus,
    Side,
    TimeInForce,
    check_transition,
    round_to_step,
)


class OrderType(StrEnum):
    """Order types the core matches; the sandbox maps Binance's spot and futures names here."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"
    LIMIT_MAKER = "LIMIT_MAKER"
    STOP_LOSS = "STOP_LOSS"  # stop -> market
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"  # stop -> limit
    TAKE_PROFIT = "TAKE_PROFIT"  # take-profit -> market
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"  # take-profit -> limit

    @property
    def is_stop(self) -> bool:
        """A stop-loss family order (triggers on adverse moves)."""
        return self in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)

    @property
    def is_take_profit(self) -> bool:
        """A take-profit family order (triggers on favourable moves)."""
        return self in (OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT)

    @property
    def is_conditional(self) -> bool:
        """Waits for a trigger price before working."""
        return self.is_stop or self.is_take_profit

    @property
    def has_limit(self) -> bool:
        """Carries a limit price."""
        return self in (
            OrderType.LIMIT,
            OrderType.LIMIT_MAKER,
            OrderType.STOP_LOSS_LIMIT,
            OrderType.TAKE_PROFIT_LIMIT,
        )


class Reject(StrEnum):
    """Why the core refused an order or a request; the sandbox maps these to Binance codes."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    PRICE_FILTER = "price_filter"
    LOT_SIZE = "lot_size"
    NOTIONAL = "notional"
    WOULD_TAKE = "would_take"  # post-only order that would cross
    FOK_UNFILLED = "fok_unfilled"
    WOULD_TRIGGER = "would_trigger"  # stop whose trigger is already hit
    DUPLICATE_ORDER = "duplicate_order"
    UNKNOWN_ORDER = "unknown_order"
    BAD_SYMBOL = "bad_symbol"
    BAD_REQUEST = "bad_request"
    REDUCE_ONLY = "reduce_only"


class OrderRejected(Exception):
    """The core refused a request; `reason` says why, the message is for people."""

    def __init__(self, reason: Reject, message: str = "") -> None:
        super().__init__(message or reason.value)
        self.reason = reason


@dataclass(frozen=True)
class MarketSpec:
    """One tradable market with its exchange filters (tick, step, minimums)."""

    symbol: str  # ccxt unified: BTC/USDT or BTC/USDT:USDT
    id: str  # exchange id: BTCUSDT
    base: str
    quote: str
    perp: bool
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal

    def round_price(self, price: Decimal, up: bool = False) -> Decimal:
        """Price on the tick grid (down by default)."""
        rounding = ROUND_UP if up else ROUND_DOWN
        return round_to_step(price, self.tick_size, rounding).quantize(self.tick_size)

    def round_qty(self, qty: Decimal) -> Decimal:
        """Quantity on the step grid, rounded down."""
        return round_to_step(qty, self.step_size, ROUND_DOWN).quantize(self.step_size)


@dataclass(frozen=True)
class Bar:
    """One OHLCV bar in Decimal, prices on the market's tick grid."""

    time: int  # open time, ms
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class Fill:
    """One execution of an order; commission is charged in commission_asset."""

    trade_id: int
    order_id: int
    account: str
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    maker: bool
    time: int
    realized_pnl: Decimal = ZERO


@dataclass
class OrderRequest:
    """What a client asks for; validated and matched by MatchingCore.submit."""

    symbol: str
    side: Side
    type: OrderType
    qty: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    quote_qty: Decimal | None = None  # spot market orders sized in quote currency
    tif: TimeInForce = TimeInForce.GTC
    client_id: str | None = None
    reduce_only: bool = False


@dataclass
class Order:
    """An order's full state as the venue sees it."""

    id: int
    account: str
    client_id: str
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce
    qty: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    quote_qty: Decimal | None
    reduce_only: bool
    time: int
    update_time: int
    status: OrderStatus = OrderStatus.NEW
    filled: Decimal = ZERO
    cum_quote: Decimal = ZERO
    triggered: bool = False
    locked: Decimal = ZERO  # funds (spot) or margin (perp) held for the unfilled rest
    fills: list[Fill] = field(default_factory=list)

    def apply(self, status: OrderStatus) -> None:
        """Move to `status` if the model's transition table allows it."""
        check_transition(self.client_id, self.status, status)
        self.status = status

    @property
    def remaining(self) -> Decimal:
        """Quantity still to fill."""
        return self.qty - self.filled

    @property
    def avg_price(self) -> Decimal:
        """Average fill price (0 before any fill)."""
        return self.cum_quote / self.filled if self.filled else ZERO
