"""Venue failures: definitive vs ambiguous, and the retry policy (backoff with jitter).

Venues raise `model.ports.VenueError` subclasses (CcxtVenue translates ccxt's exceptions); this
module decides what the engine does with them.

A DEFINITIVE failure is a refusal the venue stated (insufficient funds, invalid order, bad
symbol, bad credentials): the request did not take effect and repeating it cannot help.
An AMBIGUOUS failure (timeout, connection reset, 5xx, unparseable reply, maintenance, rate limit)
says nothing about whether the request took effect: an order may have been placed. Such an order
stays in flight until a lookup by client id finds it or proves it absent.

Anything not known to be a refusal is ambiguous: mistaking a placed order for a refused one would
leave an untracked live order, while the opposite mistake only costs a lookup.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from quantdesk.model.ports import VenueRefused


class Failure(StrEnum):
    """How a failed venue request must be treated."""

    DEFINITIVE = "definitive"
    AMBIGUOUS = "ambiguous"


class Operation(StrEnum):
    """The kind of venue request that failed (the same error can mean different things)."""

    CREATE = "create"
    CANCEL = "cancel"
    FETCH = "fetch"


def classify(exc: BaseException, operation: Operation = Operation.CREATE) -> Failure:
    """Whether a venue exception is a definitive refusal or an ambiguous outcome.

    Only a `VenueRefused` is definitive. Everything else (`VenueAmbiguous`, TimeoutError/OSError
    from a transport, a bug in a venue adapter after the request left) says nothing about what
    the venue did. `operation` is kept for callers; adapters already map per operation.
    """
    return Failure.DEFINITIVE if isinstance(exc, VenueRefused) else Failure.AMBIGUOUS


def is_throttled(exc: BaseException) -> bool:
    """The venue asked us to slow down (HTTP 429/418, DDoS protection)."""
    return bool(getattr(exc, "throttled", False))


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with "equal jitter" and a maximum number of attempts.

    The delay before retry n (n >= 1) is d/2 + U(0, d/2) with d = min(cap, base * factor**(n-1)):
    never zero (so a burst of clients does not retry in lockstep) and never above the cap.
    Throttling errors multiply the delay by `throttle_factor` (still capped at `throttle_cap`).
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    max_attempts: int = 5
    throttle_factor: float = 4.0
    throttle_cap: float = 120.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.cap < self.base or self.max_attempts < 1:
            raise ValueError("retry policy needs base > 0, factor >= 1, cap >= base, attempts >= 1")

    def delay(self, attempt: int, rng: random.Random, throttled: bool = False) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        # min() before the power would overflow for large attempt numbers
        exp = min(attempt - 1, 64)
        d = min(self.cap, self.base * self.factor**exp)
        if throttled:
            d = min(self.throttle_cap, d * self.throttle_factor)
        return d / 2 + rng.uniform(0, d / 2)

    def should_retry(self, attempt: int) -> bool:
        """Whether another attempt is allowed after `attempt` attempts."""
        return attempt < self.max_attempts
