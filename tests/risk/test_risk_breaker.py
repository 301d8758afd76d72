"""Circuit breaker: the sandbox's 5xx fault opens it (real ccxt requests); recovery closes it
through half-open; while open, the risk engine denies new orders and alerts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D

import pytest

from quantdesk.engine.portfolio import Portfolio
from quantdesk.model import (
    Decision,
    Order,
    OrderType,
    Reason,
    Side,
    VenueAmbiguous,
    VenueRefused,
    client_order_id,
)
from quantdesk.risk.breaker import BreakerState, BreakerVenue, CircuitBreaker, CircuitOpen
from quantdesk.risk.checks import RiskEngine
from quantdesk.risk.limits import RiskConfig
from quantdesk.venues import sandbox_client
from quantdesk.venues.ccxt_venue import CcxtVenue
from tests.sandbox.conftest import Admin

BTC = "BTC/USDT"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def venue(url: str, admin: Admin) -> AsyncIterator[CcxtVenue]:
    ex = sandbox_client("binance", url, async_=True, enableRateLimit=False, timeout=5000)
    v = CcxtVenue(ex, "sandbox")
    await v.load()
    yield v
    await v.close()


async def test_5xx_opens_it_and_recovery_closes_it_through_half_open(
    venue: CcxtVenue, admin: Admin
) -> None:
    clock = ManualClock()
    moves: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        "sandbox", clock=clock, on_change=lambda b, old, new: moves.append((old, new))
    )
    guarded = BreakerVenue(venue, breaker)
    assert await guarded.fetch_open_orders(BTC) == []
    admin.faults(error_rate=1.0)  # every request answered 503
    for attempt in range(1, 6):
        with pytest.raises(VenueAmbiguous):
            await guarded.fetch_open_orders(BTC)
        assert breaker.consecutive_failures == attempt
        assert breaker.state is (BreakerState.OPEN if attempt == 5 else BreakerState.CLOSED)
    admin("DELETE", "faults")
    # The venue is healthy again, yet nothing is sent until the cooldown has passed.
    with pytest.raises(CircuitOpen):
        await guarded.fetch_open_orders(BTC)
    clock.now += 59.9
    assert not breaker.allows_new_orders()
    clock.now += 0.1
    assert breaker.allows_new_orders() and breaker.state is BreakerState.HALF_OPEN
    assert await guarded.fetch_open_orders(BTC) == []  # the probe succeeds
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0
    assert moves == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


async def test_reconciliation_reads_count_and_wait_like_orders(
    venue: CcxtVenue, admin: Admin
) -> None:
    """Balances and fills (what reconciliation reads) go through the breaker too; rules and
    other plain attributes are the venue's own."""
    breaker = CircuitBreaker("sandbox", failures=2, clock=ManualClock())
    guarded = BreakerVenue(venue, breaker)
    assert guarded.rules is venue.rules
    assert (await guarded.fetch_balances())["USDT"].total > 0
    admin.faults(error_rate=1.0)
    with pytest.raises(VenueAmbiguous):
        await guarded.fetch_balances()
    with pytest.raises(VenueAmbiguous):
        await guarded.fetch_fills(BTC, 0)
    assert breaker.state is BreakerState.OPEN
    admin("DELETE", "faults")
    with pytest.raises(CircuitOpen):  # refused locally: the venue is not asked
        await guarded.fetch_balances()


async def test_failed_probe_reopens_for_another_cooldown(venue: CcxtVenue, admin: Admin) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("sandbox", failures=2, cooldown_s=10, clock=clock)
    guarded = BreakerVenue(venue, breaker)
    admin.faults(error_rate=1.0)
    for _ in range(2):
        with pytest.raises(VenueAmbiguous):
            await guarded.fetch_open_orders(BTC)
    clock.now += 10
    breaker.before_request()  # the one probe is claimed...
    with pytest.raises(CircuitOpen):
        breaker.before_request()  # ...and a second request waits for its outcome
    breaker.record_failure(VenueAmbiguous("503"))
    assert breaker.state is BreakerState.OPEN
    clock.now += 9.9
    with pytest.raises(CircuitOpen):
        await guarded.fetch_open_orders(BTC)
    clock.now += 0.1
    admin("DELETE", "faults")
    assert await guarded.fetch_open_orders(BTC) == []
    assert breaker.state is BreakerState.CLOSED


async def test_refusals_do_not_count_as_failures(venue: CcxtVenue, admin: Admin) -> None:
    breaker = CircuitBreaker("sandbox", failures=1, clock=ManualClock())
    guarded = BreakerVenue(venue, breaker)
    too_big = Order(
        client_order_id("t", BTC, 0, 1),
        BTC,
        Side.BUY,
        OrderType.LIMIT,
        D(2000),
        created_ms=0,
        price=D(100),
    )
    with pytest.raises(VenueRefused):  # the sandbox refused it (Binance -2010)
        await guarded.create_order(too_big)
    assert breaker.state is BreakerState.CLOSED


async def test_risk_engine_denies_orders_while_open(venue: CcxtVenue, admin: Admin) -> None:
    class Alerts:
        sent: list[str] = []

        def alert(self, severity: str, message: str, **_: object) -> None:
            self.sent.append(f"{severity}: {message}")

    clock = ManualClock()
    breaker = CircuitBreaker("sandbox", clock=clock)
    risk = RiskEngine(
        venue.rules,
        RiskConfig(),
        Portfolio(cash={"USDT": D(100000)}),
        clock=lambda: 0,
        breakers={"sandbox": breaker},
        alerter=Alerts(),
    )
    risk.update_price(BTC, D(40000))
    order = Order(
        client_order_id("t", BTC, 0, 2),
        BTC,
        Side.BUY,
        OrderType.MARKET,
        D("0.01"),
        created_ms=0,
        venue="sandbox",
    )
    assert risk.check_order(order).decision is Decision.APPROVED
    admin.faults(error_rate=1.0)
    guarded = BreakerVenue(venue, breaker)
    for _ in range(5):
        with pytest.raises(VenueAmbiguous):
            await guarded.fetch_open_orders(BTC)
    denied = risk.check_order(order)
    assert (denied.decision, denied.reason) == (Decision.DENIED, Reason.CIRCUIT_OPEN)
    assert risk.alerter.sent == ["error: circuit breaker for sandbox is open"]
    clock.now += 60
    assert risk.check_order(order).decision is Decision.APPROVED  # half-open: may probe


def test_from_config_uses_the_risk_settings_and_alerts_each_transition() -> None:
    clock = ManualClock()
    sent: list[tuple[str, str]] = []
    breaker = CircuitBreaker.from_config(
        "binance",
        RiskConfig(breaker_failures=2, breaker_cooldown_s=30),
        alert=lambda severity, message, **_: sent.append((severity, message)),
        clock=clock,
    )
    breaker.record_failure(VenueAmbiguous("t"))
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure(VenueAmbiguous("t"))
    clock.now += 29.9
    assert not breaker.allows_new_orders()
    clock.now += 0.1
    assert breaker.allows_new_orders()
    breaker.record_success()
    assert sent == [
        ("error", "circuit breaker for binance: closed -> open after 2 consecutive failures"),
        ("warning", "circuit breaker for binance: open -> half_open"),
        ("info", "circuit breaker for binance: half_open -> closed"),
    ]
