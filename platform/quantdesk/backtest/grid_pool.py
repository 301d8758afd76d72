"""Grid chunks evaluated on several processes, for a study this process alone writes to.

This process computes sub-grids itself, from the front (its numba kernels are already loaded),
while `workers - 1` spawned processes start up and take sub-grids from the back. Each worker
gets the job once (its bars can be large), then computes the objective metrics of one sub-grid
per task. The frames come back in the order of the sub-grids, so the study is the same as a
one-process grid's. Workers are spawned, not forked: a fork of a process that has run numba's
threads can crash.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import pandas as pd

from quantdesk.backtest.optimize import OptimizeJob, grid_metrics

# The job of this worker process, set once by the pool's initializer: a spawned worker holds
# one job for its whole life, and sending the bars with every chunk would copy them per task.
_WORKER: dict[str, OptimizeJob] = {}


def _start(job: OptimizeJob) -> None:
    _WORKER["job"] = job


def _metrics(job: OptimizeJob, grid: Mapping[str, list[Any]]) -> pd.DataFrame:
    return grid_metrics(job.space(), job.data, job.costs, grid, job.funding)


def _chunk(grid: Mapping[str, list[Any]]) -> pd.DataFrame:
    return _metrics(_WORKER["job"], grid)


def pool_metrics(
    job: OptimizeJob, grids: Sequence[Mapping[str, list[Any]]], workers: int
) -> Iterator[pd.DataFrame]:
    """The metrics frame of each sub-grid, in order, computed here and on `workers - 1`
    spawned processes: this one takes sub-grids from the front, the workers from the back."""
    context = multiprocessing.get_context("spawn")
    done: dict[int, pd.DataFrame] = {}
    running: dict[int, Future[pd.DataFrame]] = {}
    queue = deque(range(len(grids)))
    ahead = 2 * (workers - 1)  # tasks queued per worker, so none waits on this process
    emitted = 0
    with ProcessPoolExecutor(
        workers - 1, mp_context=context, initializer=_start, initargs=(job,)
    ) as pool:
        while emitted < len(grids):
            for index in [i for i, future in running.items() if future.done()]:
                done[index] = running.pop(index).result()
            while queue and len(running) < ahead:
                index = queue.pop()
                running[index] = pool.submit(_chunk, grids[index])
            if emitted in done:
                yield done.pop(emitted)
                emitted += 1
            elif queue:
                index = queue.popleft()
                done[index] = _metrics(job, grids[index])
            else:
                done[emitted] = running.pop(emitted).result()  # the last ones: wait for them
