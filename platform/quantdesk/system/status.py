"""What a running session tells the person watching it: one status line per bar, warnings and
critical risk events as they happen, and the figures of the stop summary.

Everything here reads the kernel, the portfolio, the risk gate's decision counts and the
journal; nothing changes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from quantdesk.engine.portfolio import Portfolio
from quantdesk.model import ZERO

ALERT_SEVERITIES = ("warning", "critical")


def _fmt(value: Decimal, places: int = 2) -> str:
    return f"{value:,.{places}f}"


@dataclass
class StatusBoard:
    """Remembers what it already reported, so each line shows what changed on this bar."""

    symbols: Sequence[str]
    capital: Decimal
    seen_orders: set[str] = field(default_factory=set)
    decisions: dict[str, int] = field(default_factory=dict)
    fills: int = 0
    last_event_id: int = 0

    def line(self, kernel: Any, portfolio: Portfolio, gate: Any) -> str:
        """One line for the bar the kernel just processed."""
        when = datetime.fromtimestamp(kernel.bar_ms / 1000, UTC) if kernel.bar_ms else None
        equity = kernel.equity()
        change = (equity / self.capital - 1) * 100 if self.capital else ZERO
        held = []
        for symbol in self.symbols:
            pos = portfolio.positions.get(symbol)
            held.append(f"{symbol} {pos.quantity.normalize() if pos and pos.quantity else 'flat'}")
        sent = [
            o
            for cid, o in kernel.om.orders.items()
            if o.submit_attempts and cid not in self.seen_orders
        ]
        self.seen_orders.update(o.client_order_id for o in sent)
        tags = sorted({kernel.order_tag(o.client_order_id) for o in sent} - {""})
        decisions = dict(getattr(gate, "decisions", {}) or {})
        delta = {k: v - self.decisions.get(k, 0) for k, v in decisions.items()}
        self.decisions = decisions
        denied = {k: v for k, v in delta.items() if v and k.startswith("denied")}
        reduced = {k: v for k, v in delta.items() if v and k.startswith("reduced")}
        fills = len(kernel.fills)
        new_fills, self.fills = fills - self.fills, fills
        parts = [
            f"bar {when:%Y-%m-%d %H:%M}" if when else "bar -",
            f"equity {_fmt(equity)} ({change:+.2f}%)",
            ", ".join(held),
            f"signal {'/'.join(tags) if tags else '-'}",
            f"orders +{len(sent)}"
            + (f", denied {_why(denied)}" if denied else "")
            + (f", reduced {_why(reduced)}" if reduced else ""),
            f"fills +{new_fills}",
            f"risk {getattr(gate, 'state', 'active')}",
        ]
        return " | ".join(parts)

    def alerts(self, events: Any) -> list[str]:
        """Warning and critical risk events journaled since the last call, one line each."""
        out = []
        if events is None or len(events) == 0:
            return out
        fresh = events[events["id"] > self.last_event_id]
        if len(fresh):
            self.last_event_id = int(fresh["id"].max())
        for _, row in fresh.iterrows():
            if row["severity"] in ALERT_SEVERITIES:
                out.append(f"{row['severity'].upper()}: {row['kind']}: {row['message']}")
        return out


def _why(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {key.split(': ', 1)[-1]}" for key, n in sorted(counts.items()))


@dataclass(frozen=True)
class SessionFigures:
    """The stop summary's money: PnL split into price, fees and funding (quote currency)."""

    capital: Decimal
    equity: Decimal
    fees: Decimal
    funding: Decimal

    @property
    def pnl(self) -> Decimal:
        """Equity minus starting capital: price PnL less fees plus funding."""
        return self.equity - self.capital

    @property
    def price_pnl(self) -> Decimal:
        """What prices made, before fees and funding."""
        return self.pnl + self.fees - self.funding

    def describe(self, quote: str) -> str:
        """'PnL +12.30 USDT (+0.61%): price +14.10, fees -1.80, funding +0.00'."""
        pct = (self.pnl / self.capital * 100) if self.capital else ZERO
        return (
            f"PnL {self.pnl:+,.2f} {quote} ({pct:+.2f}%): price {self.price_pnl:+,.2f}, "
            f"fees {-self.fees:+,.2f}, funding {self.funding:+,.2f}"
        )


def session_figures(portfolio: Portfolio, capital: Decimal, equity: Decimal) -> SessionFigures:
    """The session's figures from its portfolio (fees valued in the quote currency)."""
    fees = sum((p.fees for p in portfolio.positions.values()), ZERO)
    return SessionFigures(capital, equity, fees, portfolio.funding)


__all__ = ["SessionFigures", "StatusBoard", "session_figures"]
