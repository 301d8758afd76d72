"""`quantdesk arb backtest`: the stats table, a recorded second venue, and bad input refused in
one line with exit 2 and nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantdesk.data.store import FUNDING, DataStore, SeriesKey
from quantdesk.strategy import repo_strategies_dir
from tests.conftest import run_cli

BASE = ["arb", "backtest", "--strategies-dir", str(repo_strategies_dir())]
SHORT = ["--start", "2024-01-01", "--end", "2024-06-30"]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "data"))
    return tmp_path


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_backtest_prints_the_stats_table(workdir, capsys):
    argv = [*BASE, "--symbol", "BTC/USDT:USDT", "--second-venue", "synthetic", "--seed", "7"]
    code, out, err = run_cli([*argv, *SHORT, "--param", "direction=positive"], capsys)
    assert code == 0, err
    for label in ("trades", "price PnL (A + B)", "funding PnL", "fees", "APR", "sharpe"):
        assert label in out
    assert "max drawdown" in out and "legs repaired" in out and "failed legs" in out
    assert "direction=positive" in out


def test_recorded_second_venue_from_the_store(workdir, capsys):
    times = pd.date_range("2024-01-01", "2024-03-31", freq="4h", tz="UTC", name="time")
    rates = pd.DataFrame({"funding_rate": np.full(len(times), 0.0002)}, index=times)
    DataStore(workdir / "data").write(SeriesKey("lighter", "usdm", "BTC/USDT:USDT", FUNDING), rates)
    argv = [*BASE, "--symbol", "BTC/USDT:USDT", "--second-venue", "lighter"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "lighter (4h)" in out and "2024-01-01" in out


def test_report_is_written(workdir, capsys):
    target = workdir / "arb.html"
    argv = [*BASE, "--symbol", "BTC/USDT:USDT", *SHORT, "--report", str(target)]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert target.is_file() and "plotly" in target.read_text()[:50_000].lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbol", "DOGE/USDT:USDT"], "no shipped funding sample for DOGE/USDT:USDT"),
        (["--symbol", "BTC/USDT"], "is not a perpetual"),
        (["--symbol", "nonsense"], "bad symbol"),
        (["--symbol", "BTC/USDT:USDT", "--param", "leverage=50"], "leverage=50 is out of range"),
        (["--symbol", "BTC/USDT:USDT", "--param", "nope=1"], "unknown param 'nope'"),
        (["--symbol", "BTC/USDT:USDT", "--param", "slices=2:4:1"], "one parameter set"),
        (["--symbol", "BTC/USDT:USDT", "--param", "direction=up"], "not one of"),
        (["--symbol", "BTC/USDT:USDT", "--second-venue", "nowhere"], "no funding data"),
        (["--symbol", "BTC/USDT:USDT", "--fail-prob", "1.5"], "--fail-prob must be in [0, 1]"),
        (["--symbol", "BTC/USDT:USDT", "--cash", "-1"], "--cash must be a positive amount"),
        (["--symbol", "BTC/USDT:USDT", "--start", "2030-01-01"], "share fewer than 2 hours"),
        (["--symbol", "BTC/USDT:USDT", "--report", "no/such/dir/r.html"], "does not exist"),
        (["--symbol", "BTC/USDT:USDT", "--seed", "x"], "is not a valid integer"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(workdir, capsys, args, message):
    before = files_under(workdir)
    code, out, err = run_cli([*BASE, *args], capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]
    assert files_under(workdir) == before
