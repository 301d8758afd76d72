"""Worker processes sharing one optuna study (any storage several processes can open).

Each worker runs a fixed share of the trials, so the study ends with exactly the requested
number; grid combinations are enqueued beforehand and popped atomically by the storage.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from quantdesk.backtest.optimize import (
    DEFAULT_STORAGE,
    OptimizeError,
    OptimizeJob,
    TrialObjective,
    make_pruner,
    make_sampler,
    open_storage,
)


def storage_spec(storage: str | Path | None) -> str:
    """A storage spec that means the same file from another process (absolute paths)."""
    text = str(storage if storage is not None else DEFAULT_STORAGE)
    if "://" in text:
        return text
    return str(Path(text).resolve())


def _shares(n: int, workers: int) -> list[int]:
    base, extra = divmod(n, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


def worker_main(job: OptimizeJob, spec: str, study_name: str, n: int, index: int) -> None:
    """Entry point of one worker process: run n trials of the shared study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(spec)
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=make_sampler(job, index),
        pruner=make_pruner(job),
    )
    study.optimize(TrialObjective(job), n_trials=n)


def run_workers(
    job: OptimizeJob,
    storage: str | Path | None,
    study_name: str,
    n_trials: int,
    workers: int,
    progress: bool,
) -> None:
    # Each worker runs a fixed share, so the study ends with exactly n_trials new trials
    # (a shared "stop at N" callback would overshoot by up to workers-1 running trials).
    spec = storage_spec(storage)
    ctx = multiprocessing.get_context("spawn")  # no forked numba/sqlite state
    backend = open_storage(spec)
    before = len(optuna.load_study(study_name=study_name, storage=backend).trials)
    procs = [
        ctx.Process(target=worker_main, args=(job, spec, study_name, share, i), daemon=False)
        for i, share in enumerate(_shares(n_trials, workers))
        if share > 0
    ]
    for proc in procs:
        proc.start()
    bar = tqdm(total=n_trials, desc=f"trials ({len(procs)} workers)", disable=not progress)
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(0.5)
            bar.n = _finished(backend, study_name) - before
            bar.refresh()
    finally:
        for proc in procs:
            proc.join()
        bar.close()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise OptimizeError(f"{len(failed)} worker process(es) failed (exit codes {failed})")


def _finished(storage: optuna.storages.BaseStorage, study_name: str) -> int:
    study = optuna.load_study(study_name=study_name, storage=storage)
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=done))
