"""Reconciliation: bring the journal and the portfolio in line with what the venue says.

Run on start and every `interval_s` seconds. In order:
1. orders we track as open are looked up by client id and their venue state adopted (fills that
   happened while we were not looking are applied; in-flight orders are resolved);
2. open venue orders we do not track are adopted (tracked from now on, their fills applied) or
   cancelled, per `unknown_orders`;
3. our trades since the last journaled fill are listed; a trade id the journal does not hold is
   a missing fill: it is applied through its order when we track it, else journaled and booked
   to the portfolio directly. A fill is applied exactly once: the journal refuses a second
   (venue, trade id);
4. balances (and derivative positions) are read: the journal's balances become the venue's, and
   a balance the portfolio cannot explain is booked as an external adjustment.
Every difference is logged and journaled as a risk event of kind `reconcile_<kind>`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from quantdesk.engine.journal import Journal
from quantdesk.engine.order_manager import OrderManager
from quantdesk.engine.portfolio import Portfolio
from quantdesk.model import (
    ZERO,
    Fill,
    Order,
    OrderEvent,
    OrderStatus,
    Venue,
    VenueBalance,
    VenuePosition,
    split_symbol,
)

log = logging.getLogger(__name__)


class UnknownOrders(StrEnum):
    """What to do with open venue orders the engine does not track."""

    ADOPT = "adopt"
    CANCEL = "cancel"


class ReconcileVenue(Venue, Protocol):
    """What reconciliation reads from a venue beyond the order manager's needs (CcxtVenue)."""

    async def fetch_fills(self, symbol: str, since_ms: int | None = None) -> list[Fill]:
        """Our trades in symbol since since_ms (client ids may be empty)."""
        ...

    async def fetch_order_client_id(self, symbol: str, venue_order_id: str) -> str:
        """The client id of an order known by its venue id."""
        ...

    async def fetch_open_engine_orders(self, symbol: str | None = None) -> list[Order]:
        """Open venue orders as SUBMITTED engine orders."""
        ...

    async def fetch_balances(self) -> dict[str, VenueBalance]:
        """Balances per asset."""
        ...

    async def fetch_positions(self) -> dict[str, VenuePosition]:
        """Derivative positions per symbol."""
        ...


@dataclass(frozen=True)
class Difference:
    """One thing the journal/portfolio and the venue disagreed on, and what was done."""

    kind: str  # order, unknown_order, missing_fill, balance, position
    key: str  # client id, trade id, asset or symbol
    journal: str
    venue: str
    action: str


@dataclass
class ReconcileReport:
    """The outcome of one reconciliation pass."""

    timestamp: int
    differences: list[Difference] = field(default_factory=list)
    fills_applied: int = 0

    @property
    def clean(self) -> bool:
        """Nothing differed."""
        return not self.differences

    def of(self, kind: str) -> list[Difference]:
        """The differences of one kind."""
        return [d for d in self.differences if d.kind == kind]


