"""Ports: what the engine needs from venues, journals and risk checks, and how venues fail.

The engine knows venues and risk only through these protocols, so `engine/` imports neither
`venues/` nor `risk/`; `system/` plugs the implementations in.

Venue failures come in three kinds (`VenueError`): a refusal the venue stated (`VenueRefused`:
the request did not take effect, repeating it cannot help), an outcome nobody knows
(`VenueAmbiguous`: timeout, reset, 5xx, maintenance, rate limit; an order may have been placed)
and "no such order" (`VenueNotFound`, a refusal). Adapters translate their library's exceptions
into these (CcxtVenue maps ccxt's classes, in venues/ccxt_venue.py only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from quantdesk.model.bars import SimBar
from quantdesk.model.enums import OrderStatus, Side
from quantdesk.model.fills import ZERO, Fill
from quantdesk.model.orders import Order, OrderEvent


class VenueError(Exception):
    """A venue request failed; `throttled` when the venue asked us to slow down."""

    def __init__(self, message: str = "", *, throttled: bool = False) -> None:
        super().__init__(message)
        self.throttled = throttled


class VenueRefused(VenueError):
    """A definitive refusal: the request did not take effect (funds, filters, symbol, auth)."""


class VenueNotFound(VenueRefused):
    """The venue has no such order."""


class VenueAmbiguous(VenueError):
    """The outcome is unknown: the request may or may not have taken effect."""


class DuplicateOrder(VenueAmbiguous):
    """Our client order id already exists at the venue: an earlier attempt did land."""


@dataclass(frozen=True)
class VenueOrder:
    """The venue's view of one order (an ack, a lookup or a cancel reply).

    `fills` itemizes executions when the venue reports them; otherwise the cumulative `filled`,
    `average_price` and `fee` are used and the difference is applied as one synthetic fill. A
    venue adapter must do one or the other consistently: mixing them would count fills twice.
    """

    client_order_id: str
    status: OrderStatus  # NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED or REJECTED
    venue_order_id: str | None = None
    filled: Decimal = ZERO
    average_price: Decimal | None = None
    fee: Decimal = ZERO
    fee_currency: str = ""
    fills: tuple[Fill, ...] = ()
    timestamp: int = 0
    reason: str = ""


class Venue(Protocol):
    """What the order manager needs from a venue (SimVenue, CcxtVenue, test fakes).

    Failures are raised as `VenueError` subclasses."""

    name: str

    async def create_order(self, order: Order) -> VenueOrder:
        """Place the order under order.client_order_id; raise on failure."""
        ...

    async def fetch_order_by_client_id(
        self, symbol: str, client_order_id: str
    ) -> VenueOrder | None:
        """The order with this client id, or None when the venue has no such order."""
        ...

    async def cancel_order(self, order: Order) -> VenueOrder:
        """Cancel by client id (and venue id when known); returns the order after the cancel."""
        ...

    async def fetch_open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        """All open orders, optionally for one symbol."""
        ...


class OrderJournal(Protocol):
    """What the order manager persists (quantdesk.engine.journal.Journal implements it)."""

    def record_order(self, order: Order) -> None:
        """Insert or update the order's current state."""
        ...

    def record_event(self, event: OrderEvent) -> None:
        """Append one state transition."""
        ...

    def record_fill(self, fill: Fill) -> bool:
        """Store a fill; False if its trade id was already stored (not to be re-applied to the
        portfolio)."""
        ...


@runtime_checkable
class BarVenue(Protocol):
    """A venue driven by the engine's bars (SimVenue): fills happen when bars open and close."""

    def open_bar(self, symbol: str, bar: SimBar) -> list[str]:
        """A bar starts (orders due at its open execute); returns the changed client ids."""
        ...

    def range_bar(self, symbol: str) -> list[str]:
        """After the orders at the open, the bar's range: stops trigger; changed client ids."""
        ...

    def close_bar(self, symbol: str, bar: SimBar) -> list[str]:
        """A bar closed; returns the client ids of orders that changed."""
        ...

    def quote(self, symbol: str, side: Side) -> Decimal | None:
        """The price a market order would fill at now."""
        ...


@dataclass(frozen=True)
class VenueBalance:
    """One asset's balance at the venue."""

    asset: str
    total: Decimal
    free: Decimal


@dataclass(frozen=True)
class VenuePosition:
    """A derivative position at the venue: signed quantity (negative = short)."""

    symbol: str
    quantity: Decimal
    entry_price: Decimal


