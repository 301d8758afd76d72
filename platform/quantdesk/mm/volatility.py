"""EWMA volatility of the mid on irregular times, the estimate both market makers quote on."""

from __future__ import annotations

import math


def ewma_variance(var: float, change: float, dt_s: float, halflife_s: float) -> float:
    """Variance per second after a mid change over dt_s, weighted by time (half-life in s).

    A change over a longer gap says more, so its weight grows with dt (1 - 2^(-dt/halflife));
    change^2 / dt is that observation's variance per second.
    """
    if dt_s <= 0:
        return var
    weight = 1.0 - math.exp(-math.log(2.0) * dt_s / halflife_s)
    return var + weight * (change * change / dt_s - var)
