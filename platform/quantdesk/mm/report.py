"""An HTML report of mm backtests: mid with quotes and fills, the inventory path and the
cumulative PnL split of the first run, and every run's stats side by side in a table."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from quantdesk.errors import DataError
from quantdesk.mm.backtest import MMResult
from quantdesk.reports import write_text_atomic

# (stat key, label, format) of the side-by-side table
TABLE = (
    ("total_pnl", "total PnL", "{:,.2f}"),
    ("spread_pnl", "spread capture", "{:,.2f}"),
    ("inventory_pnl", "inventory PnL", "{:,.2f}"),
    ("fees_pnl", "fees / rebates", "{:,.2f}"),
    ("maker_fills", "maker fills", "{:,.0f}"),
    ("volume", "volume", "{:,.1f}"),
    ("fill_ratio", "fill ratio", "{:.2%}"),
    ("cancel_ratio", "cancel ratio", "{:.2f}"),
    ("quote_uptime", "quote uptime", "{:.1%}"),
    ("adverse_100ms_bps", "adverse 100 ms (bps)", "{:.2f}"),
    ("adverse_1000ms_bps", "adverse 1 s (bps)", "{:.2f}"),
    ("adverse_10000ms_bps", "adverse 10 s (bps)", "{:.2f}"),
    ("max_inventory", "max |inventory|", "{:.2f}"),
    ("sharpe", "sharpe", "{:.2f}"),
    ("max_drawdown", "max drawdown", "{:.3%}"),
    ("daily_return", "daily return", "{:.3%}"),
    ("deferred", "deferred actions", "{:,.0f}"),
)
MAX_POINTS = 20_000  # per trace: a browser stays responsive; each second is one point already


def figure(result: MMResult) -> object:
    """Three panels: mid with the top quotes and our fills, inventory, cumulative PnL split."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    paths = result.paths
    step = max(len(paths) // MAX_POINTS, 1)
    p = paths.iloc[::step]
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.5, 0.2, 0.3],
        subplot_titles=("mid, quotes and fills", "inventory", "cumulative PnL split"),
    )
    fig.add_trace(go.Scatter(x=p.index, y=p["mid"], name="mid"), row=1, col=1)
    q = result.quotes.iloc[:: max(len(result.quotes) // MAX_POINTS, 1)]
    q_at = q.index.floor("us")  # plotly keeps microseconds and warns on dropping nanoseconds
    for col in ("bid", "ask"):
        fig.add_trace(
            go.Scatter(x=q_at, y=q[col], name=f"quote {col}", line={"shape": "hv", "width": 1}),
            row=1,
            col=1,
        )
    fills = result.fills
    for side, label, symbol in (
        (1, "buy fills", "triangle-up"),
        (-1, "sell fills", "triangle-down"),
    ):
        f = fills[fills["side"] == side].iloc[:MAX_POINTS]
        fig.add_trace(
            go.Scatter(
                x=f["time"].dt.floor("us"),
                y=f["price"],
                mode="markers",
                name=label,
                marker_symbol=symbol,
            ),
            row=1,
            col=1,
        )
    fig.add_trace(go.Scatter(x=p.index, y=p["inventory"], name="inventory"), row=2, col=1)
    for col, name in (
        ("spread", "spread capture"),
        ("inventory_pnl", "inventory PnL"),
        ("fees", "fees / rebates"),
        ("total", "total"),
    ):
        fig.add_trace(go.Scatter(x=p.index, y=p[col], name=name), row=3, col=1)
    fig.update_layout(title=f"{result.strategy}: {_params(result)}", height=900)
    return fig


def _params(result: MMResult) -> str:
    return ", ".join(f"{k}={v}" for k, v in result.params.items())


def table_html(results: Sequence[MMResult]) -> str:
    """The runs' stats as an HTML table, one column per parameter set."""
    head = "".join(f"<th>{i + 1}. {html.escape(r.strategy)}</th>" for i, r in enumerate(results))
    rows = []
    for key, label, fmt in TABLE:
        cells = "".join(f"<td>{fmt.format(r.stats[key])}</td>" for r in results)
        rows.append(f"<tr><th>{label}</th>{cells}</tr>")
    params = "".join(f"<td>{html.escape(_params(r))}</td>" for r in results)
    rows.append(f"<tr><th>params</th>{params}</tr>")
    return (
        '<table border="1" cellpadding="4" style="border-collapse:collapse;font-family:sans-serif">'
        f"<tr><th>stat</th>{head}</tr>{''.join(rows)}</table>"
    )


def render(results: Sequence[MMResult]) -> str:
    """The whole report page: the stats table and the first run's figure."""
    if not results:
        raise DataError("a report needs at least one run")
    chart = figure(results[0]).to_html(include_plotlyjs=True, full_html=False)  # type: ignore[attr-defined]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>mm backtest</title></head><body>"
        f"<h2>market making: {len(results)} parameter set(s)</h2>{table_html(results)}"
        f"<h3>run 1</h3>{chart}</body></html>"
    )


def write_report(results: Sequence[MMResult], path: str | os.PathLike[str]) -> Path:
    """Write the report as one self-contained HTML file, whole or not at all (temp + rename)."""
    target = Path(path)
    page = render(results)
    try:
        write_text_atomic(target, page)
    except OSError as exc:
        raise DataError(f"cannot write report {target}: {exc}") from None
    return target


# -- pieces for the report notebook (notebooks/mm_report.ipynb) -------------------------------

ADVERSE_HORIZONS_MS = (50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000)


def set_labels(results: Sequence[MMResult]) -> list[str]:
    """'1: levels=2'-style names: the number and the params that differ between the runs."""
    keys = list(results[0].params) if results else []
    varying = [k for k in keys if len({repr(r.params.get(k)) for r in results}) > 1]
    out = []
    for i, r in enumerate(results):
        shown = ", ".join(f"{k}={r.params[k]}" for k in varying)
        out.append(f"{i + 1}: {shown}" if shown else f"{i + 1}: {r.strategy}")
    return out


def stats_frame(results: Sequence[MMResult]) -> object:
    """The side-by-side table as a DataFrame: a row per stat, a column per run."""
    import pandas as pd

    rows = {label: [r.stats[key] for r in results] for key, label, _ in TABLE}
    return pd.DataFrame(rows, index=set_labels(results)).T


def split_frame(results: Sequence[MMResult]) -> object:
    """PnL split per run: spread capture + inventory PnL + fees / rebates = total."""
    import pandas as pd

    keys = {
        "spread capture": "spread_pnl",
        "inventory PnL": "inventory_pnl",
        "fees / rebates": "fees_pnl",
        "total": "total_pnl",
    }
    data = {name: [r.stats[k] for r in results] for name, k in keys.items()}
    return pd.DataFrame(data, index=set_labels(results))


def orders_frame(results: Sequence[MMResult]) -> object:
    """Order flow per run: orders, cancels, amends, maker fills, fill and cancel ratios."""
    import pandas as pd

    keys = {
        "orders": "orders",
        "cancels": "cancels",
        "amends": "amends",
        "maker fills": "maker_fills",
        "fill ratio (qty)": "fill_ratio",
        "cancel ratio": "cancel_ratio",
    }
    data = {name: [r.stats[k] for r in results] for name, k in keys.items()}
    frame = pd.DataFrame(data, index=set_labels(results))
    frame["fills / cancels"] = frame["maker fills"] / frame["cancels"].where(frame["cancels"] > 0)
    return frame


def adverse_frame(
    results: Sequence[MMResult], horizons_ms: Sequence[float] = ADVERSE_HORIZONS_MS
) -> object:
    """Mean mid move after our maker fills (bps, negative = adverse): a row per horizon."""
    import pandas as pd

    from quantdesk.mm.backtest import adverse_selection

    data = {
        label: [adverse_selection(r.flow, r.fills, h) for h in horizons_ms]
        for label, r in zip(set_labels(results), results, strict=True)
    }
    return pd.DataFrame(data, index=pd.Index(list(horizons_ms), name="horizon_ms"))


def paths_figure(results: Sequence[MMResult], column: str, title: str) -> object:
    """One line per run of a per-second path (inventory, total, ...)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, r in zip(set_labels(results), results, strict=True):
        p = r.paths.iloc[:: max(len(r.paths) // MAX_POINTS, 1)]
        fig.add_trace(go.Scatter(x=p.index, y=p[column], name=label))
    fig.update_layout(title=title, height=400)
    return fig


def adverse_figure(results: Sequence[MMResult]) -> object:
    """Adverse selection against the horizon (log axis), one line per run."""
    import plotly.graph_objects as go

    frame = adverse_frame(results)
    fig = go.Figure()
    for label in frame.columns:  # type: ignore[attr-defined]
        fig.add_trace(go.Scatter(x=frame.index, y=frame[label], name=label, mode="lines+markers"))  # type: ignore[index]
    fig.update_layout(
        title="mid move after our fills, in their direction (bps)",
        xaxis={"type": "log", "title": "horizon (ms)"},
        yaxis={"title": "bps"},
        height=400,
    )
    return fig
