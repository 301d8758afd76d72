"""The funding-arbitrage view: live spreads per pair (highlighted above the entry threshold) and
the pairs with their PnL, read from `quantdesk arb run` journals.

`arb_view(journals, now)` is the data (one spread row per journal: its symbol and two venues;
one row per pair), `spreads_html` / `pairs_html` render it, `ArbDashboard` refreshes it in a
Voila page (notebooks/dashboards/arb.ipynb).
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import ipywidgets as widgets

from quantdesk.arbitrage.pair import CLOSED, pair_history
from quantdesk.dashboards.session import age, now_ms
from quantdesk.engine.journal import Journal
from quantdesk.reports_format import money, pct
from quantdesk.system.arb_live import PNL_EVENT, SPREAD_EVENT

SPREAD_COLUMNS = ["pair", "venues", "APR A", "APR B", "spread", "best net", "entry", "read"]
PAIR_COLUMNS = ["session", "pair", "status", "side", "qty", "price", "funding", "fees", "total",
                "return", "reason"]  # fmt: skip


@dataclass(frozen=True)
class SpreadRow:
    """The last funding observation of one arb session."""

    session: str
    symbol: str
    venue_a: str
    venue_b: str
    apr_a: float
    apr_b: float
    spread_apr: float
    best_net_apr: float  # the better direction's net APR
    best_direction: str
    entry_apr: float
    read_ms: int

    @property
    def above(self) -> bool:
        """The better direction clears the entry threshold."""
        return self.best_net_apr > self.entry_apr


@dataclass(frozen=True)
class PairRow:
    """One pair of a session and its PnL (the last journaled split)."""

    session: str
    pair_id: int
    status: str
    direction: int
    qty: Decimal
    price: Decimal
    funding: Decimal
    fees: Decimal
    total: Decimal
    margin: Decimal
    reason: str

    @property
    def ret(self) -> float | None:
        """Total over the margin posted (None before the pair is open)."""
        return float(self.total / self.margin) if self.margin else None


@dataclass
class ArbView:
    """Everything the page shows."""

    spreads: list[SpreadRow] = field(default_factory=list)
    pairs: list[PairRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def read_arb(journal: Journal, session: str) -> tuple[SpreadRow | None, list[PairRow]]:
    """The last spread and every pair of one arb journal."""
    spreads = journal.events(SPREAD_EVENT)
    spread = None
    if len(spreads):
        p, ts = spreads["payload"].iloc[-1], int(spreads["ts"].iloc[-1])
        long_a, short_a = float(p["net_long_a"]), float(p["net_short_a"])
        spread = SpreadRow(
            session, p["symbol"], p["venue_a"], p["venue_b"], float(p["apr_a"]),
            float(p["apr_b"]), float(p["spread_apr"]), max(long_a, short_a),
            "long A / short B" if long_a >= short_a else "short A / long B",
            float(p["entry_apr"]), ts,
        )  # fmt: skip
    last_pnl: dict[int, dict[str, str]] = {}
    for payload in journal.events(PNL_EVENT)["payload"]:
        last_pnl[int(payload["pair"])] = payload
    rows = []
    for state in pair_history(journal):
        pnl = last_pnl.get(state.pair_id, {})
        price = sum((Decimal(pnl.get(f"price_{leg}", "0")) for leg in "ab"), Decimal(0))
        funding = sum((Decimal(pnl.get(f"funding_{leg}", "0")) for leg in "ab"), Decimal(0))
        rows.append(
            PairRow(
                session,
                state.pair_id,
                state.status,
                state.direction,
                state.qty,
                price,
                funding,
                Decimal(pnl.get("fees", "0")),
                Decimal(pnl.get("total", "0")),
                state.margin,
                state.reason,
            )
        )
    return spread, rows


def arb_view(journals: Sequence[str | Path], opened: dict[Path, Journal] | None = None) -> ArbView:
    """Every journal's last spread and pairs (a journal that cannot be read says why); open
    pairs first. `opened` keeps journals open between refreshes."""
    opened = {} if opened is None else opened
    view = ArbView()
    for target in journals:
        path = Path(target)
        try:
            if path not in opened:
                opened[path] = Journal(path)
            spread, pairs = read_arb(opened[path], path.name)
        except Exception as exc:  # one broken journal must not hide the others
            view.errors.append(f"{path.name}: {exc}")
            continue
        if spread is not None:
            view.spreads.append(spread)
        view.pairs += pairs
    view.pairs.sort(key=lambda r: (r.status == CLOSED, r.session, -r.pair_id))
    return view


def spreads_html(rows: Sequence[SpreadRow], now: int) -> str:
    """The spreads table; a row above its entry threshold has class qd-arb-hot."""
    head = "".join(f"<th>{c}</th>" for c in SPREAD_COLUMNS)
    body = []
    for r in rows:
        cells = [
            html.escape(r.symbol),
            html.escape(f"{r.venue_a} / {r.venue_b}"),
            pct(r.apr_a),
            pct(r.apr_b),
            pct(r.spread_apr),
            html.escape(f"{pct(r.best_net_apr)} ({r.best_direction})"),
            pct(r.entry_apr),
            age(r.read_ms, now),
        ]
        cls = ' class="qd-arb-hot" style="background:#d8f5d0;font-weight:bold"' if r.above else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not body:
        body = [f'<tr><td colspan="{len(SPREAD_COLUMNS)}"><i>no funding read yet</i></td></tr>']
    return (
        f'<table class="qd-arb-spreads"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def pairs_html(rows: Sequence[PairRow]) -> str:
    """The pairs table (open ones have class qd-arb-open)."""
    head = "".join(f"<th>{c}</th>" for c in PAIR_COLUMNS)
    body = []
    for r in rows:
        side = "long A / short B" if r.direction > 0 else "short A / long B"
        cells = [
            html.escape(r.session), str(r.pair_id), html.escape(r.status), side, str(r.qty),
            money(r.price), money(r.funding), money(-r.fees), money(r.total),
            "n/a" if r.ret is None else pct(r.ret), html.escape(r.reason),
        ]  # fmt: skip
        cls = "" if r.status == CLOSED else ' class="qd-arb-open"'
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not body:
        body = [f'<tr><td colspan="{len(PAIR_COLUMNS)}"><i>no pair yet</i></td></tr>']
    return (
        f'<table class="qd-arb-pairs"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


class ArbDashboard:
    """The page's widget; `.start()` refreshes it on the kernel's event loop."""

    def __init__(
        self,
        journals: Sequence[str | Path],
        interval_s: float = 2.0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.journals = list(journals)
        self.interval_s = interval_s
        self.clock = clock
        self.spreads = widgets.HTML(_dom_classes=["qd-arb-spreads-box"])
        self.pairs = widgets.HTML(_dom_classes=["qd-arb-pairs-box"])
        self.status = widgets.HTML(_dom_classes=["qd-arb-status"])
        self.widget = widgets.VBox(
            [
                self.status,
                widgets.HTML("<h4>Funding spreads</h4>"),
                self.spreads,
                widgets.HTML("<h4>Pairs</h4>"),
                self.pairs,
            ]
        )
        self._opened: dict[Path, Journal] = {}
        self._task: asyncio.Task[None] | None = None

    def refresh(self, view: ArbView | None = None) -> ArbView:
        """Read the journals (unless given a view) and redraw."""
        view = arb_view(self.journals, self._opened) if view is None else view
        self.spreads.value = spreads_html(view.spreads, self.clock())
        self.pairs.value = pairs_html(view.pairs)
        hot = sum(r.above for r in view.spreads)
        errors = "".join(f"<br>{html.escape(e)}" for e in view.errors)
        self.status.value = f"{len(view.spreads)} pair(s), {hot} above entry{errors}"
        return view

    async def run(self) -> None:
        """Refresh forever, reading the journals off the event loop."""
        while True:
            view = await asyncio.to_thread(arb_view, self.journals, self._opened)
            self.refresh(view)
            await asyncio.sleep(self.interval_s)

    def start(self) -> asyncio.Task[None]:
        """Start the live refresh."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_event_loop().create_task(self.run())
        return self._task
