"""A live funding observation: both venues' last settled rates, per hour, and the net APRs.

Each venue's last settled rate is normalized by the hours it covered (the gap between its last
two settlements: a venue settling hourly and one settling every 8 h compare per hour), the
spread is b - a per hour, annualized, and each direction's net APR subtracts the round trip of
both legs' fees and slippage over the expected hold (`opportunity`), as the backtest does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from quantdesk.arbitrage.opportunity import direction_aprs, round_trip_cost
from quantdesk.arbitrage.rates import Venue, apr, per_hour
from quantdesk.model import VenueError
from quantdesk.venues.perp_venue import Settlement

HOUR_MS = 3_600_000
LEGS = ("a", "b")


@dataclass(frozen=True)
class Spread:
    """One funding observation of both venues: per-hour rates, the spread and net APRs."""

    rate_h: dict[str, float]
    interval_h: dict[str, int]
    spread_apr: float
    net_long_a: float
    net_short_a: float

    def payload(self) -> dict[str, Any]:
        """For the journal (and the dashboard)."""
        return {
            "apr_a": float(apr(self.rate_h["a"])),
            "apr_b": float(apr(self.rate_h["b"])),
            "interval_a": self.interval_h["a"],
            "interval_b": self.interval_h["b"],
            "spread_apr": self.spread_apr,
            "net_long_a": self.net_long_a,
            "net_short_a": self.net_short_a,
        }


def last_rate_per_hour(settled: Sequence[Settlement], fallback_hours: int = 8) -> tuple[float, int]:
    """(the last settled rate per hour, the hours it covered); one settlement alone is taken
    to cover fallback_hours."""
    if not settled:
        raise VenueError("no funding settled yet")
    hours = fallback_hours
    if len(settled) >= 2:
        hours = max(round((settled[-1].time_ms - settled[-2].time_ms) / HOUR_MS), 1)
    return float(per_hour(float(settled[-1].rate), hours)), hours


def observe(
    settled: Mapping[str, Sequence[Settlement]],
    names: Mapping[str, str],
    taker_fees: Mapping[str, float],
    slippage_bps: float,
    hold_hours: float,
    maintenance: float = 0.005,
) -> Spread:
    """The spread and both directions' net APRs from each leg's settlements (legs a, b)."""
    rate_h, interval = {}, {}
    for leg in LEGS:
        rate_h[leg], interval[leg] = last_rate_per_hour(settled[leg])
    venues = {
        leg: Venue(names[leg], interval[leg], taker_fees[leg], taker_fees[leg], maintenance)
        for leg in LEGS
    }
    round_trip = round_trip_cost(venues["a"], venues["b"], slippage_bps)
    spread_apr = float(apr(rate_h["b"] - rate_h["a"]))
    long_a, short_a = direction_aprs(spread_apr, round_trip, hold_hours)
    return Spread(rate_h, interval, spread_apr, long_a, short_a)
