"""Working a pair with real orders on two venues: the live counterpart of `execution`.

The same steps as the backtest's `execute_pair` (matched slices; after each slice the lagging
leg retried, then the larger leg cut back with a reduce-only order; the residual squared at the
end; a close that left anything open finished reduce-only), but each order goes through the
leg's venue OrderManager (journaled before it is sent), quantities are Decimal on the venue's
step, and what an order really filled (from its fills) is what counts. A venue whose breaker is
open gets no order: that leg failed. A reduce-only repair that fails leaves a naked leg: that
is never silent (a critical event, and the session's imbalance check retries it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from quantdesk.arbitrage.execution import ExecConfig
from quantdesk.engine.order_manager import OrderManager
from quantdesk.engine.portfolio import Portfolio
from quantdesk.model import ZERO, Instrument, Order, OrderStatus, OrderType, Side, dec
from quantdesk.risk.breaker import CircuitBreaker

LEGS = ("a", "b")
STRATEGY_ID = "funding_arb"

# emit(kind, leg, qty, detail): an execution event for the journal and the alerts
Emit = Callable[[str, str, Decimal, str], None]


@dataclass
class Leg:
    """One side of the pair: its venue's order manager, breaker, portfolio and market rules."""

    name: str  # "a" or "b"
    venue: str
    symbol: str
    om: OrderManager
    breaker: CircuitBreaker
    portfolio: Portfolio
    rules: Instrument
    mark: Decimal = ZERO

    @property
    def qty(self) -> Decimal:
        """The leg's signed position, as its fills booked it."""
        pos = self.portfolio.positions.get(self.symbol)
        return pos.quantity if pos is not None else ZERO

    def to_step(self, qty: Decimal) -> Decimal:
        """qty (unsigned) rounded down to the venue's amount step."""
        step = self.rules.amount_step
        return (qty / step).to_integral_value(ROUND_DOWN) * step


@dataclass(frozen=True)
class Limits:
    """Notional limits: per venue (each leg) and the pair's total (None: no limit)."""

    per_venue: Decimal | None = None
    total: Decimal | None = None


