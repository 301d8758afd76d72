"""Venues: the shared matching core, accounts and positions, and the sandbox client helper."""

from quantdesk.venues.accounts import Account, Balance, Position
from quantdesk.venues.book import Book, BookConfig, book_from_bar
from quantdesk.venues.client import sandbox_client, sandbox_pro_client
from quantdesk.venues.matching import FeeSchedule, MatchingCore
from quantdesk.venues.models import (
    Bar,
    Fill,
    MarketSpec,
    Order,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    Reject,
    TimeInForce,
)

__all__ = [
    "Account",
    "Balance",
    "Bar",
    "Book",
    "BookConfig",
    "FeeSchedule",
    "Fill",
    "MarketSpec",
    "MatchingCore",
    "Order",
    "OrderRejected",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Position",
    "Reject",
    "TimeInForce",
    "book_from_bar",
    "sandbox_client",
    "sandbox_pro_client",
]
