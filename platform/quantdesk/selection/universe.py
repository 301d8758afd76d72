"""Point-in-time universes: which symbols may be held at each bar, using only what was known
then. A symbol becomes eligible once it has min_history bars up to and including t, and only
while it trades, so a backtest never picks a coin before it existed (no survivorship bias).
"""

from __future__ import annotations

import pandas as pd

from quantdesk.errors import ConfigError
from quantdesk.selection.factors import FactorConfig, FactorSet, MarketInputs, compute_factors
from quantdesk.selection.panel import Panel
from quantdesk.selection.screens import Screen


def eligible(
    panel: Panel,
    min_history: int,
    screen: Screen | None = None,
    config: FactorConfig = FactorConfig(),
    inputs: MarketInputs = MarketInputs(),
) -> pd.DataFrame:
    """Boolean panel: symbol s is eligible at t (min_history bars so far, passes screen)."""
    if min_history < 1:
        raise ConfigError(f"min history must be at least 1 bar, got {min_history}")
    history = panel.listed.cumsum().where(panel.listed)
    mask = (history >= min_history) & panel.listed
    if screen is not None and screen.rules():
        needed = [c for c in screen.needed() if c not in ("close", "listing_age")]
        factors: FactorSet = compute_factors(panel, needed, config, inputs)
        values = {**factors.values, "close": panel.close, "listing_age": history}
        mask &= screen.passes(values)
    elif screen is not None:
        mask &= screen.passes({"close": panel.close})
    return mask.astype(bool)


def first_eligible(mask: pd.DataFrame) -> pd.Series:
    """Per symbol, the first time it is eligible (NaT if never)."""
    return mask.idxmax().where(mask.any())
