"""Opening and closing a pair in matched slices, with partial fills and failed legs repaired.

Each slice sends both legs' orders. A leg may fill fully, partly or not at all (the Filler
decides: seeded in the backtest, scripted in tests). After every slice the net exposure
(qty_a + qty_b; zero for a hedged pair) is checked; above the tolerance the lagging leg is
retried, and if the retries do not close the gap the larger leg is cut back to the smaller one
with a reduce-only order. After the last slice any residual is squared the same way, and a close
that left anything open finishes with reduce-only orders: no leg is ever left naked, and every
such step is an Event in the log the results expose.

Backtest assumption (documented, not modelled): a reduce-only market order always fills. On a
live venue it can fail too; that is the engine's breaker and reconciliation's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

LEGS = ("a", "b")
EPS = 1e-12

# A filler answers "of this order for qty on leg, what fraction filled?" (0 = the leg failed).
Filler = Callable[[str, float], float]


@dataclass(frozen=True)
class Event:
    """One execution event: a partial fill, a failed leg, a retry, a repair, a forced close."""

    time: pd.Timestamp
    kind: str
    leg: str
    qty: float
    detail: str = ""


@dataclass(frozen=True)
class FillModel:
    """Seeded fill outcomes: each order fails with fail_prob, fills partly with partial_prob
    (a fraction uniform in [min_partial, 1)), else fills fully."""

    fail_prob: float = 0.0
    partial_prob: float = 0.0
    min_partial: float = 0.2

    def __post_init__(self) -> None:
        probs = (self.fail_prob, self.partial_prob)
        if min(probs) < 0 or sum(probs) > 1:
            raise ValueError("fail_prob and partial_prob must be >= 0 and sum to at most 1")
        if not 0 <= self.min_partial < 1:
            raise ValueError("min_partial must be in [0, 1)")

    def filler(self, rng: np.random.Generator) -> Filler:
        """A Filler drawing outcomes from rng (one draw per order, so a seed replays exactly)."""

        def fill(leg: str, qty: float) -> float:
            u = rng.random()
            if u < self.fail_prob:
                return 0.0
            if u < self.fail_prob + self.partial_prob:
                return self.min_partial + (1 - self.min_partial) * rng.random()
            return 1.0

        return fill


def scripted(outcomes: dict[str, list[float]]) -> Filler:
    """A Filler replaying given fill fractions per leg in order, then full fills (for tests)."""
    queues = {leg: list(values) for leg, values in outcomes.items()}

    def fill(leg: str, qty: float) -> float:
        queue = queues.get(leg)
        return queue.pop(0) if queue else 1.0

    return fill


@dataclass(frozen=True)
class ExecConfig:
    """How a pair is worked: slices, retries of a lagging leg, and the imbalance tolerance
    (net exposure allowed after a slice, as a fraction of one slice's quantity)."""

    slices: int = 4
    retries: int = 2
    tolerance: float = 0.05

    def __post_init__(self) -> None:
        if self.slices < 1 or self.retries < 0 or not 0 <= self.tolerance < 1:
            raise ValueError("slices >= 1, retries >= 0 and tolerance in [0, 1) are required")


@dataclass
class Book:
    """Both legs' positions and the money they made, split as the results report it.

    price PnL is marked at mid; fills are at mid x (1 +/- slippage), the difference booked as
    slippage; fees are on the fill's notional. cash is kept apart from the split so a test can
    check equity - start == price + funding - fees - slippage independently.
    """

    fee_rates: dict[str, float]
    slippage: float
    cash: float = 0.0
    qty: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LEGS, 0.0))
    mark: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LEGS, 0.0))
    avg_price: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LEGS, 0.0))
    price_pnl: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LEGS, 0.0))
    funding: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LEGS, 0.0))
    fees: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LEGS, 0.0))
    slip_cost: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LEGS, 0.0))

    def set_mark(self, leg: str, price: float) -> None:
        """Mark a leg at a new price, booking the position's price PnL."""
        self.price_pnl[leg] += self.qty[leg] * (price - self.mark[leg])
        self.mark[leg] = price

    def settle(self, leg: str, rate: float) -> float:
        """Book one funding settlement on a leg at its mark (a long pays a positive rate)."""
        received = -self.qty[leg] * self.mark[leg] * rate
        self.funding[leg] += received
        self.cash += received
        return received

    def trade(self, leg: str, dq: float) -> None:
        """Fill dq (signed) on a leg at its mark, paying slippage and the leg's fee."""
        if abs(dq) <= EPS:
            return
        mid = self.mark[leg]
        fill = mid * (1 + self.slippage * np.sign(dq))
        fee = abs(dq) * fill * self.fee_rates[leg]
        self.cash -= dq * fill + fee
        self.fees[leg] += fee
        self.slip_cost[leg] += abs(dq) * mid * self.slippage
        old = self.qty[leg]
        new = old + dq
        if abs(new) <= EPS:
            self.avg_price[leg], new = 0.0, 0.0
        elif old == 0 or np.sign(new) != np.sign(old):
            self.avg_price[leg] = fill
        elif abs(new) > abs(old):  # adding: volume-weighted entry (reducing keeps it)
            self.avg_price[leg] = (abs(old) * self.avg_price[leg] + abs(dq) * fill) / abs(new)
        self.qty[leg] = new

    @property
    def net(self) -> float:
        """Net exposure in base units: qty_a + qty_b (zero for a hedged pair)."""
        return self.qty["a"] + self.qty["b"]

    def equity(self) -> float:
        """Cash plus both legs at their marks."""
        return self.cash + sum(self.qty[leg] * self.mark[leg] for leg in LEGS)

    def total(self) -> float:
        """The split's sum: price PnL + funding - fees - slippage, both legs."""
        return sum(
            self.price_pnl[leg] + self.funding[leg] - self.fees[leg] - self.slip_cost[leg]
            for leg in LEGS
        )


