"""Grid chunks evaluated on several processes, for a study this process alone writes to.

Each worker gets the job once (its bars can be large), then computes the objective metrics of
one sub-grid per task; this process turns them into trials in order, so the study is the same
as a one-process grid's. Workers are spawned: no forked numba or SQLite state.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pandas as pd

from quantdesk.backtest.optimize import OptimizeJob, grid_metrics

# The job of this worker process, set once by the pool's initializer: a spawned worker holds
# one job for its whole life, and sending the bars with every chunk would copy them per task.
_WORKER: dict[str, OptimizeJob] = {}


def _start(job: OptimizeJob) -> None:
    _WORKER["job"] = job


def _chunk(grid: Mapping[str, list[Any]]) -> pd.DataFrame:
    job = _WORKER["job"]
    return grid_metrics(job.space(), job.data, job.costs, grid, job.funding)


def pool_metrics(
    job: OptimizeJob, grids: Sequence[Mapping[str, list[Any]]], workers: int
) -> Iterator[pd.DataFrame]:
    """The metrics frame of each sub-grid, in order, computed on `workers` processes."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start, initargs=(job,)
    ) as pool:
        yield from pool.map(_chunk, grids)
