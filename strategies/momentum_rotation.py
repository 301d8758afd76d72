"""Momentum rotation: hold the `top` coins with the best `lookback`-bar return among those with
enough history (a point-in-time universe), equal or score weighted, rebalanced every `every`
bars; with `short` > 0 also sell short the `short` coins with the worst return (-1/short
each: perpetuals only in the engine). Target weights are decided on the close; the backtest
trades them at the next open."""

from __future__ import annotations

import pandas as pd

from quantdesk.selection.factors import FactorConfig, compute_factors
from quantdesk.selection.panel import Panel
from quantdesk.selection.ranking import composite_panel
from quantdesk.selection.rotation import rebalance_mask, top_n_weights
from quantdesk.selection.universe import eligible
from quantdesk.strategy import Choice, Int, Signals, SignalStrategy, StrategyError


class MomentumRotation(SignalStrategy):
    """Top-N by momentum, rebalanced on a schedule; optionally short the bottom N."""

    params = {
        "lookback": Int(2, 365, 30),
        "top": Int(1, 50, 3),
        "every": Int(1, 90, 7),
        "min_history": Int(1, 2000, 60),
        "weighting": Choice(("equal", "score"), "equal"),
        "short": Int(0, 50, 0),
    }
    timeframe = "1d"
    target_weights = True

    @property
    def warmup(self) -> int:
        """Momentum needs `lookback` bars before the first close it scores."""
        return max(int(self.lookback) + 1, int(self.min_history))

    def signals(self, bars: pd.DataFrame) -> Signals:
        """Target weights on rebalance bars (NaN between them: hold)."""
        if self.combos is not None:
            raise StrategyError("momentum_rotation does not support parameter sweeps")
        panel = Panel.from_multi(bars)
        universe = eligible(panel, self.warmup)
        name = f"momentum_{self.lookback}"
        factors = compute_factors(panel, [name], FactorConfig(momentum_windows=(self.lookback,)))
        scores = composite_panel(factors.values, {name: 1.0}, universe)
        when = rebalance_mask(panel.index, self.every, self.timeframe)
        weights = top_n_weights(scores, self.top, when, self.weighting)
        if int(self.short) > 0:
            # the worst scores short, equal weight; a coin both top and bottom (a universe
            # smaller than top + short) nets out
            weights = weights - top_n_weights(-scores, int(self.short), when, "equal")
        return Signals(weights=weights)
