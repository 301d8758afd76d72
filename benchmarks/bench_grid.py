"""A 10,000-combination SMA grid over 100,000 bars, side by side in one run (issue 18).

The grid: sma_cross fast 2..101 x slow 105..204 (every pair valid, fast < slow), no stops,
0.1% fee, all cash in, on 100,000 seeded random-walk hourly bars (bench_optimize's walk).

- quantdesk: `optimize(job, method="grid")`, what `quantdesk optimize --method grid` runs:
  vectorized signals and vectorbt portfolios, 500 combinations per call, the objective
  metrics of each, every combination recorded as an optuna trial. It runs on the first
  `BENCH_GRID_FAST` fast values (default 10: 1,000 combinations, two vectorized calls) and
  the 10,000-combination time is extrapolated per combination (the work is per combination);
  set BENCH_GRID_FAST=100 for the whole grid. It runs once in one process and once with
  `--workers` = the CPU count (BENCH_GRID_WORKERS): chunks computed on spawned processes.
- backtesting.py 0.6: `Backtest.optimize` over the same grid with `max_tries`
  (`BENCH_GRID_PEER_TRIES`, default 8 random combinations; its own process pool), one run per
  combination; extrapolated per combination too.
- plain numba loop (benchmarks/numba_loop.py): all 10,000 combinations, each average computed
  once, one loop per combination: the practical limit.

The end value of one combination is checked equal across the three before timing.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import time
import warnings
from datetime import UTC, datetime

import backtesting
import numpy as np
import optuna
import pandas as pd
from backtesting import Strategy
from backtesting.lib import FractionalBacktest, crossover

from benchmarks import numba_loop
from benchmarks.bench_optimize import NO_STOPS, random_walk
from quantdesk.backtest import Costs, run
from quantdesk.backtest.optimize import OptimizeJob, optimize
from quantdesk.strategy import load_strategy, repo_strategies_dir

BARS = int(os.environ.get("BENCH_GRID_BARS_LONG", "100000"))
FAST_VALUES = list(range(2, 102))
SLOW_VALUES = list(range(105, 205))
QD_FAST = int(os.environ.get("BENCH_GRID_FAST", "10"))
PEER_TRIES = int(os.environ.get("BENCH_GRID_PEER_TRIES", "8"))
WORKERS = int(os.environ.get("BENCH_GRID_WORKERS", str(os.cpu_count() or 1)))
FEE, CASH = 0.001, 10_000.0
COMBOS = len(FAST_VALUES) * len(SLOW_VALUES)


def quantdesk_grid(
    data: dict[str, pd.DataFrame], fast: list[int], workers: int = 1
) -> tuple[float, int]:
    """Seconds and trials of the optimizer's grid over fast x SLOW_VALUES (`--workers`)."""
    grid = {"fast": fast, "slow": SLOW_VALUES}
    job = OptimizeJob("sma_cross", data, "1h", fixed=NO_STOPS, costs=Costs(fee=FEE), grid=grid)
    t0 = time.perf_counter()
    n = len(fast) * len(SLOW_VALUES)
    result = optimize(job, n_trials=n, method="grid", progress=False, workers=workers)
    return time.perf_counter() - t0, len(result.study.trials)


