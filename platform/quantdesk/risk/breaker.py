"""A circuit breaker per venue: closed -> open after N consecutive failures -> half-open probe.

While OPEN, requests are refused without reaching the venue and new orders are denied by the
risk engine (Reason.CIRCUIT_OPEN). After the cooldown the breaker lets ONE probe through
(HALF_OPEN): success closes it, failure opens it for another cooldown. Only ambiguous failures
(timeouts, 5xx, resets, throttling) count: a refused order says the venue is up.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

from quantdesk.model import Failure, Operation, VenueAmbiguous, classify
from quantdesk.risk.limits import RiskConfig

T = TypeVar("T")


class BreakerState(StrEnum):
    """Closed lets everything through; open nothing; half-open one probe."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(VenueAmbiguous):
    """A request was refused locally because the venue's breaker is open (a VenueError, so
    callers that survive venue outages survive this too)."""

    def __init__(self, venue: str) -> None:
        super().__init__(f"circuit breaker for {venue} is open")
        self.venue = venue


class CircuitBreaker:
    """Counts consecutive ambiguous failures of one venue's requests."""

    def __init__(
        self,
        venue: str,
        *,
        failures: int = 5,
        cooldown_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[CircuitBreaker, BreakerState, BreakerState], None] | None = None,
    ) -> None:
        """clock: seconds (monotonic); on_change(breaker, old, new) is told every transition."""
        if failures < 1 or cooldown_s <= 0:
            raise ValueError("breaker needs failures >= 1 and cooldown_s > 0")
        self.venue = venue
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.on_change = on_change
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self._probing = False

    @classmethod
    def from_config(
        cls,
        venue: str,
        config: RiskConfig,
        *,
        alert: Callable[..., object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> CircuitBreaker:
        """A breaker with the [risk] settings; `alert(severity, message, key=...)` (e.g.
        Alerter.alert) hears every transition: open is an error, back to closed is info."""

        def changed(breaker: CircuitBreaker, old: BreakerState, new: BreakerState) -> None:
            if alert is None:
                return
            severity = {"open": "error", "half_open": "warning", "closed": "info"}[new.value]
            message = f"circuit breaker for {venue}: {old.value} -> {new.value}"
            if new is BreakerState.OPEN:
                message += f" after {breaker.consecutive_failures} consecutive failures"
            alert(severity, message, key=f"breaker:{venue}:{new.value}")

        return cls(
            venue,
            failures=config.breaker_failures,
            cooldown_s=config.breaker_cooldown_s,
            clock=clock,
            on_change=changed,
        )

    def _move(self, new: BreakerState) -> None:
        old, self.state = self.state, new
        if old is not new and self.on_change is not None:
            self.on_change(self, old, new)

    def allows_new_orders(self) -> bool:
        """Whether the risk engine may approve new orders for this venue (not while open)."""
        self._maybe_half_open()
        return self.state is not BreakerState.OPEN

    def _maybe_half_open(self) -> None:
        if (
            self.state is BreakerState.OPEN
            and self.opened_at is not None
            and self.clock() - self.opened_at >= self.cooldown_s
        ):
            self._probing = False
            self._move(BreakerState.HALF_OPEN)

    def before_request(self) -> None:
        """Raise CircuitOpen unless a request may go out now (claims the half-open probe)."""
        self._maybe_half_open()
        if self.state is BreakerState.OPEN:
            raise CircuitOpen(self.venue)
        if self.state is BreakerState.HALF_OPEN:
            if self._probing:
                raise CircuitOpen(self.venue)
            self._probing = True

    def record_success(self) -> None:
        """A request got an answer: the venue is up."""
        self.consecutive_failures = 0
        self._probing = False
        self.opened_at = None
        self._move(BreakerState.CLOSED)

    def record_failure(self, exc: BaseException | None = None) -> None:
        """A request failed; definitive refusals count as successes (the venue answered)."""
        if exc is not None and classify(exc, Operation.FETCH) is Failure.DEFINITIVE:
            self.record_success()
            return
        self.consecutive_failures += 1
        self._probing = False
        if self.state is BreakerState.HALF_OPEN or self.consecutive_failures >= self.threshold:
            self.opened_at = self.clock()
            self._move(BreakerState.OPEN)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: object, **kwargs: object) -> T:
        """Run one venue request through the breaker."""
        self.before_request()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            self.record_failure(exc)
            raise
        self.record_success()
        return result


class BreakerVenue:
    """A Venue (quantdesk.engine.order_manager) whose every request goes through a breaker."""

    def __init__(self, venue: object, breaker: CircuitBreaker) -> None:
        """venue: anything implementing the engine's Venue protocol."""
        self.inner = venue
        self.breaker = breaker
        self.name: str = venue.name  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        # Every other coroutine method is a request too (reconciliation's balances, fills,
        # positions): through the breaker. What is not a request (a bar venue's
        # open_bar/close_bar/quote, marks, rules) is the wrapped venue's own.
        attr = getattr(self.inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def through_breaker(*args: object, **kwargs: object) -> object:
            return await self.breaker.call(attr, *args, **kwargs)

        return through_breaker

    async def create_order(self, order: object) -> object:
        """Place through the breaker."""
        return await self.breaker.call(self.inner.create_order, order)  # type: ignore[attr-defined]

    async def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> object:
        """Look up through the breaker."""
        return await self.breaker.call(
            self.inner.fetch_order_by_client_id,  # type: ignore[attr-defined]
            symbol,
            client_order_id,
        )

    async def cancel_order(self, order: object) -> object:
        """Cancel through the breaker."""
        return await self.breaker.call(self.inner.cancel_order, order)  # type: ignore[attr-defined]

    async def fetch_open_orders(self, symbol: str | None = None) -> object:
        """List open orders through the breaker."""
        return await self.breaker.call(self.inner.fetch_open_orders, symbol)  # type: ignore[attr-defined]
