"""Risk of a pair: each leg's liquidation price, the buffer kept inside it, and the combined
stop-loss / take-profit on the pair's PnL relative to its margin.

Liquidation of an isolated position at leverage L with maintenance margin rate m (linear
perpetual, fees ignored): the margin 1/L of the entry notional is gone down to m of it, so
long: entry x (1 - 1/L + m), short: entry x (1 + 1/L - m). The stop sits `buffer` inside it
(long: liq x (1 + buffer), short: liq x (1 - buffer)): the pair is closed before the venue
liquidates one leg and leaves the other naked.
"""

from __future__ import annotations


def liquidation_price(entry: float, side: int, leverage: float, maintenance: float) -> float:
    """Where an isolated leg opened at entry is liquidated (side +1 long, -1 short)."""
    if leverage < 1 or not 0 <= maintenance < 1 / leverage:
        raise ValueError("leverage >= 1 and maintenance margin below 1/leverage are required")
    return entry * (1 - side * (1 / leverage - maintenance))


def stop_price(liquidation: float, side: int, buffer: float) -> float:
    """The price kept `buffer` (a fraction) inside the liquidation price, on the safe side."""
    return liquidation * (1 + side * buffer)


def breaches(mark: float, stop: float, side: int) -> bool:
    """True when a leg's mark has reached its stop (long: at or below, short: at or above)."""
    return mark <= stop if side > 0 else mark >= stop


def pair_return(pnl: float, margin: float) -> float:
    """The pair's combined PnL as a fraction of the margin posted on both legs."""
    return pnl / margin if margin > 0 else 0.0
