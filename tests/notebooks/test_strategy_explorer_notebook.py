"""notebooks/dashboards/strategy_explorer.ipynb executes with CI parameters and passes nbval."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill as pm

from quantdesk.strategy import repo_strategies_dir

REPO = Path(__file__).resolve().parents[2]


def test_strategy_explorer_notebook_runs_under_papermill_and_nbval(ci_data_root, tmp_path, nbval):
    executed = tmp_path / "strategy_explorer.ipynb"
    pm.execute_notebook(
        str(REPO / "notebooks" / "dashboards" / "strategy_explorer.ipynb"),
        str(executed),
        parameters={
            "data_root": str(ci_data_root),
            "strategies_dir": str(repo_strategies_dir()),
            "symbol": "ETH/USDT",
        },
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    nb = nbformat.read(executed, as_version=4)
    widget_outputs = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]  # fmt: skip
    assert len(widget_outputs) == 1
    proc = nbval(executed)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
