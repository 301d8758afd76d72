"""Optimization: search space from params, objectives, grid fast path, pruning, storages."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from quantdesk.backtest.optimize import (
    OptimizeError,
    OptimizeJob,
    SearchSpace,
    evaluate,
    load_result,
    optimize,
    subgrids,
)
from quantdesk.backtest.runner import to_bars
from quantdesk.strategy import ParamError, repo_strategies_dir, strategy_class
from tests.conftest import make_bars

NO_STOPS = {"sl_stop": 0.0, "tp_stop": 0.0}


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    """Two symbols, 500 hourly bars."""
    return {"BTC/USDT": make_bars(500, seed=1), "ETH/USDT": make_bars(500, seed=2)}


@pytest.fixture(scope="module")
def sma():
    """The bundled sma_cross class."""
    return strategy_class("sma_cross", repo_strategies_dir())


def job(data, **kw) -> OptimizeJob:
    """An sma_cross job without stops (unless overridden)."""
    kw.setdefault("fixed", dict(NO_STOPS))
    kw.setdefault("strategies_dir", str(repo_strategies_dir()))
    return OptimizeJob("sma_cross", data, "1h", **kw)


def test_search_space_comes_from_the_strategy_params(sma):
    space = SearchSpace(sma, fixed={"tp_stop": 0.0}, grid={"slow": [20, 40]})
    assert space.names == ["fast", "slow", "sl_stop"]
    assert space.distributions() == {
        "fast": IntDistribution(2, 200),
        "slow": CategoricalDistribution([20, 40]),
        "sl_stop": FloatDistribution(0.0, 0.5),
    }
    assert space.size() == float("inf")
    # fast < slow is declared: fast 2..19 with slow 20, 2..39 with slow 40
    assert SearchSpace(sma, fixed=NO_STOPS, grid={"slow": [20, 40]}).size() == 18 + 38
    with pytest.raises(ParamError, match="out of range"):
        SearchSpace(sma, grid={"fast": [1]})
    with pytest.raises(OptimizeError, match="both fixed and searched"):
        SearchSpace(sma, fixed={"fast": 3}, grid={"fast": [3]})


def test_subgrids_cover_the_product_within_the_limit():
    values = {"a": list(range(7)), "b": list(range(5)), "c": [0, 1, 2]}
    parts = subgrids(values, 12)
    combos = [(a, b, c) for part in parts for a in part["a"] for b in part["b"] for c in part["c"]]
    assert sorted(combos) == sorted((a, b, c) for a in range(7) for b in range(5) for c in range(3))
    assert all(len(p["a"]) * len(p["b"]) * len(p["c"]) <= 12 for p in parts)


def test_grid_fast_path_records_each_combination_once_with_backtest_values(data, sma):
    result = optimize(
        job(data, grid={"fast": [3, 5, 8], "slow": [20, 30]}), n_trials=50, progress=False
    )
    assert result.method == "grid"
    trials = result.study.get_trials(states=(TrialState.COMPLETE,))
    combos = sorted((t.params["fast"], t.params["slow"]) for t in trials)
    assert combos == sorted((f, s) for f in (3, 5, 8) for s in (20, 30))
    bars = to_bars(data)
    for trial in trials[:2]:
        direct = evaluate(sma(**trial.params, **NO_STOPS), bars, result.job.costs)
        assert trial.value == pytest.approx(direct["sharpe"], rel=1e-9)
        assert trial.user_attrs["trades"] == direct["trades"]
    assert result.best_trial().value == max(t.value for t in trials)
    assert result.best_params == {**NO_STOPS, **result.best_trial().params}


def test_the_search_never_proposes_fast_at_or_above_slow(data):
    """The declared constraint narrows TPE's ranges and thins the grid; no trial is wasted."""
    tpe = optimize(job(data, seed=3, prune=False), n_trials=25, progress=False)
    trials = tpe.study.get_trials(deepcopy=False)
    assert len(trials) == 25
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.params["fast"] < t.params["slow"] for t in trials)

    grid = optimize(
        job(data, grid={"fast": [5, 20, 40], "slow": [20, 30]}), n_trials=50, progress=False
    )
    combos = sorted((t.params["fast"], t.params["slow"]) for t in grid.study.trials)
    assert combos == [(5, 20), (5, 30), (20, 30)]


