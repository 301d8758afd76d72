"""Orders: the one transition table, the order record and deterministic client order ids.

Every status change goes through `Order.transition` (or `Order.apply_fill`, which calls it), so
an illegal move (a fill on a cancelled order, a rejection after acceptance, leaving a terminal
state) raises `IllegalTransition` instead of silently corrupting the journal.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal

from quantdesk.model.enums import OrderStatus, OrderType, Side, TimeInForce
from quantdesk.model.fills import ZERO, Fill

# Binance newClientOrderId: ^[.A-Z:/a-z0-9_-]{1,36}$
CLIENT_ID_PATTERN = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")

S = OrderStatus

# The one transition table. Why the less obvious moves are legal:
# - PENDING -> CANCELED: withdrawn before sending (confirm mode denied, shutdown);
#   PENDING -> REJECTED: refused locally before sending.
# - SUBMITTED -> PARTIALLY_FILLED/FILLED: the first thing we learn (ack or lookup by client id)
#   may already show fills, e.g. a market order filled on arrival.
# - SUBMITTED -> CANCELED/EXPIRED: an IOC/FOK order that found no liquidity; REJECTED: a
#   definitive refusal, or an in-flight order proven absent after the last resend.
# - SUBMITTED -> CANCELING: cancel by client id while the ack is still unknown.
# - CANCELING -> FILLED/EXPIRED: the order finished before the cancel reached the venue;
#   CANCELING -> NEW/PARTIALLY_FILLED: the cancel was refused and the order is still working.
# - PARTIALLY_FILLED -> PARTIALLY_FILLED: each further partial fill.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING: frozenset({S.SUBMITTED, S.CANCELED, S.REJECTED}),
    S.SUBMITTED: frozenset(
        {S.NEW, S.PARTIALLY_FILLED, S.FILLED, S.CANCELING, S.CANCELED, S.REJECTED, S.EXPIRED}
    ),
    S.NEW: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELING, S.CANCELED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.CANCELING, S.CANCELED, S.EXPIRED}
    ),
    S.CANCELING: frozenset({S.CANCELED, S.FILLED, S.EXPIRED, S.NEW, S.PARTIALLY_FILLED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}


class IllegalTransition(Exception):
    """An order was asked to move between two states the transition table does not connect."""

    def __init__(self, client_order_id: str, old: OrderStatus, new: OrderStatus) -> None:
        super().__init__(f"order {client_order_id}: illegal transition {old} -> {new}")
        self.client_order_id = client_order_id
        self.old = old
        self.new = new


def check_transition(client_order_id: str, old: OrderStatus, new: OrderStatus) -> None:
    """Raise IllegalTransition unless the table allows old -> new."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(client_order_id, old, new)


def client_order_id(
    strategy_id: str, symbol: str, bar_ms: int, seq: int, prefix: str = "qd"
) -> str:
    """Deterministic client order id for one intent, valid as a Binance newClientOrderId.

    The same (strategy, symbol, signal bar, sequence) always gives the same id, so an engine
    restarted after a crash regenerates the id of an order it may already have sent, and the
    venue's duplicate check (or a lookup by client id) finds it instead of placing a second one.
    """
    if not re.fullmatch(r"[A-Za-z0-9]{1,8}", prefix):
        raise ValueError(f"client id prefix must be 1-8 letters/digits, got {prefix!r}")
    if seq < 0 or bar_ms < 0:
        raise ValueError("bar_ms and seq must be non-negative")
    digest = hashlib.sha256(f"{strategy_id}\x1f{symbol}\x1f{bar_ms}\x1f{seq}".encode()).hexdigest()
    return f"{prefix}-{digest[: 35 - len(prefix)]}"


@dataclass(frozen=True)
class OrderEvent:
    """One state transition, as journaled."""

    client_order_id: str
    old: OrderStatus | None
    new: OrderStatus
    timestamp: int
    reason: str = ""


