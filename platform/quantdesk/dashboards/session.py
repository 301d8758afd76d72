"""The live session dashboard: widgets over one journal, refreshed in place by an asyncio task.

It never talks to the engine: it reads the journal (`read_session`) and writes commands into
it (approve, reject, kill, resume), which the running engine consumes. Every action asks for
confirmation first and is journaled with who asked and when.
"""

from __future__ import annotations

import asyncio
import getpass
import html
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from quantdesk.dashboards.session_view import SessionView, read_session
from quantdesk.engine.journal import Journal
from quantdesk.reports_format import money
from quantdesk.risk.limits import RiskLimits

_STATE_COLORS = {"active": "#1a7f37", "reducing": "#b58100", "halted": "#cf222e"}
_LEVEL_COLORS = {
    "normal": "#1a7f37",
    "elevated": "#b58100",
    "high": "#d4590b",
    "critical": "#cf222e",
}


_MONEY = {"average_price", "realized_pnl", "fees", "fee", "price", "trigger_price", "funding"}
_AMOUNTS = {"quantity", "amount", "filled"}


def now_ms() -> int:
    """Wall-clock milliseconds UTC."""
    return time.time_ns() // 1_000_000


def age(ms: int | None, now: int) -> str:
    """'4 s ago' for a journal timestamp."""
    if ms is None:
        return "never"
    seconds = max(0, (now - ms) // 1000)
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def frame_html(frame: pd.DataFrame, css: str, empty: str) -> str:
    """A small HTML table (Decimals shown as written), or a line saying it is empty."""
    if frame.empty:
        return f'<div class="{css}"><i>{html.escape(empty)}</i></div>'
    shown = frame.copy()
    for column in shown.columns:
        if column in _MONEY:
            shown[column] = [money(v) if v is not None else "" for v in shown[column]]
        elif column in _AMOUNTS:
            shown[column] = [f"{float(v):.8g}" if v is not None else "" for v in shown[column]]
        elif column.endswith("_ms") or column == "ts":
            shown[column] = pd.to_datetime(shown[column], unit="ms", utc=True).dt.strftime(
                "%Y-%m-%d %H:%M:%S"
            )
    return shown.to_html(index=False, classes=css, border=0, escape=True)


def usage_html(view: SessionView) -> str:
    """One bar per limit: the share of the limit in use."""
    rows = []
    for name, used in sorted(view.usage.items()):
        width = min(100.0, used * 100.0)
        color = "#cf222e" if used >= 1 else "#d4590b" if used >= 0.8 else "#1a7f37"
        rows.append(
            f'<div class="qd-limit" data-limit="{name}"><span style="display:inline-block;'
            f'width:130px">{name}</span><span style="display:inline-block;width:200px;'
            f'background:#eee;height:10px"><span style="display:block;width:{width:.0f}%;'
            f'height:10px;background:{color}"></span></span> {used:.0%}</div>'
        )
    level = view.level
    head = (
        f'<b>risk score</b> <span class="qd-score">{view.score:.0f}</span> '
        f'<span class="qd-level" style="color:{_LEVEL_COLORS.get(level, "#000")}">{level}</span>'
    )
    return head + "".join(rows)


class SessionDashboard:
    """Widgets showing one session; `.widget` to display, `.start()` to keep it live."""

    def __init__(
        self,
        journal: str,
        *,
        limits: RiskLimits | None = None,
        interval_s: float = 1.0,
        operator: str | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.journal = Journal(journal)
        self.limits = limits
        self.interval_s = interval_s
        self.clock = clock
        self.view: SessionView | None = None
        self._task: asyncio.Task[None] | None = None
        self._held_ids: tuple[str, ...] | None = None
        self._pending: Callable[[], str] | None = None

        self.header = widgets.HTML(_dom_classes=["qd-header"])
        self.health = widgets.HTML(_dom_classes=["qd-health"])
        self.pnl = widgets.HTML(_dom_classes=["qd-pnl"])
        self.figure = go.FigureWidget(
            go.Scatter(x=[], y=[], name="equity"),
            layout={"height": 320, "margin": {"l": 50, "r": 20, "t": 30, "b": 30},
                    "title": "equity"},
        )  # fmt: skip
        self.usage = widgets.HTML(_dom_classes=["qd-usage"])
        self.breakers = widgets.HTML(_dom_classes=["qd-breakers"])
        self.positions = widgets.HTML(_dom_classes=["qd-positions"])
        self.working = widgets.HTML(_dom_classes=["qd-working"])
        self.held = widgets.VBox(_dom_classes=["qd-held"])
        self.fills = widgets.HTML(_dom_classes=["qd-fills"])
        self.alerts = widgets.HTML(_dom_classes=["qd-alerts"])
        self.operator = widgets.Text(
            value=operator or getpass.getuser(),
            description="operator",
            _dom_classes=["qd-operator"],
        )
        self.kill_button = self._button("Kill", "qd-kill", "danger", self._ask_kill(False))
        self.kill_flatten_button = self._button(
            "Kill and flatten", "qd-kill-flatten", "danger", self._ask_kill(True)
        )
        self.resume_button = self._button("Resume", "qd-resume", "success", self._ask_resume)
        self.question = widgets.HTML(_dom_classes=["qd-question"])
        self.yes = self._button("Confirm", "qd-confirm-yes", "warning", self._confirm)
        self.no = self._button("Cancel", "qd-confirm-no", "", self._cancel)
        self.confirm_box = widgets.HBox(
            [self.question, self.yes, self.no], _dom_classes=["qd-confirm"]
        )
        self.confirm_box.layout.display = "none"
        self.status = widgets.HTML(_dom_classes=["qd-action-status"])
        actions = widgets.VBox(
            [
                widgets.HBox(
                    [self.operator, self.kill_button, self.kill_flatten_button, self.resume_button]
                ),
                self.confirm_box,
                self.status,
            ]
        )
        section = widgets.HTML
        self.widget = widgets.VBox(
            [
                self.header,
                self.health,
                self.pnl,
                self.figure,
                widgets.HBox([self.usage, self.breakers]),
                section("<h3>Positions</h3>"),
                self.positions,
                section("<h3>Working orders</h3>"),
                self.working,
                section("<h3>Awaiting approval</h3>"),
                self.held,
                section("<h3>Recent fills</h3>"),
                self.fills,
                section("<h3>Alerts and risk events</h3>"),
                self.alerts,
                section("<h3>Actions</h3>"),
                actions,
            ],
            _dom_classes=["qd-session"],
        )

    # --- refreshing ------------------------------------------------------------------------

    def read(self) -> SessionView:
        """A fresh view of the journal."""
        return read_session(self.journal, self.limits)

    def refresh(self, view: SessionView | None = None) -> SessionView:
        """Read the journal (unless given a view) and update every widget in place."""
        view = view or self.read()
        self.view = view
        now = self.clock()
        state_color = _STATE_COLORS.get(view.state, "#000")
        reason = f" ({html.escape(view.state_reason)})" if view.state_reason else ""
        stopped = " &middot; <b>stopped</b>" if view.stopped else ""
        self.header.value = (
            f"<h2>{html.escape(view.description)}</h2>"
            f'trading <span class="qd-state" style="color:{state_color};font-weight:bold">'
            f"{view.state}</span>{reason}{stopped}"
        )
        self.health.value = (
            f"last bar {age(view.last_bar_ms, now)} &middot; last reconcile "
            f"{age(view.last_reconcile_ms, now)} &middot; heartbeat "
            f'<span class="qd-heartbeat">{age(view.heartbeat_ms, now)}</span>'
        )
        equity = view.equity.iloc[-1] if len(view.equity) else None
        parts = [f'equity <b class="qd-equity-value">{money(equity)}</b>']
        parts += [f'{k} <b class="qd-pnl-{k}">{money(v)}</b>' for k, v in view.pnl.items()]
        self.pnl.value = " &middot; ".join(parts)
        if len(self.figure.data[0].x or ()) != len(view.equity):
            with self.figure.batch_update():
                self.figure.data[0].x = [t.isoformat() for t in view.equity.index]
                self.figure.data[0].y = [float(v) for v in view.equity.to_numpy()]
        self.usage.value = usage_html(view)
        self.breakers.value = "<b>breakers</b><br>" + "<br>".join(
            f'<span class="qd-breaker" data-venue="{html.escape(v)}">{html.escape(v)}: {s}</span>'
            for v, s in sorted(view.breakers.items())
        )
        self.positions.value = frame_html(
            view.positions[["venue", "symbol", "quantity", "average_price", "realized_pnl", "fees"]]
            if len(view.positions)
            else view.positions,
            "qd-positions-table",
            "flat",
        )
        order_cols = ["client_order_id", "symbol", "side", "type", "amount", "price",
                      "trigger_price", "status", "filled", "updated_ms"]  # fmt: skip
        self.working.value = frame_html(
            view.working[order_cols] if len(view.working) else view.working,
            "qd-working-table",
            "no working orders",
        )
        fill_cols = ["ts", "symbol", "side", "amount", "price", "fee", "client_order_id"]
        self.fills.value = frame_html(
            view.fills[fill_cols].head(20) if len(view.fills) else view.fills,
            "qd-fills-table",
            "no fills yet",
        )
        self.alerts.value = frame_html(view.alerts.head(20), "qd-alerts-table", "no alerts")
        self._refresh_held(view)
        return view

    def _refresh_held(self, view: SessionView) -> None:
        ids = tuple(view.held["client_order_id"]) if len(view.held) else ()
        if ids == self._held_ids:
            return  # rebuilding would drop a click in flight
        self._held_ids = ids
        rows: list[widgets.Widget] = []
        for order in view.held.to_dict("records"):
            cid = order["client_order_id"]
            text = f"{order['side']} {order['amount']} {order['symbol']} ({order['type']})"
            label = widgets.HTML(f"<code>{html.escape(cid)}</code> {html.escape(text)}")
            approve = self._button(
                "Approve", "qd-approve", "success", self._ask_order(cid, text, "approve")
            )
            reject = self._button(
                "Reject", "qd-reject", "warning", self._ask_order(cid, text, "reject")
            )
            rows.append(widgets.HBox([label, approve, reject], _dom_classes=["qd-held-order"]))
        if not rows:
            rows = [widgets.HTML("<i>nothing awaits approval</i>")]
        self.held.children = rows

    async def run(self) -> None:
        """Refresh forever; the journal is read off the event loop, widgets updated on it."""
        while True:
            try:
                view = await asyncio.to_thread(self.read)
                self.refresh(view)
            except Exception as exc:  # a locked or half-migrated journal: say so, keep going
                self.status.value = (
                    f'<span class="qd-error">read failed: {html.escape(str(exc))}</span>'
                )
            await asyncio.sleep(self.interval_s)

    def start(self) -> asyncio.Task[None]:
        """Start the live refresh on the kernel's running event loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_event_loop().create_task(self.run())
        return self._task

    # --- actions ---------------------------------------------------------------------------

    def _button(
        self, text: str, css: str, style: str, on_click: Callable[[], None]
    ) -> widgets.Button:
        button = widgets.Button(description=text, button_style=style, _dom_classes=[css])
        button.on_click(lambda _b: on_click())
        return button

    def _who(self) -> dict[str, Any]:
        return {"by": self.operator.value.strip() or "unknown", "via": "dashboard"}

    def _ask(self, question: str, act: Callable[[], str]) -> None:
        self._pending = act
        self.question.value = f"<b>{html.escape(question)}</b>"
        self.confirm_box.layout.display = "flex"

    def _confirm(self) -> None:
        act, self._pending = self._pending, None
        self.confirm_box.layout.display = "none"
        if act is not None:
            self.status.value = html.escape(act())

    def _cancel(self) -> None:
        self._pending = None
        self.confirm_box.layout.display = "none"
        self.status.value = "cancelled"

    def _ask_kill(self, flatten: bool) -> Callable[[], None]:
        def ask() -> None:
            what = (
                "cancel every working order, close every position"
                if flatten
                else ("cancel every working order")
            )
            self._ask(f"Kill the session: {what} and halt trading?", lambda: self.kill(flatten))

        return ask

    def _ask_resume(self) -> None:
        self._ask("Resume trading?", self.resume)

    def _ask_order(self, cid: str, text: str, kind: str) -> Callable[[], None]:
        return lambda: self._ask(
            f"{kind.capitalize()} order {cid} ({text})?", lambda: self.decide(cid, kind)
        )

    def kill(self, flatten: bool) -> str:
        """Queue a kill command (the engine cancels, optionally flattens, then halts)."""
        payload = {
            **self._who(),
            "flatten": flatten,
            "reason": f"dashboard kill by {self._who()['by']}",
        }
        command = self.journal.add_command("kill", self.clock(), payload=payload)
        return f"kill command #{command} queued (flatten: {'yes' if flatten else 'no'})"

    def resume(self) -> str:
        """Queue a resume command."""
        payload = {**self._who(), "reason": f"dashboard resume by {self._who()['by']}"}
        command = self.journal.add_command("resume", self.clock(), payload=payload)
        return f"resume command #{command} queued"

    def decide(self, client_order_id: str, kind: str) -> str:
        """Queue approve or reject for one held order."""
        command = self.journal.add_command(
            kind, self.clock(), target=client_order_id, payload=self._who()
        )
        self._held_ids = None  # rebuild the list on the next refresh
        return f"{kind} {client_order_id}: command #{command} queued"


__all__ = ["SessionDashboard", "age", "frame_html", "usage_html"]
