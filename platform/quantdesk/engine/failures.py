"""Venue failures: definitive vs ambiguous, and the retry policy (backoff with jitter).

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

import ccxt


class Failure(StrEnum):
    """How a failed venue request must be treated."""

    DEFINITIVE = "definitive"
    AMBIGUOUS = "ambiguous"


class Operation(StrEnum):
    """The kind of venue request that failed (the same error can mean different things)."""

    CREATE = "create"
    CANCEL = "cancel"
    FETCH = "fetch"


# Refusals. DuplicateOrderId and OrderNotFound are InvalidOrder subclasses but need care (below).
_DEFINITIVE: tuple[type[BaseException], ...] = (
    ccxt.InsufficientFunds,
    ccxt.InvalidOrder,
    ccxt.BadRequest,  # includes BadSymbol
    ccxt.AuthenticationError,  # includes PermissionDenied, AccountSuspended
    ccxt.ArgumentsRequired,
    ccxt.NotSupported,
    ccxt.OperationRejected,  # includes MarketClosed
    ccxt.InvalidAddress,
)

# Requests the venue refused to process at all because of load: retry later, more slowly.
_THROTTLED: tuple[type[BaseException], ...] = (ccxt.DDoSProtection, ccxt.RateLimitExceeded)


def classify(exc: BaseException, operation: Operation = Operation.CREATE) -> Failure:
    """Whether a venue exception is a definitive refusal or an ambiguous outcome."""
    if isinstance(exc, ccxt.DuplicateOrderId):
        # Our client id already exists at the venue: an earlier attempt did land. Ambiguous so
        # the caller looks the order up by client id and adopts it.
        return Failure.AMBIGUOUS if operation is Operation.CREATE else Failure.DEFINITIVE
    if isinstance(exc, ccxt.CancelPending):
        return Failure.AMBIGUOUS
    if isinstance(exc, _DEFINITIVE):
        return Failure.DEFINITIVE
    # NetworkError (RequestTimeout, ExchangeNotAvailable, OnMaintenance, DDoSProtection,
    # RateLimitExceeded, InvalidNonce), BadResponse/NullResponse, a bare ExchangeError with an
    # unmapped code, TimeoutError/OSError from the transport, and bugs in a venue adapter after
    # the request left: all say nothing about what the venue did.
    return Failure.AMBIGUOUS


def is_throttled(exc: BaseException) -> bool:
    """The venue asked us to slow down (HTTP 429/418, DDoS protection)."""
    return isinstance(exc, _THROTTLED)


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
