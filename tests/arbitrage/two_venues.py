"""Two sandbox venues for live arbitrage tests: the same prices, another funding schedule.

Venue A settles every 8 hours (the synthetic market's funding); venue B every hour, with
+0.0002 per hour on top (its crowd pays more: long A / short B earns ~175% APR) and other
perpetual fees. Sessions run in-process; tests wait on the journal, never on the clock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from quantdesk.config import ArbConfig, VenueConfig
from quantdesk.engine.journal import Journal
from quantdesk.model import RetryPolicy
from quantdesk.sandbox import Sandbox, serve_in_thread
from quantdesk.strategy import strategy_class
from quantdesk.system.arb_live import ArbSession, ArbSpec
from quantdesk.venues.matching import FeeSchedule
from tests.sandbox.conftest import ADMIN_TOKEN, Admin, make_config

PERP = "BTC/USDT:USDT"
OFFSET_PER_HOUR = 0.0002
FAST_RETRY = RetryPolicy(base=0.01, factor=2.0, cap=0.05, max_attempts=3)


def venue_b_config() -> Any:
    """Hourly funding with an offset, and its own fee schedule."""
    config = make_config()
    config.funding_hours, config.funding_offset = 1, OFFSET_PER_HOUR
    config.perp_fees = FeeSchedule(Decimal("0.0001"), Decimal("0.0003"))
    return config


@pytest.fixture(scope="module")
def two_urls() -> Iterator[dict[str, str]]:
    """Two sandbox servers for the module: a (8-hourly funding) and b (hourly)."""
    with (
        serve_in_thread(Sandbox(make_config())) as a,
        serve_in_thread(Sandbox(venue_b_config())) as b,
    ):
        yield {"a": a, "b": b}


@pytest.fixture
def admins(two_urls: dict[str, str]) -> dict[str, Admin]:
    """Both sandboxes reset, weight limits lifted."""
    out = {}
    for leg, url in two_urls.items():
        api = Admin(url, ADMIN_TOKEN)
        api("POST", "reset")
        api("POST", "limits", {"weight_limit": 1_000_000})
        out[leg] = api
    return out


def spec(
    urls: dict[str, str], journal: Path, params: dict[str, Any] | None = None, **arb: Any
) -> ArbSpec:
    """An ArbSpec over both sandboxes with fast polls and a fast order retry."""
    values = {"confirm": 1, "slices": 4, "entry_apr": 10.0, **(params or {})}
    strategy = strategy_class("funding_arb")(**values)
    venues = {
        "alpha": VenueConfig(exchange="binance", market="usdm", sandbox_url=urls["a"],
                             rate_limit_ms=1),
        "beta": VenueConfig(exchange="binance", market="usdm", sandbox_url=urls["b"],
                            rate_limit_ms=1),
    }  # fmt: skip
    config = ArbConfig(
        venue_a="alpha",
        venue_b="beta",
        symbol=PERP,
        capital=2000,
        funding_poll_s=0.2,
        price_poll_s=0.05,
        reconcile_every_s=0.5,
        **arb,
    )
    return ArbSpec(strategy, config, venues, journal, retry=FAST_RETRY)


def venue_position(url: str) -> Decimal:
    """The account's signed BTC perp position as the venue reports it (through ccxt)."""
    from quantdesk.venues import sandbox_client

    ex = sandbox_client("binanceusdm", url, enableRateLimit=False)
    try:
        for p in ex.fetch_positions():
            if p["symbol"] == PERP and p.get("contracts"):
                qty = Decimal(str(p["contracts"]))
                return -qty if p.get("side") == "short" else qty
        return Decimal(0)
    finally:
        ex.close() if hasattr(ex, "close") else None


def read(journal: Path, what: Callable[[Journal], Any]) -> Any:
    """Read something from the journal with a reader of its own."""
    if not journal.exists():
        return None
    with Journal(journal) as j:
        return what(j)


async def until(
    condition: Callable[[], bool], task: asyncio.Task, what: str, limit: float = 60
) -> None:
    """Wait until condition() holds (checked every 20 ms); fail if the session ends first."""
    deadline = time.monotonic() + limit
    while not condition():
        if task.done():
            task.result()
            raise AssertionError(f"session ended before {what}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def rows(journal: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of a read-only query (nothing when the journal is not there yet): a reader that
    opened a Journal could race the session creating its tables."""
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
            return list(db.execute(sql, args))
    except sqlite3.Error:
        return []


def kinds(journal: Path, kind: str) -> list[dict[str, Any]]:
    """Payloads of the journal's risk events of one kind."""
    found = rows(journal, "select payload from risk_events where kind = ? order by id", kind)
    return [json.loads(p) for (p,) in found]


def alerts(journal: Path) -> list[str]:
    """Messages of every journaled alert."""
    return [m for (m,) in rows(journal, "select message from alerts order by id")]


async def start(session: ArbSession) -> asyncio.Task:
    """Run the session as a task; return once it has started (recovered and reconciled)."""
    task = asyncio.create_task(session.run())
    deadline = time.monotonic() + 60
    while not session.started.is_set():
        if task.done():
            task.result()
        assert time.monotonic() < deadline, "session never started"
        await asyncio.sleep(0.02)
    return task
