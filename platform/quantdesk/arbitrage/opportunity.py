"""The opportunity of a pair net of costs: funding spread minus both legs' fees and slippage.

Per unit of notional on each leg, a round trip (open and close both legs) costs
2 x (fee_a + slippage) + 2 x (fee_b + slippage). Spread over the expected holding period, that is
a cost per hour; annualized, it is subtracted from the annualized funding spread. So a short
expected hold needs a wide spread: the fees are paid once however briefly the pair is held.
"""

from __future__ import annotations

from quantdesk.arbitrage.rates import HOURS_PER_YEAR, Venue

BPS = 1e-4


def leg_fee(venue: Venue, maker: bool = False) -> float:
    """The fee rate one leg's order pays on its venue (taker by default: slices cross)."""
    return venue.maker_fee if maker else venue.taker_fee


def round_trip_cost(
    venue_a: Venue, venue_b: Venue, slippage_bps: float, maker: bool = False
) -> float:
    """Fees and slippage of opening and closing both legs, as a fraction of one leg's notional."""
    slip = slippage_bps * BPS
    return 2 * (leg_fee(venue_a, maker) + slip) + 2 * (leg_fee(venue_b, maker) + slip)


def cost_apr(round_trip: float, hold_hours: float) -> float:
    """A round trip's cost spread over the expected holding period, annualized."""
    if hold_hours <= 0:
        raise ValueError("the expected holding period must be positive")
    return round_trip * HOURS_PER_YEAR / hold_hours


def net_apr(gross_apr: float, round_trip: float, hold_hours: float) -> float:
    """The annualized funding spread a direction earns, net of its annualized round-trip cost."""
    return gross_apr - cost_apr(round_trip, hold_hours)


def direction_aprs(spread_apr: float, round_trip: float, hold_hours: float) -> tuple[float, float]:
    """(net APR of long A / short B, net APR of short A / long B) for a spread b - a."""
    return (
        net_apr(spread_apr, round_trip, hold_hours),
        net_apr(-spread_apr, round_trip, hold_hours),
    )
