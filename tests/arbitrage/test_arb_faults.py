"""Faults on two live sandbox venues: a partial fill, a rejected leg, a venue down, a restart
mid-open. After each: no naked leg at either venue, nothing doubled, every difference alerted."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from quantdesk.engine.journal import Journal
from quantdesk.model import Order
from quantdesk.risk.limits import RiskConfig
from quantdesk.system.arb_live import ArbSession
from quantdesk.venues import sandbox_client
from tests.arbitrage.two_venues import (
    PERP,
    admins,
    alerts,
    kinds,
    read,
    spec,
    start,
    two_urls,
    until,
    venue_position,
)
from tests.sandbox.conftest import KEY

__all__ = ["admins", "two_urls"]  # fixtures


def last_price(url: str) -> Decimal:
    """The perpetual's last price at a sandbox."""
    ex = sandbox_client("binanceusdm", url, enableRateLimit=False)
    return Decimal(str(ex.fetch_ticker(PERP)["last"]))


def command(journal: Path, kind: str, **payload: Any) -> None:
    """Queue an arb command, as `quantdesk arb open/close` does."""
    with Journal(journal) as j:
        j.add_command(kind, 0, payload=payload)


def exec_kinds(journal: Path) -> list[tuple[str, str]]:
    """(kind, venue) of every execution event."""
    return [(p["kind"], p["venue"]) for p in kinds(journal, "arb_exec")]


def settled(session: ArbSession, journal: Path) -> bool:
    """The session has consumed every command and is not working a pair."""
    pending = read(journal, lambda j: j.pending_commands())
    return not pending and (session.pair is None or session.pair.status == "open")


def assert_hedged(urls: dict[str, str]) -> tuple[Decimal, Decimal]:
    """The venues' own positions mirror each other: no naked leg."""
    a, b = venue_position(urls["a"]), venue_position(urls["b"])
    assert a == -b, f"naked leg: a={a} b={b}"
    return a, b


def test_a_partial_fill_is_retried_and_the_pair_is_cut_to_what_both_legs_hold(
    two_urls: dict[str, str], admins: dict, tmp_path: Path
) -> None:
    journal = tmp_path / "arb.sqlite"

    async def main() -> None:
        session = ArbSession(spec(two_urls, journal))
        task = await start(session)
        # B's book holds 0.004 BTC of bids: the short leg's first sell fills only that
        price = last_price(two_urls["b"]).quantize(Decimal("0.01"))
        book = {
            "symbol": PERP,
            "bids": [[str(price - 1), "0.004"]],
            "asks": [[str(price + 1), "5"]],
        }
        await asyncio.to_thread(admins["b"], "POST", "book", book)
        command(journal, "arb_open", direction=1)
        await until(lambda: session.pair is not None and settled(session, journal), task, "open")
        session.stop.set()
        await task

    asyncio.run(main())
    a, _ = assert_hedged(two_urls)
    assert a == Decimal("0.004")  # cut back to what the short leg got
    events = exec_kinds(journal)
    assert ("partial_fill", "beta") in events
    assert ("unwound", "alpha") in events  # the long leg's excess was sold back reduce-only
    assert ("aborted", "pair") in events  # B's book stayed empty: the other slices not sent
    opened = [p for p in kinds(journal, "arb_pair") if p["status"] == "open"][-1]
    assert Decimal(opened["qty"]) == a
    messages = alerts(journal)
    assert any("partial_fill on beta" in m for m in messages)
    assert any("unwound on alpha" in m for m in messages)


def test_a_rejected_leg_unwinds_the_filled_one_and_the_pair_never_opens(
    two_urls: dict[str, str], admins: dict, tmp_path: Path
) -> None:
    journal = tmp_path / "arb.sqlite"
    # venue B's margin wallet is nearly empty: every sell of the short leg is refused
    admins["b"]("POST", "balances", {"api_key": KEY, "balances": {"USDT": "1"}, "futures": True})

    async def main() -> None:
        session = ArbSession(spec(two_urls, journal))
        task = await start(session)
        command(journal, "arb_open", direction=1)
        await until(lambda: bool(kinds(journal, "arb_pair")) and settled(session, journal),
                    task, "the open to finish")  # fmt: skip
        session.stop.set()
        await task

    asyncio.run(main())
    assert venue_position(two_urls["a"]) == 0 and venue_position(two_urls["b"]) == 0
    final = kinds(journal, "arb_pair")[-1]
    assert final["status"] == "closed" and final["reason"].startswith("open_failed")
    events = exec_kinds(journal)
    assert ("leg_failed", "beta") in events and ("unwound", "alpha") in events
    orders = read(journal, lambda j: j.orders())
    assert set(orders.loc[orders["venue"] == "beta", "status"]) == {"rejected"}
    messages = alerts(journal)
    assert any("leg_failed on beta" in m for m in messages)
    assert any("did not open" in m for m in messages)


