"""The daily report of a paper or live session, from its journal: one UTC day's PnL and its
split, equity (against buy and hold when the symbol's bars are stored), trades and fees,
risk events and alerts, VaR/CVaR of the equity's moves, and limit usage at the day's end.

Run as `quantdesk report daily --journal PATH [--date D]` (notebooks/daily.ipynb).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from quantdesk.dashboards.session_view import SessionView, read_session, symbols_of
from quantdesk.engine.journal import Journal
from quantdesk.engine.portfolio import Portfolio
from quantdesk.errors import QuantdeskError
from quantdesk.reports_format import drawdown, money, pct
from quantdesk.risk.var import historical_cvar, historical_var

ZERO = Decimal(0)
DAY_MS = 86_400_000


def parse_day(text: str | None, journal: Journal) -> date:
    """--date as a UTC day; default: the day of the journal's newest equity snapshot."""
    if text:
        try:
            return date.fromisoformat(str(text))
        except ValueError:
            raise QuantdeskError(f"--date {text!r} is not a YYYY-MM-DD day") from None
    curve = journal.equity_curve()
    if curve.empty:
        raise QuantdeskError("the journal holds no equity yet: nothing to report")
    return curve.index[-1].date()


@dataclass
class DailyReport:
    """One session's day, read from its journal."""

    journal: Journal
    day: date
    data_root: str | None = None

    @property
    def start_ms(self) -> int:
        """The day's first millisecond (UTC)."""
        return (
            int(datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC).timestamp())
            * 1000
        )

    @property
    def end_ms(self) -> int:
        """The next day's first millisecond."""
        return self.start_ms + DAY_MS

    @cached_property
    def view(self) -> SessionView:
        """The session as the journal tells it now."""
        return read_session(self.journal)

    @cached_property
    def equity(self) -> pd.Series:
        """Equity snapshots of the day, preceded by the last one before it (the day's open)."""
        curve = self.view.equity
        start = pd.Timestamp(self.start_ms, unit="ms", tz="UTC")
        end = pd.Timestamp(self.end_ms, unit="ms", tz="UTC")
        before = curve[curve.index < start].tail(1)
        return pd.concat([before, curve[(curve.index >= start) & (curve.index < end)]])

    @cached_property
    def fills(self) -> pd.DataFrame:
        """The day's fills, in journal order."""
        fills = self.journal.fills(since=self.start_ms)
        return fills[fills["ts"] < self.end_ms].reset_index(drop=True)

    def pnl_split(self) -> dict[str, Decimal]:
        """Day PnL = realized + unrealized change - fees - funding (realized and fees from the
        day's fills replayed through the engine's portfolio)."""
        if self.equity.empty:
            return dict.fromkeys(("total", "realized", "unrealized", "fees", "funding"), ZERO)
        total = Decimal(str(self.equity.iloc[-1])) - Decimal(str(self.equity.iloc[0]))
        before, after = self._book(self.start_ms), self._book(self.end_ms)
        realized = after[0] - before[0]
        fees = after[1] - before[1]
        funding = after[2] - before[2]
        unrealized = total - realized + fees + funding
        return {
            "total": total,
            "realized": realized,
            "unrealized": unrealized,
            "fees": fees,
            "funding": funding,
        }

    def _book(self, until_ms: int) -> tuple[Decimal, Decimal, Decimal]:
        """Realized PnL, fees and funding of every fill before until_ms."""
        portfolio = Portfolio(cash={"USDT": Decimal(10**12)}, currency="USDT")
        for fill in self.journal.load_fills():
            if fill.timestamp < until_ms:
                portfolio.apply_fill(fill)
        positions = portfolio.positions.values()
        return (
            sum((p.realized_pnl for p in positions), ZERO),
            sum((p.fees for p in positions), ZERO),
            sum((p.funding for p in positions), ZERO),
        )

    def summary(self) -> pd.DataFrame:
        """The day's key figures, formatted."""
        split = self.pnl_split()
        equity = self.equity
        ret = float(equity.iloc[-1] / equity.iloc[0] - 1.0) if len(equity) else float("nan")
        dd = float((equity / equity.cummax() - 1.0).min()) if len(equity) else float("nan")
        rows = [
            ("Session", self.view.description),
            ("Day (UTC)", self.day.isoformat()),
            ("Equity at the close", money(equity.iloc[-1] if len(equity) else None)),
            ("Day PnL", money(split["total"])),
            ("  realized", money(split["realized"])),
            ("  unrealized change", money(split["unrealized"])),
            ("  fees", money(-split["fees"])),
            ("  funding", money(-split["funding"])),
            ("Day return", pct(ret)),
            ("Max drawdown in the day", drawdown(dd)),
            ("Fills", str(len(self.fills))),
            ("Trading state now", self.view.state),
        ]
        bench = self.benchmark()
        if bench is not None and len(bench) > 1:
            rows.insert(9, ("Buy-and-hold return", pct(float(bench.iloc[-1] / bench.iloc[0] - 1))))
        return pd.DataFrame(rows, columns=["", "value"]).set_index("")

    def benchmark(self) -> pd.Series | None:
        """Buy and hold of the session's symbols (equal parts) over the day, from stored bars;
        None when the store has none."""
        if self.equity.empty:
            return None
        from quantdesk.backtest.session import open_store

        try:
            store = open_store(self.data_root)
        except QuantdeskError:
            return None
        closes = []
        for symbol in symbols_of(self.view.description):
            keys = [
                k
                for k in store.keys(exchange=None)
                if k.symbol == symbol.split(":")[0] and not k.is_funding
            ]
            if not keys:
                return None
            bars = store.read(keys[0])
            if (
                bars.empty
                or bars.index[-1] < self.equity.index[0]
                or bars.index[0] > self.equity.index[-1]
            ):
                return None  # the stored bars do not cover the day: no benchmark beats a flat one
            closes.append(bars["close"].reindex(self.equity.index, method="ffill"))
        if not closes:
            return None
        frame = pd.concat(closes, axis=1).dropna()
        if frame.empty:
            return None
        return (frame / frame.iloc[0]).mean(axis=1) * float(self.equity.loc[frame.index[0]])

    def equity_figure(self) -> go.Figure:
        """The day's equity, and buy and hold when bars are stored."""
        fig = go.Figure(go.Scatter(x=self.equity.index, y=self.equity.to_numpy(), name="equity"))
        bench = self.benchmark()
        if bench is not None:
            fig.add_trace(
                go.Scatter(
                    x=bench.index, y=bench.to_numpy(), name="buy and hold",
                    line={"color": "gray", "dash": "dot"},
                )
            )  # fmt: skip
        fig.update_layout(
            title=f"Equity {self.day}", height=380, margin={"l": 50, "r": 20, "t": 50, "b": 30}
        )
        return fig

    def trades_table(self) -> pd.DataFrame:
        """The day's fills with their notional and fee, for reading."""
        if self.fills.empty:
            return pd.DataFrame(columns=["time", "symbol", "side", "amount", "price", "fee"])
        fills = self.fills
        return pd.DataFrame(
            {
                "time": pd.to_datetime(fills["ts"], unit="ms", utc=True).dt.strftime("%H:%M:%S"),
                "symbol": fills["symbol"],
                "side": fills["side"],
                "amount": [f"{float(a):.8g}" for a in fills["amount"]],
                "price": [money(p) for p in fills["price"]],
                "notional": [
                    money(a * p) for a, p in zip(fills["amount"], fills["price"], strict=True)
                ],
                "fee": [
                    f"{float(f):.6g} {c}"
                    for f, c in zip(fills["fee"], fills["fee_currency"], strict=True)
                ],
                "order": fills["client_order_id"].str.slice(0, 12),
            }
        )

    def events_table(self) -> pd.DataFrame:
        """The day's risk events and alerts, oldest first."""
        events = self.journal.events()
        alerts = self.journal.alerts()
        both = pd.concat(
            [
                events[["ts", "severity", "kind", "message"]],
                alerts.rename(columns={"level": "severity"}).assign(kind="alert")[
                    ["ts", "severity", "kind", "message"]
                ],
            ],
            ignore_index=True,
        )
        both = both[(both["ts"] >= self.start_ms) & (both["ts"] < self.end_ms)]
        both = both[both["kind"] != "session"].sort_values("ts", kind="stable")
        both["ts"] = pd.to_datetime(both["ts"], unit="ms", utc=True).dt.strftime("%H:%M:%S")
        return both.rename(columns={"ts": "time"}).reset_index(drop=True)

    def var_table(self, levels: tuple[float, ...] = (0.95, 0.99)) -> pd.DataFrame:
        """Historical VaR and CVaR of the equity's moves between snapshots, in % of equity."""
        moves = self.equity.pct_change().dropna().to_numpy()
        moves = moves[np.isfinite(moves)]
        rows = []
        for level in levels:
            if moves.size < 2:
                rows.append((f"{level:.0%}", "n/a", "n/a"))
                continue
            rows.append(
                (
                    f"{level:.0%}",
                    pct(historical_var(moves, level)),
                    pct(historical_cvar(moves, level)),
                )
            )
        return pd.DataFrame(rows, columns=["level", "VaR", "CVaR"]).set_index("level")

    def usage_table(self) -> pd.DataFrame:
        """Limit usage now (fraction of each limit), as the session dashboard shows it."""
        return pd.DataFrame(
            [(k, f"{v:.0%}") for k, v in sorted(self.view.usage.items())], columns=["limit", "used"]
        ).set_index("limit")


def daily_report(
    journal: str | Path, day: str | None = None, data_root: str | None = None
) -> DailyReport:
    """A DailyReport over a journal path or URL."""
    target = str(journal)
    if "://" not in target and not Path(target).is_file():
        raise QuantdeskError(f"no journal at {journal}")
    opened = Journal(target)
    return DailyReport(opened, parse_day(day, opened), data_root)
