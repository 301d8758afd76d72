"""The optimizer's array path for objective metrics equals compute_stats on the same portfolios."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest import Costs
from quantdesk.backtest import optimize as opt
from quantdesk.backtest.metrics import compute_stats
from quantdesk.backtest.objective_metrics import objective_metrics, supported
from quantdesk.backtest.runner import run_grid, simulate, to_bars
from quantdesk.strategy import Signals, naive_utc, strategy_class
from tests.conftest import make_bars

NO_STOPS = {"sl_stop": 0.0, "tp_stop": 0.0}
COLUMNS = ["sharpe", "sortino", "calmar", "total_return", "max_drawdown", "trades"]


def _data() -> dict[str, pd.DataFrame]:
    btc = naive_utc(make_bars(600, seed=1))
    eth = naive_utc(make_bars(600, seed=2))
    eth.iloc[:50] = np.nan  # a symbol listed later: vectorbt fills its closes
    return {"BTC/USDT": btc, "ETH/USDT": eth}


def _assert_same(fast: pd.DataFrame, slow: pd.DataFrame) -> None:
    for column in COLUMNS:
        np.testing.assert_allclose(
            fast[column].to_numpy(float), slow[column].to_numpy(float), rtol=1e-10, atol=0,
            equal_nan=True, err_msg=column,
        )  # fmt: skip


def test_a_grid_of_two_symbols_gives_compute_stats_metrics() -> None:
    grid = {"fast": [2, 5, 150], "slow": [20, 400]}  # slow=400 on 600 bars: few or no trades
    result = run_grid(strategy_class("sma_cross"), grid, _data(), Costs(fee=0.001), NO_STOPS)
    assert supported(result.portfolio)
    fast = objective_metrics(result.portfolio)
    slow = compute_stats(result.portfolio)
    assert (slow["trades"] == 0).any() and (slow["trades"] > 10).any()  # both kinds covered
    _assert_same(fast, slow)
    assert list(fast.index) == list(slow.index)


def test_funding_flows_count_in_the_equity() -> None:
    bars = to_bars(_data())
    costs = Costs(fee=0.0005)
    close = bars["close"]
    entries = pd.DataFrame(False, index=close.index, columns=close.columns)
    exits = entries.copy()
    entries.iloc[60] = True
    exits.iloc[400] = True
    portfolio = simulate(bars, Signals(entries=entries, exits=exits), costs)
    flows = pd.DataFrame(0.0, index=close.index, columns=close.columns)
    flows.iloc[100:300:8] = -3.0  # funding paid while long
    fast, slow = objective_metrics(portfolio, flows), compute_stats(portfolio, flows)
    _assert_same(fast, slow)
    unfunded = objective_metrics(portfolio)
    assert (fast["total_return"] < unfunded["total_return"]).all()


def test_a_cash_sharing_portfolio_is_left_to_compute_stats() -> None:
    bars = to_bars(_data())
    weights = pd.DataFrame(0.5, index=bars.index, columns=bars["close"].columns)
    portfolio = simulate(bars, Signals(weights=weights), Costs())
    assert not supported(portfolio)


def test_a_pooled_grid_writes_the_same_trials_as_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = {"BTC/USDT": make_bars(400, seed=3)}
    grid = {"fast": [2, 3, 4, 5], "slow": [20, 30, 40]}
    job = opt.OptimizeJob("sma_cross", data, "1h", fixed=NO_STOPS, grid=grid)
    monkeypatch.setattr(opt, "GRID_CELLS", 400 * 3)  # 3 combinations a chunk: 4 over the pool
    assert opt.grid_chunk(data) == 3
    one = opt.optimize(job, n_trials=12, method="grid", progress=False)
    pooled = opt.optimize(job, n_trials=12, method="grid", progress=False, workers=2)
    rows = [[(t.params, t.values, t.user_attrs) for t in r.study.trials] for r in (one, pooled)]
    assert len(rows[1]) == 12 and rows[0] == rows[1]
