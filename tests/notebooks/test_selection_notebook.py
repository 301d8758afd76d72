"""notebooks/selection.ipynb: `quantdesk report selection` on the real daily data, then nbval."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from quantdesk.cli import main
from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.reports import repo_notebooks_dir, run_report
from quantdesk.selection.models import load_model
from quantdesk.selection.study import MODEL_FEATURES, study_from_store
from quantdesk.strategy import repo_strategies_dir
from tests.conftest import SAMPLE_DATA

REPO = Path(__file__).resolve().parents[2]
REAL_DATA = SAMPLE_DATA
SYMBOLS = "BTC/USDT,ETH/USDT,BNB/USDT,XRP/USDT,LTC/USDT"
CI_PARAMS = {
    "symbols": SYMBOLS,
    "as_of": "2025-06-01",
    "horizon": 5,
    "n_splits": 4,
    "rotation_params": {"top": 2, "lookback": 30, "every": 7},
}


@pytest.fixture(scope="module")
def real_root(tmp_path_factory) -> Path:
    """The five real daily series imported into a temporary store."""
    root = tmp_path_factory.mktemp("selection-nb")
    store = DataStore(root)
    for path in sorted(REAL_DATA.glob("*USDT-1d.csv")):
        raw = pd.read_csv(path)
        index = pd.DatetimeIndex(pd.to_datetime(raw["open_time"], unit="ms", utc=True), name="time")
        frame = raw[["open", "high", "low", "close", "volume"]].set_index(index)
        symbol = f"{path.name.split('USDT')[0]}/USDT"
        store.write(SeriesKey("binance", "usdm", symbol, "1d"), frame)
    return root


@pytest.mark.parametrize("name", ["selection.ipynb", "dashboards/screener.ipynb"])
def test_committed_notebook_has_parameters_and_no_outputs(name: str) -> None:
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_selection_report_renders_and_passes_nbval(real_root, tmp_path, nbval) -> None:
    params = {
        **CI_PARAMS,
        "data_root": str(real_root),
        "strategies_dir": str(repo_strategies_dir()),
        "model_out": str(tmp_path / "model.joblib"),
    }
    paths = run_report(
        "selection", params, out_dir=tmp_path, notebooks=repo_notebooks_dir(), progress=False
    )
    html = paths.html.read_text()
    assert "study_from_store" not in html  # code cells are left out
    assert html.count("Plotly.newPlot") == 3  # factor boxes, IC, equity
    for heading in ("Factor distributions", "Ranking", "Model validation", "Rotation backtest"):
        assert re.search(f">{heading}<", html), heading

    expected = study_from_store(
        data_root=real_root, strategies_dir=repo_strategies_dir(), **CI_PARAMS
    )
    best = expected.ranking.table.index[0]
    executed = paths.notebook.read_text()  # the nbval check cells run but are not in the HTML
    assert f"1. {best} score {expected.ranking.table['score'].iloc[0]:+.4f}" in executed
    assert f"rotation total return: {expected.rotation.total_return:.4%}" in executed
    assert f"out-of-sample IC: {expected.validation.mean_ic:.4f}" in executed
    assert "no leak suspected" in executed and "rotation total return:" not in html
    saved = load_model(tmp_path / "model.joblib", MODEL_FEATURES)  # refused if features differ
    assert saved.horizon == CI_PARAMS["horizon"]

    proc = nbval(paths.notebook)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout


def test_report_selection_cli_bad_weights_exit_2(real_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUANTDESK_DATA", str(real_root))
    argv = ["report", "selection", "--notebooks", str(repo_notebooks_dir())]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "-p", "symbols", SYMBOLS, "-p", "weights", '{"alpha": 1}'])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2
    assert len(err) == 1 and "unknown factor 'alpha'" in err[0]
    assert not (tmp_path / "reports").exists()
