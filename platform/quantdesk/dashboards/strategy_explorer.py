"""Strategy explorer: pick a strategy, a stored series and parameters; see equity and stats.

Widgets are built from the strategy's `params` declaration, so every strategy in strategies/
gets its own controls without dashboard code of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from quantdesk.backtest import BacktestResult, Costs, run
from quantdesk.backtest.metrics import format_stats
from quantdesk.backtest.session import open_store
from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.errors import QuantdeskError
from quantdesk.strategy import (
    Choice,
    Float,
    Int,
    Param,
    available_strategies,
    strategy_class,
)

_LAYOUT = {"height": 420, "margin": {"l": 50, "r": 20, "t": 50}, "yaxis": {"title": "equity"}}


def param_widget(name: str, param: Param, value: Any) -> widgets.Widget:
    """An input widget for one param: bounded number boxes, or a dropdown of choices."""
    style = {"description_width": "110px"}
    layout = widgets.Layout(width="260px")
    if isinstance(param, Int):
        box = widgets.BoundedIntText(
            value=value, min=param.low, max=param.high, description=name, style=style,
            layout=layout,
        )  # fmt: skip
    elif isinstance(param, Float):
        step = (param.high - param.low) / 100 or 0.01
        box = widgets.BoundedFloatText(
            value=value, min=param.low, max=param.high, step=step, description=name,
            style=style, layout=layout,
        )  # fmt: skip
    elif isinstance(param, Choice):
        box = widgets.Dropdown(
            options=list(param.options), value=value, description=name, style=style,
            layout=layout,
        )  # fmt: skip
    else:
        raise TypeError(f"no widget for {type(param).__name__}")
    box.add_class(f"qd-param-{name}")
    return box


class StrategyExplorer:
    """The explorer's widgets and the backtest behind them; `.widget` is what to display."""

    def __init__(
        self,
        store: DataStore,
        strategies_dir: str | Path | None = None,
        strategy: str = "sma_cross",
        symbol: str | None = None,
        timeframe: str | None = None,
        exchange: str | None = None,
        costs: Costs | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> None:
        self.store = store
        self.strategies_dir = strategies_dir
        self.costs = costs or Costs(fee=0.001)
        self.start, self.end = start, end
        self.keys = [k for k in store.keys(exchange=exchange) if not k.is_funding]
        if not self.keys:
            raise QuantdeskError(f"no bars under {store.root}: run 'quantdesk data synth' first")
        names = available_strategies(strategies_dir)
        series = sorted({(k.exchange, k.market, k.symbol) for k in self.keys})
        self.strategy = widgets.Dropdown(
            options=names, value=strategy if strategy in names else names[0],
            description="strategy",
        )  # fmt: skip
        self.series = widgets.Dropdown(
            options=[(f"{s} ({e}/{m})", (e, m, s)) for e, m, s in series],
            value=next((x for x in series if x[2] == symbol), series[0]),
            description="symbol",
        )  # fmt: skip
        self.timeframe = widgets.Dropdown(description="timeframe")
        self.params_box = widgets.VBox()
        self.stats = widgets.HTML()
        self.stats.add_class("qd-stats")
        self.status = widgets.HTML()
        self.figure: go.FigureWidget | None = None
        self._param_widgets: dict[str, widgets.Widget] = {}
        self.result: BacktestResult | None = None
        self._set_timeframes(preferred=timeframe)
        self._build_params()
        self.strategy.observe(self._on_strategy, names="value")
        self.series.observe(self._on_series, names="value")
        self.timeframe.observe(self._on_change, names="value")
        # The first run happens before display: a FigureWidget only syncs updates made after
        # its view exists, so the figure is created from the first result instead.
        self.refresh()
        if self.figure is None:
            self.figure = go.FigureWidget(layout=_LAYOUT)
        controls = widgets.VBox([self.strategy, self.series, self.timeframe, self.params_box])
        self.widget = widgets.VBox([widgets.HBox([controls, self.stats]), self.status, self.figure])

    @classmethod
    def from_store(cls, data_root: str | Path | None = None, **kwargs: Any) -> StrategyExplorer:
        """An explorer over the store at data_root (default: the configured store)."""
        return cls(open_store(data_root), **kwargs)

    def _set_timeframes(self, preferred: str | None = None) -> None:
        tfs = sorted(
            {
                k.timeframe
                for k in self.keys
                if (k.exchange, k.market, k.symbol) == self.series.value
            }
        )
        current = preferred or self.timeframe.value
        self.timeframe.options = tfs
        self.timeframe.value = current if current in tfs else tfs[0]

    def _build_params(self) -> None:
        cls = strategy_class(self.strategy.value, self.strategies_dir)
        self._param_widgets = {
            name: param_widget(name, p, p.default) for name, p in cls.params.items()
        }
        for box in self._param_widgets.values():
            box.observe(self._on_change, names="value")
        self.params_box.children = list(self._param_widgets.values())

    def _on_strategy(self, _change: dict[str, Any]) -> None:
        self._build_params()
        self.refresh()

    def _on_series(self, _change: dict[str, Any]) -> None:
        self._set_timeframes()
        self.refresh()

    def _on_change(self, _change: dict[str, Any]) -> None:
        self.refresh()

    def param_values(self) -> dict[str, Any]:
        """The parameter values currently set in the widgets."""
        return {name: box.value for name, box in self._param_widgets.items()}

    def refresh(self) -> None:
        """Re-run the backtest for the current selection; update the chart and the stats."""
        exchange, market, symbol = self.series.value
        try:
            strategy = strategy_class(self.strategy.value, self.strategies_dir)(
                **self.param_values()
            )
            key = SeriesKey(exchange, market, symbol, self.timeframe.value)
            bars = self.store.read(key, self.start, self.end)
            if bars.empty:
                raise QuantdeskError(f"no {symbol} {key.timeframe} bars in the chosen range")
            result = run(strategy, {symbol: bars}, self.costs, timeframe=key.timeframe)
        except QuantdeskError as exc:
            self.status.value = f"<span style='color:crimson'>error: {exc}</span>"
            return
        self.result = result
        equity = result.equity.iloc[:, 0]
        title = f"{strategy!r} on {symbol} {key.timeframe}"
        if self.figure is None:
            trace = go.Scatter(x=equity.index, y=equity.to_numpy(), name="equity", mode="lines")
            self.figure = go.FigureWidget(data=[trace], layout={**_LAYOUT, "title": title})
        else:
            with self.figure.batch_update():
                self.figure.data[0].x = equity.index
                self.figure.data[0].y = equity.to_numpy()
                self.figure.layout.title = title
        rows = "".join(
            f"<tr><td>{label}</td><td style='text-align:right'>{text}</td></tr>"
            for label, text in format_stats(result.summary())
        )
        self.stats.value = f"<table class='qd-stats-table'>{rows}</table>"
        self.status.value = ""

    def summary_line(self) -> str:
        """Trades and total return of the current result, as one line."""
        if self.result is None:
            return "no result"
        s = self.result.summary()
        return f"trades: {int(s['trades'])}, total return: {s['total_return']:.4%}"
