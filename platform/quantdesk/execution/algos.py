"""Execution algorithms: TWAP, VWAP and iceberg as schedules of child orders.

An algorithm is a plain state (`AlgoState`) and functions over it: `due` says which children to
send now, `record` books what the venue says a child filled (cumulative, so a repeated report
changes nothing), `resume` adopts what the venue knows after a restart, `cancel` ends it.
Child client ids are deterministic (`<algo id>-<k>`), so a child the venue already has, sent
before a crash that lost the state's last save, is adopted and never sent again. The state
serializes to a JSON-able dict (`to_dict` / `from_dict`, Decimals as strings) for the journal.

- TWAP: `slices` children of equal target at start + k x (end - start) / slices.
- VWAP: the same times, each child's share of the total from a volume profile (e.g. the volume
  of the same intervals on past days).
- Iceberg: one child of at most `show` at a time; the next goes when the last is done.

Each schedule child tops the cumulative amount sent up to its cumulative target, so a child
that filled short (e.g. a slippage cap) is made up by the next one, and the total never
exceeds the parent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from quantdesk.execution.books import ExecutionError
from quantdesk.model import ZERO, Side, dec

KINDS = ("twap", "vwap", "iceberg")


@dataclass(frozen=True)
class Child:
    """One child order to send: its deterministic client id and amount."""

    client_id: str
    side: Side
    amount: Decimal


@dataclass
class AlgoState:
    """Everything an algorithm needs to go on after a restart."""

    algo_id: str
    kind: str
    side: Side
    total: Decimal
    step: Decimal  # the venue's amount step: children are multiples of it
    start_ms: int = 0
    end_ms: int = 0
    weights: tuple[Decimal, ...] = ()  # per slice, summing to 1 (twap / vwap)
    show: Decimal = ZERO  # iceberg's visible amount
    sent: dict[str, Decimal] = field(default_factory=dict)  # client id -> amount sent
    filled: dict[str, Decimal] = field(default_factory=dict)  # client id -> cumulative filled
    done: dict[str, bool] = field(default_factory=dict)  # client id -> no more fills coming
    cancelled: bool = False

    @property
    def filled_total(self) -> Decimal:
        """Amount filled over every child."""
        return sum(self.filled.values(), ZERO)

    @property
    def remaining(self) -> Decimal:
        """Parent amount not filled yet (0 once cancelled)."""
        return ZERO if self.cancelled else self.total - self.filled_total

    @property
    def finished(self) -> bool:
        """Cancelled, or filled, or every child sent and done."""
        if self.cancelled or self.remaining <= 0:
            return True
        every_slice_sent = self.kind != "iceberg" and len(self.sent) == len(self.weights)
        return every_slice_sent and all(self.done.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (Decimals as strings) for the journal."""
        return {
            "algo_id": self.algo_id,
            "kind": self.kind,
            "side": self.side.value,
            "total": str(self.total),
            "step": str(self.step),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "weights": [str(w) for w in self.weights],
            "show": str(self.show),
            "sent": {k: str(v) for k, v in self.sent.items()},
            "filled": {k: str(v) for k, v in self.filled.items()},
            "done": dict(self.done),
            "cancelled": self.cancelled,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlgoState:
        """The state `to_dict` wrote."""
        return cls(
            algo_id=data["algo_id"],
            kind=data["kind"],
            side=Side(data["side"]),
            total=Decimal(data["total"]),
            step=Decimal(data["step"]),
            start_ms=int(data["start_ms"]),
            end_ms=int(data["end_ms"]),
            weights=tuple(Decimal(w) for w in data["weights"]),
            show=Decimal(data["show"]),
            sent={k: Decimal(v) for k, v in data["sent"].items()},
            filled={k: Decimal(v) for k, v in data["filled"].items()},
            done={k: bool(v) for k, v in data["done"].items()},
            cancelled=bool(data["cancelled"]),
        )


def _terms(algo_id: str, total: Decimal, step: Decimal) -> None:
    if not algo_id or "-" in algo_id:
        raise ExecutionError(f"algo id must be non-empty without '-', got {algo_id!r}")
    if total <= 0 or step <= 0:
        raise ExecutionError(f"total and step must be positive, got {total} and {step}")


def twap(
    algo_id: str, side: Side, total: Decimal, start_ms: int, end_ms: int, slices: int, step: Decimal
) -> AlgoState:
    """Equal children at even times over [start, end)."""
    return vwap(algo_id, side, total, start_ms, end_ms, [1.0] * slices, step, kind="twap")


def vwap(
    algo_id: str,
    side: Side,
    total: Decimal,
    start_ms: int,
    end_ms: int,
    profile: Sequence[float | Decimal],
    step: Decimal,
    kind: str = "vwap",
) -> AlgoState:
    """Children at even times over [start, end), each sized by its interval's share of profile."""
    _terms(algo_id, total, step)
    if not profile:
        raise ExecutionError("a schedule needs at least one slice")
    if end_ms <= start_ms:
        raise ExecutionError(f"end ({end_ms}) must be after start ({start_ms})")
    volumes = [dec(v) for v in profile]
    if any(v < 0 for v in volumes) or sum(volumes) <= 0:
        raise ExecutionError("the volume profile needs non-negative volumes with a positive sum")
    weights = tuple(v / sum(volumes) for v in volumes)
    return AlgoState(algo_id, kind, side, total, step, start_ms, end_ms, weights)


def iceberg(algo_id: str, side: Side, total: Decimal, show: Decimal, step: Decimal) -> AlgoState:
    """One child of at most `show` at a time until total is filled."""
    _terms(algo_id, total, step)
    if not step <= show <= total:
        raise ExecutionError(f"show must be between the step and the total, got {show}")
    return AlgoState(algo_id, "iceberg", side, total, step, show=show)


def _floor(amount: Decimal, step: Decimal) -> Decimal:
    return (amount / step).to_integral_value(ROUND_DOWN) * step


def slice_time(state: AlgoState, k: int) -> int:
    """When schedule child k is due (ms)."""
    return state.start_ms + (state.end_ms - state.start_ms) * k // len(state.weights)


def due(state: AlgoState, now_ms: int) -> list[Child]:
    """The children to send now, recorded as sent: save the state, then send them (a child id
    already sent is never due again)."""
    if state.finished:
        return []
    if state.kind == "iceberg":
        if any(not state.done.get(cid, False) for cid in state.sent):
            return []  # the visible child is still working
        amount = _floor(min(state.show, state.remaining), state.step)
        if amount <= 0:
            return []
        cid = f"{state.algo_id}-{len(state.sent)}"
        state.sent[cid] = amount  # recorded before the caller sends it: journal, then send
        state.done[cid] = False
        return [Child(cid, state.side, amount)]
    out = []
    target = ZERO
    for k, weight in enumerate(state.weights):
        target += weight * state.total
        cid = f"{state.algo_id}-{k}"
        if cid in state.sent:
            continue
        if slice_time(state, k) > now_ms:
            break
        # top the filled-or-working amount up to the cumulative target (the last: to the total)
        committed = sum(
            (state.filled.get(c, ZERO) if state.done.get(c) else a for c, a in state.sent.items()),
            ZERO,
        )
        goal = state.total if k == len(state.weights) - 1 else min(target, state.total)
        amount = _floor(goal - committed, state.step)
        if amount <= 0:
            state.sent[cid] = ZERO  # nothing to do at this slice; never revisited
            state.done[cid] = True
            continue
        out.append(Child(cid, state.side, amount))
        state.sent[cid] = amount  # recorded before the caller sends it: journal, then send
        state.done[cid] = False
    return out


def record(state: AlgoState, client_id: str, cumulative: Decimal, closed: bool) -> None:
    """Book a child's cumulative filled amount; closed: the venue will fill no more of it."""
    if client_id not in state.sent:
        raise ExecutionError(f"{client_id} is not a child of {state.algo_id}")
    if cumulative > state.sent[client_id]:
        raise ExecutionError(
            f"{client_id} filled {cumulative}, more than its {state.sent[client_id]}"
        )
    state.filled[client_id] = max(cumulative, state.filled.get(client_id, ZERO))
    state.done[client_id] = state.done.get(client_id, False) or closed


def resume(state: AlgoState, venue: Mapping[str, tuple[Decimal, Decimal, bool]]) -> list[str]:
    """After a restart: adopt the venue's view of this algorithm's children.

    venue: client id -> (amount, cumulative filled, closed) for every order the venue has
    with this algorithm's prefix. A child the venue has but the state lost (sent after the
    last save) is adopted, so it is never sent again; returns the ids adopted."""
    adopted = []
    prefix = f"{state.algo_id}-"
    for cid, (amount, filled, closed) in sorted(venue.items()):
        if not cid.startswith(prefix):
            continue
        if cid not in state.sent:
            state.sent[cid] = amount
            adopted.append(cid)
        record(state, cid, filled, closed)
    return adopted


def cancel(state: AlgoState) -> list[str]:
    """End the algorithm: the ids of its children still working, for the caller to cancel."""
    state.cancelled = True
    return [cid for cid in state.sent if not state.done.get(cid, False)]
