"""Optuna optimization of SignalStrategy parameters.

The search space is the strategy's own `params` (Param.suggest), optionally narrowed from the
command line: `fast=5:50:5` searches only those values, `sl_stop=0` fixes a param. Objectives are
computed from vectorbt backtests; small discrete spaces are evaluated at once with a vectorbt
grid (`run_grid`) and recorded as ordinary trials, so every study reads the same way. Studies live
in any optuna storage (SQLite file by default, an RDB URL, or a JournalStorage file) so several
worker processes can share one study.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError
from tqdm.auto import tqdm

from quantdesk.backtest import objective_metrics
from quantdesk.backtest.funding import FundingData
from quantdesk.backtest.metrics import compute_stats, funded_returns
from quantdesk.backtest.runner import portfolio_funding, run_grid, simulate, to_bars
from quantdesk.data.store import DataStore, stored_funding
from quantdesk.data.symbols import parse_symbols
from quantdesk.errors import QuantdeskError
from quantdesk.model import Costs
from quantdesk.strategy import (
    Choice,
    Float,
    Int,
    ParamError,
    Signals,
    SignalStrategy,
    Strategy,
    StrategyError,
    naive_utc,
    parse_param_args,
    strategy_class,
)

META_KEY = "quantdesk"
DEFAULT_STORAGE = Path("reports") / "optuna.sqlite3"
# Seconds between a running trial's heartbeats in a shared study (a trial is stale after 3).
DEFAULT_HEARTBEAT_S = 10
METRIC_CAP = 1e3  # ratios explode on flat equity; cap them so samplers see finite numbers
GRID_CHUNK = 500  # most combinations per vectorbt call
# Bars x columns per vectorbt call. Every per-bar series of a call is a fresh array of this
# many floats; past a few MB each, allocating and copying them costs more than the kernels
# (measured in benchmarks/bench_grid.py: 500 combinations of 100k bars per call ran at half
# the speed of 10-20), so long histories get small chunks.
GRID_CELLS = 2_000_000
MAX_ENUMERATED = 1_000_000  # combinations a constrained space is filtered over one by one


class OptimizeError(QuantdeskError):
    """An optimization cannot run (bad objective, storage, study or search space)."""


# --------------------------------------------------------------------------------------------
# Objectives


@dataclass(frozen=True)
class Objective:
    """What a study optimizes: metric names and their optuna directions."""

    name: str
    directions: tuple[str, ...]
    description: str

    @property
    def multi(self) -> bool:
        """True for a multi-objective (Pareto) study."""
        return len(self.directions) > 1

    def values(self, metrics: Mapping[str, float], dd_penalty: float) -> list[float]:
        """The objective value(s) of one evaluation's metrics."""
        if self.name == "return_dd":
            return [metrics["total_return"] - dd_penalty * metrics["max_drawdown"]]
        if self.name == "return_vs_drawdown":
            return [metrics["total_return"], metrics["max_drawdown"]]
        return [metrics[self.name]]


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("sharpe", ("maximize",), "annualized Sharpe ratio"),
        Objective("sortino", ("maximize",), "annualized Sortino ratio"),
        Objective("calmar", ("maximize",), "CAGR / max drawdown"),
        Objective("return_dd", ("maximize",), "total return minus dd_penalty x max drawdown"),
        Objective(
            "return_vs_drawdown",
            ("maximize", "minimize"),
            "Pareto front of total return (max) vs max drawdown (min)",
        ),
    )
}


def get_objective(name: str) -> Objective:
    """The objective called name, or OptimizeError listing them."""
    if name not in OBJECTIVES:
        raise OptimizeError(f"unknown objective {name!r} (objectives: {', '.join(OBJECTIVES)})")
    return OBJECTIVES[name]


# --------------------------------------------------------------------------------------------
# Search space


