"""Several worker processes share one study: exactly the requested trials, none twice."""

from __future__ import annotations

import os

import optuna
import pytest
from optuna.trial import TrialState

from quantdesk.backtest.optimize import OptimizeJob, optimize
from quantdesk.strategy import repo_strategies_dir
from tests.conftest import REPO, make_bars

# Spawned workers import vectorbt: let them reuse the compiled numba cache.
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))


@pytest.fixture(scope="module")
def data():
    """One symbol, 300 hourly bars (workers pay for imports, not for backtests)."""
    return {"BTC/USDT": make_bars(300, seed=3)}


def make_job(data, **kw) -> OptimizeJob:
    """sma_cross without stops or pruning."""
    return OptimizeJob(
        "sma_cross",
        data,
        "1h",
        fixed={"sl_stop": 0.0, "tp_stop": 0.0},
        prune=False,
        strategies_dir=str(repo_strategies_dir()),
        **kw,
    )


@pytest.mark.slow
def test_tpe_workers_on_sqlite_finish_exactly_the_requested_trials(data, tmp_path):
    storage = tmp_path / "shared.sqlite3"
    result = optimize(
        make_job(data), n_trials=10, storage=storage, study_name="w", workers=2, progress=False
    )
    study = optuna.load_study(study_name="w", storage=f"sqlite:///{storage}")
    trials = study.get_trials()
    assert len(trials) == 10
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == list(range(10))
    assert result.best_trial().value == max(t.value for t in trials)


@pytest.mark.slow
def test_grid_workers_on_a_journal_evaluate_each_combination_once(data, tmp_path):
    storage = tmp_path / "shared.log"
    grid = {"fast": [3, 5, 8, 13], "slow": [20, 30, 40]}
    result = optimize(
        make_job(data, grid=grid),
        n_trials=100,
        storage=storage,
        study_name="g",
        workers=2,
        progress=False,
    )
    assert result.method == "grid"
    trials = result.study.get_trials()
    assert all(t.state == TrialState.COMPLETE for t in trials)
    combos = [(t.params["fast"], t.params["slow"]) for t in trials]
    assert sorted(combos) == sorted((f, s) for f in grid["fast"] for s in grid["slow"])
    assert sorted(t.number for t in trials) == list(range(12))


@pytest.mark.slow
def test_tpe_on_postgresql_runs_the_trials_and_a_rerun_adds_as_many(data, pg_url):
    job = make_job(data)
    first = optimize(job, n_trials=6, storage=pg_url, study_name="p", progress=False)
    assert first.method == "tpe"
    assert [t.state for t in first.study.get_trials()] == [TrialState.COMPLETE] * 6
    again = optimize(job, n_trials=4, storage=pg_url, study_name="p", progress=False)
    trials = optuna.load_study(study_name="p", storage=pg_url).get_trials()
    assert len(again.study.trials) == len(trials) == 10
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({(t.params["fast"], t.params["slow"]) for t in trials}) > 1  # sampled, not fixed


@pytest.mark.slow
def test_grid_workers_on_postgresql_evaluate_each_combination_once(data, pg_url):
    grid = {"fast": [3, 5, 8], "slow": [20, 30]}
    result = optimize(
        make_job(data, grid=grid), n_trials=50, storage=pg_url, study_name="g", workers=2,
        progress=False,
    )  # fmt: skip
    trials = result.study.get_trials()
    assert result.method == "grid" and all(t.state == TrialState.COMPLETE for t in trials)
    combos = sorted((t.params["fast"], t.params["slow"]) for t in trials)
    assert combos == sorted((f, s) for f in grid["fast"] for s in grid["slow"])
    workers = {t.user_attrs["worker"] for t in trials}
    assert all(w.rsplit(":", 1)[1].isdigit() for w in workers)
