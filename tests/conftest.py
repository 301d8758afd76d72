"""Shared fixtures: small explicit market data and isolated data roots."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantdesk.cli import main
from quantdesk.data.samples import sample_path
from quantdesk.data.store import DataStore
from tests.postgres import PostgresServer
from tests.sessions import crash_admin, crash_url  # noqa: F401  (fixtures of session tests)

REPO = Path(__file__).resolve().parents[1]
# Real Binance USD-M daily klines and funding, shipped inside the package.
SAMPLE_DATA = sample_path("binance-um")


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test picks up the developer's QUANTDESK_DATA by accident."""
    monkeypatch.delenv("QUANTDESK_DATA", raising=False)


@pytest.fixture
def store(tmp_path: Path) -> DataStore:
    """An empty store in a temporary folder."""
    return DataStore(tmp_path / "store")


def make_bars(n: int, start: str = "2024-01-01", freq: str = "1h", seed: int = 0) -> pd.DataFrame:
    """n consistent OHLCV bars from a seeded random walk."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.005, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.005, n))
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="time")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": rng.uniform(1, 5, n)},
        index=index,
    )


@pytest.fixture
def bars() -> pd.DataFrame:
    """48 hourly bars."""
    return make_bars(48)


def run_cli(
    argv: Sequence[str], capsys: pytest.CaptureFixture[str] | None = None
) -> tuple[int, str, str]:
    """Run `quantdesk ARGV` in-process: exit code, and stdout/stderr when capsys is given."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr() if capsys is not None else ("", "")
    return int(exit_info.value.code or 0), out, err


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server per test process (per xdist worker), on loopback."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """URL of a fresh empty PostgreSQL database."""
    return postgres.database()


# Modules whose tests take a minute or more each (see `make test`'s --durations). They are
# collected first so that xdist's work stealing starts them early and the run ends on short
# tests; a long test started last would otherwise run alone on one core at the end.
LONG_MODULES = (
    "test_distributed",
    "test_crash_loop",
    "test_crash",
    "test_live_safety",
    "test_backtest_notebook",
    "test_optimize_notebook",
    "test_selection_notebook",
    "test_strategy_explorer_notebook",
    "test_backtest_cli",
    "test_standby",
    "test_session_startup",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long modules first (in the order above), everything else in collection order."""
    rank = {name: i for i, name in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))
