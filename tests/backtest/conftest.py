"""Shared fixtures for backtest tests: tiny hand-made bars and a scripted strategy."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pytest

from quantdesk.strategy import Signals, SignalStrategy


def make_bars(rows: Sequence[tuple[float, float, float, float]]) -> pd.DataFrame:
    """Hourly OHLCV bars from (open, high, low, close) tuples."""
    index = pd.date_range("2024-01-01", periods=len(rows), freq="1h", tz="UTC", name="time")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index)
    frame["volume"] = 1.0
    return frame


def scripted(
    entries: Sequence[int],
    exits: Sequence[int] = (),
    sl_stop: float = 0.0,
    tp_stop: float = 0.0,
) -> SignalStrategy:
    """A strategy whose signals fire on the given bar numbers (decided on those bars' closes)."""

    class Scripted(SignalStrategy):
        def signals(self, bars: pd.DataFrame) -> Signals:
            close = bars["close"]
            ent = pd.DataFrame(False, index=close.index, columns=close.columns)
            ext = ent.copy()
            ent.iloc[list(entries)] = True
            ext.iloc[list(exits)] = True
            return Signals(entries=ent, exits=ext, sl_stop=sl_stop, tp_stop=tp_stop)

    return Scripted()


@pytest.fixture(name="ohlc")
def ohlc_fixture():
    """make_bars: hourly bars from (open, high, low, close) tuples."""
    return make_bars


@pytest.fixture(name="scripted")
def scripted_fixture():
    """scripted: a strategy firing on given bar numbers."""
    return scripted