@dataclass
class Order:
    """An order as the engine tracks it; amounts and prices are Decimal, times int ms UTC."""

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    amount: Decimal
    created_ms: int
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    strategy_id: str = ""
    venue: str = ""
    status: OrderStatus = OrderStatus.PENDING
    venue_order_id: str | None = None
    filled: Decimal = ZERO
    average_price: Decimal | None = None
    fee: Decimal = ZERO
    fee_currency: str | None = None
    updated_ms: int = 0
    submit_attempts: int = 0
    reason: str = ""  # why it was rejected/cancelled, for people
    # the price the strategy decided on (signal close, limit or trigger): what slippage is
    # measured against in reports
    decision_price: Decimal | None = None
    fill_ids: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        if not CLIENT_ID_PATTERN.match(self.client_order_id):
            raise ValueError(f"invalid client order id {self.client_order_id!r}")
        if self.amount <= 0:
            raise ValueError(f"order amount must be positive, got {self.amount}")
        if self.type.needs_price and (self.price is None or self.price <= 0):
            raise ValueError(f"{self.type} order needs a positive price")
        if self.type.needs_trigger and (self.trigger_price is None or self.trigger_price <= 0):
            raise ValueError(f"{self.type} order needs a positive trigger price")
        if not self.updated_ms:
            self.updated_ms = self.created_ms

    def __setattr__(self, name: str, value: object) -> None:
        # the status is set once by the constructor, then only by transition(): assigning it
        # would skip the table and the journal event
        if name == "status" and "status" in self.__dict__:
            raise AttributeError("an order's status changes only through Order.transition()")
        object.__setattr__(self, name, value)

    @property
    def remaining(self) -> Decimal:
        """Amount not yet filled."""
        return self.amount - self.filled

    def transition(self, new: OrderStatus, timestamp: int, reason: str = "") -> OrderEvent:
        """Move to `new` if the table allows it; returns the event to journal."""
        check_transition(self.client_order_id, self.status, new)
        old = self.status
        self.__dict__["status"] = new
        self.updated_ms = timestamp
        if reason:
            self.reason = reason
        return OrderEvent(self.client_order_id, old, new, timestamp, reason)

    def apply_fill(self, fill: Fill) -> OrderEvent | None:
        """Add one execution; returns the status event it caused (None if the status is kept).

        A fill while CANCELING keeps the order CANCELING unless it completes it (the cancel lost
        the race). Raises ValueError for an overfill or a foreign fill, IllegalTransition for a
        fill on a terminal order. A trade id already applied is ignored (returns None).
        """
        if fill.client_order_id != self.client_order_id:
            raise ValueError(f"fill {fill.trade_id} belongs to {fill.client_order_id}")
        if fill.trade_id in self.fill_ids:
            return None
        if self.status.is_terminal or self.status is OrderStatus.PENDING:
            raise IllegalTransition(self.client_order_id, self.status, OrderStatus.FILLED)
        if fill.amount <= 0 or fill.amount > self.remaining:
            raise ValueError(
                f"fill {fill.trade_id} of {fill.amount} does not fit remaining {self.remaining}"
            )
        cost = (self.average_price or ZERO) * self.filled + fill.price * fill.amount
        self.filled += fill.amount
        self.average_price = cost / self.filled
        self.fee += fill.fee
        self.fee_currency = self.fee_currency or fill.fee_currency
        self.fill_ids.add(fill.trade_id)
        if fill.venue_order_id and not self.venue_order_id:
            self.venue_order_id = fill.venue_order_id
        if self.remaining == 0:
            return self.transition(OrderStatus.FILLED, fill.timestamp)
        if self.status is OrderStatus.CANCELING:
            self.updated_ms = fill.timestamp
            return None
        return self.transition(OrderStatus.PARTIALLY_FILLED, fill.timestamp)


FLATTEN_STRATEGY_ID = "killswitch"  # the strategy id of the kill switch's flatten orders


def is_flatten_order(order: Order | None) -> bool:
    """Whether an order is one the kill switch sent to close a position."""
    return order is not None and order.strategy_id == FLATTEN_STRATEGY_ID
