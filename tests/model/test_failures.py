"""Failure classification (ccxt exceptions as CcxtVenue maps them) and the backoff policy."""

from __future__ import annotations

import random

import ccxt
import pytest

from quantdesk.model import Failure, Operation, RetryPolicy, VenueAmbiguous, is_throttled
from quantdesk.model import classify as classify_venue_error
from quantdesk.venues.ccxt_venue import map_ccxt_error


def classify(exc: BaseException, operation: Operation = Operation.CREATE) -> Failure:
    """What the engine decides for an exception leaving CcxtVenue (ccxt's are mapped first)."""
    if isinstance(exc, ccxt.BaseError):
        exc = map_ccxt_error(exc, operation)
    return classify_venue_error(exc, operation)


def throttled(exc: ccxt.BaseError) -> bool:
    return is_throttled(map_ccxt_error(exc))


DEFINITIVE = [
    ccxt.InsufficientFunds,
    ccxt.InvalidOrder,
    ccxt.OrderImmediatelyFillable,
    ccxt.OrderNotFillable,
    ccxt.BadSymbol,
    ccxt.BadRequest,
    ccxt.AuthenticationError,
    ccxt.PermissionDenied,
    ccxt.AccountSuspended,
    ccxt.ArgumentsRequired,
    ccxt.NotSupported,
    ccxt.MarketClosed,
]
AMBIGUOUS = [
    ccxt.RequestTimeout,
    ccxt.NetworkError,
    ccxt.ExchangeNotAvailable,
    ccxt.OnMaintenance,
    ccxt.DDoSProtection,
    ccxt.RateLimitExceeded,
    ccxt.InvalidNonce,
    ccxt.BadResponse,
    ccxt.NullResponse,
    ccxt.CancelPending,
    ccxt.ExchangeError,  # unmapped code: cannot prove the order did not land
    TimeoutError,
    ConnectionResetError,
    KeyError,  # adapter bug after sending
]


@pytest.mark.parametrize("exc", DEFINITIVE)
def test_definitive(exc: type[Exception]) -> None:
    assert classify(exc("x")) is Failure.DEFINITIVE


@pytest.mark.parametrize("exc", AMBIGUOUS)
def test_ambiguous(exc: type[Exception]) -> None:
    assert classify(exc("x")) is Failure.AMBIGUOUS


def test_duplicate_client_id_on_create_means_it_landed() -> None:
    assert classify(ccxt.DuplicateOrderId("x"), Operation.CREATE) is Failure.AMBIGUOUS
    assert classify(ccxt.DuplicateOrderId("x"), Operation.CANCEL) is Failure.DEFINITIVE


def test_order_not_found_on_cancel_is_definitive() -> None:
    assert classify(ccxt.OrderNotFound("x"), Operation.CANCEL) is Failure.DEFINITIVE


def test_throttled() -> None:
    assert throttled(ccxt.RateLimitExceeded("x")) and throttled(ccxt.DDoSProtection("x"))
    assert not throttled(ccxt.RequestTimeout("x"))
    assert is_throttled(VenueAmbiguous("429", throttled=True))
    assert not is_throttled(VenueAmbiguous("timeout"))


def test_backoff_bounds_growth_and_cap() -> None:
    policy = RetryPolicy(base=1.0, factor=2.0, cap=8.0, max_attempts=5)
    rng = random.Random(1)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (500, 8.0)]:
        for _ in range(50):
            d = policy.delay(attempt, rng)
            assert full / 2 <= d <= full
    throttled = [policy.delay(3, rng, throttled=True) for _ in range(50)]
    assert all(8.0 <= d <= 16.0 for d in throttled)  # 4 * 4 = 16


def test_backoff_is_reproducible_from_the_seed_only() -> None:
    policy = RetryPolicy()
    a = [policy.delay(n, random.Random(42)) for n in range(1, 6)]
    random.seed(0)  # the global RNG must not matter
    b = [policy.delay(n, random.Random(42)) for n in range(1, 6)]
    assert a == b
    c = [policy.delay(n, random.Random(43)) for n in range(1, 6)]
    assert a != c


def test_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.should_retry(n) for n in (1, 2, 3, 4)] == [True, True, False, False]
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        policy.delay(0, random.Random(0))