def test_seeded_tpe_is_deterministic(data):
    def run(seed):
        r = optimize(job(data, seed=seed, prune=False), n_trials=6, progress=False)
        return [t.params for t in r.study.trials]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_return_with_drawdown_penalty_and_min_trades(data):
    result = optimize(
        job(data, objective="return_dd", dd_penalty=2.0, min_trades=30, prune=False),
        n_trials=8,
        progress=False,
    )
    assert result.method == "tpe"
    trials = result.study.get_trials(states=(TrialState.COMPLETE,))
    for t in trials:
        expected = t.user_attrs["total_return"] - 2.0 * t.user_attrs["max_drawdown"]
        assert t.value == pytest.approx(expected)
        assert t.constraints == {"min_trades": 30 - t.user_attrs["trades"]}
    feasible = [t for t in trials if t.user_attrs["trades"] >= 30]
    if feasible:
        assert result.best_trial().value == max(t.value for t in feasible)
    impossible = optimize(
        job(data, min_trades=10**6, grid={"fast": [3], "slow": [20]}), n_trials=5, progress=False
    )
    with pytest.raises(OptimizeError, match="no complete trial meeting its constraints"):
        impossible.best_trial()


def test_multi_objective_front_is_non_dominated(data):
    result = optimize(
        job(data, objective="return_vs_drawdown", grid={"fast": [3, 5, 8, 13], "slow": [20, 40]}),
        n_trials=8,
        progress=False,
    )
    front = result.pareto_front()
    everything = result.trials()
    assert len(everything) == 8 and 1 <= len(front) <= 8
    for _, p in front.iterrows():
        dominated = (everything["value_0"] >= p["value_0"]) & (
            everything["value_1"] <= p["value_1"]
        )
        strictly = (everything["value_0"] > p["value_0"]) | (everything["value_1"] < p["value_1"])
        assert not (dominated & strictly).any()
    assert (everything["value_1"] == everything["max_drawdown"]).all()


def test_pruning_reports_the_first_half_and_stops_bad_trials(sma):
    long = {"BTC/USDT": make_bars(1200, seed=4)}
    result = optimize(
        job(long, seed=0, grid={"fast": list(range(2, 30)), "slow": [10, 20, 40, 60]}),
        n_trials=14,
        method="tpe",
        progress=False,
    )
    states = [t.state for t in result.study.trials]
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states
    trial = result.study.trials[0]
    half = 600
    early = evaluate(sma(**trial.params, **NO_STOPS), to_bars(long), result.job.costs, end=half)
    assert trial.intermediate_values == {half: pytest.approx(early["sharpe"])}


@pytest.mark.parametrize("name", ["study.sqlite3", "study.log"])
def test_file_storages_persist_and_extend_a_study(data, tmp_path, name):
    path = tmp_path / name
    j = job(data, prune=False)
    optimize(j, n_trials=3, storage=path, study_name="s1", progress=False)
    again = optimize(j, n_trials=2, storage=path, study_name="s1", progress=False)
    assert len(again.study.trials) == 5
    study, meta = load_result("s1", path)
    assert len(study.trials) == 5
    assert meta["strategy"] == "sma_cross" and meta["symbols"] == ["BTC/USDT", "ETH/USDT"]
    assert meta["start"].startswith("2024-01-01") and meta["bars"] == 500
    with pytest.raises(OptimizeError, match="different optimization"):
        optimize(job(data, objective="sortino"), n_trials=1, storage=path, study_name="s1")
    with pytest.raises(OptimizeError, match="no study 'nope'"):
        load_result("nope", path)


def test_bad_inputs(data):
    with pytest.raises(OptimizeError, match="unknown objective 'nope'"):
        optimize(job(data, objective="nope"), n_trials=1)
    with pytest.raises(OptimizeError, match="shared --storage"):
        optimize(job(data), n_trials=2, workers=2, storage="memory")
    with pytest.raises(OptimizeError, match="grid needs every searched param discrete"):
        optimize(job(data, fixed={}), n_trials=2, method="grid")
    assert optuna.__version__  # the storages above are real optuna ones


def test_target_weight_strategy_without_sweeps_runs_its_grid_trial_by_trial():
    names = ["A/USDT", "B/USDT", "C/USDT"]
    data = {s: make_bars(200, freq="1D", seed=i) for i, s in enumerate(names)}
    grid = {"lookback": [5, 10, 20], "top": [1, 2], "every": [7]}
    job = OptimizeJob(
        "momentum_rotation",
        data,
        "1d",
        fixed={"min_history": 20, "weighting": "equal", "short": 0},  # the grid: the rest
        grid=grid,
        strategies_dir=str(repo_strategies_dir()),
    )
    result = optimize(job, n_trials=10, progress=False)
    trials = result.study.get_trials(states=(TrialState.COMPLETE,))
    assert sorted((t.params["lookback"], t.params["top"]) for t in trials) == [
        (lb, top) for lb in (5, 10, 20) for top in (1, 2)
    ]
    cls = strategy_class("momentum_rotation", repo_strategies_dir())
    first = trials[0]
    direct = evaluate(cls(**result.job.fixed, **first.params), to_bars(data), result.job.costs)
    assert first.value == pytest.approx(direct["sharpe"])