def test_a_venue_down_before_the_open_refuses_it_and_sends_nothing(
    two_urls: dict[str, str], admins: dict, tmp_path: Path
) -> None:
    journal = tmp_path / "arb.sqlite"
    arb = spec(two_urls, journal)
    arb.risk = RiskConfig(breaker_failures=2, breaker_cooldown_s=60)

    async def main() -> None:
        session = ArbSession(arb)
        task = await start(session)
        await asyncio.to_thread(admins["b"].faults, error_rate=1.0)  # every request: 503
        opened = lambda: any("circuit breaker for beta" in m for m in alerts(journal))  # noqa: E731
        await until(opened, task, "the breaker to open on the failing price polls")
        command(journal, "arb_open", direction=1)
        await until(lambda: settled(session, journal), task, "the command to be handled")
        session.stop.set()
        await task

    asyncio.run(main())
    assert read(journal, lambda j: j.count("orders")) == 0
    assert not kinds(journal, "arb_pair")
    assert any("not opening (manual): beta is down" in m for m in alerts(journal))


def test_a_venue_down_mid_open_leaves_no_naked_leg_and_its_orders_are_resolved(
    two_urls: dict[str, str], admins: dict, tmp_path: Path
) -> None:
    journal = tmp_path / "arb.sqlite"
    arb = spec(two_urls, journal)
    arb.risk = RiskConfig(breaker_failures=3, breaker_cooldown_s=0.3)

    def down_after_first(order: Order) -> None:
        if order.venue == "alpha" and order.client_order_id.endswith("-1a"):
            admins["b"].faults(error_rate=1.0)  # B goes down once A's first slice filled

    async def main() -> None:
        session = ArbSession(arb, after_order=down_after_first)
        task = await start(session)
        command(journal, "arb_open", direction=1)
        await until(lambda: bool(kinds(journal, "arb_pair")) and settled(session, journal),
                    task, "the open to finish")  # fmt: skip
        assert venue_position(two_urls["a"]) == 0  # the long leg was sold back at once
        await asyncio.to_thread(admins["b"], "DELETE", "faults")
        # back up: reconciliation looks the unanswered order up (never resends it)
        unresolved = lambda: read(journal, lambda j: (j.orders()["status"] == "submitted").sum())  # noqa: E731
        await until(lambda: unresolved() == 0, task, "in-flight orders resolved")
        session.stop.set()
        await task

    asyncio.run(main())
    assert venue_position(two_urls["a"]) == 0 and venue_position(two_urls["b"]) == 0
    final = kinds(journal, "arb_pair")[-1]
    assert final["status"] == "closed" and final["reason"].startswith("open_failed")
    events = exec_kinds(journal)
    assert ("leg_unknown", "beta") in events and ("unwound", "alpha") in events
    assert ("aborted", "pair") in events  # slices 2-4 were never sent
    orders = read(journal, lambda j: j.orders())
    # the order B never answered, and any half-open probe after it: looked up, none executed
    assert set(orders.loc[orders["venue"] == "beta", "status"]) == {"rejected"}
    assert len(orders[orders["venue"] == "alpha"]) == 2  # slice 1 and its unwind
    messages = alerts(journal)
    assert any("circuit breaker for beta: closed -> open" in m for m in messages)
    assert any("leg_unknown on beta" in m for m in messages)


class Crash(BaseException):
    """Stands for a kill: not an Exception, so nothing on the way catches it."""


def test_a_restart_mid_open_resumes_from_the_venues_positions_without_doubling(
    two_urls: dict[str, str], admins: dict, tmp_path: Path
) -> None:
    journal = tmp_path / "arb.sqlite"
    sent: list[Order] = []

    def crash_on_third(order: Order) -> None:
        sent.append(order)
        if len(sent) == 3:  # slice 2's long leg filled, its short leg never sent
            raise Crash

    async def crashing() -> None:
        session = ArbSession(spec(two_urls, journal), after_order=crash_on_third)
        task = await start(session)
        command(journal, "arb_open", direction=1)
        with pytest.raises(Crash):
            await task

    asyncio.run(crashing())
    state = kinds(journal, "arb_pair")[-1]
    assert state["status"] == "opening" and state["slices_done"] == 1
    qty = Decimal(state["qty"])
    a, b = venue_position(two_urls["a"]), venue_position(two_urls["b"])
    assert a > -b > 0  # the crash left the long leg ahead

    async def resumed() -> None:
        session = ArbSession(spec(two_urls, journal))
        task = await start(session)
        await until(lambda: settled(session, journal), task, "the open to finish")
        session.stop.set()
        await task

    asyncio.run(resumed())
    a, _ = assert_hedged(two_urls)
    assert a == qty  # exactly the target: no slice was sent twice
    final = kinds(journal, "arb_pair")[-1]
    assert final["status"] == "open" and final["pair_id"] == state["pair_id"]
    orders = read(journal, lambda j: j.orders())
    assert orders["client_order_id"].is_unique
    bought = orders.loc[(orders["venue"] == "alpha") & (orders["side"] == "buy"), "filled"]
    assert sum(bought, Decimal(0)) == qty
    assert any("resuming pair 1 (opening, 1/4 slices done)" in m for m in alerts(journal))


