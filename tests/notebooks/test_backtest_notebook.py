"""notebooks/backtest.ipynb: papermill with CI parameters, HTML without code, then nbval."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from quantdesk.backtest.session import backtest_from_store
from quantdesk.cli import main
from quantdesk.reports import ReportError, repo_notebooks_dir, run_report
from quantdesk.strategy import repo_strategies_dir

REPO = Path(__file__).resolve().parents[2]

CI_PARAMS = {
    "strategy": "sma_cross",
    "symbols": "BTC/USDT",
    "timeframe": "1h",
    "params": {"fast": 6, "slow": 24},
    "fee": 0.001,
    "slippage": 0.0005,
    "exchange": "synthetic",
}


@pytest.mark.parametrize("name", ["backtest.ipynb", "dashboards/strategy_explorer.ipynb"])
def test_committed_notebooks_have_parameters_and_no_outputs(name):
    for path in (REPO / "notebooks" / name,):
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path


def test_backtest_report_renders_and_passes_nbval(ci_data_root, tmp_path, nbval):
    params = {
        **CI_PARAMS,
        "data_root": str(ci_data_root),
        "strategies_dir": str(repo_strategies_dir()),
    }
    paths = run_report(
        "backtest", params, out_dir=tmp_path, notebooks=repo_notebooks_dir(), progress=False
    )
    assert paths.html.parent.parent == tmp_path
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", paths.html.parent.name)
    html = paths.html.read_text()
    assert "backtest_from_store" not in html  # code cells are left out
    assert html.count("Plotly.newPlot") == 3  # equity, monthly heatmap, trades
    for heading in ("Summary", "Equity and drawdown", "Monthly returns", "Trades"):
        assert f">{heading}<" in html or f">{heading}<a" in html

    expected = backtest_from_store(
        data_root=ci_data_root, strategies_dir=repo_strategies_dir(), **CI_PARAMS
    ).summary()
    assert "total return:" not in html  # the nbval check cell is not part of the report
    assert "Buy-and-hold return" in html and "buy and hold" in html
    executed = paths.notebook.read_text()
    assert f"total return: {expected['total_return'] * 100:,.2f}%" in executed
    assert f"trades: {int(expected['trades'])}" in executed
    # the trades table reads at a glance: every trade on one line, times to the minute
    assert f"{int(expected['trades'])} trades; times in UTC" in html
    assert "white-space: nowrap" in html and "+00:00</td>" not in html
    assert f"max drawdown: -{abs(expected['max_drawdown']) * 100:,.2f}%" in executed

    proc = nbval(paths.notebook)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout


def test_report_cli_bad_input_exits_2_and_writes_nothing(
    ci_data_root, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUANTDESK_DATA", str(ci_data_root))
    notebooks = str(repo_notebooks_dir())
    cases = [
        (["-p", "strategy", "nope"], "unknown strategy 'nope'"),
        (["-p", "bogus", "1"], "notebook backtest has no parameter 'bogus'"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as exc:
            main(
                ["report", "backtest", "--notebooks", notebooks, "-p", "symbols", "BTC/USDT", *args]
            )
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
        assert not (tmp_path / "reports").exists()
    with pytest.raises(ReportError, match="unknown notebook 'nope'"):
        run_report("nope", {}, notebooks=notebooks)
    assert json.loads('{"fast": 5}') == {"fast": 5}
