"""The daily report of a paper or live session, from its journal: one UTC day's PnL and its
split, equity (against buy and hold when the symbol's bars are stored), trades and fees,
risk events and alerts, VaR/CVaR of the equity's moves, and limit usage at the day's end;
slippage of each fill against its order's decision price (journaled with the order), and
live-vs-backtest drift: the session's bars (journaled as it saw them) replayed through the engine
with the same strategy, params and settings (`quantdesk.system.replay.replay_session`), trade by
trade against the live fills.

Signs: slippage and drift in bps are signed against the trader (positive: paid more on a buy,
received less on a sell); drift PnL is live minus replay (negative: live did worse).

Run as `quantdesk report daily --journal PATH [--date D]` (notebooks/daily.ipynb).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from quantdesk.dashboards.session_view import SessionView, read_session, symbols_of
from quantdesk.data.timeframes import timeframe_ms
from quantdesk.engine.journal import Journal
from quantdesk.engine.portfolio import Portfolio
from quantdesk.errors import QuantdeskError
from quantdesk.model import ZERO, Fill, dec
from quantdesk.reports_format import drawdown, money, pct
from quantdesk.risk.var import historical_cvar, historical_var
from quantdesk.strategy import StrategyError, strategy_class
from quantdesk.system.replay import replay_session

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
        total = dec(self.equity.iloc[-1]) - dec(self.equity.iloc[0])
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

    @cached_property
    def decision_prices(self) -> dict[str, Decimal | None]:
        """client order id -> the price its strategy decided on (None: not journaled)."""
        orders = self.journal.orders()
        return dict(zip(orders["client_order_id"], orders["decision_price"], strict=True))

    def slippage(self) -> pd.DataFrame:
        """The day's fills against their decision price: slippage in bps and in quote money,
        both signed against the trader; empty (None) where no decision price is journaled."""
        rows = []
        for f in self.fills.itertuples():
            decided = self.decision_prices.get(f.client_order_id)
            bps = cost = None
            if decided:
                sign = _against(f.side)
                bps = sign * (f.price - decided) / decided * BPS
                cost = sign * (f.price - decided) * f.amount
            rows.append(
                (f.ts, f.client_order_id, f.symbol, f.side, f.amount, f.price, decided, f.fee,
                 f.fee_currency, bps, cost)
            )  # fmt: skip
        return pd.DataFrame(rows, columns=SLIPPAGE_COLUMNS)

    def slippage_summary(self) -> dict[str, Any]:
        """Fills, those with a decision price, slippage cost and its notional-weighted bps, fees."""
        table = self.slippage()
        known = table[table["decision_price"].notna()]
        cost = sum(known["slippage_cost"], ZERO)
        notional = sum((a * d for a, d in zip(known["amount"], known["decision_price"],
                                               strict=True)), ZERO)  # fmt: skip
        return {
            "fills": len(table),
            "with_decision_price": len(known),
            "slippage_cost": cost,
            "slippage_bps": cost / notional * BPS if notional else None,
            "fees": sum(table["fee"], ZERO),
        }

    def slippage_table(self) -> pd.DataFrame:
        """The slippage of each fill, for reading."""
        table = self.slippage()
        return pd.DataFrame(
            {
                "time": pd.to_datetime(table["ts"], unit="ms", utc=True).dt.strftime("%H:%M:%S"),
                "symbol": table["symbol"],
                "side": table["side"],
                "price": [money(p) for p in table["price"]],
                "decision price": ["" if d is None else money(d) for d in table["decision_price"]],
                "slippage bps": ["" if b is None else f"{b:.2f}" for b in table["slippage_bps"]],
                "slippage": ["" if c is None else money(c) for c in table["slippage_cost"]],
                "fee": [money(f) for f in table["fee"]],
            }
        )

    def slippage_note(self) -> str:
        """One sentence on the slippage totals, and on fills without a decision price."""
        s = self.slippage_summary()
        if not s["fills"]:
            return "No fills this day."
        parts = []
        if s["with_decision_price"]:
            parts.append(
                f"Slippage against the decision price: {money(s['slippage_cost'])} "
                f"({s['slippage_bps']:.2f} bps, positive = paid) over "
                f"{s['with_decision_price']} fills; fees {money(s['fees'])}."
            )
        missing = s["fills"] - s["with_decision_price"]
        if missing:
            parts.append(
                f"{missing} fill(s) have no decision price in the journal (orders journaled "
                "before decision prices were, or not a strategy's): their slippage is left empty."
            )
        return " ".join(parts)

    def session_record(self) -> dict[str, Any] | None:
        """How to replay the session trading at the day's end: its newest start record before
        the day ends, with the warm-up of the first start of that same strategy, params and
        symbols (a session restarted after a crash continues the same run, position included)."""
        events = self.journal.events()
        starts = events[
            events["kind"].isin(["session_started", "session_resumed"])
            & (events["ts"] < self.end_ms)
        ]
        records = [dict(p) for p in starts["payload"] if "strategy" in p and "rules" in p]
        if not records:
            return None
        newest = records[-1]
        same = ("strategy", "params", "symbols", "timeframe")
        first = next(r for r in records if all(r[k] == newest[k] for k in same))
        return newest | {"warmup_until_ms": first.get("warmup_until_ms")}

    @cached_property
    def drift(self) -> Drift:
        """The day's live fills against the replay of the bars the session saw."""
        empty = pd.DataFrame(columns=DRIFT_COLUMNS)
        record = self.session_record()
        if record is None:
            return Drift(empty, None, "the journal does not say how to replay its session "
                         "(written before sessions journaled their strategy and bars)")  # fmt: skip
        tf = timeframe_ms(record["timeframe"])
        bars = {}
        for symbol in record["symbols"]:
            rows = self.journal.bars(symbol)
            rows = rows[rows["ts"] + tf <= self.end_ms]
            warm = rows[rows["ts"] <= int(record.get("warmup_until_ms") or -1)]
            later = rows[rows["ts"] > int(record.get("warmup_until_ms") or -1)]
            rows = pd.concat([warm.tail(int(record["window"])), later])
            if rows.empty:
                return Drift(empty, None, f"the journal holds no bars of {symbol}")
            bars[symbol] = rows[["open", "high", "low", "close", "volume"]].astype(float)
        try:
            cls = strategy_class(record["strategy"], record.get("strategies_dir"))
        except StrategyError:
            cls = strategy_class(record["strategy"])  # the journal moved: the default folder
        result = replay_session(cls(**record["params"]), record, bars)
        mark = dec(float(next(iter(bars.values()))["close"].iloc[-1]))
        live = self._by_order(self.journal.load_fills())
        replayed = self._by_order(result.fills)
        rows = []
        for cid in sorted(set(live) | set(replayed), key=lambda c: (live.get(c) or replayed[c])[0]):
            lv, rp = live.get(cid), replayed.get(cid)
            side, symbol = (lv or rp)[5], (lv or rp)[6]
            effect_live = _effect(side, lv[1], lv[2], lv[3], mark) if lv else ZERO
            effect_replay = _effect(side, rp[1], rp[2], rp[3], mark) if rp else ZERO
            bps = _against(side) * (lv[2] - rp[2]) / rp[2] * BPS if lv and rp else None
            rows.append(
                (cid, symbol, side, *(lv[:4] if lv else (None,) * 4),
                 *(rp[:4] if rp else (None,) * 4), bps, effect_live - effect_replay)
            )  # fmt: skip
        return Drift(pd.DataFrame(rows, columns=DRIFT_COLUMNS), mark)

    def _by_order(
        self, fills: list[Fill]
    ) -> dict[str, tuple[int, Decimal, Decimal, Decimal, str, str, str]]:
        """The day's fills per order: (first ts, amount, average price, fees, client id, side,
        symbol); a partly filled order's fills are one trade."""
        out: dict[str, list[Fill]] = {}
        for fill in fills:
            if self.start_ms <= fill.timestamp < self.end_ms:
                out.setdefault(fill.client_order_id, []).append(fill)
        trades = {}
        for cid, group in out.items():
            amount = sum((f.amount for f in group), ZERO)
            price = sum((f.notional for f in group), ZERO) / amount
            fee = sum((f.fee for f in group), ZERO)
            first = min(f.timestamp for f in group)
            trades[cid] = (first, amount, price, fee, cid, group[0].side.value, group[0].symbol)
        return trades

    def drift_table(self) -> pd.DataFrame:
        """Live against replay per trade, for reading."""
        t = self.drift.trades

        def clock(values: pd.Series) -> list[str]:
            return [
                "" if v is None or v != v else pd.Timestamp(int(v), unit="ms").strftime("%H:%M")
                for v in values
            ]

        def num(values: pd.Series, fmt: str = ".8g") -> list[str]:
            return ["" if v is None else f"{float(v):{fmt}}" for v in values]

        return pd.DataFrame(
            {
                "symbol": t["symbol"],
                "side": t["side"],
                "live time": clock(t["live_ts"]),
                "replay time": clock(t["replay_ts"]),
                "live amount": num(t["live_amount"]),
                "replay amount": num(t["replay_amount"]),
                "live price": [money(p) for p in t["live_price"]],
                "replay price": [money(p) for p in t["replay_price"]],
                "drift bps": num(t["drift_bps"], ".2f"),
                "drift PnL": [money(p) for p in t["drift_pnl"]],
            }
        )

    def drift_note(self) -> str:
        """One sentence on the drift totals (or why there is none)."""
        drift = self.drift
        if drift.note:
            return f"No live-vs-backtest drift: {drift.note}."
        if drift.trades.empty:
            return "No trades this day, live or in the replay."
        t = drift.trades
        both = int((t["live_amount"].notna() & t["replay_amount"].notna()).sum())
        bps = "n/a" if drift.bps is None else f"{drift.bps:.2f} bps"
        return (
            f"Live minus replay PnL: {money(drift.pnl)} ({bps} against the trader); "
            f"{both} trades in both, {int(t['replay_amount'].isna().sum())} only live, "
            f"{int(t['live_amount'].isna().sum())} only in the replay."
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


BPS = Decimal(10_000)
SLIPPAGE_COLUMNS = [
    "ts", "client_order_id", "symbol", "side", "amount", "price", "decision_price", "fee",
    "fee_currency", "slippage_bps", "slippage_cost",
]  # fmt: skip
DRIFT_COLUMNS = [
    "client_order_id", "symbol", "side", "live_ts", "live_amount", "live_price", "live_fee",
    "replay_ts", "replay_amount", "replay_price", "replay_fee", "drift_bps", "drift_pnl",
]  # fmt: skip


def _against(side: str) -> int:
    """+1 for a buy, -1 for a sell: a higher price costs a buyer and pays a seller."""
    return 1 if side == "buy" else -1


def _effect(side: str, amount: Decimal, price: Decimal, fee: Decimal, mark: Decimal) -> Decimal:
    """What one trade adds to PnL, its position valued at `mark`."""
    return _against(side) * amount * (mark - price) - fee


@dataclass
class Drift:
    """Live fills against the replay of the same bars, one row per order (DRIFT_COLUMNS)."""

    trades: pd.DataFrame
    mark: Decimal | None  # the day's last close, where a difference in amount is valued
    note: str = ""  # why there is no replay, when there is none

    @property
    def pnl(self) -> Decimal:
        """Total drift PnL, live minus replay."""
        return sum(self.trades["drift_pnl"], ZERO)

    @property
    def bps(self) -> Decimal | None:
        """Drift PnL against the replay's traded notional, in bps against the trader."""
        notional = sum(
            (a * p for a, p in zip(self.trades["replay_amount"], self.trades["replay_price"],
                                   strict=True) if a is not None),
            ZERO,
        )  # fmt: skip
        return -self.pnl / notional * BPS if notional else None


def daily_report(
    journal: str | Path, day: str | None = None, data_root: str | None = None
) -> DailyReport:
    """A DailyReport over a journal path or URL."""
    target = str(journal)
    if "://" not in target and not Path(target).is_file():
        raise QuantdeskError(f"no journal at {journal}")
    opened = Journal(target)
    return DailyReport(opened, parse_day(day, opened), data_root)
