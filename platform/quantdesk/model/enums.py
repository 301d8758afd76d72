"""The enums every layer shares: side, order type, time in force and order status."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    """Order side."""

    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    """Order types the engine can ask a venue for."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"  # stop -> market
    STOP_LIMIT = "stop_limit"
    TAKE_PROFIT = "take_profit"  # take-profit -> market
    TAKE_PROFIT_LIMIT = "take_profit_limit"

    @property
    def needs_price(self) -> bool:
        """Carries a limit price."""
        return self in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT)

    @property
    def needs_trigger(self) -> bool:
        """Carries a trigger (stop) price."""
        return self not in (OrderType.MARKET, OrderType.LIMIT)


class TimeInForce(StrEnum):
    """GTC rests, IOC fills what it can now, FOK all or nothing, GTX is post-only."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTX = "GTX"


class OrderStatus(StrEnum):
    """Lifecycle of an order; the legal moves are `model.orders.TRANSITIONS`."""

    PENDING = "pending"  # intent journaled, not yet sent
    SUBMITTED = "submitted"  # sent (maybe more than once, same client id); no ack seen yet
    NEW = "new"  # acknowledged by the venue, working
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELING = "canceling"  # cancel requested, outcome not yet known
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        """No further transition is possible."""
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        """Working at the venue (or possibly so): may still fill."""
        return self in _OPEN


_S = OrderStatus
_TERMINAL = frozenset({_S.FILLED, _S.CANCELED, _S.REJECTED, _S.EXPIRED})
_OPEN = frozenset({_S.SUBMITTED, _S.NEW, _S.PARTIALLY_FILLED, _S.CANCELING})
