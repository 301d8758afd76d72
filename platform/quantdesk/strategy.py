"""Strategy interface: typed params, signal and quote strategies, loading from strategies/.

A strategy is a class in `strategies/NAME.py`. Its `params` declare each parameter once; that
declaration gives defaults, validation, CLI parsing, grid ranges and the optuna search space.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import itertools
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from quantdesk.errors import QuantdeskError

STRATEGIES_ENV = "QUANTDESK_STRATEGIES"


class StrategyError(QuantdeskError):
    """A strategy cannot be found or loaded."""


class ParamError(StrategyError):
    """A strategy parameter is unknown, of the wrong type or out of range."""


# --------------------------------------------------------------------------------------------
# Parameters


# A sweep larger than this is almost always a typo'd step (1e-9 instead of 1e-2) that would
# run for hours; `quantdesk backtest --max-combinations N` raises it.
MAX_GRID_COMBINATIONS = 10_000


@dataclass(frozen=True)
class Param:
    """Base of the parameter types: a default and the rules a value must follow."""

    default: Any

    def validate(self, name: str, value: Any) -> Any:
        """Return value converted to the param's type, or raise ParamError naming the param."""
        raise NotImplementedError

    def parse(self, name: str, text: str) -> Any:
        """Parse a value given on the command line (e.g. '10')."""
        raise NotImplementedError

    def grid(self, name: str, spec: str, limit: int = MAX_GRID_COMBINATIONS) -> list[Any]:
        """Values of a sweep spec: 'lo:hi:step' (inclusive) or 'a,b,c'."""
        if "," in spec:
            return [self.parse(name, part.strip()) for part in spec.split(",") if part.strip()]
        return [self.parse(name, spec)]

    def suggest(self, trial: Any, name: str, above: Any = None, below: Any = None) -> Any:
        """Ask an optuna trial for a value from this param's search space (above < v < below)."""
        raise NotImplementedError


def _too_many(what: str, count: float, limit: int) -> ParamError:
    shown = f"{count:.3g}" if not count < 1e15 else f"{math.floor(count)}"
    return ParamError(
        f"{what} has {shown} combinations, more than the limit of {limit}: "
        "use a coarser step or raise it with --max-combinations"
    )


def _range_grid(
    param: Int | Float, name: str, spec: str, limit: int = MAX_GRID_COMBINATIONS
) -> list[Any] | None:
    parts = spec.split(":")
    if len(parts) == 1:
        return None
    if len(parts) != 3:
        raise ParamError(f"param {name}: sweep {spec!r} must look like lo:hi:step")
    lo, hi = param.parse(name, parts[0]), param.parse(name, parts[1])
    kind = int if isinstance(param, Int) else float
    try:
        step = kind(parts[2])
    except ValueError:
        raise ParamError(f"param {name}: sweep step {parts[2]!r} is not a number") from None
    if not math.isfinite(step) or step <= 0 or hi < lo:
        raise ParamError(f"param {name}: sweep {spec!r} needs lo <= hi and a finite step > 0")
    span = (hi - lo) / step  # inf for a denormal step: refused below, never floored
    if not span + 1 <= limit:
        raise _too_many(f"param {name}: sweep {spec!r}", span + 1, limit)
    count = math.floor(span + 1e-9) + 1
    return [param.validate(name, lo + i * step) for i in range(count)]


