"""Panels: one frame per OHLCV field, time x symbol, built from per-symbol bars.

A symbol's rows before its first bar and after its last stay NaN (it did not trade then); a
missing bar inside its life is filled from the previous close with zero volume, so rolling
factors do not go blank for a whole window because of one hole in the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from quantdesk.errors import DataError

FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Panel:
    """OHLCV of many symbols on one time index: each field is a (time x symbol) frame."""

    open: pd.DataFrame
    high: pd.DataFrame
    low: pd.DataFrame
    close: pd.DataFrame
    volume: pd.DataFrame

    @property
    def symbols(self) -> list[str]:
        """Symbols, in column order."""
        return list(self.close.columns)

    @property
    def index(self) -> pd.DatetimeIndex:
        """The shared time index."""
        return self.close.index  # type: ignore[return-value]

    @property
    def common_end(self) -> pd.Timestamp:
        """The last time every symbol has a bar: the fair default for a cross-section."""
        ends = [col.last_valid_index() for _, col in self.close.items()]
        known = [e for e in ends if e is not None]
        if not known:
            raise DataError("the universe has no bars")
        return min(known)

    @property
    def quote_volume(self) -> pd.DataFrame:
        """Traded value in the quote currency per bar (close x base volume)."""
        return self.close * self.volume

    @property
    def listed(self) -> pd.DataFrame:
        """True where a symbol has a bar (between its first and last bar)."""
        return self.close.notna()

    def to_multi(self) -> pd.DataFrame:
        """The (field, symbol) column layout strategies receive."""
        return pd.concat({f: getattr(self, f) for f in FIELDS}, axis=1)

    def loc(self, start: object = None, end: object = None) -> Panel:
        """The panel between start and end (inclusive)."""
        return Panel(*(getattr(self, f).loc[start:end] for f in FIELDS))

    @classmethod
    def from_bars(cls, bars: Mapping[str, pd.DataFrame]) -> Panel:
        """Align per-symbol OHLCV frames (as DataStore.load returns) on the union of times."""
        if not bars:
            raise DataError("the universe is empty: give at least one symbol")
        fields = {f: pd.DataFrame({s: b[f] for s, b in bars.items()}).sort_index() for f in FIELDS}
        return cls._fill(fields)

    @classmethod
    def from_multi(cls, bars: pd.DataFrame) -> Panel:
        """A panel from (field, symbol) columns, the layout SignalStrategy.signals receives."""
        missing = [f for f in FIELDS if f not in bars.columns.get_level_values(0)]
        if missing:
            raise DataError(f"bars lack field(s) {', '.join(missing)}")
        return cls._fill({f: bars[f] for f in FIELDS})

    @classmethod
    def _fill(cls, fields: dict[str, pd.DataFrame]) -> Panel:
        close = fields["close"].ffill(limit_area="inside")
        hole = fields["close"].isna() & close.notna()
        filled = {}
        for f in ("open", "high", "low"):
            filled[f] = fields[f].mask(hole, close)
        filled["close"] = close
        filled["volume"] = fields["volume"].mask(hole, 0.0)
        return cls(**{f: filled[f].astype("float64") for f in FIELDS})
