"""Live risk monitors: run on every fill and every `monitor_interval_s`.

Each update measures equity, drawdown from the peak, the UTC day's P&L (realized + unrealized,
against the equity first seen that day), exposure and concentration, portfolio VaR/CVaR and
liquidation distances; turns them into a risk score (0-100, the highest utilization of any
limit) and level; and acts on crossings: past `reduce_at` of the daily-loss or drawdown limit ->
REDUCING; past the limit itself -> the kill switch (cancel, optionally flatten, HALTED).
A perpetual whose liquidation price comes within the buffer also moves to REDUCING.
Automatic moves only escalate: `rearm()` (called on resume) starts the day and the peak afresh.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pandas as pd

from quantdesk.model import ZERO, Fill, TradingState, dec
from quantdesk.risk.checks import RiskEngine, liquidation_price
from quantdesk.risk.var import VaRReport, portfolio_var


class RiskLevel(StrEnum):
    """Coarse reading of the risk score."""

    NORMAL = "normal"  # score < 50
    ELEVATED = "elevated"  # 50 <= score < 80
    HIGH = "high"  # 80 <= score < 100
    CRITICAL = "critical"  # a limit is reached


def level_for(score: float) -> RiskLevel:
    """The level of a 0-100 score."""
    if score >= 100:
        return RiskLevel.CRITICAL
    if score >= 80:
        return RiskLevel.HIGH
    if score >= 50:
        return RiskLevel.ELEVATED
    return RiskLevel.NORMAL


@dataclass(frozen=True)
class RiskSnapshot:
    """Everything one monitor update measured."""

    ts: int
    equity: Decimal
    peak_equity: Decimal
    drawdown: Decimal  # fraction of the peak, >= 0
    day_start_equity: Decimal
    daily_pnl: Decimal  # currency, realized + unrealized since the day's start
    daily_loss: Decimal  # fraction of the day's start equity, >= 0
    exposures: dict[str, Decimal]  # signed notional per symbol
    gross_exposure: Decimal
    net_exposure: Decimal
    leverage: Decimal  # gross / equity
    concentration: Decimal  # largest |exposure| / gross (1 = everything in one symbol)
    open_positions: int
    var: VaRReport | None
    liquidation_distances: dict[str, Decimal | None]  # perps: |mark - liq| / mark
    utilization: dict[str, float]  # per limit: measured / limit
    score: float
    level: RiskLevel
    state: TradingState
    actions: tuple[str, ...] = field(default=())


class RiskMonitor:
    """Measures the portfolio and moves the trading state when limits are crossed."""

    def __init__(
        self,
        risk: RiskEngine,
        *,
        returns: pd.DataFrame | None = None,
        on_halt: Callable[[str], Awaitable[Any]] | None = None,
    ) -> None:
        """returns: daily returns per symbol (columns) for VaR; on_halt(reason): the kill
        switch's automatic trigger (without one, the state is set to HALTED directly)."""
        self.risk = risk
        self.returns = returns
        self.on_halt = on_halt
        self.peak: Decimal | None = None
        self.day: str | None = None
        self.day_start: Decimal | None = None
        self.last_run_ms: int | None = None
        self.last: RiskSnapshot | None = None
        self._level = RiskLevel.NORMAL

    def due(self, now_ms: int) -> bool:
        """Whether the periodic update is due."""
        interval = self.risk.config.monitor_interval_s * 1000
        return self.last_run_ms is None or now_ms - self.last_run_ms >= interval

    def rearm(self) -> None:
        """Start the peak and the day afresh from the next update (after an explicit resume)."""
        self.peak = self.day_start = self.day = None

    async def on_fill(self, fill: Fill) -> RiskSnapshot:
        """Update after a fill (the portfolio has booked it)."""
        return await self.update(fill.timestamp or None)

    async def tick(self, now_ms: int | None = None) -> RiskSnapshot | None:
        """The periodic update, when due."""
        now = self.risk.clock() if now_ms is None else now_ms
        return await self.update(now) if self.due(now) else None

    async def update(self, now_ms: int | None = None) -> RiskSnapshot:
        """Measure, score, and act on crossings."""
        risk = self.risk
        now = risk.clock() if now_ms is None else now_ms
        self.last_run_ms = now
        limits = risk.limits("")
        equity = risk.equity()
        day = datetime.fromtimestamp(now / 1000, tz=UTC).date().isoformat()
        if day != self.day or self.day_start is None:
            self.day, self.day_start = day, equity
        self.peak = equity if self.peak is None else max(self.peak, equity)
        drawdown = (self.peak - equity) / self.peak if self.peak > 0 else ZERO
        daily_pnl = equity - self.day_start
        daily_loss = max(-daily_pnl, ZERO) / self.day_start if self.day_start > 0 else ZERO

        exposures = risk.exposures()
        gross = sum((abs(v) for v in exposures.values()), ZERO)
        net = sum(exposures.values(), ZERO)
        leverage = gross / equity if equity > 0 else ZERO
        largest = max((abs(v) for v in exposures.values()), default=ZERO)
        concentration = largest / gross if gross else ZERO

        var = None
        if self.returns is not None and exposures:
            window = self.returns.tail(risk.config.var_window_days)
            var = portfolio_var({s: float(v) for s, v in exposures.items()}, window)

        marks = risk.valuation_marks()
        mmr = dec(limits.maintenance_margin_rate)
        distances: dict[str, Decimal | None] = {}
        for symbol, pos in risk.portfolio.positions.items():
            if pos.quantity and ":" in symbol:
                liq = liquidation_price(pos.quantity, marks[symbol], equity, mmr)
                distances[symbol] = (
                    None if liq is None else abs(marks[symbol] - liq) / marks[symbol]
                )

        util = {
            "daily_loss": float(daily_loss) / limits.daily_loss_limit,
            "drawdown": float(drawdown) / limits.max_drawdown,
            "symbol_exposure": float(largest / equity) / limits.max_symbol_exposure
            if equity > 0
            else 0.0,
            "leverage": float(leverage) / limits.max_leverage,
            "open_positions": len(exposures) / limits.max_open_positions,
        }
        if limits.max_gross_exposure is not None:
            util["gross_exposure"] = float(gross / limits.max_gross_exposure)
        if var is not None and equity > 0:
            budget = limits.daily_loss_limit * float(equity)
            util["var99"] = max(var.historical_var[0.99], var.parametric_var[0.99]) / budget
        near = [d for d in distances.values() if d is not None]
        if near:
            util["liquidation"] = limits.liquidation_buffer / max(float(min(near)), 1e-12)
        score = min(100.0, 100.0 * max(util.values()))
        level = level_for(score)

        actions = await self._act(limits, daily_loss, drawdown, distances)
        if level is not self._level and level in (RiskLevel.HIGH, RiskLevel.CRITICAL):
            worst = max(util, key=util.__getitem__)
            risk.alert(
                "warning" if level is RiskLevel.HIGH else "error",
                f"risk level {level.value} (score {score:.0f}, {worst} at {util[worst]:.0%})",
                key=f"level:{level.value}",
                payload={"utilization": util},
            )
        self._level = level
        self.last = RiskSnapshot(
            ts=now,
            equity=equity,
            peak_equity=self.peak,
            drawdown=drawdown,
            day_start_equity=self.day_start,
            daily_pnl=daily_pnl,
            daily_loss=daily_loss,
            exposures=exposures,
            gross_exposure=gross,
            net_exposure=net,
            leverage=leverage,
            concentration=concentration,
            open_positions=len(exposures),
            var=var,
            liquidation_distances=distances,
            utilization=util,
            score=score,
            level=level,
            state=risk.state,
            actions=tuple(actions),
        )
        return self.last

    async def _act(
        self,
        limits: Any,
        daily_loss: Decimal,
        drawdown: Decimal,
        distances: dict[str, Decimal | None],
    ) -> list[str]:
        risk = self.risk
        halt = None
        if daily_loss >= dec(limits.daily_loss_limit):
            halt = f"daily loss {daily_loss:.2%} reached the {limits.daily_loss_limit:.2%} limit"
        elif drawdown >= dec(limits.max_drawdown):
            halt = f"drawdown {drawdown:.2%} reached the {limits.max_drawdown:.2%} limit"
        if halt is not None:
            if risk.state is TradingState.HALTED:
                return []
            if self.on_halt is not None:
                await self.on_halt(halt)
            else:
                risk.set_state(TradingState.HALTED, halt)
            return [f"halt: {halt}"]
        reduce_at = dec(limits.reduce_at)
        reduce = None
        if daily_loss >= reduce_at * dec(limits.daily_loss_limit):
            reduce = f"daily loss {daily_loss:.2%} past {limits.reduce_at:.0%} of its limit"
        elif drawdown >= reduce_at * dec(limits.max_drawdown):
            reduce = f"drawdown {drawdown:.2%} past {limits.reduce_at:.0%} of its limit"
        else:
            buffer = dec(limits.liquidation_buffer)
            close = [s for s, d in distances.items() if d is not None and d < buffer]
            if close:
                reduce = (
                    f"liquidation within {limits.liquidation_buffer:.0%} for {', '.join(close)}"
                )
        if reduce is not None and risk.set_state(TradingState.REDUCING, reduce):
            return [f"reduce: {reduce}"]
        return []
