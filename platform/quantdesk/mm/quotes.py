"""Quotes and the desired-vs-working diff: which orders to place, amend or cancel.

A strategy states the quotes it wants now; `diff_quotes` turns that into actions against the
orders already working, matched by (side, level):
- kept when the price moved less than `refresh_ticks` ticks (a replace would lose the queue);
- amended in place when the price is equal and only the size decreases (keeps the queue);
- otherwise cancel + place; a working order older than `timeout_ns` is cancelled and
  re-placed (venues expire or deprioritize stale quotes; it also bounds stale-quote risk);
- limits: at most `max_orders_per_s` messages in any second, and cancels at most
  `max_cancel_ratio` x places over the last `ratio_window_s` (once `ratio_min_orders` were
  placed; an amend counts as a cancel). An action beyond a limit is deferred (left for the
  next call) and counted.
A cancel + place pair is deferred together, so a blocked cancel never doubles the quote.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

BID = 1
ASK = -1


@dataclass(frozen=True, slots=True)
class Quote:
    """One desired resting order: side (BID=+1 / ASK=-1), price, size, ladder level (0 = top)."""

    side: int
    price: float
    size: float
    level: int = 0


@dataclass(slots=True)
class Working:
    """An order we sent that is not known to be done (its cancel may be in flight)."""

    order_id: int
    side: int
    price: float
    size: float
    level: int
    placed_ns: int
    cancelling: bool = False


@dataclass(frozen=True, slots=True)
class Action:
    """place (quote), cancel (order_id) or amend (order_id to quote.size)."""

    kind: str
    quote: Quote | None = None
    order_id: int = -1


@dataclass(frozen=True)
class QuoteLimits:
    """Refresh threshold, order timeout and message-rate limits of the diff."""

    refresh_ticks: int = 1
    timeout_ns: int = 5_000_000_000
    max_orders_per_s: int = 20
    max_cancel_ratio: float = 1.0
    ratio_window_s: float = 10.0
    ratio_min_orders: int = 10


@dataclass
class RateLimiter:
    """Messages in the last second and places/cancels in the ratio window, by time."""

    limits: QuoteLimits
    messages: deque[int] = field(default_factory=deque)
    places: deque[int] = field(default_factory=deque)
    cancels: deque[int] = field(default_factory=deque)

    def _trim(self, now_ns: int) -> None:
        second = now_ns - 1_000_000_000
        while self.messages and self.messages[0] <= second:
            self.messages.popleft()
        window = now_ns - int(self.limits.ratio_window_s * 1e9)
        for queue in (self.places, self.cancels):
            while queue and queue[0] <= window:
                queue.popleft()

    def allows(self, now_ns: int, places: int, cancels: int) -> bool:
        """Whether places + cancels more messages fit both limits now."""
        self._trim(now_ns)
        if len(self.messages) + places + cancels > self.limits.max_orders_per_s:
            return False
        if cancels and len(self.places) + places >= self.limits.ratio_min_orders:
            ratio = (len(self.cancels) + cancels) / (len(self.places) + places)
            if ratio > self.limits.max_cancel_ratio:
                return False
        return True

    def record(self, now_ns: int, places: int, cancels: int) -> None:
        """Count messages that were sent."""
        for _ in range(places + cancels):
            self.messages.append(now_ns)
        for _ in range(places):
            self.places.append(now_ns)
        for _ in range(cancels):
            self.cancels.append(now_ns)


@dataclass
class DiffResult:
    """The actions to send now and how many were deferred by the limits."""

    actions: list[Action]
    deferred: int = 0
    kept: int = 0


# amend (0 places, 0 cancels), replace, pure cancel (cuts exposure), new quote
_PRIORITY = {(0, 0): 0, (1, 1): 1, (0, 1): 2, (1, 0): 3}


def _ticks(price: float, tick: float) -> int:
    return int(price / tick + 0.5)  # prices are positive: cheaper than round()


def diff_quotes(
    desired: list[Quote],
    working: list[Working],
    now_ns: int,
    tick: float,
    limits: QuoteLimits,
    limiter: RateLimiter,
) -> DiffResult:
    """Actions turning the working orders into the desired quotes, within the limits."""
    wanted = {(q.side, q.level): q for q in desired if q.size > 0}
    # groups of actions sent together or not at all: (places, cancels, actions)
    groups: list[tuple[int, int, list[Action]]] = []
    kept = 0
    seen: set[tuple[int, int]] = set()
    for order in working:
        if order.cancelling:
            continue
        key = (order.side, order.level)
        quote = wanted.get(key)
        if quote is None or key in seen:
            groups.append((0, 1, [Action("cancel", order_id=order.order_id)]))
            continue
        seen.add(key)
        moved = abs(_ticks(quote.price, tick) - _ticks(order.price, tick))
        stale = now_ns - order.placed_ns >= limits.timeout_ns
        replace = [Action("cancel", order_id=order.order_id), Action("place", quote)]
        if stale:
            groups.append((1, 1, replace))
        elif moved == 0 and quote.size < order.size - 1e-12:
            groups.append((0, 0, [Action("amend", quote, order.order_id)]))
        elif moved < max(limits.refresh_ticks, 1):
            kept += 1
        else:
            groups.append((1, 1, replace))
    for key, quote in wanted.items():
        if key not in seen:
            groups.append((1, 0, [Action("place", quote)]))
    # cheap and queue-keeping first, then replaces, pure cancels, then new quotes
    groups.sort(key=lambda g: _PRIORITY[(min(g[0], 1), min(g[1], 1))])
    actions: list[Action] = []
    deferred = 0
    for places, cancels, group in groups:
        messages = max(places + cancels, 1)  # an amend is one message
        if limiter.allows(now_ns, places, max(cancels, messages - places)):
            limiter.record(now_ns, places, messages - places)
            actions.extend(group)
        else:
            deferred += len(group)
    return DiffResult(actions, deferred, kept)


def reducing_quotes(desired: list[Quote], inventory: float) -> list[Quote]:
    """The quotes a REDUCING state allows: only the side that brings the inventory back to
    zero, together no larger than the inventory (top levels first; none when flat)."""
    side = ASK if inventory > 0 else BID
    left = abs(inventory)
    out = []
    for q in sorted((q for q in desired if q.side == side), key=lambda q: q.level):
        size = min(q.size, left)
        if size <= 1e-12:
            break
        out.append(Quote(q.side, q.price, size, q.level))
        left -= size
    return out
