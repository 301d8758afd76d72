"""Validation of a strategy and of an optimization: bias checks and overfitting statistics.

- lookahead: signals computed on history up to t equal the full-history signals up to t;
- recursive: signals after the warmup do not depend on how much history precedes them;
- deflated Sharpe ratio (Bailey & Lopez de Prado 2014): the best trial's Sharpe corrected for
  the number of trials, their dispersion, and the returns' skew and kurtosis;
- probability of backtest overfitting via combinatorially symmetric cross-validation (Bailey,
  Borwein, Lopez de Prado & Zhu 2017);
- parameter stability: the objective in the neighbourhood of the best parameters;
- replay parity: the engine's replay reproduces the vectorbt trades. The replay is injected
  (`replay_fn`, e.g. quantdesk.system.replay.replay): research sits below the system layer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from tqdm.auto import tqdm

from quantdesk.backtest.funding import FundingData
from quantdesk.backtest.metrics import funded_returns
from quantdesk.backtest.optimize import (
    OptimizeError,
    OptimizeJob,
    SearchSpace,
    evaluate,
    get_objective,
    naive_utc,
)
from quantdesk.backtest.runner import portfolio_funding, simulate
from quantdesk.errors import QuantdeskError
from quantdesk.model import Costs
from quantdesk.strategy import Choice, Float, Int, Signals, SignalStrategy

# The engine's replay as parity_check calls it: (strategy, data, costs, funding=...) -> a
# result with .trades (vectorbt's trade columns) and .final_equity.
ReplayFn = Callable[..., Any]

EULER_GAMMA = 0.5772156649015329
CHECKS = ("lookahead", "recursive", "dsr", "pbo", "stability", "parity")


class ValidationError(QuantdeskError):
    """Validation cannot run with the given inputs."""


@dataclass(frozen=True)
class Thresholds:
    """What a check must reach to pass. The defaults are a skeptic's: a PBO near 0.5 means the
    in-sample winner is a coin flip out of sample, so it must stay well below (<= 0.2)."""

    min_dsr: float = 0.95
    max_pbo: float = 0.2
    min_stability: float = 0.5
    min_wf_efficiency: float = 0.25  # walk-forward: mean OOS objective / mean IS objective

    def __post_init__(self) -> None:
        for name in ("min_dsr", "max_pbo", "min_stability"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValidationError(f"{name} must be within [0, 1], got {value!r}")
        if not math.isfinite(self.min_wf_efficiency):
            raise ValidationError(f"min_wf_efficiency must be finite, got {self.min_wf_efficiency}")


@dataclass
class Check:
    """One verdict: passed True/False, or None when the check was skipped (with why)."""

    name: str
    passed: bool | None
    value: str = ""
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """'pass', 'FAIL' or 'skip'."""
        return "skip" if self.passed is None else ("pass" if self.passed else "FAIL")


@dataclass
class ValidationReport:
    """The verdicts of one validation run."""

    checks: list[Check]

    @property
    def passed(self) -> bool:
        """True when no check failed (skipped checks do not fail)."""
        return all(c.passed is not False for c in self.checks)

    def failures(self) -> list[Check]:
        """The failed checks."""
        return [c for c in self.checks if c.passed is False]

    def table(self) -> pd.DataFrame:
        """check / verdict / value / detail, one row per check."""
        return pd.DataFrame(
            [(c.name, c.status, c.value, c.detail) for c in self.checks],
            columns=["check", "verdict", "value", "detail"],
        )

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """JSON/TOML-friendly verdicts."""
        return {
            c.name: {"verdict": c.status, "value": c.value, "detail": c.detail} for c in self.checks
        }


# --------------------------------------------------------------------------------------------
# Causality checks
#
# Each cut or start offset costs one strategy.signals call (10-60 ms for a vectorbt strategy on
# a few thousand bars, mostly fixed overhead), so the caps bound the checks' cost whatever the
# history length: at most LOOKAHEAD_MAX_CUTS + RECURSIVE_MAX_STARTS calls (plus TIE_DRAWS when a
# difference has to be told apart from float rounding).
LOOKAHEAD_MAX_CUTS = 96
LOOKAHEAD_RANDOM_CUTS = 16
RECURSIVE_MAX_STARTS = 32
RECURSIVE_RANDOM_STARTS = 8
CHECK_SEED = 0
TIE_DRAWS = 6  # a cell on a tie escapes every jitter with probability 2**-6
TIE_JITTER = 1e-9  # far above rounding noise (~1e-13), far below a real signal's margin


def signal_frames(signals: Signals) -> dict[str, pd.DataFrame]:
    """The non-empty frames of signals by name."""
    names = ("entries", "exits", "short_entries", "short_exits", "weights")
    return {n: getattr(signals, n) for n in names if getattr(signals, n) is not None}


def _same(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Element-wise equality of two same-shaped arrays (floats within 1e-9, NaN == NaN)."""
    if x.dtype == bool and y.dtype == bool:
        return x == y
    xf, yf = x.astype(float), y.astype(float)
    return np.isclose(xf, yf, rtol=1e-9, atol=1e-12) | (np.isnan(xf) & np.isnan(yf))


