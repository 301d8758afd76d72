"""notebooks/dashboards/arb.ipynb executes on an arb journal and shows its one widget."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill as pm

from quantdesk.engine.journal import Journal
from quantdesk.system.arb_live import SPREAD_EVENT

REPO = Path(__file__).resolve().parents[2]


def test_arb_dashboard_notebook_runs_under_papermill(tmp_path: Path) -> None:
    journal = tmp_path / "arb.sqlite"
    payload = {
        "symbol": "BTC/USDT:USDT", "venue_a": "alpha", "venue_b": "beta", "apr_a": 0.1,
        "apr_b": 0.4, "spread_apr": 0.3, "net_long_a": 0.2, "net_short_a": -0.4,
        "entry_apr": 0.15,
    }  # fmt: skip
    with Journal(journal) as j:
        j.record_risk_event(SPREAD_EVENT, "spread", 0, "info", payload)
    executed = tmp_path / "arb.ipynb"
    pm.execute_notebook(
        str(REPO / "notebooks" / "dashboards" / "arb.ipynb"),
        str(executed),
        parameters={"journals": [str(journal)], "interval_s": 60.0},
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    nb = nbformat.read(executed, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(widgets) == 1
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # the committed notebook carries no outputs
    source = nbformat.read(REPO / "notebooks" / "dashboards" / "arb.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in source.cells if c.cell_type == "code")
