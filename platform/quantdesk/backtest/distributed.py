"""One optuna study shared by many processes, on one machine or many, through its storage.

The storage holds the work queue. The process that creates the study enqueues the run's trials
as WAITING trials (grid combinations, or empty slots the TPE sampler fills); every process,
whoever started it, claims WAITING trials one at a time (WAITING -> RUNNING is atomic in the
storage) until none is waiting or running. So the study ends with exactly the requested trials
and each grid combination is evaluated once. A RUNNING trial records a heartbeat; one whose
process died stops beating, another process marks it FAIL and optuna's retry callback queues
it again with the same params, for whoever claims it next. A process that joins a study with
queued or running trials adds none of its own: restarting the same command resumes the run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError, TrialPruned, UpdateFinishedTrialError
from optuna.trial import TrialState

from quantdesk.errors import QuantdeskError

READY_KEY = "quantdesk_queue_ready"
PENDING = (TrialState.WAITING, TrialState.RUNNING)


class QueueError(QuantdeskError):
    """The study's work queue cannot be used (another process never finished creating it)."""


def created_now(storage: optuna.storages.BaseStorage, name: str, directions: list[str]) -> bool:
    """Create the study if it does not exist; True only in the one process that created it."""
    try:
        optuna.create_study(storage=storage, study_name=name, directions=directions)
    except DuplicatedStudyError:
        return False
    return True


def pending(study: optuna.Study) -> int:
    """Trials queued or being evaluated."""
    return len(study.get_trials(deepcopy=False, states=PENDING))


def enqueue(study: optuna.Study, combos: list[dict[str, Any]] | None, n_trials: int) -> int:
    """Queue the grid combinations not in the study yet, or n_trials empty slots; how many."""
    if combos is not None:
        before = len(study.get_trials(deepcopy=False))
        for combo in combos:
            study.enqueue_trial(combo, skip_if_exists=True)
        return len(study.get_trials(deepcopy=False)) - before
    for _ in range(n_trials):
        study.enqueue_trial({})
    return n_trials


def prepare_queue(
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    created: bool,
    combos: list[dict[str, Any]] | None,
    n_trials: int,
    wait_s: float = 120.0,
    poll_s: float = 0.2,
) -> int:
    """Queue this run's trials, or join the run already queued in the study; trials added."""
    if not created:
        deadline = time.monotonic() + wait_s
        # The creator is still filling the queue: joining a half-filled one would race it.
        study_id = storage.get_study_id_from_name(study.study_name)
        while not storage.get_study_user_attrs(study_id).get(READY_KEY):
            if time.monotonic() > deadline:
                raise QueueError(
                    f"study {study.study_name!r} was created by a process that never finished "
                    "queueing its trials; use another --study name"
                )
            time.sleep(poll_s)
        if pending(study):
            return 0
    added = enqueue(study, combos, n_trials)
    study.set_user_attr(READY_KEY, True)
    return added


def claim(storage: optuna.storages.BaseStorage, study_id: int) -> int | None:
    """Take one WAITING trial (atomically, against every other process); its trial id.

    The heartbeat is recorded before the claim: optuna never fails a RUNNING trial that has
    no heartbeat, so a process killed between claiming and its first beat would otherwise
    leave a trial every other process waits on forever."""
    beats = bool(getattr(storage, "get_heartbeat_interval", lambda: None)())
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            if beats:
                storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return trial_id
        except UpdateFinishedTrialError:
            continue
    return None


class Heartbeat:
    """Records the trial's heartbeat every interval while the block runs (RDB storages)."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self.interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        while True:
            self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Heartbeat:
        if self.interval:
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def fail_stale(study: optuna.Study) -> None:
    """Mark trials whose process stopped beating FAIL (their retry is queued by the callback)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def run_one(
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    trial_id: int,
    objective: Callable[[Any], Any],
) -> None:
    """Evaluate a claimed trial and tell the study its result (FAIL on an exception)."""
    trial = optuna.trial.Trial(study, trial_id)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    values, state, error = None, None, None
    with Heartbeat(storage, trial_id):
        try:
            values = objective(trial)
        except TrialPruned:
            state = TrialState.PRUNED
        except Exception as exc:
            state, error = TrialState.FAIL, exc
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
    # UpdateFinishedTrialError: its heartbeat looked stale to another worker, which failed
    # and requeued it; the retry's result counts.
    with contextlib.suppress(UpdateFinishedTrialError):
        study.tell(trial, values, state=state)
    if error is not None:  # as study.optimize does: a failing objective stops the worker
        raise error


def work(
    storage: optuna.storages.BaseStorage,
    load: Callable[[], optuna.Study],
    objective: Callable[[Any], Any],
    poll_s: float = 0.5,
    on_trial: Callable[[], None] | None = None,
) -> int:
    """Claim and evaluate queued trials until the study has none waiting or running; how many
    this process evaluated. It waits out other processes' running trials: one of them may yet
    die, and its retry must find somebody."""
    done = 0
    while True:
        study = load()  # fresh: sees the other processes' trials
        fail_stale(study)
        trial_id = claim(storage, storage.get_study_id_from_name(study.study_name))
        if trial_id is not None:
            run_one(storage, study, trial_id, objective)
            done += 1
            if on_trial is not None:
                on_trial()
            continue
        if not pending(study):
            return done
        time.sleep(poll_s)


def study_loader(
    storage: optuna.storages.BaseStorage,
    name: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> Callable[[], optuna.Study]:
    """Loads the study afresh each call, keeping one sampler (and its random state)."""
    return lambda: optuna.load_study(
        study_name=name, storage=storage, sampler=sampler, pruner=pruner
    )


def trial_counts(study: optuna.Study) -> Mapping[str, int]:
    """Trials by state name."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts
