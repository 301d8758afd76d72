"""Value at Risk and Conditional VaR (expected shortfall), historical and parametric.

Both are reported as positive losses over the horizon of the returns given (1 day here):
VaR_a is the loss exceeded with probability 1 - a, CVaR_a the mean loss beyond it.
Historical: the empirical quantile of the P&L (numpy's linear interpolation) and the mean of the
P&L at or below it. Parametric: a normal distribution with the sample mean and std (ddof=1):
VaR = z_a sigma - mu, CVaR = sigma phi(z_a) / (1 - a) - mu.
A portfolio's P&L scenarios are its current exposures applied to each day's asset returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

LEVELS = (0.95, 0.99)
# the standard normal from the standard library: scipy.stats costs ~1 s of every session start
_NORMAL = NormalDist()


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be within (0, 1), got {level}")


def historical_var(pnl: np.ndarray, level: float) -> float:
    """Loss not exceeded with probability `level`, from observed P&L (or returns)."""
    _check_level(level)
    values = np.asarray(pnl, dtype=float)
    if values.size == 0:
        raise ValueError("no observations")
    return float(-np.quantile(values, 1 - level))


def historical_cvar(pnl: np.ndarray, level: float) -> float:
    """Mean loss in the tail at or beyond the historical VaR."""
    values = np.asarray(pnl, dtype=float)
    var = historical_var(values, level)
    return float(-values[values <= -var].mean())


def parametric_var(mean: float, std: float, level: float) -> float:
    """Normal VaR: z_level * std - mean."""
    _check_level(level)
    return float(_NORMAL.inv_cdf(level) * std - mean)


def parametric_cvar(mean: float, std: float, level: float) -> float:
    """Normal expected shortfall: std * pdf(z_level) / (1 - level) - mean."""
    _check_level(level)
    return float(std * _NORMAL.pdf(_NORMAL.inv_cdf(level)) / (1 - level) - mean)


def portfolio_pnl(exposures: Mapping[str, float], returns: pd.DataFrame) -> np.ndarray:
    """P&L per historical period: sum over symbols of exposure x that period's return.

    Symbols without return history are left out (the caller sees it in `missing`); periods with a
    missing return for a held symbol are dropped, so every scenario is a full joint one.
    """
    held = [s for s, v in exposures.items() if v and s in returns.columns]
    if not held:
        return np.zeros(0)
    frame = returns[held].dropna()
    weights = np.array([float(exposures[s]) for s in held])
    return frame.to_numpy(dtype=float) @ weights


@dataclass(frozen=True)
class VaRReport:
    """Portfolio VaR/CVaR in currency for each level, both methods."""

    historical_var: dict[float, float]
    historical_cvar: dict[float, float]
    parametric_var: dict[float, float]
    parametric_cvar: dict[float, float]
    observations: int
    missing: tuple[str, ...]  # held symbols without return history


def portfolio_var(
    exposures: Mapping[str, float], returns: pd.DataFrame, levels: tuple[float, ...] = LEVELS
) -> VaRReport | None:
    """VaR/CVaR of the current exposures over the return history (None: too few scenarios)."""
    missing = tuple(s for s, v in exposures.items() if v and s not in returns.columns)
    pnl = portfolio_pnl(exposures, returns)
    if pnl.size < 2:
        return None
    mean, std = float(pnl.mean()), float(pnl.std(ddof=1))
    return VaRReport(
        historical_var={a: historical_var(pnl, a) for a in levels},
        historical_cvar={a: historical_cvar(pnl, a) for a in levels},
        parametric_var={a: parametric_var(mean, std, a) for a in levels},
        parametric_cvar={a: parametric_cvar(mean, std, a) for a in levels},
        observations=int(pnl.size),
        missing=missing,
    )


def daily_returns(closes: pd.DataFrame) -> pd.DataFrame:
    """Simple daily returns from a frame of daily closes (one column per symbol)."""
    return closes.sort_index().pct_change(fill_method=None).iloc[1:]
