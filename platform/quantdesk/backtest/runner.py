"""Vectorbt backtests of SignalStrategy objects under the fill convention of quantdesk.model.fills.

Signals decided on the close of bar t are shifted with `fills.next_open` and executed at the
open of bar t+1 (vectorbt `price=open`), slippage against the trader, fees on notional. Stops
get the bars' open/high/low so they trigger inside a bar and fill at the stop price, or at the
open when the bar gaps through (vectorbt's `get_stop_price_nb` does exactly that).

Within a bar the order at the open comes first, then the bar's range (model.fills). vectorbt's
`from_signals` makes one order per bar and checks stops before signals, so a signal strategy is
simulated on two rows per bar: an open row (open = high = low = close = the bar's open) where the
signals execute and only a stop the bar gapped through fires, then a range row (the bar's real
OHLC, no signals) where stops trigger, those of a position entered at this open included. The
orders are then put back on the real bars (`on_bars`), two to a bar where a trade opens and
stops out in the same bar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import vectorbt as vbt

from quantdesk.backtest.funding import FundingData, funding_flows
from quantdesk.backtest.metrics import compute_stats
from quantdesk.backtest.results import BacktestResult
from quantdesk.errors import BacktestError
from quantdesk.model import Costs, next_open
from quantdesk.strategy import (
    Signals,
    SignalStrategy,
    Strategy,
    StrategyError,
    naive_utc,
    on_index,
)

FIELDS = ("open", "high", "low", "close", "volume")


def to_bars(data: pd.DataFrame | Mapping[str, pd.DataFrame], symbol: str = "asset") -> pd.DataFrame:
    """OHLCV frame(s) -> one frame with column levels (field, symbol) on a shared time index.

    Symbols missing a bar on the shared index hold their last close (flat bar, no volume), so a
    symbol listed later never trades before its first bar: its signals see NaN prices there.
    """
    frames = {symbol: data} if isinstance(data, pd.DataFrame) else dict(data)
    if not frames:
        raise BacktestError("no market data to backtest")
    for name, frame in frames.items():
        missing = [f for f in ("open", "high", "low", "close") if f not in frame.columns]
        if missing:
            raise BacktestError(f"{name}: data lacks column(s) {', '.join(missing)}")
        if frame.empty:
            raise BacktestError(f"{name}: no bars to backtest")
    index = frames[next(iter(frames))].index
    for frame in frames.values():
        index = index.union(frame.index)
    fields = {}
    for field in FIELDS:
        wide = pd.DataFrame(
            {
                s: f[field].reindex(index) if field in f else pd.Series(0.0, index=index)
                for s, f in frames.items()
            }
        )
        fields[field] = wide
    close = fields["close"].ffill()
    for field in ("open", "high", "low"):
        fields[field] = fields[field].fillna(close)
    fields["close"] = close
    fields["volume"] = fields["volume"].fillna(0.0)
    bars = pd.concat(fields, axis=1, names=["field", "symbol"])
    return bars.astype(np.float64)


def bar_freq(index: pd.Index) -> pd.Timedelta | None:
    """The typical bar length of a time index (its median step), for annualisation."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return None
    steps = np.diff(index.asi8)  # in the index's unit (10x faster than Series.diff().median())
    return pd.Timedelta(float(np.median(steps)), unit=index.unit)


def _stop_array(value: Any, ncols: int) -> float | np.ndarray:
    # 0 / None means "no stop"; vectorbt wants NaN for that (a 0 stop would fire at entry).
    if value is None:
        return np.nan
    arr = np.asarray(value, dtype=np.float64)
    arr = np.where(arr > 0, arr, np.nan)
    if arr.ndim == 0:
        return float(arr)
    if arr.shape[0] != ncols:
        raise StrategyError(f"stop values: expected {ncols} per-column values, got {arr.shape[0]}")
    return arr[None, :]


def _phased_signal(frame: Any) -> np.ndarray | None:
    """A close-of-bar signal moved to the next bar's open (model.fills.next_open) on the two
    rows per bar of _two_phase: bar i's signal on open row 2(i + 1), none on range rows."""
    if frame is None:
        return None
    values = np.asarray(frame, dtype=bool)
    out = np.zeros((2 * values.shape[0], *values.shape[1:]), dtype=bool)
    out[2::2] = values[:-1]
    return out


def _check_signals(signals: Signals, rows: int, cols: int) -> None:
    for name in ("entries", "exits", "short_entries", "short_exits", "weights"):
        frame = getattr(signals, name)
        if frame is not None and np.shape(frame) != (rows, cols):
            raise StrategyError(
                f"signals.{name} has shape {np.shape(frame)}, expected {(rows, cols)}"
            )


# Fixed-point passes of the funded simulation (see _funded); they converge geometrically
# (the n-th trade is exact after n passes, later ones within (funding / cash)^n).
MAX_FUNDING_PASSES = 50


