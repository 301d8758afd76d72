"""Plotly figures of backtest results: equity with drawdown, price with trades, heatmaps."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def equity_figure(
    equity: pd.Series,
    title: str = "Equity",
    benchmark: pd.Series | None = None,
    log_scale: bool = False,
) -> go.Figure:
    """Equity curve (and a buy-and-hold benchmark) on top, drawdown (in %) below."""
    drawdown = (equity / equity.cummax() - 1.0) * 100.0
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04
    )
    fig.add_trace(go.Scatter(x=equity.index, y=equity.to_numpy(), name="equity"), row=1, col=1)
    if benchmark is not None:
        fig.add_trace(
            go.Scatter(
                x=benchmark.index,
                y=benchmark.to_numpy(),
                name="buy and hold",
                line={"color": "gray", "dash": "dot"},
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=drawdown.index,
            y=drawdown.to_numpy(),
            name="drawdown %",
            fill="tozeroy",
            line={"color": "crimson"},
        ),
        row=2,
        col=1,
    )
    fig.update_layout(title=title, height=480, margin={"l": 40, "r": 20, "t": 50, "b": 30})
    fig.update_yaxes(title_text="value", type="log" if log_scale else "linear", row=1, col=1)
    fig.update_yaxes(title_text="drawdown %", row=2, col=1)
    return fig


def trades_figure(
    close: pd.Series,
    trades: pd.DataFrame,
    title: str = "Trades",
    ohlc: pd.DataFrame | None = None,
) -> go.Figure:
    """Candles (or the close when no OHLC is given) with a marker at each entry (triangle up)
    and exit (triangle down)."""
    if ohlc is not None:
        price = go.Candlestick(
            x=ohlc.index,
            open=ohlc["open"],
            high=ohlc["high"],
            low=ohlc["low"],
            close=ohlc["close"],
            name="price",
        )
    else:
        price = go.Scatter(x=close.index, y=close.to_numpy(), name="close")
    fig = go.Figure(price)
    fig.add_trace(
        go.Scatter(
            x=trades["entry_time"],
            y=trades["entry_price"],
            mode="markers",
            name="entry",
            marker={"symbol": "triangle-up", "size": 10, "color": "green"},
        )
    )
    closed = trades[trades["status"] == "Closed"]
    fig.add_trace(
        go.Scatter(
            x=closed["exit_time"],
            y=closed["exit_price"],
            mode="markers",
            name="exit",
            marker={"symbol": "triangle-down", "size": 10, "color": "red"},
        )
    )
    fig.update_layout(
        title=title,
        height=420,
        margin={"l": 40, "r": 20, "t": 50, "b": 30},
        xaxis_rangeslider_visible=False,
    )
    return fig


def monthly_heatmap(table: pd.DataFrame, title: str = "Monthly returns (%)") -> go.Figure:
    """Years x months heatmap of returns (a table from metrics.monthly_returns)."""
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    values = table.to_numpy() * 100.0
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=months,
            y=[str(y) for y in table.index],
            colorscale="RdYlGn",
            zmid=0.0,
            text=[[("" if v != v else f"{v:.1f}") for v in row] for row in values],
            texttemplate="%{text}",
        )
    )
    fig.update_layout(title=title, height=160 + 40 * len(table), margin={"t": 50, "b": 30})
    return fig
