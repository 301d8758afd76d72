"""OrderManager against an explicit in-test fake venue with scripted faults.

FakeVenue is an honest, minimal venue: it keeps its own book keyed by client order id, refuses a
duplicate client id (as Binance does), fills market orders at once and limit orders on demand,
and can be told to fail a request before or after executing it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from decimal import Decimal as D

import pytest

from quantdesk.engine.order_manager import MemoryJournal, OrderManager
from quantdesk.model import (
    DuplicateOrder,
    Fill,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    RetryPolicy,
    Side,
    VenueAmbiguous,
    VenueNotFound,
    VenueOrder,
    VenueRefused,
    client_order_id,
)

S = OrderStatus


@dataclass
class VenueSide:
    order: Order
    venue_id: str
    status: OrderStatus = S.NEW
    fills: list[Fill] = field(default_factory=list)

    @property
    def filled(self) -> D:
        return sum((f.amount for f in self.fills), D(0))


class FakeVenue:
    name = "fake"

    def __init__(self, log: list, price: D = D("100"), fee_rate: D = D("0.001")) -> None:
        self.log = log
        self.price = price
        self.fee_rate = fee_rate
        self.book: dict[str, VenueSide] = {}
        self.create_calls: list[str] = []
        self.create_script: list[str] = []
        self.fetch_script: list[str] = []
        self.cancel_script: list[str] = []
        self.delayed: list[Order] = []
        self.trade_seq = 0

    # venue internals ---------------------------------------------------------------------
    def _place(self, order: Order) -> None:
        # a copy: the venue must not share state with the engine's object
        placed = Order(**{k: v for k, v in vars(order).items() if k != "fill_ids"})
        side = VenueSide(placed, venue_id=str(1000 + len(self.book)))
        self.book[order.client_order_id] = side
        if order.type is OrderType.MARKET:
            self.execute(order.client_order_id, order.amount, self.price)

    def execute(self, cid: str, amount: D, price: D) -> None:
        side = self.book[cid]
        self.trade_seq += 1
        side.fills.append(
            Fill(
                trade_id=f"T{self.trade_seq}",
                client_order_id=cid,
                symbol=side.order.symbol,
                side=side.order.side,
                amount=amount,
                price=price,
                fee=amount * price * self.fee_rate,
                fee_currency="USDT",
                timestamp=5_000 + self.trade_seq,
                venue_order_id=side.venue_id,
            )
        )
        side.status = S.FILLED if side.filled == side.order.amount else S.PARTIALLY_FILLED

    def _view(self, cid: str) -> VenueOrder:
        side = self.book[cid]
        return VenueOrder(cid, side.status, side.venue_id, side.filled, fills=tuple(side.fills))

    # the Venue protocol ------------------------------------------------------------------
    async def create_order(self, order: Order) -> VenueOrder:
        self.log.append(("send", order.client_order_id))
        self.create_calls.append(order.client_order_id)
        for late in self.delayed:  # a delayed earlier request arrives first
            self._place(late)
        self.delayed.clear()
        behaviour = self.create_script.pop(0) if self.create_script else "ok"
        if behaviour == "insufficient":
            raise VenueRefused("binance Account has insufficient balance")
        if behaviour == "lost":
            raise VenueAmbiguous("request lost before reaching the venue")
        if behaviour == "rate_limited":
            raise VenueAmbiguous("429", throttled=True)
        if behaviour == "lands_late":
            self.delayed.append(order)
            raise VenueAmbiguous("request delayed in transit")
        if order.client_order_id in self.book:
            raise DuplicateOrder("Duplicate order sent.")
        self._place(order)
        if behaviour == "timeout_after":
            raise VenueAmbiguous("response lost after execution")
        if behaviour == "502_after":
            raise VenueAmbiguous("502 Bad Gateway")
        return self._view(order.client_order_id)

    async def fetch_order_by_client_id(self, symbol: str, cid: str) -> VenueOrder | None:
        if self.fetch_script and self.fetch_script.pop(0) == "down":
            raise VenueAmbiguous("connection reset")
        return self._view(cid) if cid in self.book else None

    async def cancel_order(self, order: Order) -> VenueOrder:
        behaviour = self.cancel_script.pop(0) if self.cancel_script else "ok"
        side = self.book.get(order.client_order_id)
        if behaviour == "fill_first" and side is not None:
            self.execute(order.client_order_id, side.order.amount - side.filled, self.price)
        if behaviour == "refuse":
            raise VenueRefused("cancel refused")
        if side is None or side.status not in (S.NEW, S.PARTIALLY_FILLED):
            raise VenueNotFound("Unknown order sent.")
        side.status = S.CANCELED
        if behaviour == "timeout_after":
            raise VenueAmbiguous("cancel response lost")
        return self._view(order.client_order_id)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        return [
            self._view(cid)
            for cid, s in self.book.items()
            if s.status in (S.NEW, S.PARTIALLY_FILLED) and symbol in (None, s.order.symbol)
        ]


class RecordingJournal(MemoryJournal):
    """MemoryJournal that also logs each write into the shared sequence log."""

    def __init__(self, log: list) -> None:
        super().__init__()
        self.log = log

    def record_order(self, order: Order) -> None:
        self.log.append(("journal", order.client_order_id, order.status))
        super().record_order(order)

    def record_event(self, event: OrderEvent) -> None:
        super().record_event(event)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000
        self.sleeps: list[float] = []

    def __call__(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += int(seconds * 1000)


@pytest.fixture
def world():
    log: list = []
    venue = FakeVenue(log)
    journal = RecordingJournal(log)
    clock = Clock()
    fills: list[Fill] = []
    om = OrderManager(
        venue,
        journal,
        clock,
        rng=random.Random(7),
        policy=RetryPolicy(base=1.0, cap=8.0, max_attempts=3),
        sleep=clock.sleep,
        order_timeout_ms=60_000,
        on_fill=fills.append,
    )
    return om, venue, journal, clock, fills, log


def market(seq: int = 0, amount: str = "2") -> Order:
    cid = client_order_id("sma", "BTC/USDT", 1_700_000_000_000, seq)
    return Order(cid, "BTC/USDT", Side.BUY, OrderType.MARKET, D(amount), created_ms=1_000_000)


def limit(seq: int = 0, amount: str = "2", price: str = "95") -> Order:
    cid = client_order_id("mm", "BTC/USDT", 1_700_000_000_000, seq)
    return Order(
        cid, "BTC/USDT", Side.BUY, OrderType.LIMIT, D(amount), price=D(price), created_ms=1_000_000
    )


def statuses(journal: MemoryJournal, cid: str) -> list:
    return [(e.old, e.new) for e in journal.events if e.client_order_id == cid]


async def test_happy_market_order_journaled_before_sending(world) -> None:
    om, _venue, journal, _clock, fills, log = world
    order = await om.submit(market())
    cid = order.client_order_id
    assert order.status is S.FILLED and order.filled == D(2) and order.average_price == D(100)
    assert order.fee == D("0.2") and order.venue_order_id == "1000"
    send_at = log.index(("send", cid))
    assert ("journal", cid, S.PENDING) in log[:send_at]
    assert ("journal", cid, S.SUBMITTED) in log[:send_at]
    assert statuses(journal, cid) == [
        (None, S.PENDING),
        (S.PENDING, S.SUBMITTED),
        (S.SUBMITTED, S.FILLED),
    ]
    assert [f.trade_id for f in fills] == ["T1"] and fills[0].venue == "fake"


async def test_executed_then_timeout_is_adopted_not_duplicated(world) -> None:
    om, venue, _journal, clock, fills, _ = world
    venue.create_script = ["timeout_after"]
    order = await om.submit(market())
    assert venue.create_calls == [order.client_order_id]  # no resend
    assert len(venue.book) == 1
    assert order.status is S.FILLED and order.filled == D(2)
    assert len(fills) == 1 and len(clock.sleeps) == 1  # one lookup after one backoff


async def test_lost_request_is_resent_with_the_same_client_id(world) -> None:
    om, venue, _journal, _clock, fills, _ = world
    venue.create_script = ["lost"]
    order = await om.submit(market())
    assert venue.create_calls == [order.client_order_id] * 2
    assert len(venue.book) == 1 and order.status is S.FILLED and order.submit_attempts == 2
    assert len(fills) == 1


async def test_late_landing_first_attempt_is_found_via_duplicate_refusal(world) -> None:
    om, venue, _journal, _clock, fills, _ = world
    venue.create_script = ["lands_late", "ok"]
    order = await om.submit(market())
    assert venue.create_calls == [order.client_order_id] * 2
    assert len(venue.book) == 1  # the resend was refused as a duplicate and resolved by lookup
    assert order.status is S.FILLED and len(fills) == 1


async def test_lookup_retries_with_growing_backoff_while_venue_is_down(world) -> None:
    om, venue, _journal, clock, _fills, _ = world
    venue.create_script = ["502_after"]
    venue.fetch_script = ["down", "down", "up"]
    order = await om.submit(market())
    assert order.status is S.FILLED and len(venue.book) == 1
    assert len(clock.sleeps) == 3
    assert 0.5 <= clock.sleeps[0] <= 1 and 1 <= clock.sleeps[1] <= 2 and 2 <= clock.sleeps[2] <= 4


async def test_unreachable_venue_leaves_order_in_flight_until_resolved(world) -> None:
    om, venue, _journal, _clock, fills, _ = world
    venue.create_script = ["timeout_after"]
    venue.fetch_script = ["down"] * 3
    order = await om.submit(market())
    assert order.status is S.SUBMITTED and fills == []  # in flight: neither resent nor rejected
    assert venue.create_calls == [order.client_order_id]
    await om.resolve_in_flight()
    assert order.status is S.FILLED and len(venue.book) == 1 and len(fills) == 1


async def test_definitive_refusal_rejects_without_retry(world) -> None:
    om, venue, journal, clock, _fills, _ = world
    venue.create_script = ["insufficient"]
    order = await om.submit(market())
    assert order.status is S.REJECTED and "insufficient balance" in order.reason
    assert len(venue.create_calls) == 1 and clock.sleeps == [] and venue.book == {}
    assert statuses(journal, order.client_order_id)[-1] == (S.SUBMITTED, S.REJECTED)


async def test_proven_absent_every_time_rejects_after_max_attempts(world) -> None:
    om, venue, _journal, _clock, _fills, _ = world
    venue.create_script = ["lost"] * 3
    order = await om.submit(market())
    assert order.status is S.REJECTED and "proven absent after 3 attempts" in order.reason
    assert venue.create_calls == [order.client_order_id] * 3 and venue.book == {}


async def test_rate_limit_backs_off_longer(world) -> None:
    om, venue, _journal, clock, _fills, _ = world
    venue.create_script = ["rate_limited"]
    order = await om.submit(market())
    assert order.status is S.FILLED
    assert 2.0 <= clock.sleeps[0] <= 4.0  # throttled: 4x the 1 s base


async def test_absent_after_window_delays_the_proof_of_absence(world) -> None:
    om, venue, _journal, clock, _fills, _log = world
    om.absent_after_s = 5.0
    venue.create_script = ["lost"]
    await om.submit(market())
    assert clock.sleeps[0] == 5.0


async def test_resubmitting_a_tracked_intent_sends_nothing(world) -> None:
    om, venue, *_ = world
    first = await om.submit(market())
    again = await om.submit(market())
    assert again is first and len(venue.create_calls) == 1


async def test_partial_fill_then_timeout_cancel_and_stats(world) -> None:
    om, venue, journal, clock, fills, _ = world
    order = await om.submit(limit(amount="2", price="95"))
    assert order.status is S.NEW
    venue.execute(order.client_order_id, D("0.5"), D("95"))
    await om.refresh()
    await om.refresh()  # the same trade reported again is not applied twice
    assert order.status is S.PARTIALLY_FILLED and order.filled == D("0.5") and len(fills) == 1
    assert clock.sleeps == []  # polling a reachable venue does not back off
    assert await om.cancel_stale() == []  # not yet old enough
    clock.now += 60_000
    assert await om.cancel_stale() == [order]
    assert order.status is S.CANCELED and order.reason == "timeout"
    assert statuses(journal, order.client_order_id)[-2:] == [
        (S.PARTIALLY_FILLED, S.CANCELING),
        (S.CANCELING, S.CANCELED),
    ]
    filled_mkt = await om.submit(market(seq=1, amount="1"))
    stats = om.stats()
    assert stats.orders == 2 and stats.by_status == {"canceled": 1, "filled": 1}
    assert stats.ordered_amount == D(3) and stats.filled_amount == D("1.5")
    assert stats.fill_ratio == D("0.5") and stats.fill_rate == D("0.5")
    assert stats.volume == D("0.5") * 95 + D(100)
    assert stats.fees == {"USDT": D("0.5") * 95 * D("0.001") + D("0.1")}
    assert filled_mkt.status is S.FILLED


async def test_fill_racing_cancel_ends_filled(world) -> None:
    om, venue, journal, _clock, fills, _ = world
    order = await om.submit(limit())
    venue.cancel_script = ["fill_first"]
    await om.cancel(order.client_order_id)
    assert order.status is S.FILLED and order.filled == D(2) and len(fills) == 1
    assert statuses(journal, order.client_order_id)[-1] == (S.CANCELING, S.FILLED)


async def test_cancel_refused_while_working_reverts(world) -> None:
    om, venue, _journal, _clock, _fills, _ = world
    order = await om.submit(limit())
    venue.cancel_script = ["refuse"]
    await om.cancel(order.client_order_id)
    assert order.status is S.NEW


async def test_cancel_with_lost_reply_resolves_by_lookup(world) -> None:
    om, venue, _journal, _clock, _fills, _ = world
    order = await om.submit(limit())
    venue.cancel_script = ["timeout_after"]
    await om.cancel(order.client_order_id)
    assert order.status is S.CANCELED


async def test_recover_after_restart() -> None:
    log: list = []
    venue = FakeVenue(log)
    clock = Clock()
    # Orders as a crashed engine left them in its journal.
    unsent = market(seq=0)
    sent_and_filled = market(seq=1)
    sent_and_lost = market(seq=2)
    for o in (sent_and_filled, sent_and_lost):
        o.transition(S.SUBMITTED, 0)
        o.submit_attempts = 1
    venue._place(sent_and_filled)
    journal = MemoryJournal()
    om = OrderManager(venue, journal, clock, rng=random.Random(1), sleep=clock.sleep)
    await om.recover([unsent, sent_and_filled, sent_and_lost])
    assert unsent.status is S.CANCELED and sent_and_filled.status is S.FILLED
    assert sent_and_lost.status is S.REJECTED and venue.create_calls == []

    # With resend, the lost one goes out again under its own id.
    lost_again = market(seq=3)
    lost_again.transition(S.SUBMITTED, 0)
    om2 = OrderManager(venue, MemoryJournal(), clock, rng=random.Random(1), sleep=clock.sleep)
    await om2.recover([lost_again], resend=True)
    assert lost_again.status is S.FILLED and venue.create_calls == [lost_again.client_order_id]


async def test_fill_already_in_journal_is_not_applied_again(world) -> None:
    om, venue, journal, _clock, fills, _ = world
    order = limit()
    # An earlier life journaled trade T1 of this order before crashing.
    await om.submit(order)
    venue.execute(order.client_order_id, D(1), D(95))
    prior = venue.book[order.client_order_id].fills[0]
    journal.record_fill(Fill(**{**vars(prior), "venue": "fake"}))
    await om.refresh()
    assert fills == []  # not passed on to the portfolio a second time
    assert order.filled == D(1) and order.fill_ids == {"T1"}  # no synthetic duplicate either
    assert list(journal.fills) == [("fake", "T1")]


async def test_restart_from_sqlite_journal_applies_each_fill_once(tmp_path) -> None:
    from quantdesk.engine.journal import Journal
    from quantdesk.engine.portfolio import Portfolio

    log: list = []
    venue = FakeVenue(log)
    clock = Clock()
    path = tmp_path / "journal.db"
    portfolio = Portfolio(cash={"USDT": D(10_000)})
    first = Journal(path)
    om = OrderManager(
        venue, first, clock, rng=random.Random(3), sleep=clock.sleep, on_fill=portfolio.apply_fill
    )
    order = await om.submit(limit(amount="2", price="95"))
    venue.execute(order.client_order_id, D("0.5"), D("95"))
    await om.refresh()
    venue.execute(order.client_order_id, D("1.5"), D("94"))  # fills while the engine is down
    first.close()  # the engine dies here

    second = Journal(path)
    rebuilt = Portfolio(cash={"USDT": D(10_000)})
    for f in second.load_fills():
        rebuilt.apply_fill(f)
    assert rebuilt.positions["BTC/USDT"].quantity == D("0.5")
    om2 = OrderManager(
        venue, second, clock, rng=random.Random(3), sleep=clock.sleep, on_fill=rebuilt.apply_fill
    )
    [recovered] = await om2.recover(second.load_orders())
    assert recovered.status is S.FILLED and recovered.filled == D(2)
    assert recovered.average_price == (D("0.5") * 95 + D("1.5") * 94) / 2
    assert rebuilt.positions["BTC/USDT"].quantity == D(2)  # only the missing fill was applied
    assert second.count("fills") == 2 and len(venue.book) == 1
    assert list(second.order_events(order.client_order_id)["new"]) == [
        "pending",
        "submitted",
        "new",
        "partially_filled",
        "filled",
    ]
    assert second.orders().iloc[0]["status"] == "filled"
    second.close()


class GatedVenue(FakeVenue):
    """Holds every create request until the gate opens (a slow network)."""

    def __init__(self, log: list) -> None:
        super().__init__(log)
        self.gate = asyncio.Event()
        self.cancel_calls = 0

    async def create_order(self, order: Order) -> VenueOrder:
        await self.gate.wait()
        return await super().create_order(order)

    async def cancel_order(self, order: Order) -> VenueOrder:
        self.cancel_calls += 1
        return await super().cancel_order(order)


@pytest.mark.parametrize("outcome", ["ok", "lost"])
async def test_cancel_during_send_is_carried_out_after_the_ack(outcome: str) -> None:
    venue = GatedVenue([])
    venue.create_script = [outcome]
    clock = Clock()
    om = OrderManager(venue, MemoryJournal(), clock, rng=random.Random(2), sleep=clock.sleep)
    order = limit()
    task = asyncio.create_task(om.submit(order))
    await asyncio.sleep(0)  # the send is now waiting on the network
    assert order.status is S.SUBMITTED
    await om.cancel(order.client_order_id)
    assert order.status is S.CANCELING and venue.cancel_calls == 0
    venue.gate.set()
    await task
    assert order.status is S.CANCELED
    if outcome == "ok":  # it reached the venue: cancelled there
        assert venue.cancel_calls == 1 and venue.book[order.client_order_id].status is S.CANCELED
    else:  # lost in transit and proven absent: not resent, nothing to cancel
        assert venue.create_calls == [order.client_order_id] and venue.book == {}
        assert order.reason == "cancelled before it reached the venue"
