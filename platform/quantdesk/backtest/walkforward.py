"""Walk-forward optimization: choose parameters in-sample, score them on the next window.

Windows are rolling (fixed-length training window sliding forward) or anchored (training
always starts at the first bar). Each test window is traded only with parameters chosen on
bars before it; its indicators warm up on the training bars, which are not traded again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from quantdesk.backtest.optimize import (
    OptimizeError,
    OptimizeJob,
    evaluate,
    get_objective,
    optimize,
)
from quantdesk.backtest.runner import to_bars


@dataclass(frozen=True)
class Window:
    """Bar positions: train on [train_start, train_end), test on [train_end, test_end)."""

    number: int
    train_start: int
    train_end: int
    test_end: int


def make_windows(
    n_bars: int, n_windows: int = 4, train_ratio: float = 3.0, anchored: bool = False
) -> list[Window]:
    """n_windows consecutive test windows after a first training window train_ratio times longer.

    The last test window takes the bars left over by the integer division.
    """
    if n_windows < 1:
        raise OptimizeError(f"walk-forward needs at least one window, got {n_windows}")
    if train_ratio <= 0:
        raise OptimizeError(f"train ratio must be positive, got {train_ratio}")
    test_len = int(n_bars // (train_ratio + n_windows))
    train_len = int(train_ratio * test_len)
    if test_len < 2 or train_len < 2:
        raise OptimizeError(
            f"{n_bars} bars are too few for {n_windows} walk-forward windows "
            f"with train ratio {train_ratio:g}"
        )
    out = []
    for k in range(n_windows):
        train_end = train_len + k * test_len
        test_end = n_bars if k == n_windows - 1 else train_end + test_len
        start = 0 if anchored else train_end - train_len
        out.append(Window(k + 1, start, train_end, test_end))
    return out


@dataclass
class WalkForwardResult:
    """Per-window parameters with in-sample and out-of-sample metrics side by side."""

    table: pd.DataFrame
    objective: str
    anchored: bool

    def summary(self) -> dict[str, float]:
        """Mean in-sample and out-of-sample objective, and their ratio (walk-forward efficiency)."""
        is_mean = float(self.table["is_objective"].mean())
        oos_mean = float(self.table["oos_objective"].mean())
        efficiency = oos_mean / is_mean if is_mean > 0 else float("nan")
        return {"is_objective": is_mean, "oos_objective": oos_mean, "efficiency": efficiency}

    def side_by_side(self) -> pd.DataFrame:
        """The report table: window dates, chosen params, IS vs OOS columns next to each other."""
        cols = ["window", "train", "test", "params"]
        for metric in ("objective", "total_return", "sharpe", "max_drawdown", "trades"):
            cols += [f"is_{metric}", f"oos_{metric}"]
        return self.table[cols]


def walk_forward(
    job: OptimizeJob,
    n_windows: int = 4,
    train_ratio: float = 3.0,
    anchored: bool = False,
    n_trials: int = 30,
    method: str = "auto",
    progress: bool = True,
) -> WalkForwardResult:
    """Optimize job on each training window (in memory) and score the winner out-of-sample."""
    objective = get_objective(job.objective)
    bars = job.bars()
    space = job.space()
    rows: list[dict[str, Any]] = []
    windows = make_windows(len(bars), n_windows, train_ratio, anchored)
    index = to_bars(job.data).index  # the stored frames' own (tz-aware) timestamps
    for w in tqdm(windows, desc="walk-forward", unit="window", disable=not progress):
        train_from, train_to = index[w.train_start], index[w.train_end - 1]
        sub = {s: f.loc[train_from:train_to] for s, f in job.data.items()}
        sub_job = replace(job, data={s: f for s, f in sub.items() if not f.empty})
        result = optimize(sub_job, n_trials=n_trials, method=method, progress=False)
        best = result.best_trial()
        params = {**job.fixed, **best.params}
        strategy = space.cls(**params)
        # Indicators see every bar before the test window (as a live run would); only the
        # test window is traded and scored.
        oos = evaluate(
            strategy, bars, job.costs, start=w.train_end, end=w.test_end, funding=job.funding
        )
        fmt = "%Y-%m-%d %H:%M"
        row: dict[str, Any] = {
            "window": w.number,
            "train": f"{train_from:{fmt}} .. {train_to:{fmt}}",
            "test": f"{index[w.train_end]:{fmt}} .. {index[w.test_end - 1]:{fmt}}",
            "params": ", ".join(f"{k}={v}" for k, v in best.params.items()),
            "is_objective": objective.values(best.user_attrs, job.dd_penalty)[0],
            "oos_objective": objective.values(oos, job.dd_penalty)[0],
            **{f"param_{k}": v for k, v in params.items()},
        }
        for metric in ("total_return", "sharpe", "max_drawdown", "trades"):
            row[f"is_{metric}"] = best.user_attrs[metric]
            row[f"oos_{metric}"] = oos[metric]
        rows.append(row)
    return WalkForwardResult(pd.DataFrame(rows), job.objective, anchored)