@dataclass(frozen=True)
class SearchSpace:
    """The strategy's params minus fixed ones; `grid` narrows a param to listed values."""

    cls: type[Strategy]
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cls.validate_params(self.fixed, constraints=False)
        for name, values in self.grid.items():
            if name in self.fixed:
                raise OptimizeError(f"param {name} is both fixed and searched")
            if not values:
                raise OptimizeError(f"param {name}: empty list of values")
            for value in values:
                self.cls.validate_params({name: value}, constraints=False)
        if not self.names:
            raise OptimizeError(f"strategy {self.cls.label()} has no free parameter to search")

    @property
    def names(self) -> list[str]:
        """The searched param names, in declaration order."""
        return [n for n in self.cls.params if n not in self.fixed]

    def distributions(self) -> dict[str, BaseDistribution]:
        """One optuna distribution per searched param (what `suggest` asks for)."""
        out: dict[str, BaseDistribution] = {}
        for name in self.names:
            param = self.cls.params[name]
            if name in self.grid:
                out[name] = CategoricalDistribution(list(self.grid[name]))
            elif isinstance(param, Int):
                out[name] = IntDistribution(param.low, param.high)
            elif isinstance(param, Float):
                out[name] = FloatDistribution(param.low, param.high)
            elif isinstance(param, Choice):
                out[name] = CategoricalDistribution(list(param.options))
            else:
                raise OptimizeError(f"param {name}: {type(param).__name__} cannot be searched")
        return out

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Full validated params: fixed values plus one suggestion per searched param.

        A declared constraint (Below) narrows the later param's range to values that keep it, so
        TPE never spends a trial on fast >= slow; listed values (a categorical space) that break
        it are pruned instead."""
        values = dict(self.fixed)
        for name in self.names:
            if name in self.grid:
                values[name] = trial.suggest_categorical(name, list(self.grid[name]))
            else:
                above, below = self._bounds(name, values)
                try:
                    values[name] = self.cls.params[name].suggest(trial, name, above, below)
                except ParamError as exc:
                    raise optuna.TrialPruned(str(exc)) from None
        if not self.cls.keeps_constraints(values):
            raise optuna.TrialPruned("the values break a declared constraint")
        return self.cls.validate_params(values)

    def _bounds(self, name: str, known: Mapping[str, Any]) -> tuple[Any, Any]:
        above = [known[c.low] for c in self.cls.constraints if c.high == name and c.low in known]
        below = [known[c.high] for c in self.cls.constraints if c.low == name and c.high in known]
        return (max(above) if above else None, min(below) if below else None)

    def discrete_values(self) -> dict[str, list[Any]] | None:
        """Every value of every searched param, or None when a Float param is free."""
        out: dict[str, list[Any]] = {}
        for name in self.names:
            param = self.cls.params[name]
            if name in self.grid:
                out[name] = list(self.grid[name])
            elif isinstance(param, Int):
                out[name] = list(range(param.low, param.high + 1))
            elif isinstance(param, Choice):
                out[name] = list(param.options)
            else:
                return None
        return out

    def combinations(self) -> list[dict[str, Any]]:
        """Every combination of a discrete space that keeps the declared constraints."""
        values = self.discrete_values()
        if values is None:
            raise OptimizeError("a grid needs every searched param discrete")
        every = _combinations(values)
        return [c for c in every if self.cls.keeps_constraints({**self.fixed, **c})]

    def size(self) -> float:
        """Number of valid combinations (inf when continuous)."""
        values = self.discrete_values()
        if values is None:
            return math.inf
        total = math.prod(len(v) for v in values.values())
        if total > MAX_ENUMERATED or not self.cls.constraints:
            return float(total)  # an upper bound: too many to filter one by one
        return float(len(self.combinations()))


# --------------------------------------------------------------------------------------------
# Evaluation


def slice_signals(signals: Signals, rows: slice) -> Signals:
    """The signals of a row range (stops are per column, unchanged)."""

    def cut(frame: pd.DataFrame | None) -> pd.DataFrame | None:
        return None if frame is None else frame.iloc[rows]

    return Signals(
        entries=cut(signals.entries),
        exits=cut(signals.exits),
        short_entries=cut(signals.short_entries),
        short_exits=cut(signals.short_exits),
        weights=cut(signals.weights),
        sl_stop=signals.sl_stop,
        tp_stop=signals.tp_stop,
    )


def _finite(value: float) -> float:
    value = float(value)
    if math.isnan(value):
        return 0.0  # no trades / flat equity: no edge either way
    return float(np.clip(value, -METRIC_CAP, METRIC_CAP))


def portfolio_metrics(
    portfolio: Any, groups: list[str] | None = None, flows: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Objective metrics per portfolio column (or per param combination when groups given).

    Symbols of one combination are averaged (trades summed). max_drawdown is a positive
    fraction; sharpe_bar is the per-bar (not annualized) Sharpe used by the deflated Sharpe.
    flows: funding cash per bar and column (portfolio_funding), counted in every metric.
    """
    if objective_metrics.supported(portfolio):
        stats = objective_metrics.objective_metrics(portfolio, flows)
        bars = portfolio.wrapper.shape[0]
    else:
        stats = compute_stats(portfolio, flows)
        returns = portfolio.returns() if flows is None else funded_returns(portfolio, flows).obj
        if isinstance(returns, pd.Series):
            returns = returns.to_frame("portfolio")
        std = returns.std(ddof=1)
        stats["sharpe_bar"] = (returns.mean() / std.where(std > 0)).to_numpy()
        bars = len(returns)
    stats["max_drawdown"] = stats["max_drawdown"].abs()
    cols = objective_metrics.OBJECTIVE_COLUMNS
    frame = stats[cols].astype(float)
    # No trade means flat equity: its ratios are float noise over ~0 volatility, not an edge.
    idle = frame["trades"] == 0
    frame.loc[idle, ["sharpe", "sortino", "calmar", "sharpe_bar"]] = 0.0
    if groups:
        agg = {c: ("sum" if c == "trades" else "mean") for c in cols}
        frame = frame.groupby(level=groups, sort=False).agg(agg)
    else:
        trades = frame["trades"].sum()
        frame = frame.mean().to_frame().T
        frame["trades"] = trades
    for col in cols:
        frame[col] = frame[col].map(_finite)
    frame["bars"] = float(bars)
    return frame


