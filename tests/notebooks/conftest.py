"""Notebook tests: a small synthetic store, and warm numba caches for the kernels they start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantdesk.data.store import DataStore
from quantdesk.data.synthetic import SynthSpec, generate_market, write_market

REPO = Path(__file__).resolve().parents[2]

# Kernels started by papermill / nbval / voila inherit the environment: share the numba cache.
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba"))


@pytest.fixture(scope="session")
def ci_data_root(tmp_path_factory) -> Path:
    """Twenty days of hourly synthetic bars for BTC and ETH: the notebooks' CI parameters."""
    root = tmp_path_factory.mktemp("nb-data")
    market = generate_market(SynthSpec(seed=7, days=20, assets=SynthSpec().assets[:2]))
    write_market(DataStore(root), market, exchange="synthetic", timeframes=("1h",))
    return root


@pytest.fixture(scope="session")
def nbval():
    """run_nbval as a fixture."""
    return run_nbval


def run_nbval(notebook: Path) -> subprocess.CompletedProcess[str]:
    """Re-run an executed notebook under `pytest --nbval-lax` (checks NBVAL_CHECK_OUTPUT cells)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            str(notebook),
            "-p",
            "no:cacheprovider",
            "-q",
            "-o",
            "addopts=",
            "--rootdir",
            str(notebook.parent),
        ],
        cwd=notebook.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "QUANTDESK_STRATEGIES": str(REPO / "strategies")},
    )