def _cells(frame: pd.DataFrame | pd.Series) -> np.ndarray:
    """A signal frame as a 2-D array (rows x columns)."""
    x = np.asarray(frame)
    return x[:, None] if x.ndim == 1 else x


def signal_change_rows(signals: Signals) -> np.ndarray:
    """Row numbers (>= 1) where a signal fires: some cell differs from the row before and now
    holds True or a target weight (a signal switching off is no likelier to hide a bias)."""
    fired = None
    for frame in signal_frames(signals).values():
        x = _cells(frame)
        new = x[1:].astype(bool) if x.dtype == bool else ~np.isnan(x[1:].astype(float))
        rows = (~_same(x[1:], x[:-1]) & new).any(axis=1)
        fired = rows if fired is None else fired | rows
    return np.array([], dtype=int) if fired is None else np.flatnonzero(fired) + 1


def _pick(
    targeted: np.ndarray, pool: np.ndarray, cap: int, random: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Up to cap - random of the targeted values (a seeded sample when there are more) plus up
    to `random` seeded draws from the rest of pool."""
    rng = np.random.default_rng(seed)
    targeted = np.unique(targeted)
    keep = max(cap - random, 0)
    if len(targeted) > keep:
        targeted = np.sort(rng.choice(targeted, size=keep, replace=False))
    rest = np.setdiff1d(pool, targeted)
    extra = np.sort(rng.choice(rest, size=min(random, len(rest)), replace=False))
    return targeted, extra


def rounding_ties(
    strategy: SignalStrategy,
    bars: pd.DataFrame,
    full: Signals,
    draws: int = TIE_DRAWS,
    seed: int = CHECK_SEED,
) -> dict[str, np.ndarray]:
    """Per signal frame, the cells that flip when every value of bars is jittered by ~1e-9
    relative (`draws` seeded jitters): decisions taken on a tie, like an RSI of exactly 30.0.

    Dropping earlier history changes how a running sum rounds (~1e-13), which tips such a cell
    either way: float noise, not a dependence on history, so the checks do not count it."""
    rng = np.random.default_rng(seed)
    values = bars.to_numpy(dtype=float)
    frames = {name: _cells(frame) for name, frame in signal_frames(full).items()}
    ties = {name: np.zeros(x.shape, dtype=bool) for name, x in frames.items()}
    for _ in range(draws):
        noise = 1 + TIE_JITTER * rng.standard_normal(values.shape)
        jittered = pd.DataFrame(values * noise, index=bars.index, columns=bars.columns)
        other = signal_frames(strategy.signals(jittered))
        for name, x in frames.items():
            y = _cells(other[name]) if name in other else None
            if y is not None and y.shape == x.shape:
                ties[name] |= ~_same(x, y)
    return ties


class _Reference:
    """The full-history signals a check compares against, with their rounding ties (computed
    on the first difference only, so a clean strategy pays nothing for them)."""

    def __init__(self, strategy: SignalStrategy, bars: pd.DataFrame, seed: int) -> None:
        self.strategy, self.bars, self.seed = strategy, bars, seed
        self.full = strategy.signals(bars)
        self.ties: dict[str, np.ndarray] | None = None

    def first_difference(
        self, part: Signals, rows_full: slice, rows_part: slice
    ) -> tuple[str, int] | None:
        """(frame name, row number in the full history) of the first difference not on a tie."""
        diff = self._compare(part, rows_full, rows_part)
        if diff is not None and self.ties is None:
            self.ties = rounding_ties(self.strategy, self.bars, self.full, seed=self.seed)
            diff = self._compare(part, rows_full, rows_part)
        return diff

    def _compare(self, part: Signals, rows_full: slice, rows_part: slice) -> tuple[str, int] | None:
        part_frames = signal_frames(part)
        offset = rows_full.start or 0
        for name, frame in signal_frames(self.full).items():
            if name not in part_frames:
                return name, offset
            x, y = _cells(frame)[rows_full], _cells(part_frames[name])[rows_part]
            if x.shape != y.shape:
                return name, offset
            differ = ~_same(x, y)
            if self.ties is not None:
                differ &= ~self.ties[name][rows_full]
            bad = np.flatnonzero(differ.any(axis=1))
            if len(bad):
                return name, offset + int(bad[0])
        return None

    def tie_note(self) -> tuple[int, str]:
        """How many signal cells are rounding ties (0 when never needed), and a note on them."""
        count = 0 if self.ties is None else int(sum(int(t.sum()) for t in self.ties.values()))
        return count, (f"; {count} signal cells on rounding ties not counted" if count else "")


def lookahead_cuts(
    strategy: SignalStrategy,
    bars: pd.DataFrame,
    full: Signals | None = None,
    max_cuts: int = LOOKAHEAD_MAX_CUTS,
    random_cuts: int = LOOKAHEAD_RANDOM_CUTS,
    seed: int = CHECK_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """The cuts the lookahead check tests, as bar counts: (after bars where a signal fires,
    random). A cut t keeps bars[:t]; a signal firing on bar r is tested by the cut r + 1,
    where r is the last bar known: a signal that peeks ahead cannot fire there."""
    n = len(bars)
    first = max(int(np.max(strategy.warmup)) + 2, 3)
    full = strategy.signals(bars) if full is None else full
    cuts = signal_change_rows(full) + 1
    cuts = cuts[(cuts >= first) & (cuts <= n - 1)]
    return _pick(cuts, np.arange(first, n), max_cuts, random_cuts, seed)


def lookahead_check(
    strategy: SignalStrategy,
    bars: pd.DataFrame,
    max_cuts: int = LOOKAHEAD_MAX_CUTS,
    random_cuts: int = LOOKAHEAD_RANDOM_CUTS,
    seed: int = CHECK_SEED,
) -> Check:
    """Signals on bars[:t] must equal the full-history signals on bars[:t] at every cut t: after
    each bar where a signal fires (a seeded sample of max_cuts - random_cuts when there are
    more) and at random_cuts seeded random bars."""
    n = len(bars)
    first = max(int(np.max(strategy.warmup)) + 2, 3)
    if n - first < 2:
        return Check("lookahead", False, "", f"needs more than {first} bars, got {n}")
    ref = _Reference(strategy, bars, seed)
    fired, extra = lookahead_cuts(strategy, bars, ref.full, max_cuts, random_cuts, seed)
    cuts = np.sort(np.concatenate([fired, extra]))
    value = f"{len(cuts)} bars"
    counted = f"{len(fired)} where a signal fires + {len(extra)} random"
    data: dict[str, Any] = {
        "bars_checked": len(cuts),
        "signal_bars": len(fired),
        "random_bars": len(extra),
        "seed": seed,
    }
    for cut in cuts.tolist():
        diff = ref.first_difference(strategy.signals(bars.iloc[:cut]), slice(0, cut), slice(0, cut))
        if diff is not None:
            name, row = diff
            data["rounding_ties"], _ = ref.tie_note()
            return Check(
                "lookahead",
                False,
                value,
                f"{name} at {bars.index[row]} changes once bars after {bars.index[cut - 1]} "
                f"are known (bars checked: {counted})",
                {**data, "failed_bar": str(bars.index[cut - 1])},
            )
    data["rounding_ties"], note = ref.tie_note()
    return Check("lookahead", True, value, f"truncated == full history at {counted}{note}", data)


def recursive_starts(
    strategy: SignalStrategy,
    bars: pd.DataFrame,
    full: Signals | None = None,
    max_starts: int = RECURSIVE_MAX_STARTS,
    random_starts: int = RECURSIVE_RANDOM_STARTS,
    seed: int = CHECK_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """The start offsets the recursive check tests: (`warmup` bars before a bar where a signal
    fires, random). From start s the firing bar s + warmup is the first one compared, where a
    dependence on the first bars (an ewm's seed) has had the least time to fade."""
    n = len(bars)
    warmup = int(np.max(strategy.warmup))
    last_start = n - warmup - 3
    full = strategy.signals(bars) if full is None else full
    starts = signal_change_rows(full) - warmup
    starts = starts[(starts >= 1) & (starts <= last_start)]
    return _pick(starts, np.arange(1, last_start + 1), max_starts, random_starts, seed)


def recursive_check(
    strategy: SignalStrategy,
    bars: pd.DataFrame,
    max_starts: int = RECURSIVE_MAX_STARTS,
    random_starts: int = RECURSIVE_RANDOM_STARTS,
    seed: int = CHECK_SEED,
) -> Check:
    """Signals after `warmup` bars must not change when earlier history is dropped: starting
    `warmup` bars before each bar where a signal fires (a seeded sample of max_starts -
    random_starts when there are more) and at random_starts seeded random offsets."""
    n = len(bars)
    warmup = int(np.max(strategy.warmup))
    if n - warmup - 3 < 1:
        return Check("recursive", False, "", f"needs more than {warmup + 3} bars, got {n}")
    ref = _Reference(strategy, bars, seed)
    fired, extra = recursive_starts(strategy, bars, ref.full, max_starts, random_starts, seed)
    starts = np.sort(np.concatenate([fired, extra]))
    value = f"{len(starts)} starts, warmup {warmup}"
    counted = f"{len(fired)} before a signal fires + {len(extra)} random"
    data: dict[str, Any] = {
        "starts_checked": len(starts),
        "signal_bars": len(fired),
        "random_starts": len(extra),
        "warmup": warmup,
        "seed": seed,
    }
    for start in starts.tolist():
        part = strategy.signals(bars.iloc[start:])
        diff = ref.first_difference(part, slice(start + warmup, None), slice(warmup, None))
        if diff is not None:
            name, row = diff
            data["rounding_ties"], _ = ref.tie_note()
            return Check(
                "recursive",
                False,
                value,
                f"{name} at {bars.index[row]} depends on history before {bars.index[start]} "
                f"(start offsets checked: {counted})",
                {**data, "failed_start": str(bars.index[start])},
            )
    data["rounding_ties"], note = ref.tie_note()
    return Check("recursive", True, value, f"{counted} start offsets agree{note}", data)


# --------------------------------------------------------------------------------------------
# Deflated Sharpe ratio


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """E[max SR] of n_trials independent trials with SR variance V under the null (SR=0)."""
    if n_trials < 2:
        return 0.0
    z1 = sps.norm.ppf(1 - 1 / n_trials)
    z2 = sps.norm.ppf(1 - 1 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def probabilistic_sharpe(
    sharpe: float, benchmark: float, n_obs: int, skew: float, kurtosis: float
) -> float:
    """P[true SR > benchmark] for an observed per-period SR (kurtosis not excess: normal = 3)."""
    denom = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if n_obs < 2 or denom <= 0:
        return float("nan")
    z = (sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom)
    return float(sps.norm.cdf(z))


def deflated_sharpe(
    sharpe: float,
    sharpe_variance: float,
    n_trials: int,
    n_obs: int,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """Deflated Sharpe ratio: the PSR against the expected maximum Sharpe of n_trials."""
    benchmark = expected_max_sharpe(n_trials, sharpe_variance)
    return probabilistic_sharpe(sharpe, benchmark, n_obs, skew, kurtosis)


# --------------------------------------------------------------------------------------------
# Probability of backtest overfitting (CSCV)


@dataclass
class PBOResult:
    """PBO and the logits of the best in-sample configuration's out-of-sample relative rank."""

    pbo: float
    logits: np.ndarray
    n_splits: int
    n_combinations: int


def _sharpe_blocks(
    sums: np.ndarray, squares: np.ndarray, counts: np.ndarray, chosen: np.ndarray
) -> np.ndarray:
    s = sums[chosen].sum(axis=0)
    q = squares[chosen].sum(axis=0)
    n = counts[chosen].sum()
    mean = s / n
    var = np.maximum(q - n * mean**2, 0.0) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = mean / np.sqrt(var)
    return np.where(np.isfinite(sharpe), sharpe, 0.0)


def pbo_cscv(returns: np.ndarray | pd.DataFrame, n_splits: int = 16) -> PBOResult:
    """PBO of a T x N matrix of per-period returns (N configurations) by CSCV with S splits.

    Rows are cut into S contiguous blocks; for each of the C(S, S/2) ways to pick half of them
    as in-sample, the configuration with the best in-sample Sharpe is ranked out-of-sample;
    PBO is the share of splits where it lands at or below the median (logit <= 0).
    """
    matrix = np.asarray(returns, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise ValidationError("PBO needs a returns matrix with at least two configurations")
    if n_splits < 2 or n_splits % 2:
        raise ValidationError(f"PBO needs an even number of splits >= 2, got {n_splits}")
    rows = matrix.shape[0] - matrix.shape[0] % n_splits
    if rows < 2 * n_splits:
        raise ValidationError(f"PBO with {n_splits} splits needs at least {2 * n_splits} rows")
    blocks = np.split(np.nan_to_num(matrix[:rows]), n_splits)
    sums = np.array([b.sum(axis=0) for b in blocks])
    squares = np.array([(b**2).sum(axis=0) for b in blocks])
    counts = np.array([len(b) for b in blocks], dtype=float)
    n_configs = matrix.shape[1]
    logits = []
    everything = set(range(n_splits))
    for combo in itertools.combinations(range(n_splits), n_splits // 2):
        is_blocks = np.array(combo)
        oos_blocks = np.array(sorted(everything - set(combo)))
        is_perf = _sharpe_blocks(sums, squares, counts, is_blocks)
        oos_perf = _sharpe_blocks(sums, squares, counts, oos_blocks)
        best = int(np.argmax(is_perf))
        rank = (
            1 + np.sum(oos_perf < oos_perf[best]) + 0.5 * (np.sum(oos_perf == oos_perf[best]) - 1)
        )
        omega = rank / (n_configs + 1)
        logits.append(math.log(omega / (1 - omega)))
    arr = np.array(logits)
    return PBOResult(float(np.mean(arr <= 0)), arr, n_splits, len(arr))


# --------------------------------------------------------------------------------------------
# Parameter stability


def neighbours(space: SearchSpace, params: Mapping[str, Any], rel: float = 0.1) -> list[dict]:
    """One-at-a-time neighbours of params: each searched number +-rel (at least one step for
    integers), each choice swapped for the others; out-of-range values are dropped."""
    out: list[dict[str, Any]] = []
    for name in space.names:
        param = space.cls.params[name]
        value = params[name]
        if name in space.grid:
            values = list(space.grid[name])
            i = values.index(value) if value in values else -1
            candidates = [values[j] for j in (i - 1, i + 1) if 0 <= j < len(values) and i >= 0]
        elif isinstance(param, Int):
            step = max(1, round(abs(value) * rel))
            candidates = [value - step, value + step]
        elif isinstance(param, Float):
            step = abs(value) * rel or (param.high - param.low) * rel / 2
            candidates = [value - step, value + step]
        elif isinstance(param, Choice):
            candidates = [o for o in param.options if o != value]
        else:
            candidates = []
        for candidate in candidates:
            trial = {**params, name: candidate}
            try:
                out.append(space.cls.validate_params(trial))
            except QuantdeskError:
                continue
    return out


def stability_check(
    space: SearchSpace,
    params: Mapping[str, Any],
    bars: pd.DataFrame,
    costs: Costs,
    objective: str = "sharpe",
    dd_penalty: float = 0.5,
    rel: float = 0.1,
    thresholds: Thresholds = Thresholds(),
    funding: FundingData | None = None,
) -> Check:
    """Median objective of the neighbours must keep a share of the best one (best > 0)."""
    target = get_objective(objective)

    def score(values: Mapping[str, Any]) -> float:
        metrics = evaluate(space.cls(**values), bars, costs, funding=funding)
        return target.values(metrics, dd_penalty)[0]

    best = score(params)
    around = neighbours(space, params, rel)
    if not around:
        return Check("stability", None, "", "no neighbouring parameter values")
    scores = np.array([score(p) for p in around])
    median = float(np.median(scores))
    table = [{**p, "objective": s} for p, s in zip(around, scores, strict=True)]
    value = f"{median:.3g} vs {best:.3g}"
    if best <= 0:
        return Check(
            "stability", False, value, f"best {objective} is not positive", {"table": table}
        )
    ratio = median / best
    return Check(
        "stability",
        ratio >= thresholds.min_stability,
        value,
        f"median of {len(around)} neighbours keeps {ratio:.0%} "
        f"(need {thresholds.min_stability:.0%})",
        {"table": table, "ratio": ratio},
    )


# --------------------------------------------------------------------------------------------
# Overfitting statistics of a study


def combined_returns(
    strategy: SignalStrategy,
    bars: pd.DataFrame,
    costs: Costs,
    funding: FundingData | None = None,
) -> pd.Series:
    """Per-bar returns of a backtest (funding settled), averaged over symbols (equal weight)."""
    portfolio = simulate(bars, strategy.signals(bars), costs, funding=funding)
    flows = portfolio_funding(portfolio, bars, funding)
    returns = portfolio.returns() if flows is None else funded_returns(portfolio, flows).obj
    return returns if isinstance(returns, pd.Series) else returns.mean(axis=1)


def dsr_check(
    best_returns: pd.Series,
    trial_sharpes: Sequence[float],
    n_trials: int | None = None,
    thresholds: Thresholds = Thresholds(),
) -> Check:
    """Deflated Sharpe of the best configuration given the Sharpes (per bar) of all trials."""
    sharpes = np.asarray(trial_sharpes, dtype=float)
    sharpes = sharpes[np.isfinite(sharpes)]
    n = int(n_trials or len(sharpes))
    r = best_returns.dropna().to_numpy()
    if len(r) < 3 or r.std(ddof=1) == 0:
        return Check("dsr", False, "", "flat returns: no Sharpe to deflate")
    sr = r.mean() / r.std(ddof=1)
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    skew = float(sps.skew(r))
    kurt = float(sps.kurtosis(r, fisher=False))
    dsr = deflated_sharpe(sr, variance, n, len(r), skew, kurt)
    sr0 = expected_max_sharpe(n, variance)
    detail = f"SR/bar {sr:.4f} vs E[max SR] {sr0:.4f} over {n} trials, T={len(r)}"
    passed = bool(np.isfinite(dsr) and dsr >= thresholds.min_dsr)
    detail += f" (need >= {thresholds.min_dsr:g})"
    return Check(
        "dsr", passed, f"{dsr:.3f}", detail, {"dsr": dsr, "sr": sr, "sr0": sr0, "trials": n}
    )


def pbo_check(
    returns: pd.DataFrame, n_splits: int = 10, thresholds: Thresholds = Thresholds()
) -> Check:
    """PBO of the configurations' returns matrix (columns = configurations)."""
    if returns.shape[1] < 2:
        return Check("pbo", None, "", "needs at least two distinct configurations")
    splits = n_splits
    while splits > 2 and returns.shape[0] < 2 * splits:
        splits -= 2
    try:
        result = pbo_cscv(returns.to_numpy(), splits)
    except ValidationError as exc:
        return Check("pbo", None, "", str(exc))
    return Check(
        "pbo",
        bool(result.pbo <= thresholds.max_pbo),
        f"{result.pbo:.3f}",
        f"{returns.shape[1]} configurations, {result.n_combinations} CSCV splits (S={splits}); "
        f"need <= {thresholds.max_pbo:g}",
        {"pbo": result.pbo, "logits": result.logits.tolist()},
    )


def parity_check(
    strategy: SignalStrategy,
    data: Mapping[str, pd.DataFrame],
    costs: Costs,
    rel: float = 1e-9,
    funding: FundingData | None = None,
    replay_fn: ReplayFn | None = None,
) -> Check:
    """Engine replay (replay_fn) vs vectorbt: same trades (times, sides, sizes, prices),
    equity within rel; without a replay_fn the check is reported as not run."""
    if replay_fn is None:
        return Check("parity", None, "", "no engine replay given (replay_fn)")
    from quantdesk.backtest.runner import run

    try:
        replayed = _off_loop(lambda: replay_fn(strategy, data, costs, funding=funding))
    except QuantdeskError as exc:
        return Check("parity", None, "", f"replay cannot run this strategy: {exc}")
    backtest = run(strategy, data, costs, funding=funding)
    a, b = backtest.trades, replayed.trades
    if len(a) != len(b):
        return Check("parity", False, f"{len(b)} vs {len(a)} trades", "trade counts differ")
    for col in ("column", "direction", "status", "entry_time", "exit_time"):
        if list(a[col].astype(str)) != list(b[col].astype(str)):
            return Check("parity", False, f"{len(a)} trades", f"trade {col} differs")
    for col in ("size", "entry_price", "exit_price", "entry_fees", "exit_fees"):
        if not np.allclose(b[col].to_numpy(float), a[col].to_numpy(float), rtol=rel, atol=1e-9):
            return Check("parity", False, f"{len(a)} trades", f"trade {col} differs beyond {rel:g}")
    equity = float(backtest.equity.iloc[-1].sum())
    engine = float(replayed.final_equity)
    gap = abs(engine - equity) / abs(equity)
    return Check(
        "parity",
        gap <= rel,
        f"{len(a)} trades",
        f"final equity {engine:,.2f} vs {equity:,.2f} (relative gap {gap:.1e})",
    )


def _off_loop(func: Callable[[], Any]) -> Any:
    # The replay drives its own asyncio loop; inside a running one (a Jupyter kernel) it has
    # to run on another thread.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return func()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(func).result()


# --------------------------------------------------------------------------------------------
# Orchestration


@dataclass
class StudyTrials:
    """What the overfitting checks need from an optimization: trials' params and Sharpes."""

    params: list[dict[str, Any]]
    sharpes: list[float]
    n_trials: int

    @classmethod
    def from_study(cls, study: Any, fixed: Mapping[str, Any]) -> StudyTrials:
        """Completed trials' params and Sharpes; n_trials counts every configuration tried.

        Pruned and infeasible trials were looked at too: leaving them out of N would deflate
        the best Sharpe too little (a 60-trial study with 34 pruned is 60 tries, not 26)."""
        from optuna.trial import TrialState

        complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        tried = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        ]
        return cls(
            params=[{**fixed, **t.params} for t in complete],
            sharpes=[t.user_attrs.get("sharpe_bar", float("nan")) for t in complete],
            n_trials=len(tried),
        )


def validate(
    strategy: SignalStrategy,
    data: Mapping[str, pd.DataFrame],
    costs: Costs,
    space: SearchSpace | None = None,
    trials: StudyTrials | None = None,
    objective: str = "sharpe",
    dd_penalty: float = 0.5,
    checks: Sequence[str] = CHECKS,
    max_configs: int = 40,
    progress: Callable[[str], None] | None = None,
    thresholds: Thresholds = Thresholds(),
    funding: FundingData | None = None,
    replay_fn: ReplayFn | None = None,
) -> ValidationReport:
    """Run the requested checks on strategy (and on the study's trials when given); funding:
    stored rates per perpetual, settled in every backtest the checks run; replay_fn: the
    engine replay the parity check compares against (quantdesk.system.replay.replay)."""
    from quantdesk.backtest.runner import to_bars

    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise ValidationError(f"unknown check {unknown[0]!r} (checks: {', '.join(CHECKS)})")
    bars = naive_utc(to_bars(data))  # same bars; vectorbt is much faster on a naive index
    out: list[Check] = []

    def step(name: str) -> bool:
        if name in checks and progress:
            progress(name)
        return name in checks

    if step("lookahead"):
        out.append(lookahead_check(strategy, bars))
    if step("recursive"):
        out.append(recursive_check(strategy, bars))
    if step("dsr"):
        if trials is None:
            out.append(Check("dsr", None, "", "needs an optimization study (--study)"))
        else:
            best = combined_returns(strategy, bars, costs, funding)
            out.append(dsr_check(best, trials.sharpes, trials.n_trials, thresholds))
    if step("pbo"):
        if trials is None:
            out.append(Check("pbo", None, "", "needs an optimization study (--study)"))
        else:
            matrix = _configs_returns(strategy, trials, bars, costs, max_configs, funding)
            out.append(pbo_check(matrix, thresholds=thresholds))
    if step("stability"):
        if space is None:
            out.append(Check("stability", None, "", "no search space"))
        else:
            out.append(
                stability_check(
                    space,
                    strategy.values,
                    bars,
                    costs,
                    objective,
                    dd_penalty,
                    thresholds=thresholds,
                    funding=funding,
                )
            )
    if step("parity"):
        out.append(parity_check(strategy, data, costs, funding=funding, replay_fn=replay_fn))
    return ValidationReport(out)


def walkforward_check(
    job: OptimizeJob,
    thresholds: Thresholds = Thresholds(),
    n_windows: int = 3,
    n_trials: int = 20,
    progress: bool = False,
) -> Check:
    """Out-of-sample evidence: re-optimize on rolling windows and score each winner on the
    window after it; the mean OOS objective must be positive and keep a share of in-sample's."""
    from quantdesk.backtest.walkforward import walk_forward

    try:
        result = walk_forward(job, n_windows=n_windows, n_trials=n_trials, progress=progress)
    except OptimizeError as exc:
        return Check("walkforward", False, "", f"no out-of-sample evidence: {exc}")
    summary = result.summary()
    oos, efficiency = summary["oos_objective"], summary["efficiency"]
    passed = bool(
        oos > 0 and math.isfinite(efficiency) and efficiency >= thresholds.min_wf_efficiency
    )
    detail = (
        f"{n_windows} windows: mean OOS {job.objective} {oos:.3g} vs IS "
        f"{summary['is_objective']:.3g} (need OOS > 0 and efficiency >= "
        f"{thresholds.min_wf_efficiency:g})"
    )
    table = result.side_by_side().to_dict("records")
    return Check("walkforward", passed, f"{efficiency:.2f}", detail, {**summary, "table": table})


def _configs_returns(
    strategy: SignalStrategy,
    trials: StudyTrials,
    bars: pd.DataFrame,
    costs: Costs,
    limit: int,
    funding: FundingData | None = None,
) -> pd.DataFrame:
    # Distinct configurations, spread over the trial list, the validated one included.
    cls = type(strategy)
    seen: dict[tuple, dict[str, Any]] = {}
    for params in [dict(strategy.values), *trials.params]:
        full = cls.validate_params(params)
        seen.setdefault(tuple(sorted((k, repr(v)) for k, v in full.items())), full)
    configs = list(seen.values())
    if len(configs) > limit:
        picks = np.linspace(0, len(configs) - 1, num=limit, dtype=int)
        configs = [configs[i] for i in sorted(set(picks.tolist()))]
    # disable=None: a bar on terminals only, never in logs or captured output
    bar = tqdm(configs, desc="pbo backtests", unit="config", disable=None, leave=False)
    columns = {
        i: combined_returns(cls(**params), bars, costs, funding) for i, params in enumerate(bar)
    }
    return pd.DataFrame(columns)


__all__ = [
    "CHECKS",
    "LOOKAHEAD_MAX_CUTS",
    "LOOKAHEAD_RANDOM_CUTS",
    "RECURSIVE_MAX_STARTS",
    "RECURSIVE_RANDOM_STARTS",
    "Check",
    "PBOResult",
    "StudyTrials",
    "Thresholds",
    "ValidationReport",
    "deflated_sharpe",
    "dsr_check",
    "expected_max_sharpe",
    "lookahead_check",
    "lookahead_cuts",
    "neighbours",
    "pbo_check",
    "pbo_cscv",
    "probabilistic_sharpe",
    "recursive_check",
    "recursive_starts",
    "rounding_ties",
    "signal_change_rows",
    "stability_check",
    "validate",
    "walkforward_check",
]