def simulate(
    bars: pd.DataFrame,
    signals: Signals,
    costs: Costs,
    columns: pd.Index | None = None,
    funding: FundingData | None = None,
) -> vbt.Portfolio:
    """One vectorbt portfolio for signals over bars; bars' symbol columns are tiled per combo.

    funding: stored funding rates per perpetual; entries are then sized from the cash
    including the funding received so far, as the engine's sleeves are (see _funded). The
    portfolio's own value excludes the funding: add `portfolio_funding(...)` (BacktestResult
    and compute_stats do)."""
    columns = bars["close"].columns if columns is None else columns
    reps = len(columns) // bars["close"].shape[1]
    _check_signals(signals, len(bars), len(columns))

    def wide(field: str) -> pd.DataFrame:
        values = bars[field].to_numpy()
        values = values if reps == 1 else np.tile(values, reps)
        return pd.DataFrame(values, index=bars.index, columns=columns, copy=False)

    close, open_ = wide("close"), wide("open")
    freq = bar_freq(bars.index)
    common: dict[str, Any] = {
        "close": close,
        "price": open_,
        "fees": costs.fee,
        "slippage": costs.slippage,
        "init_cash": costs.init_cash,
        "freq": freq,
    }
    if signals.weights is not None:
        weights = pd.DataFrame(np.asarray(signals.weights, dtype=np.float64), columns=columns)
        weights.index = bars.index
        return vbt.Portfolio.from_orders(
            size=weights.apply(next_open),
            size_type="targetpercent",
            direction="both",
            cash_sharing=True,
            group_by=True,
            call_seq="auto",
            **common,
        )
    sl_stop = _stop_array(signals.sl_stop, len(columns))
    tp_stop = _stop_array(signals.tp_stop, len(columns))
    if _no_stops(sl_stop, tp_stop):
        # Without stops the range row never trades: one row per bar with the signals at the
        # next open gives the same orders, on half the rows and with no rebuild on the bars.
        on_rows, rows = _one_phase_rows(signals, common), _one_phase
    else:
        on_rows = _two_phase_rows(signals, costs, close, open_, wide, sl_stop, tp_stop, freq)
        rows = _two_phase_sizes
    # All in (vectorbt's size=inf), or a fraction of the cash: amount = f x cash / (1 + fee) /
    # price, as the engine's SignalRunner sizes it.
    portfolio = on_rows(
        np.inf if costs.size is None else costs.size,
        "amount" if costs.size is None else "percent",
        costs.init_cash,
    )
    if funding:
        portfolio = _funded(portfolio, bars, costs, on_rows, rows, funding)
    return portfolio


def _no_stops(sl_stop: float | np.ndarray, tp_stop: float | np.ndarray) -> bool:
    """True when no column has a stop-loss or take-profit (every value NaN)."""
    return bool(np.isnan(sl_stop).all() and np.isnan(tp_stop).all())


def _next_open_signal(frame: Any) -> np.ndarray | None:
    """A close-of-bar signal moved to the next bar's open (model.fills.next_open), as an array."""
    if frame is None:
        return None
    values = np.asarray(frame, dtype=bool)
    out = np.zeros_like(values)
    out[1:] = values[:-1]
    return out


def _one_phase_rows(signals: Signals, common: Mapping[str, Any]) -> Any:
    """The one-row-per-bar simulation of a strategy without stops: signals at the next open."""
    shifted = {
        name: _next_open_signal(getattr(signals, name))
        for name in ("entries", "exits", "short_entries", "short_exits")
    }

    def on_rows(size: Any, size_type: str, init_cash: float) -> vbt.Portfolio:
        """Simulate one row per bar."""
        args = {**common, "init_cash": init_cash}
        return vbt.Portfolio.from_signals(size=size, size_type=size_type, **shifted, **args)

    return on_rows


def _one_phase(size: Any) -> Any:
    """Sizes per bar for the one-row simulation: as they are."""
    return size


def _two_phase_sizes(size: Any) -> Any:
    """Sizes per bar for the two-row simulation: the same on a bar's open and range rows."""
    return _two_phase(size, size)


