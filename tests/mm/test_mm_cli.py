"""`quantdesk mm backtest`: the stats table, side-by-side sets, the report, and bad input as one
line with exit 2 and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantdesk.strategy import repo_strategies_dir
from tests.conftest import run_cli

BASE = ["mm", "backtest", "--strategies-dir", str(repo_strategies_dir()), "--hours", "0.1"]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "data"))
    return tmp_path


def test_backtest_prints_the_split(workdir, capsys):
    code, out, err = run_cli([*BASE, "--strategy", "avellaneda_stoikov", "--seed", "7"], capsys)
    assert code == 0, err
    for label in ("total PnL", "spread capture", "inventory PnL", "fees / rebates", "adverse 1 s"):
        assert label in out
    assert "gamma=0.1" in out and "events/s" in out


def test_two_sets_side_by_side_and_the_report(workdir, capsys):
    target = workdir / "mm.html"
    argv = [*BASE, "--param", "levels=1,2", "--report", str(target)]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "set 2" in out and "levels=2" in out
    page = target.read_text()
    assert "plotly" in page[:200_000].lower() and page.count("<tr>") >= 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "levels=0"], "levels=0 is out of range"),
        (["--param", "nope=1"], "unknown param 'nope'"),
        (["--param", "levels"], "must look like name=value"),
        (["--param", "levels=1:10:1"], "more than the limit of 8"),
        (["--strategy", "nothere"], "unknown strategy 'nothere'"),
        (["--strategy", "sma_cross"], "not a QuoteStrategy"),
        (["--hours", "0"], "--hours must be in (0, 168]"),
        (["--informed", "2"], "--informed must be in [0, 1]"),
        (["--entry-latency-ms", "-1"], "--entry-latency-ms must be a number >= 0"),
        (["--venue", "moon"], "Invalid value for '--venue'"),
        (["--report", "no/such/dir/r.html"], "does not exist"),
        (["--seed", "x"], "is not a valid integer"),
    ],
)
def test_bad_input_is_one_line_exit_2(workdir, capsys, args, message):
    code, out, err = run_cli([*BASE, *args], capsys)
    assert code == 2, (out, err)
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(workdir.iterdir()) == []