class PairExecutor:
    """Sends a pair's orders on its two legs; see the module for the steps."""

    def __init__(
        self,
        legs: dict[str, Leg],
        config: ExecConfig,
        emit: Emit,
        next_id: Callable[[str], str],
        clock: Callable[[], int],
        limits: Limits | None = None,
        after_order: Callable[[Order], Awaitable[None] | None] | None = None,
    ) -> None:
        """next_id(leg): a client order id never used before; after_order: told every order
        once the venue answered (tests place a crash there)."""
        self.legs = legs
        self.config = config
        self.emit = emit
        self.next_id = next_id
        self.clock = clock
        self.limits = limits or Limits()
        self.after_order = after_order

    @property
    def net(self) -> Decimal:
        """qty_a + qty_b: zero for a hedged pair."""
        return self.legs["a"].qty + self.legs["b"].qty

    @property
    def hedged_qty(self) -> Decimal:
        """The quantity both legs hold (the smaller leg's size)."""
        return min(abs(self.legs["a"].qty), abs(self.legs["b"].qty))

    async def catch_up(self, targets: dict[str, Decimal]) -> None:
        """Before slicing: a leg behind the other (a step cut short by a crash) is brought
        level with it first, if that moves it towards its target, so the slices stay matched."""
        if abs(self.net) < max(self.legs[leg].rules.amount_step for leg in LEGS):
            return
        lag = max(LEGS, key=lambda leg: abs(targets[leg] - self.legs[leg].qty))
        other = "b" if lag == "a" else "a"
        want = -self.legs[other].qty - self.legs[lag].qty
        room = targets[lag] - self.legs[lag].qty
        if want * room > 0 and abs(want) <= abs(room):
            await self.send(lag, want, "catch up")

    def _within_limits(self, leg: Leg, dq: Decimal) -> bool:
        new = abs(leg.qty + dq) * leg.mark
        if self.limits.per_venue is not None and new > self.limits.per_venue:
            return False
        other = self.legs["b" if leg.name == "a" else "a"]
        total = new + abs(other.qty) * other.mark
        return self.limits.total is None or total <= self.limits.total

    async def send(self, name: str, dq: Decimal, what: str, reduce_only: bool = False) -> Decimal:
        """One market order of signed dq on a leg; returns the signed quantity it filled."""
        leg = self.legs[name]
        amount = leg.to_step(abs(dq))
        if amount <= 0 or amount < leg.rules.min_amount:
            return ZERO
        signed = amount if dq > 0 else -amount
        if not leg.breaker.allows_new_orders():
            self.emit("leg_failed", name, signed, f"{what}: {leg.venue} is down (breaker open)")
            return ZERO
        if not reduce_only and not self._within_limits(leg, signed):
            self.emit("limit", name, signed, f"{what}: notional limit on {leg.venue} refused it")
            return ZERO
        order = Order(
            client_order_id=self.next_id(name),
            symbol=leg.symbol,
            side=Side.BUY if dq > 0 else Side.SELL,
            type=OrderType.MARKET,
            amount=amount,
            created_ms=self.clock(),
            reduce_only=reduce_only,
            strategy_id=STRATEGY_ID,
            venue=leg.venue,
            decision_price=leg.mark or None,
        )
        order = await leg.om.submit(order)
        if self.after_order is not None:
            result = self.after_order(order)
            if result is not None:
                await result
        done = order.filled if dq > 0 else -order.filled
        if order.status is OrderStatus.SUBMITTED:
            self.emit(
                "leg_unknown",
                name,
                signed,
                f"{what}: {order.client_order_id} unanswered by "
                f"{leg.venue}; counted unfilled until the venue says otherwise",
            )
        elif order.filled == 0:
            self.emit("leg_failed", name, signed, f"{what}: {order.status} {order.reason}"[:200])
        elif order.filled < amount:
            self.emit("partial_fill", name, done, f"{what}: {order.filled} of {amount}")
        return done

    async def repair(self, goal: dict[str, Decimal], limit: Decimal, what: str) -> bool:
        """Bring net exposure within limit: retry the lagging leg, then square; True if it
        acted."""
        before = self.net
        if abs(before) <= limit:
            return False
        for attempt in range(self.config.retries):
            lag = max(LEGS, key=lambda leg: abs(goal[leg] - self.legs[leg].qty))
            other = "b" if lag == "a" else "a"
            want = -self.legs[other].qty - self.legs[lag].qty
            # the retry must move the lagging leg towards its goal, never past the other's size
            if (goal[lag] - self.legs[lag].qty) * want <= 0:
                break
            await self.send(lag, want, f"{what} retry {attempt + 1}")
            if abs(self.net) <= limit:
                break
        if abs(self.net) > limit:
            await self.square("unwound", f"{what}: retries did not hedge the filled leg")
        self.emit("repaired", "pair", before, f"net {before} -> {self.net}")
        return True

    async def square(self, kind: str, detail: str) -> bool:
        """Cut the larger leg back to the smaller (reduce-only); False if a gap above one step
        is left (a naked leg, reported critical)."""
        gap = self.net
        if gap == 0:
            return True
        a, b = self.legs["a"], self.legs["b"]
        name = "a" if abs(a.qty) > abs(b.qty) else "b"
        leg = self.legs[name]
        done = await self.send(name, -gap, kind, reduce_only=True)
        if done:
            self.emit(kind, name, done, detail)
        step = max(a.rules.amount_step, b.rules.amount_step)
        if abs(self.net) >= step:
            self.emit(
                "naked_leg",
                name,
                self.net,
                f"{leg.venue} leg unhedged by {self.net} after {kind}: retried by the "
                "imbalance check",
            )
            return False
        return True

    async def execute(
        self,
        targets: dict[str, Decimal],
        slices_left: int,
        on_slice: Callable[[int], None],
        closing: bool,
    ) -> bool:
        """Move both legs to targets in slices_left matched slices (on_slice(k) after each);
        True when the pair ends hedged (and, closing, flat)."""
        await self.catch_up(targets)
        start = {leg: self.legs[leg].qty for leg in LEGS}
        n = max(slices_left, 1)
        steps = {leg: (targets[leg] - start[leg]) / n for leg in LEGS}
        slice_qty = max(abs(steps["a"]), abs(steps["b"]))
        step = max(self.legs[leg].rules.amount_step for leg in LEGS)
        limit = max(dec(self.config.tolerance) * slice_qty, step)
        for k in range(n):
            goal = {leg: start[leg] + steps[leg] * (k + 1) for leg in LEGS}
            if k == n - 1:
                goal = dict(targets)  # the last slice takes the rounding remainder
            held = self.hedged_qty
            for leg in LEGS:
                await self.send(leg, goal[leg] - self.legs[leg].qty, f"slice {k + 1}/{n}")
            await self.repair(goal, limit, f"slice {k + 1}/{n}")
            on_slice(k + 1)
            if self.hedged_qty == held and k < n - 1:
                # a leg that fails its slice and its retries fails the next ones too: stop
                # paying the other leg's fees both ways
                self.emit(
                    "aborted",
                    "pair",
                    held,
                    f"slice {k + 1}/{n} made no progress: "
                    f"the remaining {n - k - 1} slices are not sent",
                )
                break
        hedged = await self.square("squared", "residual net exposure after the last slice")
        if closing and any(self.legs[leg].qty for leg in LEGS):
            left = {leg: self.legs[leg].qty for leg in LEGS}
            for leg in LEGS:
                if self.legs[leg].qty:
                    await self.send(leg, -self.legs[leg].qty, "forced close", reduce_only=True)
            self.emit("forced_close", "pair", left["a"], f"reduce-only close of {left}")
            hedged = not any(self.legs[leg].qty for leg in LEGS)
            if not hedged:
                self.emit("naked_leg", "pair", self.net, "the close left a leg open")
        return hedged
