"""RiskGuard between bars: commands, hot reload and monitors on a timer."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal as D
from pathlib import Path

from quantdesk.engine.journal import Journal
from quantdesk.engine.order_manager import MemoryJournal, OrderManager
from quantdesk.model import TradingState
from quantdesk.risk.guard import RiskGuard
from quantdesk.risk.killswitch import queue_command
from tests.risk.helpers import Clock, engine, fill


class NoVenue:
    """A venue that must not be called: nothing is open, nothing to flatten."""

    name = "none"

    async def create_order(self, order):  # pragma: no cover - would fail the test
        raise AssertionError("no order expected")

    async def fetch_order_by_client_id(self, symbol, client_order_id):  # pragma: no cover
        raise AssertionError("no lookup expected")

    async def cancel_order(self, order):  # pragma: no cover
        raise AssertionError("no cancel expected")

    async def fetch_open_orders(self, symbol=None):  # pragma: no cover
        return []


async def test_timer_consumes_commands_reloads_and_monitors(tmp_path: Path) -> None:
    clock = Clock()
    risk = engine(clock=clock, monitor_interval_s=5)
    journal = Journal(tmp_path / "j.sqlite")
    toml = tmp_path / "quantdesk.toml"
    toml.write_text("[risk]\nmonitor_interval_s = 5\n")
    manager = OrderManager(NoVenue(), MemoryJournal(), clock, rng=random.Random(0))
    guard = RiskGuard(risk, [manager], journal=journal, config_path=toml)
    stop = asyncio.Event()
    seen: list[TradingState] = []

    async def sleep(seconds: float) -> None:
        clock.now += int(seconds * 1000)
        seen.append(risk.state)
        if len(seen) == 1:
            queue_command(journal, "kill", clock.now, reason="operator")
        if len(seen) == 3:
            queue_command(journal, "resume", clock.now)
            toml.write_text("[risk]\nmonitor_interval_s = 5\nmax_open_positions = 3\n")
        if len(seen) == 6:
            stop.set()

    await guard.run(stop, interval_s=1.0, sleep=sleep)
    assert seen == [
        TradingState.ACTIVE,
        TradingState.HALTED,
        TradingState.HALTED,
        TradingState.ACTIVE,
        TradingState.ACTIVE,
        TradingState.ACTIVE,
    ]
    assert risk.limits().max_open_positions == 3  # reloaded at the 2 s reload interval
    assert guard.monitor.last_run_ms is not None
    journal.close()


async def test_monitor_runs_on_fills_or_when_due() -> None:
    clock = Clock()
    risk = engine(clock=clock, monitor_interval_s=10)
    manager = OrderManager(NoVenue(), MemoryJournal(), clock, rng=random.Random(0))
    guard = RiskGuard(risk, [manager])
    assert await guard.after_step(clock.now) is not None  # first run is due
    clock.now += 1000
    assert await guard.after_step(clock.now) is None
    fill(risk.portfolio, "BTC/USDT", "10")
    snap = await guard.after_step(clock.now, new_fills=1)
    assert snap is not None and snap.gross_exposure == D(1000)
