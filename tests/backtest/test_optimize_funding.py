"""Optimization, walk-forward and validation settle perpetual funding as the backtest does.

A study of a perpetual scored trials on price PnL alone while `quantdesk backtest` of the same
parameters paid funding: the numbers a quant promotes were not the numbers he backtested.
The reference here is run(..., funding=...), whose funding is checked against a hand-written
loop in test_perp_funding.py; the real BTCUSDT perpetual of 2023 (shipped sample) paid funding.
"""

from __future__ import annotations

import pandas as pd
import pytest

from quantdesk.backtest import Costs, run
from quantdesk.backtest.optimize import (
    OptimizeJob,
    TrialObjective,
    evaluate,
    grid_metrics,
    job_from_store,
    naive_utc,
)
from quantdesk.backtest.runner import to_bars
from quantdesk.backtest.validation import combined_returns, validate
from quantdesk.backtest.walkforward import make_windows, walk_forward
from quantdesk.data.csv_import import ImportOptions, parse_csv
from quantdesk.data.samples import sample_path
from quantdesk.data.store import FUNDING, OHLCV_COLUMNS, DataStore, normalize
from quantdesk.strategy import load_strategy, repo_strategies_dir
from quantdesk.system.replay import replay

PERP = "BTC/USDT:USDT"
SAMPLES = sample_path("binance-um")
COSTS = Costs(fee=0.0005, size=0.5)
FIXED = {"sl_stop": 0.0, "tp_stop": 0.0}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> DataStore:
    """A store with the real BTCUSDT perpetual's daily bars and funding rates."""
    root = tmp_path_factory.mktemp("funding-store")
    store = DataStore(root)
    bars = parse_csv(SAMPLES / "BTCUSDT-1d.csv", ImportOptions(market="usdm"))
    rates = parse_csv(SAMPLES / "BTCUSDT-funding.csv", ImportOptions(market="usdm"))
    store.write(bars.key, normalize(bars.frame, OHLCV_COLUMNS))
    store.write(rates.key, rates.frame)
    assert rates.key.timeframe == FUNDING
    return store


@pytest.fixture(scope="module")
def job(store) -> OptimizeJob:
    """sma_cross on the perpetual through 2023, its space narrowed to a small grid."""
    return job_from_store(
        store, "sma_cross", [PERP], "1d", "2023-01-01", "2023-12-31",
        exchange=bars_exchange(store), market="usdm",
        param_args=["fast=5,8", "slow=20,30", "sl_stop=0", "tp_stop=0"],
        strategies_dir=str(repo_strategies_dir()), costs=COSTS,
    )  # fmt: skip


def bars_exchange(store: DataStore) -> str:
    [key] = store.keys(timeframe="1d")
    return key.exchange


def reference(job: OptimizeJob, params: dict, funded: bool = True) -> pd.Series:
    """`quantdesk backtest`'s stats row for params (funding settled unless funded=False)."""
    strategy = load_strategy("sma_cross", {**FIXED, **params}, job.strategies_dir)
    result = run(strategy, job.data, COSTS, funding=job.funding if funded else None)
    return result.stats.loc[PERP]


def test_a_job_of_a_perpetual_carries_its_stored_funding(job) -> None:
    assert list(job.funding) == [PERP]
    rates = job.funding[PERP]
    assert rates.index.min() >= pd.Timestamp("2023-01-01", tz="UTC")
    assert rates.index.max() <= pd.Timestamp("2023-12-31", tz="UTC")
    assert len(rates) > 1000  # three settlements a day
    assert job.metadata()["funding_settlements"] == len(rates)


def test_trial_metrics_equal_the_funded_backtest(job) -> None:
    params = {"fast": 5, "slow": 20}
    strategy = load_strategy("sma_cross", {**FIXED, **params}, job.strategies_dir)
    metrics = evaluate(strategy, job.bars(), COSTS, funding=job.funding)
    funded, unfunded = reference(job, params), reference(job, params, funded=False)
    assert funded["funding"] < -10  # longs paid in 2023
    assert metrics["total_return"] == pytest.approx(funded["total_return"], rel=1e-12)
    assert metrics["sharpe"] == pytest.approx(funded["sharpe"], rel=1e-12)
    assert metrics["max_drawdown"] == pytest.approx(abs(funded["max_drawdown"]), rel=1e-12)
    assert abs(metrics["total_return"] - unfunded["total_return"]) > 1e-3


def test_the_grid_path_scores_every_combination_with_funding(job) -> None:
    frame = grid_metrics(job.space(), job.data, COSTS, job.grid, job.funding)
    assert len(frame) == 4
    for (fast, slow), row in frame.iterrows():
        expected = reference(job, {"fast": fast, "slow": slow})
        assert row["total_return"] == pytest.approx(expected["total_return"], rel=1e-12)
        assert row["sharpe"] == pytest.approx(expected["sharpe"], rel=1e-12)


def test_the_trial_objective_records_funded_figures(job) -> None:
    import optuna

    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"fast": 8, "slow": 30})
    study.optimize(TrialObjective(job), n_trials=1)
    [trial] = study.trials
    expected = reference(job, {"fast": 8, "slow": 30})
    assert trial.user_attrs["total_return"] == pytest.approx(expected["total_return"], rel=1e-12)


def test_walk_forward_scores_out_of_sample_with_funding(job) -> None:
    result = walk_forward(job, n_windows=2, n_trials=4, progress=False)
    bars = job.bars()
    windows = make_windows(len(bars), 2, 3.0, False)
    for row, w in zip(result.table.to_dict("records"), windows, strict=True):
        params = {**FIXED, "fast": row["param_fast"], "slow": row["param_slow"]}
        strategy = load_strategy("sma_cross", params, job.strategies_dir)
        funded = evaluate(strategy, bars, COSTS, w.train_end, w.test_end, job.funding)
        assert row["oos_total_return"] == pytest.approx(funded["total_return"], rel=1e-12)
        # a hand check of the window: the funded backtest of the test bars alone, warmed up
        # by the history before them, pays the settlements of those bars only
        unfunded = evaluate(strategy, bars, COSTS, w.train_end, w.test_end)
        if funded["trades"]:
            assert funded["total_return"] != unfunded["total_return"]


def test_validation_backtests_settle_funding(job) -> None:
    strategy = load_strategy("sma_cross", {**FIXED, "fast": 5, "slow": 20}, job.strategies_dir)
    bars = naive_utc(to_bars(job.data))
    returns = combined_returns(strategy, bars, COSTS, job.funding)
    expected = reference(job, {"fast": 5, "slow": 20})
    assert (1 + returns).prod() - 1 == pytest.approx(expected["total_return"], rel=1e-9)
    report = validate(
        strategy, job.data, COSTS, checks=("parity",), funding=job.funding, replay_fn=replay
    )
    [parity] = report.checks
    assert parity.passed, parity.detail  # the engine replay settles the same funding


def test_backtest_from_store_settles_funding(store) -> None:
    from quantdesk.backtest.session import backtest_from_store

    result = backtest_from_store(
        "sma_cross", PERP, "1d", "2023-01-01", "2023-12-31",
        params={**FIXED, "fast": 5, "slow": 20}, fee=0.0005, exchange=bars_exchange(store),
        market="usdm", data_root=store.root, strategies_dir=repo_strategies_dir(), all_in=True,
    )  # fmt: skip
    assert result.summary()["funding"] < -10