def _send(
    book: Book, leg: str, dq: float, fill: Filler, time: pd.Timestamp, log: list[Event], what: str
) -> float:
    """One order on a leg: fill what the filler grants, log a partial or failed leg."""
    if abs(dq) <= EPS:
        return 0.0
    fraction = min(max(fill(leg, abs(dq)), 0.0), 1.0)
    done = dq * fraction
    book.trade(leg, done)
    if fraction == 0:
        log.append(Event(time, "leg_failed", leg, dq, what))
    elif fraction < 1:
        log.append(
            Event(time, "partial_fill", leg, done, f"{what}: {fraction:.0%} of {abs(dq):.6g}")
        )
    return done


def square(book: Book, time: pd.Timestamp, log: list[Event], kind: str, detail: str) -> None:
    """Cut the larger leg back to the smaller with a reduce-only order (always fills)."""
    gap = book.net
    if abs(gap) <= EPS:
        return
    leg = "a" if abs(book.qty["a"]) > abs(book.qty["b"]) else "b"
    book.trade(leg, -gap)
    log.append(Event(time, kind, leg, -gap, detail))


def repair(
    book: Book,
    targets: dict[str, float],
    fill: Filler,
    config: ExecConfig,
    limit: float,
    time: pd.Timestamp,
    log: list[Event],
) -> bool:
    """Bring net exposure within limit: retry the lagging leg, then square; True if it acted."""
    before = book.net
    if abs(before) <= limit:
        return False
    for attempt in range(config.retries):
        # the lagging leg is the one further from its target, measured against the hedge
        lag = max(LEGS, key=lambda leg: abs(targets[leg] - book.qty[leg]))
        other = "b" if lag == "a" else "a"
        want = -book.qty[other] - book.qty[lag]  # what makes lag mirror the other leg
        _send(book, lag, want, fill, time, log, f"retry {attempt + 1}")
        if abs(book.net) <= limit:
            break
    if abs(book.net) > limit:
        square(book, time, log, "unwound", "retries did not hedge the filled leg")
    log.append(Event(time, "repaired", "pair", before, f"net {before:.6g} -> {book.net:.6g}"))
    return True


def execute_pair(
    book: Book,
    targets: dict[str, float],
    fill: Filler,
    config: ExecConfig,
    time: pd.Timestamp,
    log: list[Event],
) -> None:
    """Move both legs from their quantities to targets in matched slices (see the module)."""
    start = dict(book.qty)
    steps = {leg: (targets[leg] - start[leg]) / config.slices for leg in LEGS}
    slice_qty = max(abs(steps["a"]), abs(steps["b"]))
    limit = config.tolerance * slice_qty
    closing = all(abs(targets[leg]) <= EPS for leg in LEGS)
    for k in range(config.slices):
        goal = {leg: start[leg] + steps[leg] * (k + 1) for leg in LEGS}
        for leg in LEGS:
            _send(book, leg, goal[leg] - book.qty[leg], fill, time, log, f"slice {k + 1}")
        repair(book, goal, fill, config, limit, time, log)
    # the per-slice tolerance bounds the exposure while working; at the end it is squared
    square(book, time, log, "squared", "residual net exposure after the last slice")
    if closing and any(abs(book.qty[leg]) > EPS for leg in LEGS):
        left = dict(book.qty)
        for leg in LEGS:
            book.trade(leg, -book.qty[leg])
        log.append(Event(time, "forced_close", "pair", left["a"], f"reduce-only close of {left}"))
