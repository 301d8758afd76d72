"""Fixtures for selection tests: small explicit panels and the real Binance daily data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantdesk.selection.panel import Panel
from tests.conftest import SAMPLE_DATA

REAL_DATA = SAMPLE_DATA


def walk(n: int, seed: int, start: str = "2024-01-01", drift: float = 0.0) -> pd.DataFrame:
    """n daily OHLCV bars from a seeded random walk with the given drift per bar."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(drift, 0.02, n)))
    open_ = np.concatenate([[close[0] / (1 + rng.normal(0, 0.01))], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    index = pd.date_range(start, periods=n, freq="1D", tz="UTC", name="time")
    volume = rng.uniform(1_000, 5_000, n)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def read_binance_daily(path: Path) -> pd.DataFrame:
    """One Binance kline CSV (open_time in ms) as an OHLCV frame on a UTC index."""
    raw = pd.read_csv(path)
    index = pd.DatetimeIndex(pd.to_datetime(raw["open_time"], unit="ms", utc=True), name="time")
    return raw[["open", "high", "low", "close", "volume"]].astype(float).set_index(index)


@pytest.fixture(scope="session")
def real_bars() -> dict[str, pd.DataFrame]:
    """The five real daily USD-M series, keyed BTC/USDT etc."""
    files = sorted(REAL_DATA.glob("*USDT-1d.csv"))
    assert len(files) == 5, f"expected 5 daily CSVs in {REAL_DATA}"
    return {f"{f.name.split('USDT')[0]}/USDT": read_binance_daily(f) for f in files}


@pytest.fixture(scope="session")
def real_panel(real_bars: dict[str, pd.DataFrame]) -> Panel:
    """The real daily data as a panel."""
    return Panel.from_bars(real_bars)


@pytest.fixture(scope="session")
def random_walk():
    """The walk() helper, for tests that build their own bars."""
    return walk


@pytest.fixture(scope="module")
def two_coin_panel() -> Panel:
    """Two coins, the second listed 20 days after the first, with one missing bar."""
    late = walk(100, seed=2, start="2024-01-21").drop(pd.Timestamp("2024-03-01", tz="UTC"))
    return Panel.from_bars({"AAA/USDT": walk(120, seed=1), "BBB/USDT": late})
