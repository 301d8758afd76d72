"""Rotation backtests: hold the top N of a score panel with target weights, rebalanced on a
schedule; compared with an equal-weight buy-and-hold of the point-in-time universe.

Simulation is the research runner's (quantdesk.backtest.runner.simulate): vectorbt
`from_orders` with targetpercent sizes, one cash pool for the group, call_seq="auto", and the
fill convention of quantdesk.model.fills: weights decided on the close of bar t trade at the open of
t+1, slippage against us, fees on notional.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import vectorbt as vbt

from quantdesk.backtest.runner import simulate as simulate_signals
from quantdesk.data.timeframes import timeframe_delta
from quantdesk.errors import ConfigError
from quantdesk.model import Costs
from quantdesk.selection.panel import FIELDS, Panel
from quantdesk.strategy import Signals

__all__ = ["Costs", "RotationResult", "rebalance_mask", "run_strategy", "simulate", "top_n_weights"]


def rebalance_mask(index: pd.DatetimeIndex, every: int, timeframe: str = "1d") -> pd.Series:
    """True on decision bars: every `every`-th bar counted from the epoch, not from the data's
    start, so the schedule does not depend on how much history was loaded."""
    if every < 1:
        raise ConfigError(f"rebalance interval must be at least 1 bar, got {every}")
    bar_number = index.as_unit("ns").asi8 // timeframe_delta(timeframe).value
    return pd.Series(bar_number % every == 0, index=index)


def top_n_weights(
    scores: pd.DataFrame,
    top: int,
    when: pd.Series,
    weighting: str = "equal",
) -> pd.DataFrame:
    """Target weights on decision bars (NaN elsewhere = hold): the `top` best finite scores.

    equal: 1/top each, so fewer candidates than `top` leaves the rest in cash;
    score: proportional to the positive part of the scores of the picks (sums to 1 or 0).
    """
    if top < 1:
        raise ConfigError(f"top must be at least 1, got {top}")
    if weighting not in ("equal", "score"):
        raise ConfigError(f"weighting must be 'equal' or 'score', got {weighting!r}")
    # rank 1 = best; ties broken by column order so results are deterministic
    ranks = scores.rank(axis=1, ascending=False, method="first")
    picked = ranks.le(top) & scores.notna()
    if weighting == "equal":
        weights = picked.astype(float) / top
    else:
        raw = scores.clip(lower=0).where(picked, 0.0).fillna(0.0)
        total = raw.sum(axis=1)
        weights = raw.div(total.where(total > 0), axis=0).fillna(0.0)
    return weights.where(when.reindex(scores.index, fill_value=False), axis=0)


def buy_and_hold_weights(eligible: pd.DataFrame) -> pd.DataFrame:
    """Equal weights over the eligible symbols, set only when the eligible set changes."""
    changed = eligible.ne(eligible.shift(1, fill_value=False)).any(axis=1)
    counts = eligible.sum(axis=1)
    weights = eligible.astype(float).div(counts.where(counts > 0), axis=0).fillna(0.0)
    return weights.where(changed, axis=0)


@dataclass
class RotationResult:
    """A simulated rotation: the vectorbt portfolio and the weights it traded."""

    portfolio: vbt.Portfolio
    weights: pd.DataFrame  # targets on decision bars (NaN = hold), before the shift to t+1

    @property
    def equity(self) -> pd.Series:
        """Portfolio value over time."""
        return self.portfolio.value()

    @property
    def total_return(self) -> float:
        """Total return over the whole run."""
        return float(self.portfolio.total_return())

    def held(self) -> pd.DataFrame:
        """Position sizes per symbol over time (units of the base asset)."""
        return self.portfolio.assets()

    def stats(self) -> dict[str, float]:
        """Headline numbers: total return, annualized Sharpe, max drawdown, trades, fees paid."""
        pf = self.portfolio
        return {
            "total_return": self.total_return,
            "sharpe": float(pf.sharpe_ratio()),
            "max_drawdown": float(pf.max_drawdown()),
            "orders": float(pf.orders.count()),
            "fees_paid": float(pf.orders.records_readable["Fees"].sum()),
        }


def tradable_bars(panel: Panel) -> pd.DataFrame:
    """Bars vectorbt can value: before a listing the first close stands in (weights there are 0
    or NaN, so nothing trades), after a delisting the last close is held."""
    close = panel.close.ffill().bfill()
    fields = {f: getattr(panel, f).fillna(close) for f in ("open", "high", "low")}
    fields["close"] = close
    fields["volume"] = panel.volume.fillna(0.0)
    return pd.concat({f: fields[f] for f in FIELDS}, axis=1, names=["field", "symbol"])


def simulate(panel: Panel, weights: pd.DataFrame, costs: Costs | None = None) -> RotationResult:
    """Trade long-only target weights (decided on closes) at the next bar's open."""
    weights = weights.reindex(index=panel.index, columns=panel.symbols)
    if (weights < 0).any().any():
        raise ConfigError("rotation is long-only: negative target weight")
    sums = weights.sum(axis=1)
    if (sums > 1 + 1e-9).any():
        raise ConfigError(f"target weights sum above 1 at {sums.idxmax():%Y-%m-%d}")
    if (weights.fillna(0).where(~panel.listed, 0) > 0).any().any():
        raise ConfigError("a target weight is set where the symbol has no price")
    portfolio = simulate_signals(tradable_bars(panel), Signals(weights=weights), costs or Costs())
    return RotationResult(portfolio, weights)


def run_strategy(strategy: object, panel: Panel, costs: Costs | None = None) -> RotationResult:
    """Backtest a target-weight SignalStrategy (e.g. momentum_rotation) on a panel."""
    signals = strategy.signals(panel.to_multi())  # type: ignore[attr-defined]
    if signals.weights is None:
        raise ConfigError(f"{strategy!r} returns entries/exits, not target weights")
    return simulate(panel, signals.weights, costs)