def test_an_order_whose_answer_was_lost_is_found_by_client_id_not_sent_again(
    two_urls: dict[str, str], admins: dict, tmp_path: Path
) -> None:
    journal = tmp_path / "arb.sqlite"
    # B executes its next two orders but drops the connection before answering
    admins["b"].faults(drop_orders=2)

    async def main() -> None:
        session = ArbSession(spec(two_urls, journal))
        task = await start(session)
        command(journal, "arb_open", direction=1)
        await until(lambda: session.pair is not None and settled(session, journal), task, "open")
        session.stop.set()
        await task

    asyncio.run(main())
    assert admins["b"]("GET", "faults")["drop_orders"] == 0  # both answers were lost
    a, _ = assert_hedged(two_urls)
    opened = [p for p in kinds(journal, "arb_pair") if p["status"] == "open"][-1]
    assert a == Decimal(opened["qty"])
    orders = read(journal, lambda j: j.orders())
    beta = orders[orders["venue"] == "beta"]
    assert len(beta) == 4 and set(beta["status"]) == {"filled"}  # one order per slice
    assert sum(beta["filled"], Decimal(0)) == a
    assert not [k for k in exec_kinds(journal) if k[0] in ("leg_unknown", "unwound")]


def test_an_outside_trade_is_alerted_by_reconciliation_and_the_naked_position_closed(
    two_urls: dict[str, str], admins: dict, tmp_path: Path
) -> None:
    journal = tmp_path / "arb.sqlite"

    async def first() -> None:
        session = ArbSession(spec(two_urls, journal))
        task = await start(session)
        session.stop.set()
        await task

    asyncio.run(first())
    # while no session runs, someone sells 0.005 BTC on venue B's account by hand
    ex = sandbox_client("binanceusdm", two_urls["b"], enableRateLimit=False)
    ex.create_order(PERP, "market", "sell", 0.005)
    assert venue_position(two_urls["b"]) == Decimal("-0.005")

    async def second() -> None:
        session = ArbSession(spec(two_urls, journal))
        task = await start(session)  # reconciles, then checks the legs before trading
        session.stop.set()
        await task

    asyncio.run(second())
    assert venue_position(two_urls["a"]) == 0 and venue_position(two_urls["b"]) == 0
    messages = alerts(journal)
    assert any("arb reconcile beta: missing_fill" in m for m in messages)
    assert any("rebalanced on pair" in m for m in messages)
    closing = read(journal, lambda j: j.orders())
    assert list(closing["reduce_only"]) == [True]  # bought back reduce-only, nothing else sent


def test_a_close_cut_short_by_a_venue_down_is_finished_when_it_is_back(
    two_urls: dict[str, str], admins: dict, tmp_path: Path
) -> None:
    journal = tmp_path / "arb.sqlite"
    arb = spec(two_urls, journal)
    arb.risk = RiskConfig(breaker_failures=3, breaker_cooldown_s=0.3)

    async def main() -> None:
        session = ArbSession(arb)
        task = await start(session)
        command(journal, "arb_open", direction=1)
        await until(lambda: session.pair is not None and settled(session, journal), task, "open")
        await asyncio.to_thread(admins["b"].faults, error_rate=1.0)
        command(journal, "arb_close")
        naked = lambda: ("naked_leg", "beta") in exec_kinds(journal)  # noqa: E731
        await until(naked, task, "the naked leg to be reported")
        assert session.pair is not None and session.pair.status == "closing"
        await asyncio.to_thread(admins["b"], "DELETE", "faults")
        await until(lambda: session.pair is None, task, "the close to finish")
        session.stop.set()
        await task

    asyncio.run(main())
    assert venue_position(two_urls["a"]) == 0 and venue_position(two_urls["b"]) == 0
    final = kinds(journal, "arb_pair")[-1]
    assert final["status"] == "closed" and final["reason"] == "manual"
    messages = alerts(journal)
    assert any("retrying the closing of pair 1" in m for m in messages)
    levels = read(
        journal, lambda j: dict(zip(j.alerts()["message"], j.alerts()["level"], strict=True))
    )
    assert any(levels[m] == "critical" for m in messages if "naked_leg on beta" in m)
