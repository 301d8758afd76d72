"""RiskGuard: the risk layer's per-step work in the engine loop, in one object.

After each kernel step: kill/resume commands from the journal are carried out, the [risk]
section is re-read when due (hot reload), and the monitors run when fills happened in the step
or their interval has passed (which may trigger the kill switch). The pre-trade check itself is
the kernel's `risk` (the same RiskEngine, `guard.risk`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from quantdesk.model import OrderDesk
from quantdesk.risk.checks import RiskEngine
from quantdesk.risk.killswitch import KillSwitch
from quantdesk.risk.monitors import RiskMonitor, RiskSnapshot
from quantdesk.risk.reload import RiskReloader


class RiskGuard:
    """Monitors, kill switch and hot reload around one RiskEngine."""

    def __init__(
        self,
        risk: RiskEngine,
        managers: Sequence[OrderDesk],
        *,
        journal: Any = None,
        returns: pd.DataFrame | None = None,
        config_path: str | Path | None = None,
    ) -> None:
        """journal: where kill/resume commands arrive; config_path: quantdesk.toml to watch."""
        self.risk = risk
        self.monitor = RiskMonitor(risk, returns=returns)
        self.kill_switch = KillSwitch(
            risk, managers, journal=journal, on_resume=[self.monitor.rearm]
        )
        self.monitor.on_halt = self.kill_switch.trigger
        self.reloader = (
            RiskReloader(
                config_path,
                risk.set_config,
                interval_s=risk.config.reload_interval_s,
                alert=risk.alert,
            )
            if config_path is not None
            else None
        )
        self._next_reload_ms = 0

    def update_prices(self, marks: Mapping[str, Decimal]) -> None:
        """Record last prices (the kernel's closes)."""
        for symbol, price in marks.items():
            self.risk.update_price(symbol, price)

    async def after_step(self, now_ms: int, new_fills: int = 0) -> RiskSnapshot | None:
        """Commands, hot reload, then the monitors (on fills, or when their interval is due)."""
        await self.kill_switch.poll()
        if self.reloader is not None and now_ms >= self._next_reload_ms:
            self.reloader.check()
            self._next_reload_ms = now_ms + int(self.reloader.interval_s * 1000)
        if new_fills or self.monitor.due(now_ms):
            return await self.monitor.update(now_ms)
        return None

    async def run(
        self,
        stop: asyncio.Event,
        *,
        interval_s: float = 1.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        """Between bars (live and paper): the same work every `interval_s` until `stop` is set,
        so a kill command or a loss is acted on within seconds, not at the next bar close."""
        while not stop.is_set():
            await self.after_step(self.risk.clock())
            await sleep(interval_s)
