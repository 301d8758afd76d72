"""Factors as panels (time x symbol): technical ones from vectorbt indicators, market ones
from volume, listing history, an optional order-book spread and an optional supply table.

Every factor at time t uses bars up to and including t only (decided on the close of t).
Indicators use simple moving averages (vectorbt's defaults), so each one has a plain pandas
equivalent that the tests compare against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import vectorbt as vbt

from quantdesk.data.symbols import validate_symbol
from quantdesk.data.times import parse_time
from quantdesk.errors import ConfigError, DataError
from quantdesk.selection.panel import Panel

DAY_MS = 86_400_000


@dataclass(frozen=True)
class FactorConfig:
    """Windows (in bars) of the factors; periods_per_year annualizes volatility."""

    rsi_window: int = 14
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    bb_window: int = 20
    bb_alpha: float = 2.0
    momentum_windows: tuple[int, ...] = (7, 30, 90)
    trend_window: int = 20
    vol_window: int = 30
    surge_short: int = 3
    surge_long: int = 30
    liquidity_window: int = 30
    periods_per_year: float = 365.0


@dataclass(frozen=True)
class MarketInputs:
    """Optional inputs: relative bid-ask spread per symbol over time, circulating supply."""

    spread: pd.DataFrame | None = None
    supply: pd.Series | None = None


@dataclass(frozen=True)
class Factor:
    """A named factor: what it measures and how to compute its panel."""

    name: str
    description: str
    compute: Callable[[Panel, FactorConfig, MarketInputs], pd.DataFrame]
    needs: str | None = None  # the MarketInputs field it requires, if any


def _vbt_frame(result: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    # vectorbt adds a parameter level to the columns; the panel's own labels are what we want.
    return pd.DataFrame(np.asarray(result, dtype=float), index=like.index, columns=like.columns)


def rsi(p: Panel, c: FactorConfig, _: MarketInputs) -> pd.DataFrame:
    """Relative strength index (simple averages of gains and losses), 0..100."""
    return _vbt_frame(vbt.RSI.run(p.close, window=c.rsi_window).rsi, p.close)


def macd_hist(p: Panel, c: FactorConfig, _: MarketInputs) -> pd.DataFrame:
    """MACD histogram (MACD minus signal line) as a fraction of price: comparable across coins."""
    macd = vbt.MACD.run(
        p.close, fast_window=c.macd_fast, slow_window=c.macd_slow, signal_window=c.macd_signal
    )
    return _vbt_frame(macd.hist, p.close) / p.close


def bb_pctb(p: Panel, c: FactorConfig, _: MarketInputs) -> pd.DataFrame:
    """Bollinger %b: 0 at the lower band, 1 at the upper band."""
    bb = vbt.BBANDS.run(p.close, window=c.bb_window, alpha=c.bb_alpha)
    return _vbt_frame(bb.percent_b, p.close)


def momentum(window: int) -> Callable[[Panel, FactorConfig, MarketInputs], pd.DataFrame]:
    """Return over the last `window` bars."""

    def compute(p: Panel, c: FactorConfig, _: MarketInputs) -> pd.DataFrame:
        return p.close / p.close.shift(window) - 1.0

    return compute


def change_1(p: Panel, c: FactorConfig, _: MarketInputs) -> pd.DataFrame:
    """Price change rate of the last bar."""
    return p.close / p.close.shift(1) - 1.0


def trend(p: Panel, c: FactorConfig, _: MarketInputs) -> pd.DataFrame:
    """Trend strength: distance of the close above its moving average, in average true ranges."""
    ma = _vbt_frame(vbt.MA.run(p.close, window=c.trend_window).ma, p.close)
    atr = _vbt_frame(
        vbt.ATR.run(p.high, p.low, p.close, window=c.trend_window, ewm=False).atr, p.close
    )
    return (p.close - ma) / atr.where(atr > 0)


def log_returns(p: Panel) -> pd.DataFrame:
    """Log returns of the close, bar to bar."""
    return np.log(p.close / p.close.shift(1))


def volatility(p: Panel, c: FactorConfig, _: MarketInputs) -> pd.DataFrame:
    """Annualized standard deviation of log returns over vol_window bars (ddof 0)."""
    std = vbt.MSTD.run(log_returns(p), window=c.vol_window, ddof=0).mstd
    return _vbt_frame(std, p.close) * np.sqrt(c.periods_per_year)


def quote_volume(p: Panel, c: FactorConfig, _: MarketInputs) -> pd.DataFrame:
    """Liquidity: mean quote-currency volume per bar over liquidity_window bars."""
    return _vbt_frame(vbt.MA.run(p.quote_volume, window=c.liquidity_window).ma, p.close)


def volume_surge(p: Panel, c: FactorConfig, _: MarketInputs) -> pd.DataFrame:
    """Recent quote volume over its longer average: above 1 means unusually busy."""
    qv = p.quote_volume
    short = _vbt_frame(vbt.MA.run(qv, window=c.surge_short).ma, qv)
    long = _vbt_frame(vbt.MA.run(qv, window=c.surge_long).ma, qv)
    return short / long.where(long > 0)


def listing_age(p: Panel, c: FactorConfig, _: MarketInputs) -> pd.DataFrame:
    """Bars of history up to and including t (NaN before the first bar)."""
    return p.listed.cumsum().where(p.listed).astype(float)


def spread(p: Panel, c: FactorConfig, m: MarketInputs) -> pd.DataFrame:
    """Relative bid-ask spread as given (as of each bar, carried forward until updated)."""
    assert m.spread is not None
    given = m.spread.reindex(columns=p.close.columns)
    merged = given.reindex(given.index.union(p.index)).sort_index().ffill()
    return merged.reindex(p.index).where(p.listed)


def market_cap(p: Panel, c: FactorConfig, m: MarketInputs) -> pd.DataFrame:
    """Close times circulating supply (NaN for symbols missing from the supply table)."""
    assert m.supply is not None
    return p.close * m.supply.reindex(p.close.columns)


def _registry() -> dict[str, Factor]:
    factors = [
        Factor("rsi", "RSI (simple averages)", rsi),
        Factor("macd_hist", "MACD histogram / close", macd_hist),
        Factor("bb_pctb", "Bollinger %b", bb_pctb),
        Factor("change_1", "last bar's price change", change_1),
        Factor("trend", "(close - MA) / ATR", trend),
        Factor("volatility", "annualized volatility of log returns", volatility),
        Factor("quote_volume", "mean quote volume per bar", quote_volume),
        Factor("volume_surge", "short / long mean quote volume", volume_surge),
        Factor("listing_age", "bars of history", listing_age),
        Factor("spread", "relative bid-ask spread", spread, needs="spread"),
        Factor("market_cap", "close x circulating supply", market_cap, needs="supply"),
    ]
    return {f.name: f for f in factors}


FACTORS: Mapping[str, Factor] = _registry()


def factor_names(
    config: FactorConfig = FactorConfig(), inputs: MarketInputs = MarketInputs()
) -> list[str]:
    """Names of every factor computable with this config and these optional inputs."""
    names = [f"momentum_{w}" for w in config.momentum_windows]
    names += [
        n for n, f in FACTORS.items() if f.needs is None or getattr(inputs, f.needs) is not None
    ]
    return names


def _factor(name: str, config: FactorConfig) -> Factor:
    if name.startswith("momentum_") and name[len("momentum_") :].isdigit():
        window = int(name[len("momentum_") :])
        if window < 1:
            raise ConfigError(f"factor {name}: the lookback must be at least 1 bar")
        return Factor(name, f"return over {window} bars", momentum(window))
    if name not in FACTORS:
        known = ", ".join(factor_names(config, MarketInputs(pd.DataFrame(), pd.Series())))
        raise ConfigError(f"unknown factor {name!r} (known: {known}, momentum_N)")
    return FACTORS[name]


@dataclass
class FactorSet:
    """Computed factor panels by name, all on the panel's index and symbols."""

    panel: Panel
    values: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Factor names, in computation order."""
        return list(self.values)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.values[name]

    def as_of(self, when: object) -> pd.DataFrame:
        """Cross-section (symbol x factor) of the last bar at or before `when`."""
        index = self.panel.index
        ts = parse_time(when)  # type: ignore[arg-type]
        if not len(index) or ts < index[0]:
            first = f"{index[0]:%Y-%m-%d %H:%M}" if len(index) else "nothing"
            raise DataError(f"as-of {ts:%Y-%m-%d %H:%M} is before the data (first bar {first})")
        pos = index.searchsorted(ts, side="right") - 1
        row = {name: frame.iloc[pos] for name, frame in self.values.items()}
        snap = pd.DataFrame(row, index=self.panel.symbols)
        snap.index.name = "symbol"
        snap.attrs["time"] = index[pos]
        snap["close"] = self.panel.close.iloc[pos]
        return snap


def compute_factors(
    panel: Panel,
    names: Iterable[str] | None = None,
    config: FactorConfig = FactorConfig(),
    inputs: MarketInputs = MarketInputs(),
) -> FactorSet:
    """Compute the named factors (default: all computable) as panels."""
    wanted = list(names) if names is not None else factor_names(config, inputs)
    out = FactorSet(panel)
    for name in wanted:
        factor = _factor(name, config)
        if factor.needs and getattr(inputs, factor.needs) is None:
            what = "a spread table" if factor.needs == "spread" else "a supply table (--supply)"
            raise ConfigError(f"factor {name} needs {what}")
        out.values[name] = factor.compute(panel, config, inputs).astype(float)
    return out


def load_supply(path: str | Path) -> pd.Series:
    """Circulating supply per symbol from a CSV with columns symbol,circulating_supply."""
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read supply table {path}: {exc}") from None
    missing = {"symbol", "circulating_supply"} - set(table.columns)
    if missing:
        raise DataError(f"supply table {path} lacks column(s) {', '.join(sorted(missing))}")
    supply = pd.to_numeric(table["circulating_supply"], errors="coerce")
    if supply.isna().any() or (supply <= 0).any():
        raise DataError(f"supply table {path}: circulating_supply must be positive numbers")
    symbols = [validate_symbol(str(s)) for s in table["symbol"]]
    return pd.Series(supply.to_numpy(float), index=symbols, name="circulating_supply")


def load_spreads(path: str | Path) -> pd.DataFrame:
    """Relative bid-ask spreads from a CSV with columns time,symbol,spread (time x symbol).

    Each value applies from its time on (carried forward), e.g. from periodic book snapshots.
    """
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read spread table {path}: {exc}") from None
    missing = {"time", "symbol", "spread"} - set(table.columns)
    if missing:
        raise DataError(f"spread table {path} lacks column(s) {', '.join(sorted(missing))}")
    spread = pd.to_numeric(table["spread"], errors="coerce")
    if spread.isna().any() or (spread < 0).any():
        raise DataError(f"spread table {path}: spread must be non-negative numbers")
    times = [parse_time(t) for t in table["time"]]
    symbols = [validate_symbol(str(s)) for s in table["symbol"]]
    frame = pd.DataFrame({"time": times, "symbol": symbols, "spread": spread.to_numpy(float)})
    return frame.pivot_table(index="time", columns="symbol", values="spread", aggfunc="last")
