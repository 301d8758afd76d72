"""The kill switch: cancel every open order, optionally flatten every position, then HALT.

Triggered three ways, all ending in `kill()`: a `kill` command in the journal (from `quantdesk
kill` or a dashboard), consumed by `poll()`; an automatic trigger from the monitors (daily loss,
max drawdown) through `trigger()`; or a direct call. Only a `resume` command (or `resume()`)
re-arms trading. Flattening orders are the risk layer's own reduce-only market orders: they go
straight to the order manager, past the HALTED gate that stops everything else.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from quantdesk.model import (
    FLATTEN_STRATEGY_ID,
    CommandJournal,
    Order,
    OrderDesk,
    OrderStatus,
    OrderType,
    Side,
    TradingState,
    client_order_id,
)
from quantdesk.risk.checks import RiskEngine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KillReport:
    """What one kill did."""

    reason: str
    cancelled: tuple[str, ...]  # client order ids
    flatten_orders: tuple[str, ...]  # sent (accepted by the venue, or still in flight)
    rejected: tuple[str, ...] = ()  # "SYMBOL: reason" of flatten orders the venue refused
    dust: tuple[str, ...] = ()  # "SYMBOL AMOUNT": below the venue's minimum, cannot be sold

    def describe(self) -> str:
        """What the kill really did, in one line (never 'flattened' for a refused order)."""
        text = f"kill switch: {self.reason}; cancelled {len(self.cancelled)} orders"
        if self.flatten_orders:
            text += f", flatten orders sent for {len(self.flatten_orders)} positions"
        if self.rejected:
            text += f"; REFUSED, position still open: {'; '.join(self.rejected)}"
        if self.dust:
            text += f"; dust below the venue minimum left: {', '.join(self.dust)}"
        return text


class KillSwitch:
    """Consumes kill/resume commands and carries them out over the engine's order managers."""

    def __init__(
        self,
        risk: RiskEngine,
        managers: Sequence[OrderDesk],
        *,
        journal: CommandJournal | None = None,
        flatten_on_halt: bool | None = None,
        on_resume: Sequence[Callable[[], Any]] = (),
    ) -> None:
        """journal: where commands arrive (and events go); flatten_on_halt: whether automatic
        halts flatten (default: the [risk] config's); on_resume: called after a resume (e.g.
        RiskMonitor.rearm)."""
        if not managers:
            raise ValueError("the kill switch needs at least one order manager")
        self.risk = risk
        self.managers = list(managers)
        self.journal = journal
        self._flatten_on_halt = flatten_on_halt
        self.on_resume = list(on_resume)
        self.reports: list[KillReport] = []
        self._seq = itertools.count()

    @property
    def flatten_on_halt(self) -> bool:
        """Whether automatic halts flatten positions."""
        if self._flatten_on_halt is not None:
            return self._flatten_on_halt
        return self.risk.config.flatten_on_halt

    async def poll(self) -> list[str]:
        """Carry out pending kill/resume commands from the journal, oldest first."""
        if not hasattr(self.journal, "pending_commands"):
            return []  # no journal, or one without commands (MemoryJournal)
        done = []
        for command in self.journal.pending_commands():
            if command.kind not in ("kill", "resume"):
                continue  # approve/reject/cancel belong to other consumers
            if not self.journal.consume_command(command.id, self.risk.clock()):
                continue  # another consumer took it
            reason = str(command.payload.get("reason") or f"{command.kind} command #{command.id}")
            if command.kind == "kill":
                await self.kill(reason, flatten=bool(command.payload.get("flatten", False)))
            else:
                self.resume(reason)
            done.append(command.kind)
        return done

    async def trigger(self, reason: str) -> KillReport:
        """Automatic halt (monitors): flattens when the config says so."""
        return await self.kill(reason, flatten=self.flatten_on_halt)

    async def kill(self, reason: str, *, flatten: bool = False) -> KillReport:
        """HALT, cancel all open orders, then flatten positions if asked."""
        risk = self.risk
        risk.set_state(TradingState.HALTED, reason)  # first: nothing new may start
        cancelled = []
        for manager in self.managers:
            for order in list(manager.orders.values()):
                if order.status.is_open or order.status is OrderStatus.PENDING:
                    if order.client_order_id in self._flattening:
                        continue
                    await manager.cancel(order.client_order_id, "kill switch")
                    risk.record_cancel()
                    cancelled.append(order.client_order_id)
        sent, rejected, dust = await self._flatten() if flatten else ([], [], [])
        report = KillReport(reason, tuple(cancelled), tuple(sent), tuple(rejected), tuple(dust))
        self.reports.append(report)
        message = report.describe()
        payload = {
            "reason": reason,
            "cancelled": cancelled,
            "flatten_orders": sent,
            "rejected": rejected,
            "dust": dust,
        }
        risk.event("kill", message, "critical", payload)
        risk.alert("critical", message, key=f"kill:{reason}", payload=payload)
        return report

    @property
    def _flattening(self) -> set[str]:
        return {cid for r in self.reports for cid in r.flatten_orders}

    async def _flatten(self) -> tuple[list[str], list[str], list[str]]:
        """Reduce-only market orders closing every open position, sent past the gate.

        Returns (sent client ids, "SYMBOL: reason" of refused ones, "SYMBOL AMOUNT" of dust: what
        is below the venue's minimum amount, or a spot amount below its minimum notional, which no
        order can close)."""
        risk = self.risk
        now = risk.clock()
        sent: list[str] = []
        rejected: list[str] = []
        dust: list[str] = []
        marks = dict(getattr(risk, "marks", None) or {})
        for symbol, pos in list(risk.portfolio.positions.items()):
            if not pos.quantity:
                continue
            rules = risk.gate.markets.get(symbol)
            amount = abs(pos.quantity)
            if rules is not None:
                amount = rules.round_amount(amount)
                mark = marks.get(symbol)
                # A perp's flatten is reduce-only, which Binance USD-M exempts from the minimum
                # notional: dust there is swept. Spot has no such flag, so spot dust stays.
                too_small = amount < rules.min_amount or (
                    ":" not in symbol
                    and mark is not None
                    and rules.min_notional
                    and amount * mark < rules.min_notional
                )
                if amount <= 0 or too_small:
                    dust.append(f"{symbol} {abs(pos.quantity).normalize()}")
                    continue
            if amount <= 0:
                continue
            manager = self._manager_for(symbol)
            order = Order(
                client_order_id=client_order_id("kill", symbol, now, next(self._seq)),
                symbol=symbol,
                side=Side.SELL if pos.quantity > 0 else Side.BUY,
                type=OrderType.MARKET,
                amount=amount,
                created_ms=now,
                reduce_only=":" in symbol,  # spot has no reduce-only flag
                strategy_id=FLATTEN_STRATEGY_ID,
            )
            placed = await manager.submit(order)
            if placed.status is OrderStatus.REJECTED:
                rejected.append(f"{symbol}: {placed.reason}")
                risk.alert("critical", f"flatten {symbol} rejected: {placed.reason}")
            else:
                sent.append(placed.client_order_id)
        return sent, rejected, dust

    def _manager_for(self, symbol: str) -> OrderDesk:
        """The manager that traded the symbol (else the first)."""
        for manager in self.managers:
            if any(o.symbol == symbol for o in manager.orders.values()):
                return manager
        return self.managers[0]

    def resume(self, reason: str = "resume") -> bool:
        """Re-arm trading (ACTIVE); the only way out of HALTED or REDUCING."""
        changed = self.risk.set_state(TradingState.ACTIVE, reason, force=True)
        for callback in self.on_resume:
            callback()
        return changed


def journaled_state(journal: Any) -> tuple[TradingState, str] | None:
    """The trading state the journal last recorded and why (None: never changed).

    A halt is a fact about the account, not about one process: a restart, a crash or a
    reconciliation must come back HALTED (or REDUCING) until a person resumes.
    """
    events = getattr(journal, "events", None)
    if events is None:
        return None  # MemoryJournal keeps no risk events
    changes = events("state_change")
    if not len(changes):
        return None
    payload = changes["payload"].iloc[-1]
    return TradingState(payload["new"]), str(payload.get("reason", ""))


def queue_command(journal: CommandJournal, kind: str, now_ms: int, **payload: Any) -> int:
    """Write a kill/resume command for the engine to consume; returns its id."""
    if kind not in ("kill", "resume"):
        raise ValueError(f"not a kill switch command: {kind}")
    return journal.add_command(kind, now_ms, payload=payload)


__all__ = ["KillReport", "KillSwitch", "journaled_state", "queue_command"]