@dataclass(frozen=True)
class Int(Param):
    """An integer parameter in [low, high]."""

    low: int = 0
    high: int = 0

    def __init__(self, low: int, high: int, default: int) -> None:
        object.__setattr__(self, "low", int(low))
        object.__setattr__(self, "high", int(high))
        object.__setattr__(self, "default", int(default))
        if not low <= default <= high:
            raise ValueError(f"default {default} outside [{low}, {high}]")

    def validate(self, name: str, value: Any) -> int:
        """Return value as int, or ParamError if not an integer in [low, high]."""
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ParamError(f"param {name} must be an integer, got {value!r}")
        if float(value) != int(value):
            raise ParamError(f"param {name} must be an integer, got {value!r}")
        value = int(value)
        if not self.low <= value <= self.high:
            raise ParamError(f"param {name}={value} is out of range [{self.low}, {self.high}]")
        return value

    def parse(self, name: str, text: str) -> int:
        """Parse an integer from text."""
        try:
            return self.validate(name, int(text))
        except ValueError:
            raise ParamError(f"param {name} must be an integer, got {text!r}") from None

    def grid(self, name: str, spec: str, limit: int = MAX_GRID_COMBINATIONS) -> list[int]:
        """Values of 'lo:hi:step' (inclusive) or 'a,b,c'."""
        return _range_grid(self, name, spec, limit) or super().grid(name, spec, limit)

    def suggest(self, trial: Any, name: str, above: Any = None, below: Any = None) -> int:
        """optuna: trial.suggest_int over [low, high], strictly inside above/below if given."""
        low = self.low if above is None else max(self.low, math.floor(above) + 1)
        high = self.high if below is None else min(self.high, math.ceil(below) - 1)
        if low > high:
            raise ParamError(f"param {name}: no value in [{self.low}, {self.high}] fits")
        return trial.suggest_int(name, low, high)


@dataclass(frozen=True)
class Float(Param):
    """A float parameter in [low, high]."""

    low: float = 0.0
    high: float = 0.0

    def __init__(self, low: float, high: float, default: float) -> None:
        object.__setattr__(self, "low", float(low))
        object.__setattr__(self, "high", float(high))
        object.__setattr__(self, "default", float(default))
        if not low <= default <= high:
            raise ValueError(f"default {default} outside [{low}, {high}]")

    def validate(self, name: str, value: Any) -> float:
        """Return value as float, or ParamError if not a number in [low, high]."""
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ParamError(f"param {name} must be a number, got {value!r}")
        value = float(value)
        if not self.low <= value <= self.high:
            raise ParamError(
                f"param {name}={value:g} is out of range [{self.low:g}, {self.high:g}]"
            )
        return value

    def parse(self, name: str, text: str) -> float:
        """Parse a float from text."""
        try:
            number = float(text)
        except ValueError:
            raise ParamError(f"param {name} must be a number, got {text!r}") from None
        return self.validate(name, number)

    def grid(self, name: str, spec: str, limit: int = MAX_GRID_COMBINATIONS) -> list[float]:
        """Values of 'lo:hi:step' (inclusive) or 'a,b,c'."""
        values = _range_grid(self, name, spec, limit) or super().grid(name, spec, limit)
        return [round(v, 12) for v in values]  # 0.1 + 2 * 0.05 should print as 0.2

    def suggest(self, trial: Any, name: str, above: Any = None, below: Any = None) -> float:
        """optuna: trial.suggest_float over [low, high], strictly inside above/below if given."""
        low = self.low if above is None else max(self.low, math.nextafter(float(above), math.inf))
        high = (
            self.high if below is None else min(self.high, math.nextafter(float(below), -math.inf))
        )
        if low > high:
            raise ParamError(f"param {name}: no value in [{self.low}, {self.high}] fits")
        return trial.suggest_float(name, low, high)


@dataclass(frozen=True)
class Choice(Param):
    """One of a fixed set of options."""

    options: tuple[Any, ...] = ()

    def __init__(self, options: Sequence[Any], default: Any) -> None:
        object.__setattr__(self, "options", tuple(options))
        object.__setattr__(self, "default", default)
        if default not in self.options:
            raise ValueError(f"default {default!r} not among {self.options}")

    def validate(self, name: str, value: Any) -> Any:
        """Return value if it is one of the options, else ParamError listing them."""
        if value not in self.options:
            opts = ", ".join(str(o) for o in self.options)
            raise ParamError(f"param {name}={value!r} is not one of: {opts}")
        return value

    def parse(self, name: str, text: str) -> Any:
        """Match text against the options' string forms."""
        for option in self.options:
            if str(option) == text:
                return option
        return self.validate(name, text)

    def suggest(self, trial: Any, name: str, above: Any = None, below: Any = None) -> Any:
        """optuna: trial.suggest_categorical over the options (a fixed space: not narrowed)."""
        return trial.suggest_categorical(name, list(self.options))


