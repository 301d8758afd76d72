"""The order manager: sends orders to one venue without ever placing an intent twice.

Protocol of `submit`:
1. the order is journaled PENDING with its deterministic client id, then SUBMITTED, and only
   then sent, so a crash at any point leaves a journal row naming the client id;
2. a definitive refusal ends the order (REJECTED);
3. an ambiguous failure leaves it SUBMITTED (in flight) and it is looked up by client id after a
   backoff: found -> adopt the venue's state; the venue answered "no such order" -> resend with
   the SAME client id (a venue that did receive the first attempt refuses the duplicate, which
   is ambiguous again and resolves to the existing order); venue unreachable -> the order stays
   in flight for `resolve_in_flight` / reconciliation.

The venue is anything implementing `Venue`; the journal anything implementing `OrderJournal`.
Time comes from an injected clock and sleeping from an injected coroutine, so replay is
deterministic and tests need no real waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal

from quantdesk.model import (
    ZERO,
    Failure,
    Fill,
    Operation,
    Order,
    OrderEvent,
    OrderJournal,
    OrderStatus,
    RetryPolicy,
    Venue,
    VenueNotFound,
    VenueOrder,
    classify,
    is_throttled,
)

log = logging.getLogger(__name__)
S = OrderStatus


@dataclass
class MemoryJournal:
    """An OrderJournal kept in memory: for replays that need no persistence."""

    orders: dict[str, Order] = field(default_factory=dict)
    events: list[OrderEvent] = field(default_factory=list)
    fills: dict[tuple[str, str], Fill] = field(default_factory=dict)

    def record_order(self, order: Order) -> None:
        """Insert or update the order's current state."""
        self.orders[order.client_order_id] = order

    def record_event(self, event: OrderEvent) -> None:
        """Append one state transition."""
        self.events.append(event)

    def record_fill(self, fill: Fill) -> bool:
        """Store a fill once per (venue, trade id)."""
        key = (fill.venue, fill.trade_id)
        if key in self.fills:
            return False
        self.fills[key] = fill
        return True


@dataclass(frozen=True)
class OrderStats:
    """Execution statistics over the orders an OrderManager tracks."""

    orders: int
    by_status: dict[str, int]
    ordered_amount: Decimal  # over orders sent at least once
    filled_amount: Decimal
    fill_ratio: Decimal  # filled_amount / ordered_amount
    fill_rate: Decimal  # FILLED orders / finished orders sent at least once
    volume: Decimal  # filled notional (amount * price)
    fees: dict[str, Decimal]