def evaluate(
    strategy: SignalStrategy,
    bars: pd.DataFrame,
    costs: Costs,
    start: int = 0,
    end: int | None = None,
    funding: FundingData | None = None,
) -> dict[str, float]:
    """Metrics of a backtest of bars[start:end], signals computed on bars[:end].

    History before `start` warms the indicators up but is not traded: the walk-forward
    out-of-sample windows and the pruning prefixes both use this. funding: stored rates per
    perpetual, settled as `quantdesk backtest` settles them (those outside the window meet no
    position).
    """
    history = bars.iloc[:end]
    signals = slice_signals(strategy.signals(history), slice(start, None))
    traded = history.iloc[start:]
    portfolio = simulate(traded, signals, costs, funding=funding)
    flows = portfolio_funding(portfolio, traded, funding)
    return portfolio_metrics(portfolio, flows=flows).iloc[0].to_dict()


# --------------------------------------------------------------------------------------------
# Jobs and studies


@dataclass(frozen=True)
class Holdout:
    """The tail of a job's bars kept out of the search, to score its winners out of sample."""

    job: OptimizeJob  # the in-sample job: the bars before the tail
    bars: pd.DataFrame  # every bar, so the tail's indicators are warmed by what came before
    start: int  # position of the tail's first bar in `bars`

    @property
    def first(self) -> pd.Timestamp:
        """Time of the tail's first bar."""
        return self.bars.index[self.start]

    def metrics(self, params: Mapping[str, Any]) -> dict[str, float]:
        """Metrics of params traded on the tail only (signals see the history before it)."""
        strategy = self.job.strategy_cls()(**{**self.job.fixed, **params})
        return evaluate(
            strategy, self.bars, self.job.costs, start=self.start, funding=self.job.funding
        )


