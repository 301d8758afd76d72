"""`select --as-of D` ranks on the bars closed by D: a daily bar stamped D opens at D and is
unknown until D + 1 day. Checked on the real Binance daily data against the formula."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.errors import DataError
from quantdesk.selection.panel import Panel
from quantdesk.selection.screener import rank_universe
from quantdesk.selection.screens import Screen
from tests.conftest import run_cli as run

D = "2025-06-06"  # on this day's bar LTC jumps from last to first on the 7-bar momentum


def momentum_7(bars: dict[str, pd.DataFrame], last: str) -> pd.Series:
    """close of the bar opening at `last` over the close 7 bars before, per coin."""
    out = {}
    for symbol, frame in bars.items():
        close = frame["close"].loc[:last]
        out[symbol] = close.iloc[-1] / close.iloc[-8] - 1.0
    return pd.Series(out).sort_values(ascending=False)


def test_as_of_uses_only_bars_closed_by_then(real_bars, tmp_path, monkeypatch, capsys) -> None:
    closed = momentum_7(real_bars, "2025-06-05")  # the last bar closed by D
    peeking = momentum_7(real_bars, D)  # what the bar opening at D would say
    assert list(closed.index) != list(peeking.index)  # the case this test is about
    assert closed.index[0] == "BTC/USDT" and peeking.index[0] == "LTC/USDT"

    ranking = rank_universe(
        Panel.from_bars(real_bars), {"momentum_7": 1.0}, as_of=D, screen=Screen(min_history=30)
    )
    assert list(ranking.table.index) == list(closed.index)
    np.testing.assert_allclose(
        ranking.table["momentum_7"], closed.to_numpy(), rtol=1e-12
    )  # the feature values too, not only the order
    assert ranking.bar == pd.Timestamp("2025-06-05", tz="UTC")
    assert ranking.time == pd.Timestamp(D, tz="UTC")
    # a minute before D the 06-05 bar is still open: the ranking rests on 06-04's
    before = rank_universe(
        Panel.from_bars(real_bars), {"momentum_7": 1.0}, as_of="2025-06-05 23:59"
    )
    assert before.bar == pd.Timestamp("2025-06-04", tz="UTC")

    store = DataStore(tmp_path / "real")
    for symbol, frame in real_bars.items():
        store.write(SeriesKey("binance", "usdm", symbol, "1d"), frame)
    monkeypatch.setenv("QUANTDESK_DATA", str(store.root))
    code, out, err = run(
        ["select", "--as-of", D, "--weights", "momentum_7=1", "--top", "5"], capsys
    )
    assert code == 0, err
    assert re.findall(r"│\s*\d+\s*│\s*(\S+/USDT)", out) == list(closed.index)
    assert f"as of {D} 00:00" in out


def test_an_as_of_before_the_first_bar_closed_is_refused(real_panel) -> None:
    first = real_panel.index[0]
    with pytest.raises(DataError, match="before the data: no 1d bar closed by then"):
        rank_universe(real_panel, {"momentum_7": 1.0}, as_of=first + pd.Timedelta(hours=23))