class OrderManager:
    """Submits, resolves, cancels and times out the orders of one venue."""

    def __init__(
        self,
        venue: Venue,
        journal: OrderJournal,
        clock: Callable[[], int],
        *,
        rng: random.Random,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        order_timeout_ms: int | None = None,
        absent_after_s: float = 0.0,
        on_fill: Callable[[Fill], None] | None = None,
    ) -> None:
        """absent_after_s: minimum wait after a failed send before a lookup may prove absence
        (a venue's receive window: after it the lost request can no longer execute)."""
        self.venue = venue
        self.journal = journal
        self.clock = clock
        self.rng = rng
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.order_timeout_ms = order_timeout_ms
        self.absent_after_s = absent_after_s
        self.on_fill = on_fill
        self.orders: dict[str, Order] = {}
        self._sending: set[str] = set()  # client ids with a send in progress

    # --- submitting -------------------------------------------------------------------------

    async def submit(self, order: Order) -> Order:
        """Journal the intent, send it, and resolve any ambiguity; returns the tracked order.

        Submitting a client id already tracked returns the tracked order without sending.
        """
        tracked = self.orders.get(order.client_order_id)
        if tracked is not None:
            return tracked
        if order.status is not S.PENDING:
            raise ValueError(f"order {order.client_order_id} is {order.status}, not pending")
        order.venue = order.venue or self.venue.name
        self.orders[order.client_order_id] = order
        self.journal.record_order(order)
        self.journal.record_event(OrderEvent(order.client_order_id, None, S.PENDING, self.clock()))
        return await self._send(order)

    async def _send(self, order: Order) -> Order:
        """Send until placed, refused, proven absent or unresolvable; then carry out a cancel
        requested while the send was in progress (it could not be sent before the ack)."""
        cid = order.client_order_id
        self._sending.add(cid)
        try:
            await self._send_attempts(order)
        finally:
            self._sending.discard(cid)
        if order.status is S.CANCELING:
            await self.cancel(cid)
        return order

    async def _send_attempts(self, order: Order) -> None:
        while True:
            order.submit_attempts += 1
            if order.status is S.PENDING:
                self._move(order, S.SUBMITTED, f"attempt {order.submit_attempts}")
            else:
                self.journal.record_order(order)  # the attempt count
            try:
                reply = await self.venue.create_order(order)
            except Exception as exc:
                if classify(exc, Operation.CREATE) is Failure.DEFINITIVE:
                    self._end_unplaced(order, _describe(exc))
                    return
                log.warning("order %s: ambiguous send failure: %s", order.client_order_id, exc)
                found, reachable = await self._lookup(order, exc)
                if found is not None:
                    self._adopt(order, found)
                    return
                if not reachable:
                    return  # in flight: resolve_in_flight or reconciliation decides
                if order.status is S.CANCELING:
                    self._end_unplaced(order, "cancelled before it reached the venue")
                    return
                if not self.policy.should_retry(order.submit_attempts):
                    self._end_unplaced(
                        order,
                        f"proven absent after {order.submit_attempts} attempts ({_describe(exc)})",
                    )
                    return
                continue  # resend under the same client id
            self._adopt(order, reply)
            return

    def _end_unplaced(self, order: Order, reason: str) -> None:
        """The order is known not to be at the venue: REJECTED, or CANCELED if so requested."""
        self._move(order, S.CANCELED if order.status is S.CANCELING else S.REJECTED, reason)

    async def _lookup(
        self, order: Order, failure: BaseException | None
    ) -> tuple[VenueOrder | None, bool]:
        """Find an order by client id: (venue order or None, venue reachable).

        After a failed request (`failure`) the first lookup waits a backoff (at least
        absent_after_s); a lookup that fails itself is retried with growing backoff.
        """
        last = failure
        failures = 0 if failure is None else 1
        for _ in range(self.policy.max_attempts):
            if last is not None:
                delay = self.policy.delay(failures, self.rng, throttled=is_throttled(last))
                if failures == 1 and failure is not None:
                    delay = max(delay, self.absent_after_s)
                await self.sleep(delay)
            try:
                return await self.venue.fetch_order_by_client_id(
                    order.symbol, order.client_order_id
                ), True
            except VenueNotFound:
                return None, True
            except Exception as err:
                log.warning("order %s: lookup failed: %s", order.client_order_id, err)
                last = err
                failures += 1
        return None, False

    async def resolve_in_flight(self) -> list[Order]:
        """Retry the resolution of every SUBMITTED order (after the venue was unreachable)."""
        done = []
        for order in [o for o in self.orders.values() if o.status is S.SUBMITTED]:
            found, reachable = await self._lookup(order, None)
            if found is not None:
                self._adopt(order, found)
            elif reachable:
                await self._send(order)
            done.append(order)
        return done

    # --- after a restart ----------------------------------------------------------------------

    def remember(self, orders: Iterable[Order]) -> None:
        """Track finished orders from the journal: their client ids are never sent again."""
        for order in orders:
            if not order.status.is_terminal:
                raise ValueError(f"order {order.client_order_id} is not finished: recover() it")
            self.orders[order.client_order_id] = order

    async def recover(self, orders: Iterable[Order], resend: bool = False) -> list[Order]:
        """Take over unfinished orders loaded from the journal after a restart.

        PENDING orders were never sent: they are withdrawn (CANCELED) unless `resend`. SUBMITTED
        orders are looked up: found -> adopted; absent -> resent under the same id if `resend`,
        else REJECTED. Working orders are refreshed from the venue.
        """
        recovered = []
        for order in orders:
            if order.status.is_terminal:
                continue
            self.orders[order.client_order_id] = order
            if order.status is S.PENDING:
                if resend:
                    await self._send(order)
                else:
                    self._move(order, S.CANCELED, "stale intent withdrawn after restart")
            else:
                found, reachable = await self._lookup(order, None)
                if found is not None:
                    self._adopt(order, found)
                elif reachable and order.status is S.SUBMITTED:
                    if resend:
                        await self._send(order)
                    else:
                        self._move(order, S.REJECTED, "absent at venue after restart")
                elif reachable:
                    log.error("order %s (%s) unknown to venue", order.client_order_id, order.status)
            recovered.append(order)
        return recovered

    # --- cancelling and timeouts ----------------------------------------------------------------

    async def cancel(self, client_order_id: str, reason: str = "") -> Order:
        """Cancel an order; a fill that wins the race leaves it FILLED."""
        order = self.orders[client_order_id]
        if order.status.is_terminal:
            return order
        if order.status is S.PENDING:
            self._move(order, S.CANCELED, reason or "withdrawn before sending")
            return order
        if order.status is not S.CANCELING:
            self._move(order, S.CANCELING, reason)
        if client_order_id in self._sending:
            return order  # the sender cancels as soon as the venue has the order
        try:
            reply = await self.venue.cancel_order(order)
        except Exception as exc:
            definitive = classify(exc, Operation.CANCEL) is Failure.DEFINITIVE
            found, reachable = await self._lookup(order, exc)
            if found is not None:
                self._adopt(order, found, cancel_refused=definitive)
            elif reachable and order.filled == 0:
                self._move(order, S.CANCELED, "absent at venue")
            return order
        self._adopt(order, reply)
        return order

    async def cancel_stale(self) -> list[Order]:
        """Cancel working orders older than order_timeout_ms (stop/take-profit orders excepted)."""
        if self.order_timeout_ms is None:
            return []
        now = self.clock()
        stale = [
            o
            for o in self.orders.values()
            if o.status in (S.NEW, S.PARTIALLY_FILLED)
            and not o.type.needs_trigger
            and now - o.created_ms >= self.order_timeout_ms
        ]
        for order in stale:
            await self.cancel(order.client_order_id, "timeout")
        return stale

    async def refresh(self) -> None:
        """Poll the venue for every open order and apply what changed (fills, cancels)."""
        for order in [o for o in self.orders.values() if o.status.is_open]:
            found, _ = await self._lookup(order, None)
            if found is not None:
                self._adopt(order, found)

    async def refresh_order(self, client_order_id: str) -> Order | None:
        """Look one tracked order up at the venue and adopt what it says (REST backfill after a
        stream event the stream alone cannot explain); None for an unknown client id."""
        order = self.orders.get(client_order_id)
        if order is None:
            return None
        found, _ = await self._lookup(order, None)
        if found is not None:
            self._adopt(order, found)
        return order

    def apply_update(self, reply: VenueOrder) -> Order | None:
        """Adopt a venue report that arrived on its own (a user-stream event, a paper venue's
        match) for a tracked order; None when the client id is not ours. Fills dedupe by
        trade id, so the same execution seen again (stream, then REST) is applied once."""
        order = self.orders.get(reply.client_order_id)
        if order is None or order.status is S.PENDING:
            return None
        self._adopt(order, reply)
        return order

    # --- applying venue state -------------------------------------------------------------------

    def _adopt(self, order: Order, reply: VenueOrder, cancel_refused: bool = False) -> None:
        """Bring the order in line with the venue's view of it."""
        if reply.client_order_id != order.client_order_id:
            raise ValueError(f"venue reply for {reply.client_order_id} applied to {order}")
        if reply.venue_order_id and order.venue_order_id != reply.venue_order_id:
            order.venue_order_id = reply.venue_order_id
        for fill in reply.fills:
            self._apply_fill(order, fill)
        if reply.filled > order.filled:
            self._apply_fill(order, self._synthetic_fill(order, reply))
        target = reply.status
        if target is order.status:
            self.journal.record_order(order)
            return
        if order.status is S.CANCELING and target in (S.NEW, S.PARTIALLY_FILLED):
            if not cancel_refused:
                self.journal.record_order(order)
                return  # the cancel has not reached the order yet
            target = S.PARTIALLY_FILLED if order.filled > 0 else S.NEW
            if target is order.status:
                return
        if order.status.is_terminal:
            log.error(
                "order %s is %s locally, %s at venue", order.client_order_id, order.status, target
            )
            return
        self._move(order, target, reply.reason)

    def _synthetic_fill(self, order: Order, reply: VenueOrder) -> Fill:
        """One fill for cumulative progress the venue reported without itemizing trades."""
        amount = reply.filled - order.filled
        if reply.average_price is not None:
            cost = reply.average_price * reply.filled - (order.average_price or ZERO) * order.filled
            price = cost / amount
        else:
            price = order.price or ZERO
        return Fill(
            trade_id=f"{order.client_order_id}:{reply.filled}",
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            amount=amount,
            price=price,
            fee=max(reply.fee - order.fee, ZERO),
            fee_currency=reply.fee_currency or order.fee_currency or "",
            timestamp=reply.timestamp or self.clock(),
            venue=order.venue,
            venue_order_id=reply.venue_order_id or order.venue_order_id,
        )

    def _apply_fill(self, order: Order, fill: Fill) -> None:
        if fill.trade_id in order.fill_ids:
            return
        fill = fill if fill.venue else _with_venue(fill, order.venue)
        # Already journaled means an earlier life of the engine applied it to the portfolio
        # (which is rebuilt from journaled fills); the order object still has to catch up.
        is_new = self.journal.record_fill(fill)
        event = order.apply_fill(fill)
        if event is not None:
            self.journal.record_event(event)
        self.journal.record_order(order)
        if is_new and self.on_fill is not None:
            self.on_fill(fill)

    def _move(self, order: Order, new: OrderStatus, reason: str = "") -> None:
        event = order.transition(new, self.clock(), reason)
        self.journal.record_event(event)
        self.journal.record_order(order)

    # --- statistics ---------------------------------------------------------------------------

    def stats(self) -> OrderStats:
        """Counts by status, fill ratio/rate, traded volume and fees."""
        orders = list(self.orders.values())
        by_status: dict[str, int] = {}
        for o in orders:
            by_status[o.status.value] = by_status.get(o.status.value, 0) + 1
        sent = [o for o in orders if o.submit_attempts > 0]
        ordered = sum((o.amount for o in sent), ZERO)
        filled = sum((o.filled for o in orders), ZERO)
        finished = [o for o in sent if o.status.is_terminal]
        n_filled = sum(1 for o in finished if o.status is S.FILLED)
        fees: dict[str, Decimal] = {}
        for o in orders:
            if o.fee and o.fee_currency:
                fees[o.fee_currency] = fees.get(o.fee_currency, ZERO) + o.fee
        return OrderStats(
            orders=len(orders),
            by_status=by_status,
            ordered_amount=ordered,
            filled_amount=filled,
            fill_ratio=filled / ordered if ordered else ZERO,
            fill_rate=Decimal(n_filled) / len(finished) if finished else ZERO,
            volume=sum((o.filled * (o.average_price or ZERO) for o in orders), ZERO),
            fees=fees,
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def _with_venue(fill: Fill, venue: str) -> Fill:
    return replace(fill, venue=venue)
