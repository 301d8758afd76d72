"""The shared-study work queue in one process: claims, stale trials, retries (SQLite storage)."""

from __future__ import annotations

import threading
import time

import optuna
from optuna.trial import TrialState

from quantdesk.backtest.distributed import claim, enqueue, study_loader, work
from quantdesk.backtest.optimize import open_storage


def _storage(tmp_path):
    return optuna.storages.get_storage(
        open_storage(f"sqlite:///{tmp_path / 'q.sqlite3'}", heartbeat=1)
    )


def test_a_trial_claimed_by_a_process_that_died_before_beating_is_retried(tmp_path) -> None:
    storage = _storage(tmp_path)
    study = optuna.create_study(storage=storage, study_name="q", direction="maximize")
    enqueue(study, [{"x": 1}, {"x": 2}], 2)
    study_id = storage.get_study_id_from_name("q")
    orphan = claim(storage, study_id)  # this "process" dies here: it never evaluates the trial
    assert storage.get_trial(orphan).state == TrialState.RUNNING
    time.sleep(3.5)  # past the grace period (3 heartbeats of 1 s)

    def objective(trial: optuna.Trial) -> float:
        return float(trial.suggest_int("x", 0, 10))

    load = study_loader(
        storage, "q", optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner()
    )
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(work(storage, load, objective, 0.05)))
    worker.daemon = True  # before the fix it waited on the orphan forever
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the queue never drained: the orphaned claim blocks it"
    trials = optuna.load_study(study_name="q", storage=storage).get_trials()
    failed = storage.get_trial(orphan)
    assert failed.state == TrialState.FAIL
    assert sorted(t.params["x"] for t in trials if t.state == TrialState.COMPLETE) == [1, 2]
    assert done == [2]  # the retry of the orphan and the other queued trial
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == failed.number]
    assert retry.state == TrialState.COMPLETE