def _two_phase_rows(
    signals: Signals,
    costs: Costs,
    close: pd.DataFrame,
    open_: pd.DataFrame,
    wide: Any,
    sl_stop: float | np.ndarray,
    tp_stop: float | np.ndarray,
    freq: Any,
) -> Any:
    """The two-rows-per-bar simulation (open row, then range row: see the module docstring)."""
    o = open_.to_numpy()
    at_open = _two_phase(o, o)
    signal_args: dict[str, Any] = {
        "entries": _phased_signal(signals.entries),
        "exits": _phased_signal(signals.exits),
        "short_entries": _phased_signal(signals.short_entries),
        "short_exits": _phased_signal(signals.short_exits),
        "close": _two_phase(o, close.to_numpy()),
        "price": at_open,
        "open": at_open,
        "high": _two_phase(o, wide("high").to_numpy()),
        "low": _two_phase(o, wide("low").to_numpy()),
        "sl_stop": sl_stop,
        "tp_stop": tp_stop,
        # Stops are fractions of what the trade paid; triggered stops pay slippage like any
        # market order (see quantdesk.model.fills).
        "stop_entry_price": "fillprice",
        "stop_exit_price": "stopmarket",
        "fees": costs.fee,
        "slippage": costs.slippage,
    }

    def on_rows(size: Any, size_type: str, init_cash: float) -> vbt.Portfolio:
        """Simulate the two rows per bar, then put the orders back on the real bars."""
        phased = vbt.Portfolio.from_signals(
            size=size, size_type=size_type, init_cash=init_cash, **signal_args
        )
        records = phased.order_records.copy()
        records["idx"] //= 2  # open row 2i and range row 2i + 1 are both bar i
        return on_bars(close, records, init_cash, freq=freq)

    return on_rows


def _two_phase(open_rows: Any, range_rows: Any) -> Any:
    """Interleave one row per bar at its open with one for its range: rows 2i and 2i + 1."""
    if open_rows is None:
        return None
    first = np.asarray(open_rows)
    second = np.broadcast_to(np.asarray(range_rows, dtype=first.dtype), first.shape)
    out = np.empty((2 * first.shape[0], *first.shape[1:]), dtype=first.dtype)
    out[0::2], out[1::2] = first, second
    return out


def on_bars(
    close: pd.DataFrame,
    records: np.ndarray,
    init_cash: float,
    freq: Any = "infer",
    grouped: bool = False,
) -> vbt.Portfolio:
    """A portfolio of these vectorbt order records (idx = bar number, several may share a bar)
    over the bars' closes, for the stats functions of every mode (freq: bar_freq of close's
    index, when the caller knows it). grouped: all columns one cash-sharing group starting
    with init_cash (what `simulate` builds for target weights), else init_cash per column."""
    records = np.sort(records, order=["col", "idx", "id"])  # vectorbt reads them per column
    records["id"] = np.arange(len(records))
    freq = bar_freq(close.index) if isinstance(freq, str) and freq == "infer" else freq
    group_by = True if grouped else None
    wrapper = vbt.base.array_wrapper.ArrayWrapper.from_obj(close, freq=freq, group_by=group_by)
    init = np.full(1 if grouped else close.shape[1], float(init_cash))
    empty_logs = np.empty(0, dtype=vbt.portfolio.enums.log_dt)
    return vbt.Portfolio(wrapper, close, records, empty_logs, init, cash_sharing=grouped)


def _funded(
    portfolio: vbt.Portfolio,
    bars: pd.DataFrame,
    costs: Costs,
    on_rows: Any,
    rows: Any,
    funding: FundingData,
) -> vbt.Portfolio:
    """Re-simulate so that each entry spends f x (trading cash + funding received so far).

    vectorbt 1.2.0 cannot move cash during a from_signals simulation (no cash deposits or
    earnings; the balance is a local of simulate_from_signal_func_nb), so each pass sizes
    entries explicitly (size_type="value", spend / ((1 + fee) (1 + slippage)) at the open
    is spend / (1 + fee) / ask shares, the engine's formula) from the previous pass's cash
    and funding, until the funding stops changing. The simulation gets a cash buffer so that
    received funding can be spent; the result is relabelled with the real starting cash, so
    its value is the trading equity and the funding is added on top (portfolio_funding).
    on_rows(size, size_type, init_cash): the strategy's simulation (see simulate); rows(size):
    per-bar sizes laid out on its rows.
    """
    flows = portfolio_funding(portfolio, bars, funding)
    if flows is None:
        return portfolio
    fraction = 1.0 if costs.size is None else float(costs.size)
    buffer = 0.0
    ncols = portfolio.wrapper.shape_2d[1]
    for _ in range(MAX_FUNDING_PASSES):
        received = flows.cumsum().to_numpy()
        cash = portfolio.cash().to_numpy()
        before = np.vstack([np.full((1, ncols), costs.init_cash + buffer), cash[:-1]])
        # cash before each bar's orders, with the funding booked at that bar's open
        spendable = np.maximum(before - buffer + received, 0.0)
        size = fraction * spendable / ((1.0 + costs.fee) * (1.0 + costs.slippage))
        buffer = max(buffer, float(np.max(received, initial=0.0)) * 2.0)
        portfolio = on_rows(rows(size), "value", costs.init_cash + buffer)
        new_flows = portfolio_funding(portfolio, bars, funding)
        assert new_flows is not None
        done = np.allclose(new_flows.to_numpy(), flows.to_numpy(), rtol=1e-13, atol=1e-10)
        flows = new_flows
        if done:
            break
    return portfolio.replace(init_cash=np.full(ncols, float(costs.init_cash)))