class Reconciler:
    """Reconciles one venue's orders, fills, balances and positions with journal and portfolio."""

    def __init__(
        self,
        venue: ReconcileVenue,
        manager: OrderManager,
        journal: Journal,
        portfolio: Portfolio,
        symbols: Sequence[str],
        clock: Callable[[], int],
        *,
        unknown_orders: UnknownOrders = UnknownOrders.CANCEL,
        since_ms: int = 0,
        outside: dict[str, Decimal] | None = None,
    ) -> None:
        """since_ms: trades before it are the account's history, not this engine's; outside:
        the account's holdings that are not the session's (the portfolio holds only the
        session's capital): balance differences adjust these, never the session's cash."""
        self.venue = venue
        self.manager = manager
        self.journal = journal
        self.portfolio = portfolio
        self.symbols = list(symbols)
        self.clock = clock
        self.unknown_orders = UnknownOrders(unknown_orders)
        self.since_ms = since_ms
        self.outside = outside

    async def run(self) -> ReconcileReport:
        """One full pass; returns what differed."""
        report = ReconcileReport(self.clock())
        await self._tracked_orders(report)
        await self._unknown_orders(report)
        await self._fills(report)
        await self._balances(report)
        await self._positions(report)
        for d in report.differences:
            self._record(d)
        return report

    # --- steps --------------------------------------------------------------------------------

    async def _tracked_orders(self, report: ReconcileReport) -> None:
        before = {
            cid: (o.status, o.filled) for cid, o in self.manager.orders.items() if o.status.is_open
        }
        if any(o.status is OrderStatus.SUBMITTED for o in self.manager.orders.values()):
            await self.manager.resolve_in_flight()
        await self.manager.refresh()
        for cid, (status, filled) in before.items():
            o = self.manager.orders[cid]
            if (o.status, o.filled) != (status, filled):
                report.differences.append(
                    Difference(
                        "order",
                        cid,
                        f"{status} filled {filled}",
                        f"{o.status} filled {o.filled}",
                        "adopted venue state",
                    )
                )

    async def _unknown_orders(self, report: ReconcileReport) -> None:
        for order in await self.venue.fetch_open_engine_orders():
            if order.client_order_id in self.manager.orders:
                continue
            if order.symbol not in self.symbols:
                continue  # a market this engine does not trade: not ours to take over or cancel
            desc = f"{order.side} {order.amount} {order.symbol} ({order.type})"
            if self.unknown_orders is UnknownOrders.ADOPT:
                self.journal.record_order(order)
                self.journal.record_event(
                    OrderEvent(order.client_order_id, None, order.status, self.clock(), "adopted")
                )
                await self.manager.recover([order])
                action = f"adopted ({order.status})"
            else:
                reply = await self.venue.cancel_order(order)
                action = f"cancelled ({reply.status})"
            report.differences.append(
                Difference("unknown_order", order.client_order_id, "absent", desc, action)
            )

    async def _fills(self, report: ReconcileReport) -> None:
        name = self.venue.name
        journaled = self.journal.fills()
        known = set(journaled.loc[journaled["venue"] == name, "trade_id"])
        last = max(
            [int(t) for t in journaled.loc[journaled["venue"] == name, "ts"]] or [self.since_ms]
        )
        by_venue_id = {o.venue_order_id: o for o in self.manager.orders.values()}
        for symbol in self.symbols:
            for fill in await self.venue.fetch_fills(symbol, last):
                if fill.trade_id in known or fill.timestamp < self.since_ms:
                    continue
                order = by_venue_id.get(fill.venue_order_id)
                if order is not None and not order.status.is_terminal:
                    # through the order, so its fill count and status move with it
                    await self.manager.refresh()
                # an earlier refresh of this pass may have applied it already (and finished the
                # order): then it went through its order too
                applied = order is not None and fill.trade_id in order.fill_ids
                if not applied:
                    cid = order.client_order_id if order else ""
                    if not cid and fill.venue_order_id:
                        cid = await self.venue.fetch_order_client_id(symbol, fill.venue_order_id)
                    fill = replace(fill, client_order_id=cid)
                    if self.journal.record_fill(fill):
                        self.portfolio.apply_fill(fill)
                known.add(fill.trade_id)
                report.fills_applied += 1
                report.differences.append(
                    Difference(
                        "missing_fill",
                        fill.trade_id,
                        "absent",
                        f"{fill.side} {fill.amount} {fill.symbol} @ {fill.price}",
                        "applied via order" if applied else "journaled and booked",
                    )
                )

    def expected_holdings(self) -> dict[str, Decimal]:
        """What the portfolio says each spot asset's balance is: cash plus base positions."""
        out = {k: v for k, v in self.portfolio.cash.items()}
        for asset, amount in (self.outside or {}).items():
            out[asset] = out.get(asset, ZERO) + amount
        for symbol, pos in self.portfolio.positions.items():
            if ":" in symbol:
                continue  # derivative positions are not wallet balances
            base, _ = split_symbol(symbol)
            out[base] = out.get(base, ZERO) + pos.quantity
        return out

    async def _balances(self, report: ReconcileReport) -> None:
        balances = await self.venue.fetch_balances()
        now = self.clock()
        name = self.venue.name
        recorded = self.journal.balances()
        stale = set(recorded.loc[recorded["venue"] == name, "asset"]) - set(balances)
        for asset in sorted(stale):
            self.journal.record_balance(name, asset, ZERO, ZERO, now)
        for bal in balances.values():
            self.journal.record_balance(name, bal.asset, bal.total, bal.free, now)
        if self.venue_is_derivative():
            return  # wallet balances move with funding and PnL settlement, not with fills
        expected = self.expected_holdings()
        for asset in sorted(set(expected) | set(balances)):
            ours = expected.get(asset, ZERO)
            theirs = balances[asset].total if asset in balances else ZERO
            if ours != theirs:
                # deposits, withdrawals, fees in another asset: the venue is the truth
                if self.outside is not None:
                    self.outside[asset] = self.outside.get(asset, ZERO) + theirs - ours
                    action = "outside holdings adjusted"
                else:
                    self.portfolio.cash[asset] = (
                        self.portfolio.cash.get(asset, ZERO) + theirs - ours
                    )
                    action = "portfolio adjusted"
                report.differences.append(
                    Difference("balance", asset, str(ours), str(theirs), action)
                )

    async def _positions(self, report: ReconcileReport) -> None:
        name = self.venue.name
        venue_positions = await self.venue.fetch_positions()
        for symbol in self.symbols:
            pos = self.portfolio.positions.get(symbol)
            if pos is not None:
                self.journal.record_position(pos, name)
            if ":" not in symbol:
                continue
            ours = pos.quantity if pos else ZERO
            theirs = venue_positions[symbol].quantity if symbol in venue_positions else ZERO
            if ours != theirs:
                report.differences.append(
                    Difference("position", symbol, str(ours), str(theirs), "reported")
                )

    def venue_is_derivative(self) -> bool:
        """Whether the venue's wallet is a futures margin wallet."""
        return getattr(self.venue, "market", "spot") == "usdm"

    def _record(self, d: Difference) -> None:
        message = f"{d.kind} {d.key}: journal {d.journal}, venue {d.venue}: {d.action}"
        severity = "info" if d.kind in ("order",) else "warning"
        log.warning("reconcile: %s", message)
        self.journal.record_risk_event(
            f"reconcile_{d.kind}",
            message,
            self.clock(),
            severity=severity,
            payload={
                "venue": self.venue.name,
                "key": d.key,
                "journal": d.journal,
                "venue_value": d.venue,
                "action": d.action,
            },
        )