def split_holdout(job: OptimizeJob, fraction: float) -> Holdout:
    """Keep the last `fraction` of the job's bars out of the search (0 < fraction < 1)."""
    if not 0 < fraction < 1:
        raise OptimizeError(f"holdout must be a fraction in (0, 1), got {fraction!r}")
    bars = job.bars()
    start = round(len(bars) * (1 - fraction))
    if start < 2 or len(bars) - start < 2:
        raise OptimizeError(f"{len(bars)} bars are too few to hold out {fraction:.0%}")
    index = to_bars(job.data).index  # the stored frames' own (tz-aware) timestamps
    last_in = index[start - 1]
    inside = {s: f.loc[:last_in] for s, f in job.data.items()}
    return Holdout(replace(job, data={s: f for s, f in inside.items() if not f.empty}), bars, start)


@dataclass
class OptimizeJob:
    """Everything a worker process needs to evaluate trials (picklable)."""

    strategy: str
    data: dict[str, pd.DataFrame]
    timeframe: str
    objective: str = "sharpe"
    costs: Costs = field(default_factory=Costs)
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    min_trades: int = 0
    dd_penalty: float = 0.5
    prune: bool = True
    seed: int = 0
    strategies_dir: str | None = None
    source: dict[str, Any] = field(default_factory=dict)  # exchange/market/start/end asked for
    # stored funding rates per perpetual (settled in every trial, as `quantdesk backtest` does)
    funding: dict[str, pd.DataFrame] = field(default_factory=dict)

    def strategy_cls(self) -> type[SignalStrategy]:
        """The strategy class, loaded by name."""
        cls = strategy_class(self.strategy, self.strategies_dir)
        if not issubclass(cls, SignalStrategy):
            raise StrategyError(f"{cls.label()} is not a SignalStrategy; it cannot be optimized")
        return cls

    def space(self) -> SearchSpace:
        """The search space of this job."""
        return SearchSpace(self.strategy_cls(), dict(self.fixed), dict(self.grid))

    def bars(self) -> pd.DataFrame:
        """The job's data as one (field, symbol) frame on a naive UTC index (see naive_utc)."""
        return naive_utc(to_bars(self.data))

    def metadata(self) -> dict[str, Any]:
        """What the study is about, stored on it (JSON-friendly) for reports and promotion."""
        bars = to_bars(self.data)
        return {
            "strategy": self.strategy,
            "symbols": list(self.data),
            "timeframe": self.timeframe,
            "start": bars.index[0].isoformat(),
            "end": bars.index[-1].isoformat(),
            "bars": len(bars),
            "objective": self.objective,
            "min_trades": self.min_trades,
            "dd_penalty": self.dd_penalty,
            "fee": self.costs.fee,
            "slippage": self.costs.slippage,
            "init_cash": self.costs.init_cash,
            "size": self.costs.size,  # None: all-in
            "fixed": self.fixed,
            "grid": self.grid,
            # funding settlements the trials book (perpetuals with a stored series)
            "funding_settlements": sum(len(f) for f in self.funding.values()),
            **{k: v for k, v in self.source.items() if v is not None},
        }


class TrialObjective:
    """The optuna objective of a job: suggest params, backtest, report prefixes for pruning."""

    def __init__(self, job: OptimizeJob) -> None:
        self.job = job
        self.space = job.space()
        self.objective = get_objective(job.objective)
        self.bars = job.bars()

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        """Evaluate one trial."""
        params = self.space.suggest(trial)
        strategy = self.space.cls(**params)
        if self.job.prune and not self.objective.multi:
            # Half the history first: a clearly bad trial stops before paying for the rest.
            half = len(self.bars) // 2
            if half > strategy.warmup + 2:
                early = evaluate(
                    strategy, self.bars, self.job.costs, end=half, funding=self.job.funding
                )
                trial.report(self.objective.values(early, self.job.dd_penalty)[0], step=half)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        metrics = evaluate(strategy, self.bars, self.job.costs, funding=self.job.funding)
        record(trial, metrics, self.job.min_trades)
        values = self.objective.values(metrics, self.job.dd_penalty)
        return values if self.objective.multi else values[0]


