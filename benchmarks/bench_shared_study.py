"""Shared-study throughput: trials/s of one PostgreSQL-backed study with 1, 2 and 4 workers.

A throwaway PostgreSQL server (tests/postgres.py, Debian's binaries) holds the study; each run
is a fresh database, TPE over sma_cross on BENCH_SHARED_BARS hourly bars (default 20,000),
BENCH_SHARED_TRIALS trials (default 40). Wall time includes spawning the workers (each imports
vectorbt), as a user would see it.
"""

from __future__ import annotations

import os
import platform
import time

import optuna

from benchmarks.bench_optimize import NO_STOPS, random_walk
from quantdesk.backtest.optimize import OptimizeJob, optimize
from quantdesk.strategy import repo_strategies_dir
from tests.postgres import PostgresServer

TRIALS = int(os.environ.get("BENCH_SHARED_TRIALS", "40"))
BARS = int(os.environ.get("BENCH_SHARED_BARS", "20000"))


def main() -> None:
    """Print trials/s per worker count as a markdown table with a machine line."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = {"BTC/USDT": random_walk(BARS, "1h")}
    job = OptimizeJob(
        "sma_cross", data, "1h", fixed=NO_STOPS, prune=False,
        strategies_dir=str(repo_strategies_dir()),
    )  # fmt: skip
    server = PostgresServer().start()
    rows = []
    try:
        for workers in (1, 2, 4):
            url = server.database()
            t0 = time.perf_counter()
            result = optimize(job, n_trials=TRIALS, storage=url, study_name="bench",
                              workers=workers, method="tpe", progress=False)  # fmt: skip
            seconds = time.perf_counter() - t0
            assert len(result.study.trials) == TRIALS
            rows.append((workers, seconds, TRIALS / seconds))
    finally:
        server.stop()
    print(f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"optuna {optuna.__version__}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("\n| workers | bars | trials | seconds | trials/s |\n|---:|---:|---:|---:|---:|")
    for workers, seconds, rate in rows:
        print(f"| {workers} | {BARS:,} | {TRIALS} | {seconds:.1f} | {rate:.2f} |")