class TradingState(StrEnum):
    """ACTIVE trades normally; REDUCING only lets exposure shrink; HALTED only cancels."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class Decision(StrEnum):
    """Outcome of a pre-trade check."""

    APPROVED = "approved"
    APPROVED_REDUCED = "approved_reduced"
    DENIED = "denied"


class Reason(StrEnum):
    """Why an order was denied or reduced."""

    HALTED = "halted"
    REDUCING_ONLY = "reducing_only"  # REDUCING state and the order is not reduce-only
    REDUCE_ONLY_INCREASES = "reduce_only_increases"  # reduce-only but no position to reduce
    REDUCE_ONLY_CLIPPED = "reduce_only_clipped"  # larger than the position it reduces
    UNKNOWN_MARKET = "unknown_market"
    NO_PRICE = "no_price"  # market order and no reference price
    MIN_AMOUNT = "min_amount"  # below the market minimum (or rounds to zero)
    MAX_AMOUNT = "max_amount"
    MIN_NOTIONAL = "min_notional"
    MAX_NOTIONAL = "max_notional"  # our per-order limit
    INSUFFICIENT_BALANCE = "insufficient_balance"
    # Limits that need portfolio state or history (quantdesk.risk.checks.RiskEngine):
    CIRCUIT_OPEN = "circuit_open"  # the venue's circuit breaker is open
    ORDER_RATE = "order_rate"  # too many orders per second or per minute
    CANCEL_RATIO = "cancel_ratio"  # too many cancels per order in the window
    PRICE_BAND = "price_band"  # limit price too far from the last price
    RISK_PER_TRADE = "risk_per_trade"  # stop distance x size above the share of equity
    MAX_POSITIONS = "max_positions"  # would open one position too many
    SYMBOL_EXPOSURE = "symbol_exposure"  # |position| x price above the share of equity
    GROSS_EXPOSURE = "gross_exposure"  # sum of |notional| above the currency cap
    LEVERAGE = "leverage"  # gross exposure / equity above the maximum
    LIQUIDATION_BUFFER = "liquidation_buffer"  # liquidation price too close to the mark
    NO_EQUITY = "no_equity"  # equity <= 0: nothing may be risked


def state_refusal(state: TradingState, reduce_only: bool) -> tuple[Reason, str] | None:
    """Why the trading state refuses a new order (None: it allows it).

    The one rule the gate, the risk engine and the kernel (for an order approved after a state
    change) all apply: HALTED lets only cancels through, REDUCING only reduce-only orders."""
    if state is TradingState.HALTED:
        return Reason.HALTED, "trading is halted: only cancels are allowed"
    if state is TradingState.REDUCING and not reduce_only:
        return Reason.REDUCING_ONLY, "trading is reducing: only reduce-only orders"
    return None


@dataclass(frozen=True)
class RiskDecision:
    """The gate's answer: the amount/prices to use if approved, the reason if not (or reduced)."""

    decision: Decision
    amount: Decimal
    price: Decimal | None
    trigger_price: Decimal | None
    reason: Reason | None = None
    message: str = ""

    @property
    def approved(self) -> bool:
        """The order may be sent (possibly reduced)."""
        return self.decision is not Decision.DENIED

    def applied_to(self, order: Order) -> Order:
        """A fresh PENDING order with the approved amount and prices."""
        if not self.approved:
            raise ValueError(f"denied order cannot be applied: {self.reason}")
        return Order(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            amount=self.amount,
            created_ms=order.created_ms,
            price=self.price,
            trigger_price=self.trigger_price,
            time_in_force=order.time_in_force,
            reduce_only=order.reduce_only,
            strategy_id=order.strategy_id,
            venue=order.venue,
            decision_price=order.decision_price,
        )


class RiskCheck(Protocol):
    """What the engine asks before sending an order or a cancel (quantdesk.risk implements it)."""

    state: TradingState

    def check_order(
        self,
        order: Order,
        *,
        reference_price: Decimal | None,
        position: Decimal,
        free: Mapping[str, Decimal],
    ) -> RiskDecision:
        """Approve, reduce or deny a new order."""
        ...

    def allows_cancel(self) -> bool:
        """Whether cancels may be sent (always, in every state)."""
        ...


class PositionView(Protocol):
    """One position as risk checks read it."""

    quantity: Decimal


class PortfolioView(Protocol):
    """What risk checks read of the engine's portfolio (engine.portfolio.Portfolio)."""

    cash: dict[str, Decimal]
    currency: str

    @property
    def positions(self) -> Mapping[str, PositionView]:
        """Positions by symbol."""
        ...

    def equity(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Cash plus positions at `marks`."""
        ...


class OrderDesk(Protocol):
    """What the kill switch drives: an order manager (engine.order_manager.OrderManager)."""

    orders: dict[str, Order]

    async def submit(self, order: Order) -> Order:
        """Send one order; returns it as tracked."""
        ...

    async def cancel(self, client_order_id: str, reason: str = "") -> Order:
        """Cancel one tracked order."""
        ...


class CommandJournal(Protocol):
    """Control commands (kill, resume, approve) queued in a journal (engine.journal.Journal)."""

    def pending_commands(self, kind: str | None = None) -> list[Any]:
        """Commands not yet consumed, oldest first."""
        ...

    def consume_command(self, command_id: int, timestamp: int) -> bool:
        """Mark one consumed; False if another consumer won."""
        ...

    def add_command(
        self,
        kind: str,
        timestamp: int,
        target: str = "",
        payload: Mapping[str, Any] | None = None,
    ) -> int:
        """Queue a command; returns its id."""
        ...
