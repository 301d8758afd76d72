"""Live market-making sessions against the sandbox (spot and USD-M): the journal against the
venue after quoting, the kill switch's one-second promise, and a rehearsal of simulated hours
with user-stream disconnects (fills backfilled over REST, nothing doubled)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from quantdesk.alerts import AlertsConfig
from quantdesk.config import MMLiveConfig
from quantdesk.engine.journal import Journal
from quantdesk.model import OrderStatus
from quantdesk.risk.killswitch import queue_command
from quantdesk.sandbox import Sandbox, serve_in_thread
from quantdesk.venues import sandbox_client
from tests.mm.session_helpers import (
    PERP,
    SPOT,
    drive,
    mm_spec,
    result_of,
    running,
    venue_fills,
    venue_open,
    venue_orders,
    wait_for,
)
from tests.sandbox.conftest import ADMIN_TOKEN, KEY, SECRET, Admin, make_config


@pytest.fixture(scope="module")
def mm_sandbox() -> Sandbox:
    return Sandbox(make_config())


@pytest.fixture(scope="module")
def mm_url(mm_sandbox: Sandbox) -> Iterator[str]:
    with serve_in_thread(mm_sandbox) as base:
        yield base


@pytest.fixture
def mm_admin(mm_url: str) -> Admin:
    api = Admin(mm_url, ADMIN_TOKEN)
    api("POST", "reset")
    api("POST", "limits", {"weight_limit": 1_000_000})
    return api


def check_journal_against_venue(path: Path, sandbox: Sandbox, symbol: str) -> tuple[int, int]:
    """Every venue order and fill is in the journal once and the other way round, states
    agree, nothing rests at the venue, and the journal's position is the venue's; returns
    (orders, fills)."""
    with Journal(path) as journal:
        orders = journal.orders()
        fills = journal.fills()
        events = journal.events()
    at_venue = venue_orders(sandbox, symbol)
    sent = orders[orders["submit_attempts"] > 0]
    assert orders["client_order_id"].is_unique
    assert set(sent["client_order_id"]) == set(at_venue)  # every intent sent landed, once
    assert not (orders["status"].isin(["pending", "submitted"])).any()
    for row in sent.itertuples():
        venue = at_venue[row.client_order_id]
        assert Decimal(row.filled) == venue.filled, row.client_order_id
        if venue.status.is_open:
            raise AssertionError(f"{row.client_order_id} still rests at the venue")
    ours = venue_fills(sandbox, symbol)
    assert fills["trade_id"].is_unique
    assert set(fills["trade_id"]) == set(ours)  # every execution once, none invented
    for row in fills.itertuples():
        venue = ours[row.trade_id]
        assert (Decimal(row.amount), Decimal(row.price)) == (venue.qty, venue.price)
    assert venue_open(sandbox, symbol) == 0
    # reconciliation never found a foreign order or fill, a balance or a position the journal
    # could not explain; a fill it met before the stream delivered it (a stream cut) went
    # through its own order, once
    kinds = set(events["kind"])
    assert not kinds & {"reconcile_unknown_order", "reconcile_balance", "reconcile_position"}
    missing = events[events["kind"] == "reconcile_missing_fill"]
    assert all(p["action"] == "applied via order" for p in missing["payload"]), list(
        missing["message"]
    )
    return len(sent), len(fills)


def venue_position(sandbox: Sandbox, symbol: str, start_btc: Decimal) -> Decimal:
    """The account's position as the venue holds it: the perp position, or the spot BTC
    balance's change."""
    account = sandbox.core.accounts[KEY]
    if ":" in symbol:
        return account.position(symbol).qty
    bal = account.balance("BTC")
    return bal.free + bal.locked - start_btc