def portfolio_funding(
    portfolio: vbt.Portfolio, bars: pd.DataFrame, funding: FundingData | None
) -> pd.DataFrame | None:
    """Funding cash received per bar and portfolio column of a simulated portfolio (None: no
    perpetual with a stored funding series); see quantdesk.backtest.funding."""
    if not funding:
        return None
    assets = portfolio.assets()
    if isinstance(assets, pd.Series):
        assets = assets.to_frame()
    columns = assets.columns
    names = columns.get_level_values("symbol") if "symbol" in (columns.names or []) else columns
    symbols = [str(s) for s in names]
    close = pd.DataFrame(bars["close"][symbols].to_numpy(), index=bars.index, columns=columns)
    return funding_flows(close, assets, symbols, funding)


def run(
    strategy: Strategy,
    data: pd.DataFrame | Mapping[str, pd.DataFrame],
    costs: Costs | None = None,
    timeframe: str | None = None,
    funding: FundingData | None = None,
) -> BacktestResult:
    """Backtest a SignalStrategy over one symbol's bars or a {symbol: bars} mapping.

    funding: stored funding rates per perpetual (column funding_rate, indexed by settlement
    time), paid or received at each settlement on the position held (reported apart)."""
    if not isinstance(strategy, SignalStrategy):
        raise StrategyError(f"{strategy.label()} is not a SignalStrategy; backtest it in replay")
    if strategy.combos is not None:
        raise StrategyError("use run_grid() for a parameter sweep")
    costs = costs or Costs()
    bars = to_bars(data)
    signals = strategy.signals(bars)
    # Simulated on naive UTC (vectorbt is slow on a tz-aware index, see naive_utc); the
    # result's frames get the bars' UTC index back.
    naive = naive_utc(bars)
    portfolio = simulate(naive, signals, costs, funding=funding)
    flows = portfolio_funding(portfolio, naive, funding)
    return BacktestResult(
        strategy=strategy.label(),
        params=dict(strategy.values),
        symbols=list(bars["close"].columns),
        timeframe=timeframe or strategy.timeframe,
        costs=costs,
        bars=bars,
        portfolio=portfolio,
        funding=None if flows is None else on_index(flows, bars.index),
    )


@dataclass
class GridResult:
    """A parameter sweep: one stats row per (param combination, symbol), computed on first use
    (the optimizer's grid reads its own metrics off the portfolio and never needs them)."""

    strategy: str
    grid: dict[str, list[Any]]
    portfolio: vbt.Portfolio
    # funding cash per bar and portfolio column (portfolio_funding); None without perpetuals
    flows: pd.DataFrame | None = None

    @cached_property
    def stats(self) -> pd.DataFrame:
        """One stats row per (param combination, symbol)."""
        return compute_stats(self.portfolio, self.flows)

    def top(self, n: int = 10, by: str = "total_return") -> pd.DataFrame:
        """The n best rows by a stats column (descending; NaN last)."""
        if by not in self.stats.columns:
            raise BacktestError(f"unknown stat {by!r} (stats: {', '.join(self.stats.columns)})")
        return self.stats.sort_values(by, ascending=False, na_position="last").head(n)


def run_grid(
    cls: type[Strategy],
    grid: Mapping[str, Sequence[Any]],
    data: pd.DataFrame | Mapping[str, pd.DataFrame],
    costs: Costs | None = None,
    fixed: Mapping[str, Any] | None = None,
    funding: FundingData | None = None,
) -> GridResult:
    """Every combination of grid values in one vectorized signals call and one Portfolio
    (funding: as in run())."""
    if not issubclass(cls, SignalStrategy):
        raise StrategyError(f"{cls.label()} is not a SignalStrategy")
    costs = costs or Costs()
    sweep = cls.sweep(grid, **dict(fixed or {}))
    bars = to_bars(data)
    symbols = list(bars["close"].columns)
    names = list(grid)
    tuples = [
        (*(combo[n] for n in names), symbol) for combo in sweep.combos or [] for symbol in symbols
    ]
    columns = pd.MultiIndex.from_tuples(tuples, names=[*names, "symbol"])
    signals = sweep.signals(bars)
    portfolio = simulate(bars, signals, costs, columns=columns, funding=funding)
    flows = portfolio_funding(portfolio, bars, funding)
    return GridResult(cls.label(), {n: list(v) for n, v in grid.items()}, portfolio, flows)


def combos_count(grid: Mapping[str, Sequence[Any]]) -> int:
    """How many combinations a grid expands to."""
    return math.prod(len(v) for v in grid.values())