def record(trial: Any, metrics: Mapping[str, float], min_trades: int) -> None:
    """Store a trial's metrics as user attrs and the min-trade-count constraint."""
    for key, value in metrics.items():
        trial.set_user_attr(key, float(value))
    trial.set_constraint("min_trades", float(min_trades - metrics["trades"]))


def open_storage(
    spec: str | Path | None, heartbeat: int | None = None
) -> optuna.storages.BaseStorage | None:
    """An optuna storage from a URL, a journal file (*.log / *.journal), a SQLite path, or
    'memory'; None means the default SQLite file reports/optuna.sqlite3. heartbeat (seconds,
    database storages only): running trials beat that often; one silent for 3 beats is failed
    and queued again (optuna's RetryHeartbeatStaleTrialCallback)."""
    if spec is not None and str(spec) in ("memory", ":memory:"):
        return None
    text = str(spec if spec is not None else DEFAULT_STORAGE)
    beat = _heartbeat_kwargs(heartbeat)
    try:
        if "://" in text:
            if text.startswith("sqlite"):
                return _sqlite_storage(text, beat)
            return _rdb(text, **beat)
        path = Path(text)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in (".log", ".journal", ".jsonl"):
            backend = optuna.storages.journal.JournalFileBackend(str(path))
            return optuna.storages.JournalStorage(backend)
        return _sqlite_storage(f"sqlite:///{path}", beat)
    except (ImportError, ValueError, OSError, SQLAlchemyError) as exc:
        raise OptimizeError(f"cannot open optuna storage {text!r}: {exc}") from None


def is_server_storage(spec: str | Path | None) -> bool:
    """A database server URL (PostgreSQL, MySQL): processes on other machines may share it."""
    text = str(spec or "")
    return "://" in text and not text.startswith("sqlite")


def _heartbeat_kwargs(heartbeat: int | None) -> dict[str, Any]:
    if not heartbeat:
        return {}
    if heartbeat < 1:
        raise OptimizeError(f"--heartbeat must be at least 1 second, got {heartbeat}")
    return {
        "heartbeat_interval": int(heartbeat),
        "grace_period": 3 * int(heartbeat),
        "heartbeat_stale_trial_callback": _retry_callback(),
    }


def _retry_callback() -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)


def _sqlite_storage(url: str, beat: Mapping[str, Any]) -> optuna.storages.RDBStorage:
    # Several worker processes write one SQLite file: wait for the lock instead of failing.
    return _rdb(url, engine_kwargs={"connect_args": {"timeout": 60}}, **beat)


def _rdb(url: str, **kwargs: Any) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():
        # optuna flags its heartbeat options experimental; they are what shared studies need.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, **kwargs)


def default_study_name(job: OptimizeJob) -> str:
    """strategy-timeframe-objective."""
    return f"{job.strategy}-{job.timeframe}-{job.objective}"


def make_sampler(job: OptimizeJob, worker: int = 0) -> optuna.samplers.BaseSampler:
    """A seeded TPE sampler; each worker gets its own seed so they explore different points."""
    return optuna.samplers.TPESampler(seed=job.seed + worker, n_startup_trials=10)


def make_pruner(job: OptimizeJob) -> optuna.pruners.BasePruner:
    """Median pruning after a few complete trials (a no-op pruner when pruning is off)."""
    if not job.prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)


def create_study(
    job: OptimizeJob,
    storage: optuna.storages.BaseStorage | str | None = None,
    study_name: str | None = None,
    worker: int = 0,
) -> optuna.Study:
    """Create (or load) the job's study and stamp it with the job's metadata."""
    objective = get_objective(job.objective)
    name = study_name or default_study_name(job)
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=list(objective.directions),
            sampler=make_sampler(job, worker),
            pruner=make_pruner(job),
            load_if_exists=True,
        )
    except ValueError as exc:  # e.g. an existing study with other directions
        raise OptimizeError(f"study {name!r}: {exc}; choose another --study name") from None
    meta = job.metadata()
    existing = study.user_attrs.get(META_KEY)
    if existing is None:
        study.set_user_attr(META_KEY, meta)
    elif _same_study(existing, meta) is False:
        raise OptimizeError(
            f"study {study.study_name!r} already holds a different optimization "
            f"({existing['strategy']} {existing['objective']}); choose another --study name"
        )
    return study


