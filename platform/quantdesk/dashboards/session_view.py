"""What a running session looks like, read from its journal alone (never from the engine).

`read_session(journal)` gathers one consistent-enough picture for the session dashboard, the
overview and the daily report: equity and the PnL split, positions, working and held orders,
recent fills, trading state, limit usage and risk score, breakers, alerts and health ages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

from quantdesk.engine.journal import Journal
from quantdesk.model import ZERO
from quantdesk.risk.limits import RiskLimits
from quantdesk.risk.monitors import level_for

_BREAKER = re.compile(r"circuit breaker for (?P<venue>\S+): \S+ -> (?P<state>\w+)")
_STARTS = ("session_started", "session_resumed")
ALERT_SEVERITIES = ("warning", "error", "critical")


@dataclass(frozen=True)
class SessionView:
    """One snapshot of a session as its journal tells it."""

    description: str  # "live session on sandbox: sma_cross(...) BTC/USDT"
    mode: str
    venue: str
    strategy: str
    capital: Decimal  # the session's starting cash (all symbols)
    equity: pd.Series  # float, indexed by UTC time
    pnl: dict[str, Decimal]  # total, realized, unrealized, fees, funding
    positions: pd.DataFrame
    working: pd.DataFrame  # open orders at the venue
    held: pd.DataFrame  # confirm mode: orders awaiting approval
    fills: pd.DataFrame  # newest first
    state: str  # active / reducing / halted
    state_reason: str
    usage: dict[str, float]  # limit -> fraction of the limit used
    score: float
    level: str
    breakers: dict[str, str]
    alerts: pd.DataFrame  # ts, level, message; newest first
    last_bar_ms: int | None
    last_reconcile_ms: int | None
    heartbeat_ms: int | None  # the newest write of any kind
    stopped: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def day_pnl(self) -> float:
        """Equity change since the first snapshot of the newest UTC day."""
        if self.equity.empty:
            return 0.0
        last_day = self.equity.index[-1].normalize()
        before = self.equity[self.equity.index < last_day]
        start = (
            before.iloc[-1] if len(before) else self.equity[self.equity.index >= last_day].iloc[0]
        )
        return float(self.equity.iloc[-1] - start)


def read_session(journal: Journal, limits: RiskLimits | None = None) -> SessionView:
    """Everything the dashboards show about one session."""
    limits = limits or RiskLimits()
    events = journal.events()
    record = events[events["kind"] == "session"]
    info = dict(record["payload"].iloc[0]) if len(record) else {}
    starts = events[events["kind"].isin(_STARTS)]
    description = str(starts["message"].iloc[-1]) if len(starts) else "no session started yet"
    orders = journal.orders()
    capital = Decimal(info.get("capital", "0"))
    equity_frame = journal.equity_curve()
    equity = equity_frame["equity"].astype(float)
    positions = journal.positions(include_flat=True)
    pnl = _pnl(positions, equity_frame, capital, _n_symbols(description))
    open_now = journal.orders(open_only=True)
    held_mask = (open_now["status"] == "pending") & (open_now["reason"] == "awaiting approval")
    queued = {c.target for c in journal.pending_commands()}
    held = open_now[held_mask & ~open_now["client_order_id"].isin(queued)]
    working = open_now[~held_mask & (open_now["status"] != "pending")]
    fills = journal.fills()
    state, reason = _state(events)
    usage = _usage(equity, positions[positions["quantity"] != 0], limits)
    score = min(100.0, 100.0 * max(usage.values(), default=0.0))
    stamps = [
        _last(equity_frame["ts"]), _last(fills["ts"]), _last(events["ts"]),
        _last(orders["updated_ms"]),
    ]  # fmt: skip
    reconciles = events[events["kind"].str.startswith("reconcile")]
    stopped = len(events) > 0 and events["kind"].iloc[-1] == "session_stopped"
    return SessionView(
        description=description,
        mode=str(info.get("mode", "")),
        venue=str(info.get("venue", "")),
        strategy=_strategy(orders, description),
        capital=capital * _n_symbols(description),
        equity=equity,
        pnl=pnl,
        positions=positions[positions["quantity"] != 0].reset_index(drop=True),
        working=working.reset_index(drop=True),
        held=held.reset_index(drop=True),
        fills=fills.iloc[::-1].reset_index(drop=True),
        state=state,
        state_reason=reason,
        usage=usage,
        score=score,
        level=level_for(score).value,
        breakers=_breakers(journal, events, info.get("venue", "")),
        alerts=_alerts(journal, events),
        last_bar_ms=_last(equity_frame["ts"]),
        last_reconcile_ms=_last(reconciles["ts"]) if len(reconciles) else None,
        heartbeat_ms=max((s for s in stamps if s is not None), default=None),
        stopped=stopped,
    )


def _last(column: pd.Series) -> int | None:
    return int(column.max()) if len(column) else None


def symbols_of(description: str) -> list[str]:
    """The symbols of a session_started message ("... 'name(k=v, ...)' SYM1, SYM2")."""
    if ") " not in description:
        return []
    return [s for s in description.rsplit(") ", 1)[-1].split(", ") if s]


def _n_symbols(description: str) -> int:
    return max(1, len(symbols_of(description)))


def _strategy(orders: pd.DataFrame, description: str) -> str:
    ids = [s for s in orders.get("strategy_id", []) if s and not str(s).startswith("kill")]
    if ids:
        return str(pd.Series(ids).mode().iloc[0])
    found = re.search(r": (\S+?)\(", description)
    return found.group(1).strip("'\"") if found else ""


def _pnl(
    positions: pd.DataFrame, equity: pd.DataFrame, capital: Decimal, n_symbols: int
) -> dict[str, Decimal]:
    realized = sum(positions["realized_pnl"], ZERO)
    fees = sum(positions["fees"], ZERO)
    funding = sum(positions["funding"], ZERO)
    unrealized = equity["unrealized_pnl"].iloc[-1] if len(equity) else ZERO
    unrealized = unrealized if unrealized is not None else ZERO
    total = equity["equity"].iloc[-1] - capital * n_symbols if len(equity) and capital else ZERO
    return {
        "total": total,
        "realized": realized,
        "unrealized": unrealized,
        "fees": fees,
        "funding": funding,
    }


def _state(events: pd.DataFrame) -> tuple[str, str]:
    changes = events[events["kind"] == "state_change"]
    if not len(changes):
        return "active", ""
    payload = changes["payload"].iloc[-1]
    return str(payload.get("new", "active")), str(payload.get("reason", ""))


def _usage(equity: pd.Series, open_positions: pd.DataFrame, limits: RiskLimits) -> dict[str, float]:
    """The monitors' limit usage, from journaled equity and positions (exposure at cost)."""
    if equity.empty:
        return {}
    now = float(equity.iloc[-1])
    peak = float(equity.max())
    day = equity[equity.index >= equity.index[-1].normalize()]
    before = equity[equity.index < equity.index[-1].normalize()]
    day_start = float(before.iloc[-1]) if len(before) else float(day.iloc[0])
    exposures = [
        abs(float(q) * float(p))
        for q, p in zip(open_positions["quantity"], open_positions["average_price"], strict=True)
    ]
    gross = sum(exposures)
    usage = {
        "daily_loss": max(day_start - now, 0.0) / day_start / limits.daily_loss_limit
        if day_start > 0
        else 0.0,
        "drawdown": (peak - now) / peak / limits.max_drawdown if peak > 0 else 0.0,
        "symbol_exposure": max(exposures, default=0.0) / now / limits.max_symbol_exposure
        if now > 0
        else 0.0,
        "leverage": gross / now / limits.max_leverage if now > 0 else 0.0,
        "open_positions": len(exposures) / limits.max_open_positions,
    }
    return {k: max(v, 0.0) for k, v in usage.items()}


def _breakers(journal: Journal, events: pd.DataFrame, venue: str) -> dict[str, str]:
    """The last transition each venue's breaker reported (closed when none was)."""
    states = {venue: "closed"} if venue else {}
    alerts = journal.alerts()
    texts = list(events["message"]) + list(alerts["message"])
    stamps = list(events["ts"]) + list(alerts["ts"])
    for _, text in sorted(zip(stamps, texts, strict=True), key=lambda x: x[0]):
        found = _BREAKER.search(str(text))
        if found:
            states[found["venue"]] = found["state"]
    return states


def _alerts(journal: Journal, events: pd.DataFrame, limit: int = 50) -> pd.DataFrame:
    """Alerts sent, and risk events of warning or worse, newest first."""
    alerts = journal.alerts()[["ts", "level", "message"]]
    risky = events[events["severity"].isin(ALERT_SEVERITIES)][["ts", "severity", "message"]]
    risky = risky.rename(columns={"severity": "level"})
    both = pd.concat([alerts, risky], ignore_index=True) if len(alerts) else risky
    return both.sort_values("ts", ascending=False, kind="stable").head(limit).reset_index(drop=True)
