"""Worker processes sharing one optuna study (any storage several processes can open).

This process queues the run's trials in the storage (or joins a run already queued there by
another `quantdesk optimize`, here or on another machine), then it or its spawned workers
evaluate queued trials until none is left (quantdesk.backtest.distributed).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from quantdesk.backtest.distributed import (
    created_now,
    pending,
    prepare_queue,
    study_loader,
    work,
)
from quantdesk.backtest.optimize import (
    DEFAULT_STORAGE,
    OptimizeError,
    OptimizeJob,
    TrialObjective,
    _combinations,
    create_study,
    get_objective,
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


def shared_storage(spec: str, heartbeat: int) -> optuna.storages.BaseStorage:
    """The storage as optuna's studies use it (RDB storages behind optuna's trial cache), so
    trials claimed here and told by the study go through one object."""
    for attempt in range(5):
        try:
            storage = open_storage(spec, heartbeat=heartbeat)
            break
        except OptimizeError as exc:
            # Processes starting together on an empty database race to create its tables.
            if attempt == 4 or "already exists" not in str(exc):
                raise
            time.sleep(0.5)
    assert storage is not None
    return optuna.storages.get_storage(storage)


def worker_main(job: OptimizeJob, spec: str, study_name: str, index: int, heartbeat: int) -> int:
    """Entry point of one worker: evaluate queued trials of the shared study until none is left.

    Its sampler seed mixes in the process id: processes on several machines all start at
    index 0, and equal seeds would sample the same first points."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = shared_storage(spec, heartbeat)
    sampler = make_sampler(job, index + 1000 * (os.getpid() % 100_000))
    load = study_loader(storage, study_name, sampler, make_pruner(job))
    return work(storage, load, TrialObjective(job))


def run_shared(
    job: OptimizeJob,
    storage: str | Path | None,
    study_name: str,
    n_trials: int,
    workers: int,
    use_grid: bool,
    progress: bool,
    heartbeat: int,
) -> optuna.Study:
    """Queue (or join) the run in the shared study, evaluate it with `workers` processes (this
    one when 1), and return the study."""
    spec = storage_spec(storage)
    backend = shared_storage(spec, heartbeat)
    directions = list(get_objective(job.objective).directions)
    created = created_now(backend, study_name, directions)
    study = create_study(job, backend, study_name)  # stamps and checks the job's metadata
    values = job.space().discrete_values() if use_grid else None
    combos = _combinations(values) if values is not None else None
    prepare_queue(backend, study, created, combos, n_trials)
    if workers == 1:
        worker_main(job, spec, study_name, 0, heartbeat)
        return optuna.load_study(study_name=study_name, storage=backend)
    ctx = multiprocessing.get_context("spawn")  # no forked numba/sqlite state
    procs = [
        ctx.Process(target=worker_main, args=(job, spec, study_name, i, heartbeat))
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    total = len(study.get_trials(deepcopy=False))
    bar = tqdm(total=total, desc=f"trials ({workers} workers)", disable=not progress)
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(0.5)
            bar.n = _finished(backend, study_name)
            bar.refresh()
    finally:
        for proc in procs:
            proc.join()
        bar.close()
    study = optuna.load_study(study_name=study_name, storage=backend)
    dead = [p.exitcode for p in procs if p.exitcode != 0]
    if dead and pending(study):
        raise OptimizeError(
            f"{len(dead)} worker process(es) failed (exit codes {dead}) with trials still "
            "queued: run the same command again to resume the study"
        )
    return study


def _finished(storage: optuna.storages.BaseStorage, study_name: str) -> int:
    study = optuna.load_study(study_name=study_name, storage=storage)
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=done))