def _sma(values: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(values).rolling(n).mean().to_numpy()


class SmaCross(Strategy):
    """backtesting.py's SMA cross, all in (as bench_replay's)."""

    fast = 10
    slow = 105

    def init(self) -> None:
        self.ma_fast = self.I(_sma, self.data.Close, self.fast)
        self.ma_slow = self.I(_sma, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.ma_fast, self.ma_slow):
            self.buy(size=1 - 1e-12)
        elif crossover(self.ma_slow, self.ma_fast):
            self.position.close()


def backtesting_py_grid(bars: pd.DataFrame, tries: int) -> tuple[float, int]:
    """Seconds and runs of backtesting.py's Backtest.optimize on `tries` grid combinations.

    Its process pool runs on spawned workers: the default fork of a process that has run
    numba's threads crashes (SIGSEGV) here."""
    data = bars.rename(columns=str.capitalize)
    data.index = data.index.tz_localize(None)
    pool = backtesting.Pool
    backtesting.Pool = multiprocessing.get_context("spawn").Pool
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bt = FractionalBacktest(
                data,
                SmaCross,
                cash=CASH,
                commission=FEE,
                trade_on_close=False,
                finalize_trades=False,
            )
            t0 = time.perf_counter()
            _, heatmap = bt.optimize(
                fast=FAST_VALUES,
                slow=SLOW_VALUES,
                maximize="Equity Final [$]",
                max_tries=tries,
                random_state=0,
                return_heatmap=True,
            )
            seconds = time.perf_counter() - t0
    finally:
        backtesting.Pool = pool
    return seconds, int(heatmap.notna().sum())


def check_same_end_value(bars: pd.DataFrame) -> float:
    """fast 10 / slow 105: quantdesk, numba and backtesting.py agree on the end value."""
    strategy = load_strategy("sma_cross", {"fast": 10, "slow": 105}, repo_strategies_dir())
    ours = float(
        run(strategy, {"BTC/USDT": bars}, Costs(fee=FEE, init_cash=CASH)).stats.iloc[0]["end_value"]
    )
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    loop = numba_loop.backtest(o, c, numba_loop.sma(c, 10), numba_loop.sma(c, 105), FEE, CASH)[0]
    assert abs(loop / ours - 1) < 1e-9, (loop, ours)
    return ours


def main() -> None:
    """Print one markdown table: seconds for 10,000 combinations and the ratios."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bars = random_walk(BARS, "1h", seed=1)
    data = {"BTC/USDT": bars}
    end_value = check_same_end_value(bars)
    quantdesk_grid(data, [2])  # warm-up: imports, numba caches
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    numba_loop.grid(o[:500], c[:500], np.arange(2, 4), np.arange(105, 107), FEE, CASH)

    fast = FAST_VALUES[:QD_FAST]
    one_seconds, qd_trials = quantdesk_grid(data, fast)
    print(f"  quantdesk grid: {qd_trials:,} combinations in {one_seconds:.1f} s", flush=True)
    # both cores, as backtesting.py's pool uses them (the time includes spawning the workers)
    qd_seconds, _ = quantdesk_grid(data, fast, WORKERS)
    print(f"  quantdesk grid, {WORKERS} workers: {qd_seconds:.1f} s", flush=True)
    peer_seconds, peer_runs = backtesting_py_grid(bars, PEER_TRIES)
    print(f"  backtesting.py optimize: {peer_runs} runs in {peer_seconds:.1f} s", flush=True)
    t0 = time.perf_counter()
    out = numba_loop.grid(o, c, np.array(FAST_VALUES), np.array(SLOW_VALUES), FEE, CASH)
    loop_seconds = time.perf_counter() - t0
    assert out.shape[0] == COMBOS

    rows = [
        ("quantdesk optimize --method grid (vectorbt), 1 process", qd_trials, one_seconds),
        (f"quantdesk optimize --method grid --workers {WORKERS}", qd_trials, qd_seconds),
        ("backtesting.py 0.6 Backtest.optimize", peer_runs, peer_seconds),
        ("plain numba loop (the practical limit)", COMBOS, loop_seconds),
    ]
    base = qd_seconds / qd_trials
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\nMachine: {os.cpu_count()} CPUs ({platform.machine()}), Python "
        f"{platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}, load average {load:.2f}; "
        f"{BARS:,} bars; fast 10 / slow 105 ends at {end_value:,.2f} in all three\n"
    )
    print(
        "| engine | combinations run | seconds | ms per combination | 10,000 combinations "
        "| vs quantdesk |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, n, seconds in rows:
        per = seconds / n
        note = "" if n == COMBOS else " (extrapolated)"
        print(
            f"| {name} | {n:,} | {seconds:.1f} | {per * 1000:,.2f} | "
            f"{per * COMBOS:,.0f} s{note} | {per / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
