"""A live funding observation: rates normalized by each venue's own interval, net of costs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from quantdesk.arbitrage.live_rates import last_rate_per_hour, observe
from quantdesk.arbitrage.opportunity import direction_aprs, round_trip_cost
from quantdesk.arbitrage.rates import Venue
from quantdesk.model import VenueError
from quantdesk.venues.perp_venue import Settlement

H = 3_600_000


def series(rate: str, hours: int, n: int = 3) -> list[Settlement]:
    return [Settlement(i * hours * H, Decimal(rate)) for i in range(1, n + 1)]


def test_each_venue_is_normalized_by_the_hours_its_last_rate_covered() -> None:
    assert last_rate_per_hour(series("0.0008", 8)) == (pytest.approx(0.0001), 8)
    assert last_rate_per_hour(series("0.0001", 1)) == (pytest.approx(0.0001), 1)
    # a venue moving from 8 h to 4 h: the last gap counts
    moved = [Settlement(0, Decimal("0.0008")), Settlement(8 * H, Decimal("0.0008")),
             Settlement(12 * H, Decimal("0.0004"))]  # fmt: skip
    assert last_rate_per_hour(moved) == (pytest.approx(0.0001), 4)
    assert last_rate_per_hour(series("0.0008", 8, n=1)) == (pytest.approx(0.0001), 8)
    with pytest.raises(VenueError):
        last_rate_per_hour([])


def test_the_spread_and_net_aprs_match_the_backtests_formulas() -> None:
    settled = {"a": series("0.0008", 8), "b": series("0.0003", 1)}  # b pays 0.0002/h more
    fees = {"a": 0.0004, "b": 0.0003}
    spread = observe(settled, {"a": "alpha", "b": "beta"}, fees, 2.0, 168)
    assert spread.interval_h == {"a": 8, "b": 1}
    assert spread.spread_apr == pytest.approx(0.0002 * 8760)
    trip = round_trip_cost(Venue("alpha", 8, 0.0004, 0.0004), Venue("beta", 1, 0.0003, 0.0003), 2.0)
    assert (spread.net_long_a, spread.net_short_a) == pytest.approx(
        direction_aprs(0.0002 * 8760, trip, 168)
    )
    assert spread.payload()["apr_b"] == pytest.approx(0.0003 * 8760)
