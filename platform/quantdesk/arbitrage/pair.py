"""A live pair's state and PnL, journaled so a restart resumes it and dashboards read it.

The state is a `risk_events` row of kind `arb_pair` (its payload the whole state; the latest
row is the current state), written before the orders of each step go out: after a crash the
journal says what the pair was doing (opening slice 3 of 4, closing, ...), and the venues'
positions say how far it got. PnL is split as the backtest splits it: price (realized and
unrealized, both legs), funding (payments the venues booked) and fees; money is Decimal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from quantdesk.engine.journal import Journal
from quantdesk.engine.portfolio import Portfolio
from quantdesk.model import ZERO

PAIR_EVENT = "arb_pair"
LEGS = ("a", "b")
OPENING, OPEN, CLOSING, CLOSED = "opening", "open", "closing", "closed"
WORKING = (OPENING, CLOSING)


@dataclass
class PairState:
    """One pair from the first order of its open to the last of its close."""

    pair_id: int
    status: str
    direction: int  # +1 long A / short B, -1 short A / long B
    qty: Decimal  # target base quantity of each leg (unsigned)
    opened_ms: int
    slices: int
    slices_done: int = 0
    reason: str = ""  # why it opened (entry / manual) or closed (exit reason)
    closed_ms: int | None = None
    margin: Decimal = ZERO
    # per leg: the venue portfolio's realized PnL, fees and funding when the pair began
    baseline: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    stops: dict[str, dict[str, Any]] = field(default_factory=dict)  # leg -> stop, liq, side

    def targets(self) -> dict[str, Decimal]:
        """Signed target quantity of each leg for the current step (zero while closing)."""
        if self.status in (CLOSING, CLOSED):
            return dict.fromkeys(LEGS, ZERO)
        return {"a": self.direction * self.qty, "b": -self.direction * self.qty}

    def payload(self) -> dict[str, Any]:
        """The state as JSON-able values (Decimals as text)."""
        out = asdict(self)
        out["qty"], out["margin"] = str(self.qty), str(self.margin)
        out["baseline"] = {
            leg: {k: str(v) for k, v in parts.items()} for leg, parts in self.baseline.items()
        }
        return out

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> PairState:
        """Back from `payload`."""
        values = dict(data)
        values["qty"], values["margin"] = Decimal(values["qty"]), Decimal(values["margin"])
        values["baseline"] = {
            leg: {k: Decimal(v) for k, v in parts.items()}
            for leg, parts in values.get("baseline", {}).items()
        }
        return cls(**values)


def record_pair(journal: Journal, state: PairState, now_ms: int, message: str) -> None:
    """Journal the pair's state (before the orders of the step it describes go out)."""
    journal.record_risk_event(PAIR_EVENT, message, now_ms, "info", state.payload())


def pair_history(journal: Journal) -> list[PairState]:
    """Every pair's latest state, oldest pair first."""
    events = journal.events(PAIR_EVENT)
    latest: dict[int, PairState] = {}
    for payload in events["payload"]:
        state = PairState.from_payload(payload)
        latest[state.pair_id] = state
    return [latest[k] for k in sorted(latest)]


def current_pair(journal: Journal) -> PairState | None:
    """The pair not yet closed, if any."""
    pairs = pair_history(journal)
    return pairs[-1] if pairs and pairs[-1].status != CLOSED else None


def leg_parts(portfolio: Portfolio, symbol: str) -> dict[str, Decimal]:
    """A venue portfolio's realized PnL, fees and funding in symbol (the pair's baseline)."""
    pos = portfolio.positions.get(symbol)
    if pos is None:
        return {"realized": ZERO, "fees": ZERO, "funding": ZERO}
    return {"realized": pos.realized_pnl, "fees": pos.fees, "funding": pos.funding}


@dataclass(frozen=True)
class PairPnl:
    """The pair's PnL since it began: price (both legs), funding, fees; total = p + f - fees."""

    price: dict[str, Decimal]
    funding: dict[str, Decimal]
    fees: Decimal

    @property
    def total(self) -> Decimal:
        """price + funding - fees."""
        return sum(self.price.values(), ZERO) + sum(self.funding.values(), ZERO) - self.fees

    def payload(self) -> dict[str, str]:
        """As text, for the journal and the dashboard."""
        out = {f"price_{k}": str(v) for k, v in self.price.items()}
        out |= {f"funding_{k}": str(v) for k, v in self.funding.items()}
        return out | {"fees": str(self.fees), "total": str(self.total)}


def pair_pnl(
    state: PairState,
    portfolios: Mapping[str, Portfolio],
    symbols: Mapping[str, str],
    marks: Mapping[str, Decimal],
) -> PairPnl:
    """The pair's PnL from each leg's venue portfolio, against the pair's baseline."""
    price, funding, fees = {}, {}, ZERO
    for leg in LEGS:
        parts = leg_parts(portfolios[leg], symbols[leg])
        base = state.baseline.get(leg, {"realized": ZERO, "fees": ZERO, "funding": ZERO})
        pos = portfolios[leg].positions.get(symbols[leg])
        unrealized = pos.unrealized_pnl(marks[leg]) if pos is not None and pos.quantity else ZERO
        price[leg] = parts["realized"] - base["realized"] + unrealized
        funding[leg] = parts["funding"] - base["funding"]
        fees += parts["fees"] - base["fees"]
    return PairPnl(price, funding, fees)
