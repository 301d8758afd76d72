"""Smart order routing: the best venue by price net of fees, a slippage cap, and one order split
across venues by depth.

A buy takes the levels with the lowest all-in price, price x (1 + taker fee), across every
venue's asks (a sell the highest price x (1 - fee) across the bids) until the amount is done,
skipping every level whose price is more than the slippage cap away from the reference price
(the best mid across venues unless given, e.g. the arrival price). What the cap and the depth
leave is reported as unfilled, never sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from quantdesk.execution.books import ExecutionError, VenueBook
from quantdesk.model import ZERO, Side


@dataclass(frozen=True)
class Slice:
    """One venue's part of a routed order: a limit at the worst level it takes (marketable)."""

    venue: str
    amount: Decimal
    limit: Decimal  # the worst price taken on that venue
    notional: Decimal  # sum of amount x price over the levels taken
    fee: Decimal  # notional x the venue's taker fee

    @property
    def average(self) -> Decimal:
        """Average fill price if the venue's book is as seen."""
        return self.notional / self.amount


@dataclass(frozen=True)
class Route:
    """Where an order goes: one Slice per venue used, and what the slippage cap left."""

    side: Side
    requested: Decimal
    slices: tuple[Slice, ...]
    reference: Decimal

    @property
    def filled(self) -> Decimal:
        """Amount the slices take."""
        return sum((s.amount for s in self.slices), ZERO)

    @property
    def unfilled(self) -> Decimal:
        """Amount left by the cap or the books' depth."""
        return self.requested - self.filled

    @property
    def average(self) -> Decimal | None:
        """Average price over every slice (None when nothing is taken)."""
        filled = self.filled
        return sum((s.notional for s in self.slices), ZERO) / filled if filled else None

    @property
    def fees(self) -> Decimal:
        """Taker fees of every slice."""
        return sum((s.fee for s in self.slices), ZERO)

    def shortfall_bps(self, arrival: Decimal) -> Decimal | None:
        """Implementation shortfall of the filled part against arrival, fees in, in bps."""
        filled = self.filled
        if not filled:
            return None
        cost = sum((s.notional for s in self.slices), ZERO)
        sign = 1 if self.side is Side.BUY else -1
        paid = cost + sign * self.fees
        return sign * (paid - filled * arrival) / (filled * arrival) * 10_000


def _check(books: Sequence[VenueBook], amount: Decimal) -> None:
    if not books:
        raise ExecutionError("routing needs at least one venue's book")
    names = [b.venue for b in books]
    if len(set(names)) != len(names):
        raise ExecutionError(f"one book per venue (got {', '.join(names)})")
    if amount <= 0:
        raise ExecutionError(f"amount must be positive, got {amount}")


def reference_price(books: Sequence[VenueBook]) -> Decimal:
    """The best mid across venues: the highest bid and the lowest ask of any venue."""
    bids = [b.bids[0][0] for b in books if b.bids]
    asks = [b.asks[0][0] for b in books if b.asks]
    if not bids or not asks:
        raise ExecutionError("no two-sided book to take a reference price from")
    return (max(bids) + min(asks)) / 2


def route(
    books: Sequence[VenueBook],
    side: Side,
    amount: Decimal,
    slippage_cap: Decimal | None = None,
    reference: Decimal | None = None,
) -> Route:
    """Split amount across the venues' books by depth, cheapest all-in levels first."""
    _check(books, amount)
    ref = reference if reference is not None else reference_price(books)
    if slippage_cap is not None and not ZERO <= slippage_cap < 1:
        raise ExecutionError(f"slippage cap must be a fraction in [0, 1), got {slippage_cap}")
    sign = 1 if side is Side.BUY else -1
    levels = [
        (price * (1 + sign * b.taker_fee), price, size, b)
        for b in books
        for price, size in b.levels(side)
        if size > 0
    ]
    # ties keep the venues' order (sorted is stable), then each venue's levels in book order
    levels.sort(key=lambda row: sign * row[0])
    taken: dict[str, list[tuple[Decimal, Decimal]]] = {}
    left = amount
    for _, price, size, venue_book in levels:
        if left <= 0:
            break
        if slippage_cap is not None and sign * (price - ref) > slippage_cap * ref:
            continue  # a later level may still be in the cap: all-in order is not price order
        take = min(left, size)
        taken.setdefault(venue_book.venue, []).append((price, take))
        left -= take
    fees = {b.venue: b.taker_fee for b in books}
    slices = []
    for venue in (b.venue for b in books):
        if venue not in taken:
            continue
        parts = taken[venue]
        notional = sum((p * a for p, a in parts), ZERO)
        worst = max(p for p, _ in parts) if side is Side.BUY else min(p for p, _ in parts)
        slices.append(
            Slice(venue, sum((a for _, a in parts), ZERO), worst, notional, notional * fees[venue])
        )
    return Route(side, amount, tuple(slices), ref)


def best_venue(
    books: Sequence[VenueBook], side: Side, amount: Decimal, slippage_cap: Decimal | None = None
) -> Route:
    """The single venue that fills the most of amount at the best all-in average price."""
    _check(books, amount)
    ref = reference_price(books)
    best: tuple[tuple[Decimal, Decimal], Route] | None = None
    sign = 1 if side is Side.BUY else -1
    for venue_book in books:
        one = route([venue_book], side, amount, slippage_cap, reference=ref)
        if not one.filled:
            continue
        all_in = (sum((s.notional for s in one.slices), ZERO) + sign * one.fees) / one.filled
        key = (-one.filled, sign * all_in)
        if best is None or key < best[0]:
            best = (key, one)
    if best is None:
        raise ExecutionError(f"no venue can {side.value} within the slippage cap")
    return best[1]
