"""Walk-forward optimization of a market maker's quoting parameters with optuna (TPE, seeded).

The flow's time range is cut into `folds` equal windows. Step i optimizes on window i (or on
windows 0..i when anchored) and scores the best in-sample params, unchanged, on window i + 1:
the out-of-sample window always comes after its in-sample one and never overlaps it. The search
space is the strategy's `search_space` (name -> Range), or ranges passed in; params given as
fixed are left out of it. Every trial is one mm backtest of the in-sample window.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from quantdesk.errors import BacktestError
from quantdesk.mm.backtest import MMConfig, run_mm
from quantdesk.mm.flow import Flow, window
from quantdesk.mm.space import Range
from quantdesk.strategy import Choice, Int, ParamError, QuoteStrategy

__all__ = [
    "OBJECTIVES",
    "FoldResult",
    "Range",
    "WalkForwardResult",
    "Window",
    "fold_windows",
    "parse_range",
    "search_space",
    "walk_forward",
]

OBJECTIVES = ("sharpe", "total_pnl", "daily_return")
SHOWN = ("sharpe", "total_pnl", "max_drawdown", "maker_fills")  # per-window stats reported


@dataclass(frozen=True)
class Window:
    """[start_ns, end_ns) in ns since the flow's start."""

    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class FoldResult:
    """One walk-forward step: its windows, the best in-sample params and both windows' stats."""

    index: int
    in_sample: Window
    out_of_sample: Window
    params: dict[str, Any]
    in_sample_stats: dict[str, float]
    out_of_sample_stats: dict[str, float]
    trials: int  # trials that completed (invalid combinations are pruned)


@dataclass
class WalkForwardResult:
    """Every step of a walk-forward run, with the optuna studies behind them."""

    strategy: str
    objective: str
    seed: int
    folds: list[FoldResult]
    studies: list[Any] = field(default_factory=list, repr=False)

    def frame(self) -> pd.DataFrame:
        """One row per step: windows (h), in- and out-of-sample stats, the chosen params."""
        rows = []
        for f in self.folds:
            row: dict[str, Any] = {
                "fold": f.index,
                "is_start_h": f.in_sample.start_ns / 3.6e12,
                "is_end_h": f.in_sample.end_ns / 3.6e12,
                "oos_start_h": f.out_of_sample.start_ns / 3.6e12,
                "oos_end_h": f.out_of_sample.end_ns / 3.6e12,
            }
            for key in SHOWN:
                row[f"is_{key}"] = f.in_sample_stats[key]
                row[f"oos_{key}"] = f.out_of_sample_stats[key]
            row["trials"] = f.trials
            row.update({f"param_{k}": v for k, v in f.params.items()})
            rows.append(row)
        return pd.DataFrame(rows).set_index("fold")

    def summary(self) -> dict[str, float]:
        """Mean in- and out-of-sample objective over the steps, and the OOS PnL summed."""
        key = self.objective
        return {
            "is_objective": float(np.mean([f.in_sample_stats[key] for f in self.folds])),
            "oos_objective": float(np.mean([f.out_of_sample_stats[key] for f in self.folds])),
            "oos_total_pnl": math.fsum(f.out_of_sample_stats["total_pnl"] for f in self.folds),
        }


