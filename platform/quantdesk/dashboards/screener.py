"""Coin screener: the current ranking of a universe with its filters and factor weights as
widgets. Factors are computed once over the whole history (they are causal, so the value at t
uses bars up to t only); each change re-screens and re-ranks the cross-section as of a date.
"""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import pandas as pd

from quantdesk.data.store import DataStore
from quantdesk.data.timeframes import timeframe_ms
from quantdesk.errors import QuantdeskError
from quantdesk.selection.factors import compute_factors
from quantdesk.selection.ranking import explain, rank
from quantdesk.selection.screener import (
    DEFAULT_WEIGHTS,
    factor_config,
    last_closed_bar,
    load_panel,
)
from quantdesk.selection.screens import Screen

WEIGHTED = (
    "momentum_7",
    "momentum_30",
    "momentum_90",
    "trend",
    "rsi",
    "bb_pctb",
    "macd_hist",
    "volatility",
    "volume_surge",
    "quote_volume",
)
_STYLE = {"description_width": "130px"}
_LAYOUT = widgets.Layout(width="260px")


def _number(cls: type, value: float, description: str, css: str, **kw: object) -> widgets.Widget:
    box = cls(value=value, description=description, style=_STYLE, layout=_LAYOUT, **kw)
    box.add_class(css)
    return box


class Screener:
    """The screener's widgets and the ranking behind them; `.widget` is what to display."""

    def __init__(
        self,
        store: DataStore,
        symbols: Sequence[str] = (),
        timeframe: str = "1d",
        exchange: str | None = None,
        market: str | None = None,
        as_of: str | None = None,
    ) -> None:
        self.timeframe = timeframe
        self.panel = load_panel(store, list(symbols), timeframe, exchange, market)
        names = list(dict.fromkeys([*WEIGHTED, "listing_age"]))
        self.factors = compute_factors(self.panel, names, factor_config(timeframe))
        # the default as-of is when the last bar every symbol has closed: that bar is used
        closed = self.panel.common_end + pd.Timedelta(milliseconds=timeframe_ms(timeframe))
        self.as_of = widgets.Text(
            value=as_of or _stamp(closed), description="as of (UTC)", style=_STYLE,
            layout=_LAYOUT, continuous_update=False,
        )  # fmt: skip
        self.as_of.add_class("qd-as-of")
        n = len(self.panel.symbols)
        self.top = _number(widgets.BoundedIntText, min(5, n), "top", "qd-top", min=1, max=n)
        self.min_history = _number(
            widgets.BoundedIntText, 30, "min history (bars)", "qd-min-history", min=1, max=10_000
        )
        self.min_quote_volume = _number(
            widgets.FloatText, 0.0, "min quote volume", "qd-min-quote-volume"
        )
        self.max_volatility = _number(
            widgets.FloatText, 0.0, "max volatility (0=off)", "qd-max-volatility"
        )
        self.exclude = widgets.SelectMultiple(
            options=self.panel.symbols, description="exclude", style=_STYLE, layout=_LAYOUT
        )
        self.exclude.add_class("qd-exclude")
        self.weights = {
            name: _number(
                widgets.FloatText, DEFAULT_WEIGHTS.get(name, 0.0), f"w {name}", f"qd-w-{name}"
            )
            for name in WEIGHTED
        }
        self.status = widgets.HTML()
        self.status.add_class("qd-status")
        self.table = widgets.HTML()
        self.table.add_class("qd-ranking")
        controls = [self.as_of, self.top, self.min_history, self.min_quote_volume]
        controls += [self.max_volatility, self.exclude]
        for box in [*controls, *self.weights.values()]:
            box.observe(lambda _: self.update(), names="value")
        filters = widgets.VBox([widgets.HTML("<b>Filters</b>"), *controls])
        weights = widgets.VBox([widgets.HTML("<b>Factor weights</b>"), *self.weights.values()])
        self.widget = widgets.VBox([widgets.HBox([filters, weights]), self.status, self.table])
        self.update()

    def screen(self) -> Screen:
        """The filters as a Screen."""
        return Screen(
            min_history=self.min_history.value,
            min_quote_volume=self.min_quote_volume.value or None,
            max_volatility=self.max_volatility.value or None,
            exclude=frozenset(self.exclude.value),
        )

    def current_weights(self) -> dict[str, float]:
        """The non-zero factor weights."""
        return {n: float(w.value) for n, w in self.weights.items() if w.value}

    def ranking(self) -> tuple[pd.DataFrame, pd.Series]:
        """The ranked table and who was left out, for the current widget values."""
        weights = self.current_weights()
        if not weights:
            raise QuantdeskError("give at least one factor a non-zero weight")
        # only bars closed by the as-of time: the bar opening then is not known yet
        bar = last_closed_bar(self.panel, self.as_of.value, self.timeframe)
        snapshot = self.factors.as_of(bar)
        table, dropped = rank(snapshot, weights, self.screen())
        table["reasons"] = [explain(row) for _, row in table.iterrows()]
        table.attrs["time"] = snapshot.attrs["time"]
        return table.head(self.top.value), dropped

    def update(self) -> None:
        """Recompute the ranking and redraw; user errors show in the status line."""
        try:
            table, dropped = self.ranking()
        except QuantdeskError as exc:
            self.status.value = f'<span class="qd-error">error: {exc}</span>'
            self.table.value = ""
            return
        shown = table[["rank", "score", *[c for c in table.columns if c.startswith("w:")]]]
        shown = shown.rename(columns=lambda c: c[2:] if c.startswith("w:") else c)
        shown["reasons"] = table["reasons"]
        # the table first: the status line naming the as-of then always describes what is shown
        self.table.value = shown.to_html(float_format=lambda v: f"{v:+.3f}", index_names=False)
        left_out = "; ".join(f"{s}: {why}" for s, why in dropped.items()) or "none"
        self.status.value = (
            f"{len(table)} picks, {self.timeframe} bars closed by {self.as_of.value.strip()} UTC "
            f"(the last opened {_stamp(table.attrs['time'])}). Left out: {left_out}"
        )


def _stamp(time: pd.Timestamp) -> str:
    """A date, or a date and time when not at midnight."""
    return f"{time:%Y-%m-%d}" if time == time.normalize() else f"{time:%Y-%m-%d %H:%M}"
