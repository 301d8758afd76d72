"""Every session in a folder of journals on one page, each linking to its session dashboard."""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import ipywidgets as widgets

from quantdesk.dashboards.session import age, now_ms
from quantdesk.dashboards.session_view import read_session
from quantdesk.dashboards.sources import journal_files
from quantdesk.engine.journal import Journal
from quantdesk.reports_format import money

COLUMNS = [
    "session",
    "strategy",
    "venue",
    "mode",
    "state",
    "equity",
    "day PnL",
    "risk",
    "heartbeat",
]


def overview_rows(
    folder: str | Path, now: int, opened: dict[Path, Journal] | None = None
) -> list[dict[str, str]]:
    """One row per journal in the folder (a journal that cannot be read says why); `opened`
    keeps journals open between refreshes."""
    opened = {} if opened is None else opened
    rows = []
    for path in journal_files(folder):
        try:
            if path not in opened:
                opened[path] = Journal(path)
            view = read_session(opened[path])
        except Exception as exc:  # one broken journal must not hide the others
            rows.append({"session": path.name, "strategy": f"unreadable: {exc}"})
            continue
        equity = view.equity.iloc[-1] if len(view.equity) else None
        rows.append(
            {
                "session": path.name,
                "strategy": view.strategy,
                "venue": view.venue,
                "mode": view.mode,
                "state": view.state + (" (stopped)" if view.stopped else ""),
                "equity": money(equity),
                "day PnL": money(view.day_pnl),
                "risk": f"{view.level} ({view.score:.0f})",
                "heartbeat": age(view.heartbeat_ms, now),
            }
        )
    return rows


def overview_html(rows: list[dict[str, str]]) -> str:
    """The table, each session name a link to its dashboard."""
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    body = []
    for row in rows:
        name = row["session"]
        href = f"session.ipynb?journal={quote(name)}"
        link = f'<a class="qd-session-link" href="{href}">{html.escape(name)}</a>'
        cells = [link] + [html.escape(row.get(c, "")) for c in COLUMNS[1:]]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not body:
        body = [f'<tr><td colspan="{len(COLUMNS)}"><i>no journals in the folder</i></td></tr>']
    rows_html = "".join(body)
    return (
        f'<table class="qd-overview-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows_html}</tbody></table>"
    )


class SessionsOverview:
    """The overview widget; `.start()` refreshes it on the kernel's event loop."""

    def __init__(
        self, folder: str | Path, interval_s: float = 2.0, clock: Callable[[], int] = now_ms
    ) -> None:
        self.folder = Path(folder)
        self.interval_s = interval_s
        self.clock = clock
        self.table = widgets.HTML(_dom_classes=["qd-overview"])
        self.status = widgets.HTML(_dom_classes=["qd-overview-status"])
        self.widget = widgets.VBox([self.status, self.table])
        self._task: asyncio.Task[None] | None = None
        self._journals: dict[Path, Journal] = {}

    def refresh(self, rows: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
        """Read every journal (unless given rows) and redraw the table."""
        started = time.monotonic()
        rows = overview_rows(self.folder, self.clock(), self._journals) if rows is None else rows
        self.table.value = overview_html(rows)
        took = time.monotonic() - started
        where = html.escape(str(self.folder))
        self.status.value = f"{len(rows)} session(s) in {where}, read in {took:.2f} s"
        return rows

    async def run(self) -> None:
        """Refresh forever, reading the journals off the event loop."""
        while True:
            rows = await asyncio.to_thread(overview_rows, self.folder, self.clock(), self._journals)
            self.refresh(rows)
            await asyncio.sleep(self.interval_s)

    def start(self) -> asyncio.Task[None]:
        """Start the live refresh."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_event_loop().create_task(self.run())
        return self._task
