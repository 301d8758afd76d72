"""Rotation backtests: hold the top N of a score panel with target weights, rebalanced on a
schedule, simulated by vectorbt with one shared cash pool; compared with an equal-weight
buy-and-hold of the point-in-time universe.

Fill convention (quantdesk.fills): weights decided on the close of bar t are traded at the
open of bar t+1, with slippage against us and fees on notional.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import vectorbt as vbt

from quantdesk.data.timeframes import timeframe_delta
from quantdesk.errors import ConfigError
from quantdesk.fills import next_open
from quantdesk.selection.panel import Panel


@dataclass(frozen=True)
class Costs:
    """Trading costs as fractions: fees of notional, slippage of price."""

    fees: float = 0.001
    slippage: float = 0.0005

    def __post_init__(self) -> None:
        if not (0 <= self.fees < 0.1 and 0 <= self.slippage < 0.1):
            raise ConfigError("fees and slippage are fractions in [0, 0.1)")


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


def simulate(
    panel: Panel,
    weights: pd.DataFrame,
    costs: Costs = Costs(),
    init_cash: float = 100_000.0,
    timeframe: str = "1d",
) -> RotationResult:
    """Trade target weights (decided on closes) at the next bar's open with vectorbt."""
    weights = weights.reindex(index=panel.index, columns=panel.symbols)
    if (weights < 0).any().any():
        raise ConfigError("rotation is long-only: negative target weight")
    sums = weights.sum(axis=1)
    if (sums > 1 + 1e-9).any():
        raise ConfigError(f"target weights sum above 1 at {sums.idxmax():%Y-%m-%d}")
    size = weights.apply(next_open)
    # Before listing (and after delisting) there is no price: no order may be placed there, and
    # vectorbt still needs a finite price to value a zero position, so backfill the close.
    size = size.where(panel.open.notna())
    close = panel.close.bfill().ffill()
    price = panel.open.fillna(close)
    pf = vbt.Portfolio.from_orders(
        close=close,
        size=size,
        size_type="targetpercent",
        price=price,
        fees=costs.fees,
        slippage=costs.slippage,
        init_cash=init_cash,
        group_by=True,
        cash_sharing=True,
        call_seq="auto",
        freq=timeframe_delta(timeframe),
    )
    return RotationResult(pf, weights)


def run_strategy(
    strategy: object, panel: Panel, costs: Costs = Costs(), init_cash: float = 100_000.0
) -> RotationResult:
    """Backtest a target-weight SignalStrategy (e.g. momentum_rotation) on a panel."""
    signals = strategy.signals(panel.to_multi())  # type: ignore[attr-defined]
    if signals.weights is None:
        raise ConfigError(f"{strategy!r} returns entries/exits, not target weights")
    timeframe = getattr(strategy, "timeframe", "1d")
    return simulate(panel, signals.weights, costs, init_cash, timeframe)
