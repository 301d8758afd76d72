"""Simulated and wall clocks."""

from __future__ import annotations

import random
import time
from decimal import Decimal

import pytest

from quantdesk.engine.clock import SimClock, WallClock, next_boundary
from quantdesk.engine.order_manager import MemoryJournal, OrderManager
from quantdesk.model import Order, OrderStatus, OrderType, RetryPolicy, Side

H = 3_600_000


def test_next_boundary() -> None:
    assert next_boundary(0, H) == H
    assert next_boundary(H - 1, H) == H
    assert next_boundary(H, H) == 2 * H  # strictly after
    with pytest.raises(ValueError):
        next_boundary(5, 0)


async def test_sim_clock_moves_only_forward_and_sleep_advances_it() -> None:
    clock = SimClock(1_000)
    assert clock() == clock.now_ms() == 1_000
    await clock.sleep(1.5)
    assert clock() == 2_500
    clock.advance_by(500)
    clock.advance_to(3_000)  # same time is fine
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance_to(2_999)
    with pytest.raises(ValueError):
        await clock.sleep(-1)


def test_sim_clock_stands_at_each_bar_close() -> None:
    clock = SimClock(0)
    seen = [(open_ms, clock()) for open_ms in clock.bars([0, H, 2 * H], H)]
    assert seen == [(0, H), (H, 2 * H), (2 * H, 3 * H)]


class DownVenue:
    """A venue whose order lookups always time out."""

    name = "down"

    async def fetch_order_by_client_id(self, symbol: str, cid: str) -> None:
        raise TimeoutError("venue down")


async def lookup_until_given_up(seed: int) -> int:
    clock = SimClock(0)
    om = OrderManager(
        DownVenue(),  # type: ignore[arg-type]
        MemoryJournal(),
        clock,
        rng=random.Random(seed),
        policy=RetryPolicy(base=1.0, cap=4.0, max_attempts=3),
        sleep=clock.sleep,
    )
    order = Order("qd-x", "BTC/USDT", Side.BUY, OrderType.MARKET, Decimal(1), created_ms=0)
    om.orders[order.client_order_id] = order
    order.transition(OrderStatus.SUBMITTED, 0)
    assert await om.resolve_in_flight() == [order]
    assert order.status is OrderStatus.SUBMITTED  # still in flight: venue unreachable
    return clock()


async def test_sim_clock_makes_order_manager_backoff_deterministic() -> None:
    elapsed = await lookup_until_given_up(5)
    assert elapsed == await lookup_until_given_up(5)
    assert 1_500 <= elapsed <= 3_000  # waits after failures 1 (0.5-1 s) and 2 (1-2 s)


async def test_wall_clock_is_utc_ms() -> None:
    clock = WallClock()
    before = time.time() * 1000
    now = clock()
    assert abs(now - before) < 60_000 and isinstance(now, int)
    await clock.sleep_until(now - 1)  # in the past: returns at once
