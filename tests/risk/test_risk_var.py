"""VaR/CVaR against direct computations and the normal distribution's closed form."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from quantdesk.risk.var import (
    historical_cvar,
    historical_var,
    parametric_cvar,
    parametric_var,
    portfolio_var,
)

# 100 returns -5.0%, -4.9%, ..., +4.9%, shuffled (order must not matter)
RETURNS = np.random.default_rng(3).permutation(np.arange(-50, 50) / 1000)


def test_historical_var_is_the_interpolated_order_statistic() -> None:
    ordered = np.sort(RETURNS)
    # 5% quantile of 100 points: position 0.05 * 99 = 4.95 between the 5th and 6th smallest
    expected95 = -(ordered[4] + 0.95 * (ordered[5] - ordered[4]))
    assert historical_var(RETURNS, 0.95) == pytest.approx(expected95) == pytest.approx(0.04505)
    expected99 = -(ordered[0] + 0.99 * (ordered[1] - ordered[0]))
    assert historical_var(RETURNS, 0.99) == pytest.approx(expected99) == pytest.approx(0.04901)


def test_historical_cvar_is_the_mean_of_the_tail() -> None:
    ordered = np.sort(RETURNS)
    assert historical_cvar(RETURNS, 0.95) == pytest.approx(-ordered[:5].mean())  # 0.048
    assert historical_cvar(RETURNS, 0.99) == pytest.approx(0.05)
    assert historical_cvar(RETURNS, 0.99) >= historical_var(RETURNS, 0.99)


@pytest.mark.parametrize("level", [0.95, 0.99])
@pytest.mark.parametrize(("mean", "std"), [(0.0, 0.02), (0.001, 0.035)])
def test_parametric_matches_the_normal_distribution(level: float, mean: float, std: float) -> None:
    cutoff = norm.ppf(1 - level, loc=mean, scale=std)
    assert parametric_var(mean, std, level) == pytest.approx(-cutoff)
    # expected return below the cutoff, integrated numerically by scipy
    tail_mean = norm.expect(lambda x: x, loc=mean, scale=std, ub=cutoff, conditional=True)
    assert parametric_cvar(mean, std, level) == pytest.approx(-tail_mean, rel=1e-6)
    assert parametric_var(0.0, 1.0, 0.95) == pytest.approx(1.6448536, rel=1e-6)


def test_portfolio_var_combines_exposures_per_day() -> None:
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(
        rng.normal(0, [0.03, 0.05], size=(500, 2)), columns=["BTC/USDT", "ETH/USDT"]
    )
    exposures = {"BTC/USDT": 10_000.0, "ETH/USDT": -4_000.0, "SOL/USDT": 1_000.0}
    report = portfolio_var(exposures, frame)
    assert report is not None and report.missing == ("SOL/USDT",)
    pnl = frame["BTC/USDT"].to_numpy() * 10_000 - frame["ETH/USDT"].to_numpy() * 4_000
    assert report.historical_var[0.99] == pytest.approx(-np.quantile(pnl, 0.01))
    assert report.historical_cvar[0.95] == pytest.approx(-pnl[pnl <= np.quantile(pnl, 0.05)].mean())
    # parametric: sigma from the covariance matrix, w' S w, equals the P&L's own std
    w = np.array([10_000.0, -4_000.0])
    sigma = float(np.sqrt(w @ np.cov(frame.to_numpy().T) @ w))
    assert report.parametric_var[0.95] == pytest.approx(norm.ppf(0.95) * sigma - pnl.mean())
    assert report.observations == 500


def test_portfolio_var_needs_history() -> None:
    frame = pd.DataFrame({"BTC/USDT": [0.01]})
    assert portfolio_var({"BTC/USDT": 1.0}, frame) is None
    with pytest.raises(ValueError):
        historical_var(RETURNS, 1.0)
