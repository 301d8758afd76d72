"""`quantdesk backtest`: stats table, saved results, sweeps, and one-line errors with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.data.store import DataStore
from quantdesk.data.synthetic import SynthSpec, generate_market, write_market
from quantdesk.strategy import repo_strategies_dir
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-data")
    market = generate_market(SynthSpec(seed=11, days=20, assets=SynthSpec().assets[:2]))
    write_market(DataStore(root), market, exchange="synthetic", timeframes=("1h",))
    return root


@pytest.fixture
def invoke(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUANTDESK_DATA", str(data_root))
    monkeypatch.chdir(tmp_path)

    def _invoke(*args: str) -> tuple[int, str, str]:
        argv = ["backtest", "--strategies-dir", str(repo_strategies_dir()), *args]
        return run_cli(argv, capsys)

    return _invoke


def test_backtest_prints_stats_and_saves_results(invoke, tmp_path):
    code, out, err = invoke(
        "--strategy", "sma_cross", "--symbols", "BTC/USDT", "--timeframe", "1h",
        "--param", "fast=6", "--param", "slow=24", "--fee", "0.001", "--slippage", "0.0005",
        "--exchange", "synthetic", "--market", "spot",
    )  # fmt: skip
    assert code == 0, err
    stats_path = Path(
        next(line.split(": ", 1)[1] for line in out.splitlines() if "stats.json" in line)
    )
    payload = json.loads((tmp_path / stats_path).read_text())
    assert payload["params"] == {"fast": 6, "slow": 24, "sl_stop": 0.0, "tp_stop": 0.0}
    stats = payload["stats"]["BTC/USDT"]
    assert f"{stats['total_return'] * 100:.2f}%" in out
    trades_line = next(line for line in out.splitlines() if "Trades" in line)
    assert trades_line.split()[-2] == str(stats["trades"])
    assert stats["trades"] > 0
    trades = pd.read_parquet(tmp_path / stats_path.parent / "trades.parquet")
    assert len(trades) == stats["trades"]


def _total_return(out: str) -> str:
    return next(line for line in out.splitlines() if "Total return" in line).split()[-2]


def test_research_sizes_like_live_by_default(invoke):
    """The default backtest spends what the live limits allow; --risk replays the live engine
    on the same bars and must report the same result; --all-in is there when asked for."""
    args = (
        "--strategy", "sma_cross", "--symbols", "BTC/USDT", "--timeframe", "1h",
        "--param", "fast=6", "--param", "slow=24", "--fee", "0.001",
        "--exchange", "synthetic", "--market", "spot",
    )  # fmt: skip
    code, default, err = invoke(*args)
    assert code == 0, err
    assert "sizing: 0.15 of equity per entry (risk limits)" in default
    code, live, err = invoke(*args, "--risk")
    assert code == 0, err
    assert _total_return(default) == _total_return(live)
    code, all_in, err = invoke(*args, "--all-in")
    assert code == 0, err
    assert "sizing: all-in" in all_in
    assert _total_return(all_in) != _total_return(default)
    code, _, err = invoke(*args, "--size", "2")
    assert code == 2 and "fraction in (0, 1]" in err


def test_sweep_prints_top_rows_ranked(invoke, tmp_path):
    code, out, err = invoke(
        "--strategy", "sma_cross", "--symbols", "BTC/USDT", "--param", "fast=4:12:4",
        "--param", "slow=20,30", "--top", "3",
    )  # fmt: skip
    assert code == 0, err
    assert "top 3 of 6 by total_return" in out
    saved = next((tmp_path / "reports" / "backtests").glob("sma_cross-grid-*.parquet"))
    grid = pd.read_parquet(saved)
    assert len(grid) == 6
    best = grid.sort_values("total_return", ascending=False).iloc[0]
    assert f"{best['total_return'] * 100:.2f}%" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "nope", "--symbols", "BTC/USDT"], "unknown strategy 'nope'"),
        (
            ["--strategy", "sma_cross", "--symbols", "BTC/USDT", "--param", "fast=1000"],
            "param fast=1000 is out of range",
        ),
        (
            ["--strategy", "sma_cross", "--symbols", "BTC/USDT", "--start", "2030-01-01"],
            "no BTC/USDT 1h data between 2030-01-01",
        ),
        (["--strategy", "sma_cross", "--symbols", "DOGE/USDT"], "no 1h data for DOGE/USDT"),
        (["--strategy", "sma_cross", "--symbols", "BTC/USDT", "--fee", "0.5"], "fee must be"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(invoke, tmp_path, args, message):
    code, _out, err = invoke(*args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]
    assert not (tmp_path / "reports").exists()