@pytest.mark.parametrize(("market", "symbol"), [("spot", SPOT), ("usdm", PERP)])
async def test_live_quoting_journals_every_venue_order_and_fill_once(
    tmp_path: Path, mm_url: str, mm_admin: Admin, mm_sandbox: Sandbox, market: str, symbol: str
) -> None:
    journal = tmp_path / "mm.sqlite"
    spec = mm_spec(mm_url, journal, "live", market)
    start_btc = Decimal("1")
    async with running(spec) as session:
        await wait_for(lambda: venue_open(mm_sandbox, symbol) >= 2, "a two-sided quote")
        await drive(session, mm_admin, mm_sandbox, bars=25)
        await wait_for(lambda: len(session.reports) >= 2, "a periodic reconciliation")
    result = result_of(session)
    orders, fills = check_journal_against_venue(journal, mm_sandbox, symbol)
    assert orders >= 10 and fills >= 2  # it quoted both sides and the market traded into it
    assert result.fills == fills
    assert result.position == venue_position(mm_sandbox, symbol, start_btc)
    assert abs(result.position) <= Decimal("0.005") + Decimal("0.001")  # max inventory (+ fee)
    with Journal(journal) as j:
        events = j.order_events()
    # journal before send: each order was PENDING, then SUBMITTED, before any venue state
    for cid, rows in events.groupby("client_order_id"):
        states = list(rows["new"])
        assert states[:2] == ["pending", "submitted"], cid


async def test_kill_switch_cancels_every_quote_within_one_second(
    tmp_path: Path, mm_url: str, mm_admin: Admin, mm_sandbox: Sandbox
) -> None:
    journal = tmp_path / "kill.sqlite"
    spec = mm_spec(mm_url, journal, "live", "spot", levels=3)
    async with running(spec) as session:
        await wait_for(lambda: venue_open(mm_sandbox, SPOT) >= 6, "three levels a side resting")
        with Journal(journal) as j:
            queue_command(j, "kill", int(time.time() * 1000), reason="test")
        t0 = time.perf_counter()
        await wait_for(lambda: venue_open(mm_sandbox, SPOT) == 0, "every quote cancelled", 5)
        elapsed = time.perf_counter() - t0
        assert session.risk.state == "halted"
        placed = len(venue_orders(mm_sandbox, SPOT))
        await drive(session, mm_admin, mm_sandbox, bars=3)  # the market moves: no requote
        assert len(venue_orders(mm_sandbox, SPOT)) == placed
    assert elapsed < 1.0, f"quotes outlived the kill switch by {elapsed:.3f} s"
    assert result_of(session).state == "halted"
    with Journal(journal) as j:
        kill = j.events("kill")
    assert len(kill) == 1 and len(kill["payload"].iloc[0]["cancelled"]) >= 6


@pytest.mark.parametrize(("market", "symbol"), [("spot", SPOT), ("usdm", PERP)])
async def test_rehearsal_of_three_market_hours_with_stream_disconnects(
    tmp_path: Path, mm_url: str, mm_admin: Admin, mm_sandbox: Sandbox, market: str, symbol: str
) -> None:
    journal = tmp_path / "rehearsal.sqlite"
    spec = mm_spec(mm_url, journal, "live", market)
    t0 = mm_sandbox.now_ms()

    async def faults(done: int) -> None:
        if (
            done // 6 in (10, 20) and done % 6 == 0
        ):  # drop every stream connection (market and user) twice
            await asyncio.to_thread(mm_admin.faults, stream_disconnects=8)

    async with running(spec) as session:
        await drive(session, mm_admin, mm_sandbox, bars=180, step=6, between=faults)
    hours = (mm_sandbox.now_ms() - t0) / 3_600_000
    assert hours >= 3.0
    assert sum(session.streams.reconnects.values()) >= 2  # the faults did cut the streams
    orders, fills = check_journal_against_venue(journal, mm_sandbox, symbol)
    assert orders >= 10 and fills >= 3  # counts follow wall time: messages are rate-limited
    result = result_of(session)
    assert result.position == venue_position(mm_sandbox, symbol, Decimal("1"))
    with Journal(journal) as j:
        statuses = set(j.orders()["status"])
    assert statuses <= {s.value for s in OrderStatus if s.is_terminal}