# --------------------------------------------------------------------------------------------
# Signals and strategies


@dataclass(frozen=True)
class Below:
    """A declared order between two params: `low` must stay below `high` (fast < slow).

    Validation refuses a violating pair, sweeps leave such combinations out and the optimizer's
    search space never proposes one (the later param's range starts above the earlier value).
    """

    low: str
    high: str

    def violation(self, values: Mapping[str, Any]) -> str | None:
        """Why values break the constraint, or None when they keep it."""
        lo, hi = values.get(self.low), values.get(self.high)
        if lo is None or hi is None or lo < hi:
            return None
        return f"{self.low}={lo!r} must be below {self.high}={hi!r}"


@dataclass
class Signals:
    """What a SignalStrategy returns: boolean frames decided on each bar's close.

    Either entries/exits (long; short_entries/short_exits optional) or target weights
    (fraction of equity per column, NaN = leave as is). sl_stop / tp_stop are fractions of the
    entry price (0 or None = off), a scalar or one value per column.
    """

    entries: pd.DataFrame | None = None
    exits: pd.DataFrame | None = None
    short_entries: pd.DataFrame | None = None
    short_exits: pd.DataFrame | None = None
    weights: pd.DataFrame | None = None
    sl_stop: float | Sequence[float] | None = None
    tp_stop: float | Sequence[float] | None = None

    def __post_init__(self) -> None:
        if self.weights is None and (self.entries is None or self.exits is None):
            raise StrategyError("signals need entries and exits, or target weights")
        if self.weights is not None and self.entries is not None:
            raise StrategyError("signals are either entries/exits or target weights, not both")

    @property
    def frame(self) -> pd.DataFrame:
        """The main frame (entries or weights), for its shape and labels."""
        return self.entries if self.entries is not None else self.weights


def naive_utc(frame: pd.DataFrame) -> pd.DataFrame:
    """frame on the same instants as a tz-naive UTC index (a shallow copy; no-op when naive).

    vectorbt 1.2 checks shapes with np.asarray(index), which turns a tz-aware index into one
    Python Timestamp per bar (~0.25 s per call on 100k bars, several calls per indicator and
    dozens per backtest). Computations run on naive UTC (same bars, same numbers); what
    leaves them gets the UTC index back (`on_index`).
    """
    index = frame.index
    if isinstance(index, pd.DatetimeIndex) and index.tz is not None:
        frame = frame.copy(deep=False)
        frame.index = index.tz_convert("UTC").tz_localize(None)
    return frame


