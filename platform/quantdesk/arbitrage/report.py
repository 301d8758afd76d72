"""An HTML report of a pair backtest: the funding spread with entries and exits, and the
cumulative PnL split (price, funding per venue, fees and slippage)."""

from __future__ import annotations

import os
from pathlib import Path

from quantdesk.arbitrage.backtest import ArbResult
from quantdesk.errors import DataError
from quantdesk.reports import write_text_atomic


def figure(result: ArbResult) -> object:
    """A two-panel plotly figure: spread APR with pair opens/closes, and the PnL split."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    frame = result.market.frame
    # hourly points are too many for a browser over years: the daily mean shows the regime
    spread = frame["spread_apr"].resample("1D").mean() * 100
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        subplot_titles=("funding spread b - a (APR %, daily mean)", "cumulative PnL (USDT)"),
    )
    fig.add_trace(go.Scatter(x=spread.index, y=spread, name="spread APR %"), row=1, col=1)
    for label, times, symbol in (
        ("open", [t.opened for t in result.trades], "triangle-up"),
        ("close", [t.closed for t in result.trades], "x"),
    ):
        at = spread.reindex([t.normalize() for t in times])
        fig.add_trace(
            go.Scatter(x=times, y=at.to_numpy(), mode="markers", name=label, marker_symbol=symbol),
            row=1,
            col=1,
        )
    pnl = result.pnl.resample("1D").last()
    m = result.market
    lines = {
        "price (A + B)": pnl["price_a"] + pnl["price_b"],
        f"funding {m.venue_a.name}": pnl["funding_a"],
        f"funding {m.venue_b.name}": pnl["funding_b"],
        "fees + slippage": -(pnl["fees"] + pnl["slippage"]),
        "total": result.equity.resample("1D").last() - result.capital,
    }
    for name, series in lines.items():
        fig.add_trace(go.Scatter(x=series.index, y=series, name=name), row=2, col=1)
    fig.update_layout(title=f"funding_arb {m.symbol}: {m.venue_a.name} vs {m.venue_b.name}")
    return fig


def write_report(result: ArbResult, path: str | os.PathLike[str]) -> Path:
    """Write the figure as one self-contained HTML file, whole or not at all (temp + rename)."""
    target = Path(path)
    html = figure(result).to_html(include_plotlyjs=True, full_html=True)  # type: ignore[attr-defined]
    try:
        write_text_atomic(target, html)
    except OSError as exc:
        raise DataError(f"cannot write report {target}: {exc}") from None
    return target
