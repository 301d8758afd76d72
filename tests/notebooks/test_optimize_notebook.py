"""notebooks/optimize.ipynb: papermill with tiny CI parameters, HTML without code, then nbval."""

from __future__ import annotations

import nbformat

from quantdesk.backtest import Costs
from quantdesk.backtest.optimize import job_from_store, optimize
from quantdesk.data.store import DataStore
from quantdesk.reports import repo_notebooks_dir, run_report
from quantdesk.strategy import repo_strategies_dir
from tests.notebooks.conftest import REPO

SEARCH = ["sl_stop=0", "tp_stop=0", "fast=3,5,8", "slow=20,30"]
CI_PARAMS = {
    "strategy": "sma_cross",
    "symbols": "BTC/USDT",
    "timeframe": "1h",
    "search": {"sl_stop": 0, "tp_stop": 0, "fast": "3,5,8", "slow": "20,30"},
    "trials": 6,
    "walk_forward_windows": 2,
    "walk_forward_trials": 6,
    "exchange": "synthetic",
}


def test_committed_notebook_has_parameters_and_no_outputs():
    nb = nbformat.read(REPO / "notebooks" / "optimize.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_optimize_report_renders_and_passes_nbval(ci_data_root, tmp_path, nbval):
    params = {
        **CI_PARAMS,
        "data_root": str(ci_data_root),
        "strategies_dir": str(repo_strategies_dir()),
    }
    paths = run_report(
        "optimize", params, out_dir=tmp_path, notebooks=repo_notebooks_dir(), progress=False
    )
    html = paths.html.read_text()
    assert "job_from_store" not in html  # code cells are left out
    for heading in (
        "Best trials",
        "Optimization history",
        "Parameter importances",
        "Walk-forward: in-sample vs out-of-sample",
        "Validation verdicts",
    ):
        assert f">{heading}<" in html or f">{heading}<a" in html
    # history, importances, heatmap
    assert html.count("Plotly.newPlot") == 3

    job = job_from_store(
        DataStore(ci_data_root),
        "sma_cross",
        "BTC/USDT",
        "1h",
        exchange="synthetic",
        param_args=SEARCH,
        strategies_dir=str(repo_strategies_dir()),
        costs=Costs(fee=0.001),
    )
    expected = optimize(job, n_trials=6, progress=False)
    assert expected.method == "grid"
    shown = ", ".join(f"{k}={v}" for k, v in expected.best_params.items())
    executed = paths.notebook.read_text()  # the nbval check cells run but are not in the HTML
    assert "complete trials: 6" in executed and "complete trials:" not in html
    assert f"best params: {shown}" in executed
    assert f"best value: {expected.best_trial().value:.4f}" in executed
    for check in ("lookahead: pass", "recursive: pass", "dsr:", "pbo:", "stability:", "parity:"):
        assert check in executed
    assert "[I 20" not in html  # no optuna log lines in the report

    proc = nbval(paths.notebook)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout
