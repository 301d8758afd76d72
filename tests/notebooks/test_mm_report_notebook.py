"""notebooks/mm_report.ipynb: papermill with small CI parameters, HTML without code, then nbval;
and on a recording in a store."""

from __future__ import annotations

import time

import nbformat

from quantdesk.mm.backtest import run_mm
from quantdesk.mm.flow import FlowConfig, generate_flow
from quantdesk.mm.report import set_labels
from quantdesk.reports import repo_notebooks_dir, run_report
from quantdesk.strategy import repo_strategies_dir, strategy_class
from tests.mm.helpers import SYMBOL, write_recording
from tests.notebooks.conftest import REPO

CI_PARAMS = {
    "strategy": "avellaneda_stoikov",
    "seed": 3,
    "hours": 0.25,
    "param_sets": [{}, {"gamma": 0.5}],
}


def test_committed_notebook_has_parameters_and_no_outputs():
    nb = nbformat.read(REPO / "notebooks" / "mm_report.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("strategy", "seed", "hours", "param_sets"):
        assert f"{name} = " in tagged[0].source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_mm_report_renders_and_passes_nbval(tmp_path, nbval):
    params = {**CI_PARAMS, "strategies_dir": str(repo_strategies_dir())}
    started = time.monotonic()
    paths = run_report(
        "mm_report", params, out_dir=tmp_path, notebooks=repo_notebooks_dir(), progress=False
    )
    assert time.monotonic() - started < 60
    html = paths.html.read_text()
    assert "generate_flow" not in html  # code cells are left out
    for heading in (
        "Parameter sets side by side",
        "PnL split",
        "Inventory",
        "Fills and cancels",
        "Adverse selection by horizon",
    ):
        assert f">{heading}<" in html or f">{heading}<a" in html
    # cumulative PnL, inventory, adverse selection, set 1 in detail
    assert html.count("Plotly.newPlot") == 4
    assert "1: gamma=0.1" in html and "2: gamma=0.5" in html

    cls = strategy_class("avellaneda_stoikov", str(repo_strategies_dir()))
    flow = generate_flow(FlowConfig(hours=0.25), seed=3)
    results = [run_mm(cls(**p), flow) for p in CI_PARAMS["param_sets"]]
    executed = paths.notebook.read_text()  # the nbval check cell runs but is not in the HTML
    for label, r in zip(set_labels(results), results, strict=True):
        line = f"{label}: total {r.stats['total_pnl']:.4f} = spread {r.stats['spread_pnl']:.4f}"
        assert line in executed and line not in html
    assert f"maker fills {results[1].stats['maker_fills']:.0f}" in executed

    proc = nbval(paths.notebook)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "passed" in proc.stdout


def test_mm_report_replays_a_recording(tmp_path):
    write_recording(tmp_path / "data")
    params = {
        "strategies_dir": str(repo_strategies_dir()),
        "symbol": SYMBOL,
        "data_root": str(tmp_path / "data"),
        "param_sets": [{}, {"levels": 2}],
    }
    paths = run_report(
        "mm_report", params, out_dir=tmp_path, notebooks=repo_notebooks_dir(), progress=False
    )
    html = paths.html.read_text()
    assert "on 8 events (recorded BTC/USDT from 2024-03-01 00:00:00" in html
    assert "1: levels=1" in html and "2: levels=2" in html
