"""Optimization speed: optuna trials/s for sma_cross on 100k bars, and a 10,000-combination
vectorbt grid (the fast path) against the same combinations evaluated trial by trial.

BENCH_OPT_TRIALS sets the TPE trial count (default 20), BENCH_OPT_BARS the long series
(default 100,000 hourly bars), BENCH_GRID_BARS the grid's series (default 2,000 daily bars).
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np
import optuna
import pandas as pd

from quantdesk.backtest.optimize import GRID_CHUNK, OptimizeJob, optimize

TRIALS = int(os.environ.get("BENCH_OPT_TRIALS", "20"))
BARS = int(os.environ.get("BENCH_OPT_BARS", "100000"))
GRID_BARS = int(os.environ.get("BENCH_GRID_BARS", "2000"))
NO_STOPS = {"sl_stop": 0.0, "tp_stop": 0.0}


def random_walk(n: int, freq: str, seed: int = 0) -> pd.DataFrame:
    """n OHLCV bars of a seeded random walk."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = rng.uniform(0, 0.004, n)
    index = pd.date_range("2015-01-01", periods=n, freq=freq, tz="UTC", name="time")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread),
            "low": np.minimum(open_, close) * (1 - spread),
            "close": close,
            "volume": 1.0,
        },
        index=index,
    )


def _trials_per_second(data: dict, n: int, prune: bool, grid: dict | None = None) -> float:
    job = OptimizeJob("sma_cross", data, "1h", fixed=NO_STOPS, grid=grid or {}, prune=prune)
    optimize(job, n_trials=2, method="tpe", progress=False)  # warm numba caches
    t0 = time.perf_counter()
    optimize(job, n_trials=n, method="tpe", progress=False)
    return n / (time.perf_counter() - t0)


def main() -> None:
    """Print the results as markdown tables with a machine line."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    long = {"BTC/USDT": random_walk(BARS, "1h")}
    tpe = _trials_per_second(long, TRIALS, prune=False)
    pruned = _trials_per_second(long, TRIALS, prune=True)

    daily = {"BTC/USDT": random_walk(GRID_BARS, "1D", seed=1)}
    grid = {"fast": list(range(2, 102)), "slow": list(range(3, 103))}
    job = OptimizeJob("sma_cross", daily, "1d", fixed=NO_STOPS, grid=grid)
    optimize(
        OptimizeJob("sma_cross", daily, "1d", fixed=NO_STOPS, grid={"fast": [2, 3], "slow": [5]}),
        n_trials=2,
        progress=False,
    )
    t0 = time.perf_counter()
    result = optimize(job, n_trials=10_000, method="grid", progress=False)
    grid_seconds = time.perf_counter() - t0
    assert result.method == "grid" and len(result.study.trials) == 10_000
    one_by_one = _trials_per_second(daily, 30, prune=False, grid=grid)

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if "model name" in line)
    except (OSError, StopIteration):
        pass
    print(
        f"Machine: {os.cpu_count()} CPUs, {cpu}, Python {platform.python_version()}, "
        f"optuna {optuna.__version__}; {time.strftime('%Y-%m-%d')}"
    )
    print()
    print("| scenario | bars | trials | trials/s |")
    print("|---|---:|---:|---:|")
    print(f"| sma_cross TPE, no pruning | {BARS:,} | {TRIALS} | {tpe:.2f} |")
    print(f"| sma_cross TPE, median pruning at half | {BARS:,} | {TRIALS} | {pruned:.2f} |")
    print()
    print("| grid | bars | combinations | seconds | combinations/s |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| vectorbt grid fast path ({GRID_CHUNK}/call) | {GRID_BARS:,} | 10,000 | "
        f"{grid_seconds:.1f} | {10_000 / grid_seconds:,.0f} |"
    )
    print(
        f"| same space, one optuna trial at a time | {GRID_BARS:,} | 30 | "
        f"{30 / one_by_one:.1f} | {one_by_one:,.1f} |"
    )


if __name__ == "__main__":
    main()
