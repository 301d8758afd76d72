"""Plotly figures of selection results: factor distributions, daily IC, rotation equity."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from quantdesk.selection.ranking import zscore

if TYPE_CHECKING:
    import plotly.graph_objects as go


def factor_distributions(factors: dict[str, pd.DataFrame]) -> go.Figure:
    """Box plot per factor of its cross-sectional z-scores over the whole history."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, panel in factors.items():
        values = zscore(panel).stack().dropna()
        fig.add_trace(go.Box(y=values.to_numpy(), name=name, boxpoints=False))
    fig.update_layout(title="Factor distributions (cross-sectional z-scores)", showlegend=False)
    return fig


def ic_figure(ic: pd.Series, window: int = 30) -> go.Figure:
    """Out-of-sample information coefficient per date with its rolling mean."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Bar(x=ic.index, y=ic.to_numpy(), name="IC per date", opacity=0.4))
    rolling = ic.rolling(window, min_periods=1).mean()
    fig.add_trace(go.Scatter(x=rolling.index, y=rolling.to_numpy(), name=f"{window}-date mean"))
    fig.update_layout(title="Walk-forward information coefficient (Spearman, out of sample)")
    return fig


def equity_figure(curves: dict[str, pd.Series]) -> go.Figure:
    """Equity curves side by side (e.g. rotation vs buy-and-hold)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, curve in curves.items():
        fig.add_trace(go.Scatter(x=curve.index, y=curve.to_numpy(), name=name))
    fig.update_layout(title="Equity", yaxis_type="log", yaxis_title="value")
    return fig
