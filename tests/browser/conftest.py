"""Browser tests: a small synthetic store for the dashboards to read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quantdesk.data.store import DataStore
from quantdesk.data.synthetic import SynthSpec, generate_market, write_market

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))


@pytest.fixture(scope="session")
def browser_data_root(tmp_path_factory) -> Path:
    """Twenty days of hourly synthetic bars for BTC and ETH."""
    root = tmp_path_factory.mktemp("browser-data")
    market = generate_market(SynthSpec(seed=7, days=20, assets=SynthSpec().assets[:2]))
    write_market(DataStore(root), market, exchange="synthetic", timeframes=("1h",))
    return root