def search_space(
    cls: type[QuoteStrategy],
    ranges: Mapping[str, Range] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> dict[str, Range]:
    """The ranges to search: `ranges`, else the strategy's `search_space`, minus fixed params.

    BacktestError when a name is not a param of the strategy, a range is empty or leaves the
    param's declared bounds, or nothing is left to search.
    """
    fixed = dict(fixed or {})
    declared = dict(ranges) if ranges else dict(getattr(cls, "search_space", {}) or {})
    out: dict[str, Range] = {}
    for name, rng in declared.items():
        if name not in cls.params:
            raise BacktestError(f"{cls.label()} has no param {name!r} to search")
        param = cls.params[name]
        if isinstance(param, Choice):
            raise BacktestError(f"param {name} is a choice: fix it with --param")
        if not (math.isfinite(rng.low) and math.isfinite(rng.high) and rng.low < rng.high):
            raise BacktestError(f"search {name}: {rng.low:g}:{rng.high:g} needs low < high")
        if rng.log and rng.low <= 0:
            raise BacktestError(f"search {name}: a log range needs low > 0")
        try:
            param.validate(name, int(rng.low) if isinstance(param, Int) else rng.low)
            param.validate(name, int(rng.high) if isinstance(param, Int) else rng.high)
        except ParamError as exc:
            raise BacktestError(f"search {name}: {exc}") from None
        if name not in fixed:
            out[name] = rng
    if not out:
        raise BacktestError(f"nothing to search for {cls.label()}: give ranges (--search)")
    return out


def parse_range(text: str) -> tuple[str, Range]:
    """'name=low:high' or 'name=low:high:log' as (name, Range); BacktestError when malformed."""
    name, sep, spec = text.partition("=")
    parts = spec.split(":")
    if not sep or not name.strip() or len(parts) not in (2, 3):
        raise BacktestError(f"--search {text!r} must look like name=low:high or name=low:high:log")
    if len(parts) == 3 and parts[2] != "log":
        raise BacktestError(f"--search {text!r}: the third part can only be 'log'")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise BacktestError(f"--search {text!r}: low and high must be numbers") from None
    return name.strip(), Range(low, high, log=len(parts) == 3)


def fold_windows(flow: Flow, folds: int, anchored: bool = False) -> list[tuple[Window, Window]]:
    """(in-sample, out-of-sample) windows of each step: `folds` equal spans of the flow's time."""
    if folds < 2:
        raise BacktestError(f"walk-forward needs at least 2 folds, got {folds}")
    end = int(flow.time_ns[-1]) + 1
    edges = [round(end * i / folds) for i in range(folds + 1)]
    if len(set(edges)) != len(edges):
        raise BacktestError(f"the flow is too short for {folds} folds")
    return [
        (
            Window(0 if anchored else edges[i], edges[i + 1]),
            Window(edges[i + 1], edges[i + 2]),
        )
        for i in range(folds - 1)
    ]


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    import optuna

    # a log line per trial is noise next to the progress bar; put the level back after
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _suggest(trial: Any, cls: type[QuoteStrategy], space: Mapping[str, Range]) -> dict[str, Any]:
    values = {}
    for name, rng in space.items():
        if isinstance(cls.params[name], Int):
            values[name] = trial.suggest_int(name, int(rng.low), int(rng.high), log=rng.log)
        else:
            values[name] = trial.suggest_float(name, rng.low, rng.high, log=rng.log)
    return values


def _shown(stats: Mapping[str, float], objective: str) -> dict[str, float]:
    return {k: float(stats[k]) for k in dict.fromkeys((*SHOWN, objective))}


def walk_forward(
    cls: type[QuoteStrategy],
    flow: Flow,
    space: Mapping[str, Range] | None = None,
    fixed: Mapping[str, Any] | None = None,
    folds: int = 4,
    trials: int = 30,
    objective: str = "sharpe",
    config: MMConfig | None = None,
    seed: int = 0,
    anchored: bool = False,
    progress: bool = False,
) -> WalkForwardResult:
    """Optimize on each in-sample window with TPE, score the best params out of sample."""
    import optuna
    from tqdm.auto import tqdm

    if objective not in OBJECTIVES:
        raise BacktestError(f"unknown objective {objective!r} (known: {', '.join(OBJECTIVES)})")
    if trials < 1:
        raise BacktestError(f"trials must be at least 1, got {trials}")
    fixed = dict(fixed or {})
    cls.validate_params(fixed, constraints=False)
    ranges = search_space(cls, space, fixed)
    config = config or MMConfig()
    steps = fold_windows(flow, folds, anchored)
    results: list[FoldResult] = []
    studies = []
    bar = tqdm(total=len(steps) * trials, desc="walk-forward", unit="trial", disable=not progress)
    with _quiet_optuna(), bar:
        for i, (ins, oos) in enumerate(steps):
            in_flow = window(flow, ins.start_ns, ins.end_ns)

            def run_trial(trial: optuna.Trial, in_flow: Flow = in_flow) -> float:
                try:
                    params = cls.validate_params({**fixed, **_suggest(trial, cls, ranges)})
                except ParamError as exc:
                    raise optuna.TrialPruned(str(exc)) from None
                stats = run_mm(cls(**params), in_flow, config).stats
                for key in SHOWN:
                    trial.set_user_attr(key, float(stats[key]))
                value = float(stats[objective])
                return value if math.isfinite(value) else -math.inf

            sampler = optuna.samplers.TPESampler(seed=seed + i)
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(run_trial, n_trials=trials, callbacks=[lambda s, t: bar.update(1)])
            done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            if not done:
                raise BacktestError(f"fold {i}: no trial completed (every combination invalid)")
            best = study.best_trial
            params = cls.validate_params({**fixed, **best.params})
            in_stats = run_mm(cls(**params), in_flow, config).stats
            out_flow = window(flow, oos.start_ns, oos.end_ns)
            out_stats = run_mm(cls(**params), out_flow, config).stats
            results.append(
                FoldResult(
                    i,
                    ins,
                    oos,
                    params,
                    _shown(in_stats, objective),
                    _shown(out_stats, objective),
                    len(done),
                )
            )
            studies.append(study)
    return WalkForwardResult(cls.label(), objective, seed, results, studies)