def on_index(frame: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """frame (computed on naive_utc of bars with this index) relabelled with index."""
    if frame.index is not index:
        frame = frame.copy(deep=False)
        frame.index = index
    return frame


_INSTANCE_ATTRIBUTES = ("values", "combos")  # set on every instance by the framework


class Strategy:
    """Base of all strategies: validated parameter values as attributes.

    In a sweep (`Strategy.sweep`) each parameter attribute is a list with one value per
    combination, so vectorbt indicators given those lists compute every combination at once.
    """

    params: ClassVar[dict[str, Param]] = {}
    constraints: ClassVar[tuple[Below, ...]] = ()
    sizing: ClassVar[float | None] = None  # fraction of equity per entry; None: the risk limits
    timeframe: ClassVar[str] = "1h"
    warmup: int = 0
    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # params become instance attributes: one named like a framework attribute (label,
        # values, signals, ...) would replace it and break repr(), sweeps or the engine
        super().__init_subclass__(**kwargs)
        framework = set(_INSTANCE_ATTRIBUTES)
        for base in cls.__mro__:
            if base.__module__ == __name__:
                framework |= set(vars(base))
        clash = sorted(n for n in cls.params if n in framework or n.startswith("_"))
        if clash:
            raise StrategyError(
                f"strategy {cls.__name__}: param {clash[0]!r} collides with a Strategy "
                "attribute of the same name; rename the param"
            )

    def __init__(self, **values: Any) -> None:
        self.values: dict[str, Any] = self.validate_params(values)
        self.combos: list[dict[str, Any]] | None = None
        for key, value in self.values.items():
            setattr(self, key, value)

    @classmethod
    def validate_params(cls, values: Mapping[str, Any], constraints: bool = True) -> dict[str, Any]:
        """Defaults overlaid with values, each validated; ParamError on unknown names.

        constraints=False checks each value alone (a sweep's fixed part, before its grid)."""
        unknown = sorted(set(values) - set(cls.params))
        if unknown:
            known = ", ".join(cls.params) or "none"
            raise ParamError(
                f"unknown param {unknown[0]!r} for strategy {cls.label()} (params: {known})"
            )
        out = {name: p.default for name, p in cls.params.items()}
        for name, value in values.items():
            out[name] = cls.params[name].validate(name, value)
        if constraints:
            cls.check_constraints(out)
        return out

    @classmethod
    def check_constraints(cls, values: Mapping[str, Any]) -> None:
        """Raise ParamError naming the first declared constraint values break."""
        for rule in cls.constraints:
            why = rule.violation(values)
            if why:
                raise ParamError(f"{cls.label()}: {why}")

    @classmethod
    def keeps_constraints(cls, values: Mapping[str, Any]) -> bool:
        """True when values keep every declared constraint."""
        return all(rule.violation(values) is None for rule in cls.constraints)

    @classmethod
    def label(cls) -> str:
        """The strategy's name (its module name when loaded from strategies/)."""
        return cls.name or cls.__name__

    @classmethod
    def sweep(cls, grid: Mapping[str, Sequence[Any]], **fixed: Any) -> Strategy:
        """An instance holding the cartesian product of grid values, one list per param."""
        base = cls.validate_params(fixed, constraints=False)
        unknown = sorted(set(grid) - set(cls.params))
        if unknown:
            cls.validate_params({unknown[0]: None})
        names = list(grid)
        lists = [[cls.params[n].validate(n, v) for v in grid[n]] for n in names]
        if any(not values for values in lists):
            raise ParamError("a parameter sweep needs at least one value per param")
        combos = [
            {**base, **dict(zip(names, combo, strict=True))} for combo in itertools.product(*lists)
        ]
        kept = [c for c in combos if cls.keeps_constraints(c)]
        if not kept:
            cls.check_constraints(combos[0])
        combos = kept
        self = cls.__new__(cls)
        self.values = {n: [c[n] for c in combos] for n in cls.params}
        self.combos = combos
        for key, value in self.values.items():
            setattr(self, key, value)
        return self

    def per_column(self, value: Any, like: pd.DataFrame) -> Any:
        """A param value broadcast to like's columns (a scalar stays scalar; a sweep repeats)."""
        if self.combos is None or np.isscalar(value):
            return value
        values = np.asarray(value)
        return np.repeat(values, like.shape[1] // len(values))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"{self.label()}({args})"


class SignalStrategy(Strategy):
    """Vectorized strategy: `signals(bars)` decides on every bar's close, causally.

    bars is a DataFrame with column levels (field, symbol): `bars["close"]` is a frame with one
    column per symbol. Returned frames have one column per symbol (per combination x symbol in a
    sweep, combination-major, as vectorbt indicators given parameter lists produce them).

    A strategy returning target weights declares `target_weights = True`: a paper or live
    session picks its runner (one cash pool for the universe) before it has seen a bar.
    """

    target_weights: bool = False

    def signals(self, bars: pd.DataFrame) -> Signals:
        """Entries/exits or target weights for every bar of bars."""
        raise NotImplementedError


class QuoteStrategy(Strategy):
    """Event-driven strategy (market making, funding arbitrage): the engine calls its hooks.

    Each hook receives the event and a context (clock, portfolio, open orders) from the engine
    and returns the desired orders or quotes (a list, empty for none). Used by replay, paper
    and live modes; a vectorized backtest cannot run it honestly.
    """

    def on_bar(self, bar: Any, ctx: Any) -> list[Any]:
        """A bar closed."""
        return []

    def on_book(self, book: Any, ctx: Any) -> list[Any]:
        """The order book changed."""
        return []

    def on_fill(self, fill: Any, ctx: Any) -> list[Any]:
        """One of our orders was (partly) filled."""
        return []

    def on_trade(self, trade: Any, ctx: Any) -> list[Any]:
        """A trade printed on the market (anyone's); the mm backtest calls it only if overridden.

        An empty list keeps the quotes as they are: a trade is a notification, not a book state.
        """
        return []

    def on_timer(self, now: Any, ctx: Any) -> list[Any]:
        """The strategy's timer fired (the mm backtest: every timer interval, in its clock)."""
        return []

    def on_funding(self, funding: Any, ctx: Any) -> list[Any]:
        """A funding payment settled on a perpetual."""
        return []


# --------------------------------------------------------------------------------------------
# Loading from strategies/


def repo_strategies_dir() -> Path:
    """The strategies/ folder of the source checkout (next to platform/)."""
    return Path(__file__).resolve().parents[2] / "strategies"


def default_strategies_dir() -> Path:
    """Where strategies are looked up: $QUANTDESK_STRATEGIES, else ./strategies.

    A notebook kernel runs in the notebook's folder; there, without ./strategies, the source
    checkout's strategies/ folder is the one meant.
    """
    env = os.environ.get(STRATEGIES_ENV)
    if env:
        return Path(env)
    local = Path.cwd() / "strategies"
    return local if local.is_dir() or not repo_strategies_dir().is_dir() else repo_strategies_dir()


def available_strategies(strategies_dir: str | Path | None = None) -> list[str]:
    """Names of the strategy modules in the folder."""
    folder = Path(strategies_dir) if strategies_dir else default_strategies_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def strategy_class(name: str, strategies_dir: str | Path | None = None) -> type[Strategy]:
    """The strategy class defined in strategies_dir/NAME.py."""
    folder = Path(strategies_dir) if strategies_dir else default_strategies_dir()
    path = folder / f"{name}.py"
    if not name.isidentifier() or not path.is_file():
        known = ", ".join(available_strategies(folder)) or "none"
        raise StrategyError(f"unknown strategy {name!r} in {folder} (available: {known})")
    # A private module name per file: two strategies folders never share a module object.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    module_name = f"quantdesk_strategies_{digest}_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StrategyError(f"cannot load strategy file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise StrategyError(f"strategy {name} failed to import: {exc}") from exc
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Strategy)
        and obj.__module__ == module_name
        and obj not in (Strategy, SignalStrategy, QuoteStrategy)
    ]
    if len(classes) != 1:
        raise StrategyError(f"{path} must define exactly one Strategy subclass")
    cls = classes[0]
    cls.name = name
    return cls


def load_strategy(
    name: str, params: Mapping[str, Any] | None = None, strategies_dir: str | Path | None = None
) -> Strategy:
    """An instance of strategy NAME with validated params."""
    return strategy_class(name, strategies_dir)(**dict(params or {}))


def parse_param_args(
    cls: type[Strategy], items: Iterable[str], max_combinations: int = MAX_GRID_COMBINATIONS
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """Split 'name=value' / 'name=lo:hi:step' / 'name=a,b' into fixed values and sweeps.

    ParamError when the sweeps together exceed max_combinations (checked before expanding).
    """
    fixed: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text:
            raise ParamError(f"--param {item!r} must look like name=value or name=lo:hi:step")
        if name not in cls.params:
            cls.validate_params({name: None})
        param = cls.params[name]
        if ":" in text or "," in text:
            grid[name] = param.grid(name, text, max_combinations)
            total = math.prod(len(v) for v in grid.values())
            if total > max_combinations:
                raise _too_many(f"the sweep over {', '.join(grid)}", total, max_combinations)
        else:
            fixed[name] = param.parse(name, text)
    return fixed, grid
