"""Screens: filters a symbol must pass to be ranked. Bounds are inclusive (a value equal to a
minimum or maximum passes). The same screen works on a cross-section (Series per factor) and on
whole panels (DataFrame per factor), so rankings and backtests filter identically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from quantdesk.data.symbols import validate_symbol
from quantdesk.errors import ConfigError

Values = pd.Series | pd.DataFrame


@dataclass(frozen=True)
class Screen:
    """Filters; None switches a filter off. Volatility is annualized, spread relative."""

    min_quote_volume: float | None = None
    min_history: int | None = None
    min_price: float | None = None
    max_price: float | None = None
    min_volatility: float | None = None
    max_volatility: float | None = None
    max_spread: float | None = None
    exclude: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude", frozenset(validate_symbol(s) for s in self.exclude))
        for lo, hi, what in (
            (self.min_price, self.max_price, "price"),
            (self.min_volatility, self.max_volatility, "volatility"),
        ):
            if lo is not None and hi is not None and lo > hi:
                raise ConfigError(f"screen: min {what} {lo:g} is above max {what} {hi:g}")

    def rules(self) -> list[tuple[str, str, str, float]]:
        """Active rules as (label, column, op, threshold); op is '>=' or '<='."""
        table = [
            ("min_quote_volume", "quote_volume", ">=", self.min_quote_volume),
            ("min_history", "listing_age", ">=", self.min_history),
            ("min_price", "close", ">=", self.min_price),
            ("max_price", "close", "<=", self.max_price),
            ("min_volatility", "volatility", ">=", self.min_volatility),
            ("max_volatility", "volatility", "<=", self.max_volatility),
            ("max_spread", "spread", "<=", self.max_spread),
        ]
        return [(lbl, col, op, float(v)) for lbl, col, op, v in table if v is not None]

    def needed(self) -> list[str]:
        """Columns (factors, or 'close') the active rules read."""
        return sorted({col for _, col, _, _ in self.rules()})

    def passes(self, values: Mapping[str, Values]) -> Values:
        """Boolean mask (same shape as the inputs) of what passes every rule; NaN fails."""
        missing = [c for c in self.needed() if c not in values]
        if missing:
            raise ConfigError(f"screen needs factor(s) {', '.join(missing)}")
        like = values["close"] if "close" in values else next(iter(values.values()))
        # No close given: start from all-true, so only the rules decide.
        mask = like.notna() if "close" in values else like.notna() | like.isna()
        for _, col, op, threshold in self.rules():
            v = values[col]
            mask = mask & (v >= threshold if op == ">=" else v <= threshold)
        return _drop_excluded(mask, self.exclude)

    def reasons(self, snapshot: pd.DataFrame) -> pd.Series:
        """Per symbol of a cross-section: '' when it passes, else why it was screened out."""
        out = {}
        for symbol, row in snapshot.iterrows():
            why = []
            if symbol in self.exclude:
                why.append("excluded")
            for _, col, op, threshold in self.rules():
                value = row.get(col)
                if value is None or pd.isna(value):
                    why.append(f"{col} unknown")
                elif not (value >= threshold if op == ">=" else value <= threshold):
                    why.append(f"{col} {value:.6g} {'<' if op == '>=' else '>'} {threshold:g}")
            out[symbol] = "; ".join(why)
        return pd.Series(out, dtype=object)


def _drop_excluded(mask: Values, exclude: Iterable[str]) -> Values:
    excluded = set(exclude)
    if isinstance(mask, pd.DataFrame):
        cols = [c for c in mask.columns if c in excluded]
        mask = mask.copy()
        mask.loc[:, cols] = False
        return mask
    return mask & ~mask.index.isin(excluded)