async def test_a_restart_on_the_same_journal_resumes_and_never_reuses_a_client_id(
    tmp_path: Path, mm_url: str, mm_admin: Admin, mm_sandbox: Sandbox
) -> None:
    journal = tmp_path / "restart.sqlite"
    for _ in range(2):
        async with running(mm_spec(mm_url, journal, "live")) as session:
            await wait_for(lambda: venue_open(mm_sandbox, SPOT) >= 2, "a two-sided quote")
            await drive(session, mm_admin, mm_sandbox, bars=8)
    check_journal_against_venue(journal, mm_sandbox, SPOT)
    with Journal(journal) as j:
        kinds = list(j.events()["kind"])
    assert kinds.count("session_started") == 1 and kinds.count("session_resumed") == 1
    assert result_of(session).position == venue_position(mm_sandbox, SPOT, Decimal("1"))


async def test_reconciliation_cancels_a_foreign_order_and_alerts_the_difference(
    tmp_path: Path, mm_url: str, mm_admin: Admin, mm_sandbox: Sandbox
) -> None:
    journal = tmp_path / "foreign.sqlite"
    spec = mm_spec(mm_url, journal, "live")
    spec.alerts = AlertsConfig()
    ex = sandbox_client("binance", mm_url, KEY, SECRET)
    async with running(spec) as session:
        await wait_for(lambda: venue_open(mm_sandbox, SPOT) >= 2, "a two-sided quote")
        price = round(session.book.bid * 0.9, 2)  # far below the market: it would rest
        await asyncio.to_thread(
            ex.create_order, SPOT, "limit", "buy", 0.001, price, {"newClientOrderId": "foreign-1"}
        )
        foreign = venue_orders(mm_sandbox, SPOT)["foreign-1"]
        await wait_for(lambda: not foreign.status.is_open, "reconciliation to cancel it", 20)
        with Journal(journal) as j:

            def alerted() -> bool:
                return any("unknown_order foreign-1" in m for m in j.alerts()["message"])

            await wait_for(alerted, "the alert")
    with Journal(journal) as j:
        differences = j.events("reconcile_unknown_order")
    assert list(differences["payload"].iloc[:1].map(lambda p: p["key"])) == ["foreign-1"]


async def test_fills_missed_in_a_user_stream_gap_are_backfilled_before_any_reconciliation(
    tmp_path: Path, mm_url: str, mm_admin: Admin, mm_sandbox: Sandbox
) -> None:
    # the bar whose publication cuts the streams is lost to them, its fills too: they reach the
    # journal over REST (the backfill after the reconnect, or the lookup after a cancel the
    # venue refused because the quote had filled), never through a periodic reconciliation
    settings = MMLiveConfig(max_inventory=0.005, reconcile_every_s=3600)  # start and end only
    journal = tmp_path / "gap.sqlite"
    spec = mm_spec(mm_url, journal, "live", settings=settings)

    async def cut(done: int) -> None:
        if done in (4, 12):
            await asyncio.to_thread(mm_admin.faults, stream_disconnects=8)

    async with running(spec) as session:
        await wait_for(lambda: venue_open(mm_sandbox, SPOT) >= 2, "a two-sided quote")
        await drive(session, mm_admin, mm_sandbox, bars=20, between=cut)

        def journaled() -> bool:
            with Journal(journal) as j:
                return set(venue_fills(mm_sandbox, SPOT)) <= set(j.fills()["trade_id"])

        await wait_for(journaled, "every venue fill journaled while the session runs")
        assert session.counts["backfills"] >= 1 and len(session.reports) == 1
        assert len(venue_fills(mm_sandbox, SPOT)) >= 2
    check_journal_against_venue(journal, mm_sandbox, SPOT)
