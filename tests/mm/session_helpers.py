"""Helpers for market-making sessions against an in-process sandbox: the spec, running a
session as a task, driving the sandbox clock bar by bar (waiting until the session has seen
each bar, never on a fixed sleep) and reading the venue's side of the story."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from quantdesk.config import MMLiveConfig, VenueConfig
from quantdesk.engine.journal import Journal
from quantdesk.risk.limits import RiskConfig
from quantdesk.sandbox import Sandbox
from quantdesk.strategy import strategy_class
from quantdesk.system.live import Mode
from quantdesk.system.mm_live import MMSession, MMSessionResult, MMSessionSpec
from tests.sandbox.conftest import KEY, Admin, landed

SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"
# the risk engine's limits a quoting session lives within (the defaults suit bar strategies)
MM_RISK = RiskConfig(
    max_orders_per_second=20,
    max_orders_per_minute=2000,
    max_cancel_ratio=5.0,
    max_symbol_exposure=1.0,
)


def mm_spec(
    url: str,
    journal: Path,
    mode: str = "live",
    market: str = "spot",
    *,
    settings: MMLiveConfig | None = None,
    risk: RiskConfig | None = None,
    config_path: Path | None = None,
    **params: Any,
) -> MMSessionSpec:
    """basic_mm(size=0.001 unless given) on BTC/USDT (its perp on USD-M) in the sandbox."""
    strategy = strategy_class("basic_mm")(**({"size": 0.001} | params))
    venue = VenueConfig(exchange="binance", market=market, sandbox_url=url, rate_limit_ms=1)
    return MMSessionSpec(
        strategy=strategy,
        symbol=SPOT,
        mode=Mode(mode),
        venue_name="sandbox",
        venue=venue,
        journal=journal,
        settings=settings or MMLiveConfig(max_inventory=0.005, reconcile_every_s=1.0),
        risk=risk or MM_RISK,
        config_path=config_path,
        kill_poll_s=0.05,
    )


@asynccontextmanager
async def running(spec: MMSessionSpec) -> AsyncIterator[MMSession]:
    """A session started as a task; stopped (and awaited) on exit. Its result is
    session.result afterwards."""
    session = MMSession(spec)
    task = asyncio.create_task(session.run())
    started = asyncio.create_task(session.started.wait())
    await asyncio.wait({task, started}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # raise what ended it
    assert session.started.is_set(), "the session never started"
    try:
        yield session
    finally:
        session.stop.set()
        session.result = await asyncio.wait_for(task, 60)  # type: ignore[attr-defined]


async def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll check until it holds; fail naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def drive(session: MMSession, admin: Admin, sandbox: Sandbox, bars: int, step: int = 1,
                between: Callable[[int], Any] | None = None) -> int:  # fmt: skip
    """Advance the sandbox `step` bars at a time, at least `bars` in all, each time waiting
    until the session has seen the latest bar's trade (its market clock reached the bar's end).

    A bar published while a stream was reconnecting never reaches the session (streams do not
    replay): once the subscriptions are back, one more bar is advanced. Returns the bars
    advanced."""
    user = session.spec.mode == "live"
    done = 0
    while done < bars:
        await landed(admin, "@trade", "@depth", user=user)  # an event before it is lost
        n = min(step, bars - done)
        await asyncio.to_thread(admin.advance, n)
        done += n
        end = sandbox.now_ms() - 1
        deadline = time.monotonic() + 60
        quiet = time.monotonic() + 3
        while session.market_ms < end:
            assert time.monotonic() < deadline, f"the session never saw bar {done}"
            if time.monotonic() > quiet:  # lost in a reconnect: the next bar carries the clock
                await landed(admin, "@trade", "@depth", user=user)
                await asyncio.to_thread(admin.advance, 1)
                done += 1
                end = sandbox.now_ms() - 1
                quiet = time.monotonic() + 3
            await asyncio.sleep(0.02)
        if between is not None:
            await between(done)
    return done


def venue_orders(sandbox: Sandbox, symbol: str) -> dict[str, Any]:
    """The account's orders at the venue by client id (every one, open or not)."""
    return {
        o.client_id: o
        for o in sandbox.core.orders.values()
        if o.account == KEY and o.symbol == symbol
    }


def venue_open(sandbox: Sandbox, symbol: str) -> int:
    """How many of the account's orders rest at the venue now."""
    return sum(
        1
        for o in list(sandbox.core.open_orders.values())
        if o.account == KEY and o.symbol == symbol
    )


def venue_fills(sandbox: Sandbox, symbol: str) -> dict[str, Any]:
    """The account's executions at the venue by trade id."""
    return {
        str(f.trade_id): f for f in sandbox.core.fills if f.account == KEY and f.symbol == symbol
    }


def journal_of(path: Path) -> Journal:
    """A second reader of a session's journal."""
    return Journal(path)


def result_of(session: MMSession) -> MMSessionResult:
    """The finished session's result."""
    return session.result  # type: ignore[attr-defined]