def _same_study(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    keys = ("strategy", "objective", "timeframe", "symbols", "fixed", "grid")
    return all(old.get(k) == new.get(k) for k in keys)


# --------------------------------------------------------------------------------------------
# Running


@dataclass
class OptimizeResult:
    """A finished (or extended) study and how it was run."""

    study: optuna.Study
    job: OptimizeJob
    method: str  # "tpe" or "grid"

    @property
    def objective(self) -> Objective:
        """The study's objective."""
        return get_objective(self.job.objective)

    def best_trial(self) -> FrozenTrial:
        """The best feasible trial (single objective) or the Pareto trial with the best return."""
        return best_trial(self.study)

    @property
    def best_params(self) -> dict[str, Any]:
        """Full strategy params of the best trial (fixed ones included)."""
        return {**self.job.fixed, **self.best_trial().params}

    def pareto_front(self) -> pd.DataFrame:
        """Multi-objective: the Pareto-optimal trials (return, drawdown, params)."""
        return trials_frame(self.study, self.study.best_trials)

    def trials(self) -> pd.DataFrame:
        """Every complete trial: number, value(s), params, metrics."""
        return trials_frame(self.study)


def best_trial(study: optuna.Study) -> FrozenTrial:
    """Best feasible trial; for a Pareto study the front's highest first objective."""
    try:
        if len(study.directions) == 1:
            return study.best_trial
        front = study.best_trials
    except ValueError:
        front = []
    if not front:
        raise OptimizeError(
            f"study {study.study_name!r} has no complete trial meeting its constraints"
        )
    return max(front, key=lambda t: t.values[0])


def trials_frame(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> pd.DataFrame:
    """Trials as a table: number, value(s), params, metrics, feasibility."""
    trials = trials if trials is not None else study.get_trials(states=(TrialState.COMPLETE,))
    names = ["value"] if len(study.directions) == 1 else [f"value_{i}" for i in range(2)]
    rows = []
    for t in trials:
        row: dict[str, Any] = {"number": t.number}
        row.update(dict(zip(names, t.values or [], strict=False)))
        row.update({f"param_{k}": v for k, v in t.params.items()})
        row.update(t.user_attrs)
        row["feasible"] = all(v <= 0 for v in t.constraints.values()) if t.constraints else True
        rows.append(row)
    return pd.DataFrame(rows)


def optimize(
    job: OptimizeJob,
    n_trials: int = 100,
    storage: str | Path | None = "memory",
    study_name: str | None = None,
    workers: int = 1,
    method: str = "auto",
    progress: bool = True,
    heartbeat: int = DEFAULT_HEARTBEAT_S,
) -> OptimizeResult:
    """Run n_trials of job in a (new or existing) study; `workers` > 1 spawns processes.

    method: "tpe", "grid" (every combination of a discrete space once), or "auto" (grid when
    the space has at most n_trials combinations). With several workers or a database server
    storage the study's queue is shared with every process on it (quantdesk.backtest.distributed).
    """
    if n_trials < 1:
        raise OptimizeError(f"--trials must be at least 1, got {n_trials}")
    if workers < 1:
        raise OptimizeError(f"--workers must be at least 1, got {workers}")
    space = job.space()
    get_objective(job.objective)
    size = space.size()
    if method not in ("auto", "tpe", "grid"):
        raise OptimizeError(f"unknown method {method!r} (auto, tpe, grid)")
    if method == "grid" and math.isinf(size):
        raise OptimizeError(
            "a grid needs every searched param discrete: fix Float params or list their values"
        )
    use_grid = method == "grid" or (method == "auto" and size <= n_trials)
    # A grid in memory with several workers: the workers only compute grid chunks and this
    # process writes the study, so no storage needs sharing.
    pooled = use_grid and storage is not None and str(storage) in ("memory", ":memory:")
    if (workers > 1 and not pooled) or is_server_storage(storage):
        if storage is not None and str(storage) in ("memory", ":memory:"):
            raise OptimizeError(
                "several workers need a shared --storage (SQLite file, URL, journal)"
            )
        from quantdesk.backtest.optimize_workers import run_shared

        name = study_name or default_study_name(job)
        study = run_shared(job, storage, name, n_trials, workers, use_grid, progress, heartbeat)
        return OptimizeResult(study, job, "grid" if use_grid else "tpe")
    backend = open_storage(storage)
    study = create_study(job, backend, study_name)
    if use_grid:
        try:
            grid_study(study, job, progress=progress, workers=workers)
        except StrategyError:
            # a strategy without sweep support: the same combinations, one trial each
            n = _enqueue_grid(study, space)
            study.optimize(TrialObjective(job), n_trials=n, show_progress_bar=progress)
    else:
        study.optimize(TrialObjective(job), n_trials=n_trials, show_progress_bar=progress)
    return OptimizeResult(study, job, "grid" if use_grid else "tpe")


def _combinations(values: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(values)
    return [dict(zip(names, c, strict=True)) for c in itertools.product(*values.values())]


def _enqueue_grid(study: optuna.Study, space: SearchSpace) -> int:
    # Enqueued trials are popped atomically by the storage: across workers each combination
    # is evaluated exactly once.
    combos = space.combinations()
    for combo in combos:
        study.enqueue_trial(combo, skip_if_exists=True)
    return len(combos)


def grid_study(
    study: optuna.Study, job: OptimizeJob, progress: bool = True, workers: int = 1
) -> int:
    """Evaluate every combination with vectorized vectorbt grids; add new ones as trials.

    workers > 1 computes the sub-grids on that many spawned processes (grid_pool); this
    process alone writes the trials, in the same order."""
    space = job.space()
    values = space.discrete_values()
    if values is None:
        raise OptimizeError("grid evaluation needs a discrete search space")
    objective = get_objective(job.objective)
    distributions = space.distributions()
    names = space.names
    done = {
        tuple(t.params.get(n) for n in names)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    }
    added = 0
    valid = {tuple(c[n] for n in names) for c in space.combinations()}
    # sub-grids of which every combination breaks a constraint are not evaluated
    grids = [
        grid
        for grid in subgrids(values, grid_chunk(job.data))
        if any(key in valid for key in itertools.product(*grid.values()))
    ]
    if workers > 1 and len(grids) > 1:
        from quantdesk.backtest.grid_pool import pool_metrics

        frames = pool_metrics(job, grids, workers)
    else:
        frames = (grid_metrics(space, job.data, job.costs, g, job.funding) for g in grids)
    bar = tqdm(total=len(valid), desc="grid", unit="combo", disable=not progress)
    for frame in frames:
        trials = []
        for key, metrics in frame.iterrows():
            key = key if isinstance(key, tuple) else (key,)
            if key not in valid:
                continue  # the sub-grid is cartesian; the constraints leave this one out
            bar.update(1)
            if key in done:
                continue
            trials.append(
                optuna.trial.create_trial(
                    params=dict(zip(names, key, strict=True)),
                    distributions=distributions,
                    values=objective.values(metrics, job.dd_penalty),
                    user_attrs={k: float(v) for k, v in metrics.items()},
                    constraints={"min_trades": float(job.min_trades - metrics["trades"])},
                )
            )
        study.add_trials(trials)
        added += len(trials)
    bar.close()
    return added


def grid_chunk(data: Mapping[str, pd.DataFrame]) -> int:
    """Combinations per vectorbt call for this data: about GRID_CELLS bars x columns."""
    cells = max(1, max((len(frame) for frame in data.values()), default=1) * len(data))
    return max(1, min(GRID_CHUNK, GRID_CELLS // cells))


def subgrids(values: Mapping[str, list[Any]], limit: int) -> list[dict[str, list[Any]]]:
    """Split a cartesian grid into sub-grids of at most `limit` combinations (limit >= 1)."""
    names = list(values)
    if math.prod(len(v) for v in values.values()) <= limit or not names:
        return [dict(values)]
    first, rest = names[0], {n: values[n] for n in names[1:]}
    rest_size = math.prod(len(v) for v in rest.values())
    if rest_size <= limit:
        step = max(1, limit // rest_size)
        return [
            {first: values[first][i : i + step], **rest} for i in range(0, len(values[first]), step)
        ]
    return [{first: [v], **sub} for v in values[first] for sub in subgrids(rest, limit)]


def grid_metrics(
    space: SearchSpace,
    data: Mapping[str, pd.DataFrame],
    costs: Costs,
    grid: Mapping[str, list[Any]],
    funding: FundingData | None = None,
) -> pd.DataFrame:
    """Metrics of every combination of grid (rows indexed by param values) in one vectorbt run."""
    naive = {symbol: naive_utc(frame) for symbol, frame in data.items()}
    result = run_grid(space.cls, grid, naive, costs, fixed=space.fixed, funding=funding)
    return portfolio_metrics(result.portfolio, groups=list(grid), flows=result.flows)


def load_result(
    study_name: str,
    storage: str | Path | None = None,
) -> tuple[optuna.Study, dict[str, Any]]:
    """An existing study and the metadata quantdesk stored on it."""
    backend = open_storage(storage)
    if backend is None:
        raise OptimizeError("an in-memory study cannot be loaded; give --storage")
    try:
        study = optuna.load_study(study_name=study_name, storage=backend)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(backend)]
        raise OptimizeError(
            f"no study {study_name!r} in the storage (studies: {', '.join(names) or 'none'})"
        ) from None
    meta = study.user_attrs.get(META_KEY)
    if not meta:
        raise OptimizeError(f"study {study_name!r} was not created by quantdesk optimize")
    return study, dict(meta)


# --------------------------------------------------------------------------------------------
# Jobs from the data store


def job_from_store(
    store: DataStore,
    strategy: str,
    symbols: str | Sequence[str],
    timeframe: str | None = None,
    start: str | None = None,
    end: str | None = None,
    exchange: str | None = None,
    market: str | None = None,
    param_args: Sequence[str] = (),
    strategies_dir: str | None = None,
    **options: Any,
) -> OptimizeJob:
    """A job over stored bars; param_args ('fast=5:50:5', 'sl_stop=0') narrow the space."""
    cls = strategy_class(strategy, strategies_dir)
    fixed, grid = parse_param_args(cls, param_args)
    names = parse_symbols(symbols) if isinstance(symbols, str) else list(symbols)
    tf = timeframe or cls.timeframe
    data = store.load_many(names, tf, start, end, exchange, market)
    return OptimizeJob(
        strategy,
        data,
        tf,
        fixed=fixed,
        grid=grid,
        strategies_dir=strategies_dir,
        source={"exchange": exchange, "market": market},
        funding=stored_funding(store, names, start, end, exchange, market),
        **options,
    )


def job_from_meta(
    meta: Mapping[str, Any], store: DataStore, strategies_dir: str | None = None
) -> OptimizeJob:
    """The job a study was created from: same bars (its recorded window), costs and space."""
    costs = Costs(
        fee=meta["fee"],
        slippage=meta["slippage"],
        init_cash=meta["init_cash"],
        size=meta.get("size"),  # studies before sizing was recorded went all-in
    )
    job = job_from_store(
        store,
        meta["strategy"],
        list(meta["symbols"]),
        meta["timeframe"],
        meta["start"],
        meta["end"],
        meta.get("exchange"),
        meta.get("market"),
        strategies_dir=strategies_dir,
        objective=meta["objective"],
        costs=costs,
        min_trades=int(meta.get("min_trades", 0)),
        dd_penalty=float(meta.get("dd_penalty", 0.5)),
    )
    return replace(job, fixed=dict(meta.get("fixed") or {}), grid=dict(meta.get("grid") or {}))
