"""Live funding arbitrage on two sandbox venues: entry on the spread, funding booked, a close."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from quantdesk.cli import main
from quantdesk.engine.journal import Journal
from quantdesk.system.arb_live import ArbSession
from tests.arbitrage.two_venues import (
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

__all__ = ["admins", "two_urls"]  # fixtures


def test_the_spread_opens_a_hedged_pair_funding_is_booked_and_a_command_closes_it(
    two_urls: dict[str, str], admins: dict, tmp_path: Path
) -> None:
    journal = tmp_path / "arb.sqlite"
    arb = spec(two_urls, journal, {"entry_apr": 0.5})
    lines: list[str] = []

    async def main() -> None:
        session = ArbSession(arb, on_status=lines.append)
        task = await start(session)
        pairs = lambda: [p for p in kinds(journal, "arb_pair") if p["status"] == "open"]  # noqa: E731
        await until(lambda: bool(pairs()), task, "the pair to open")
        pair = pairs()[-1]
        assert pair["direction"] == 1  # venue B pays more: long A, short B
        qty = Decimal(pair["qty"])
        assert venue_position(two_urls["a"]) == qty
        assert venue_position(two_urls["b"]) == -qty
        # two hours pass: B settles twice, A possibly once; the payments are booked once each
        for leg in ("a", "b"):
            await asyncio.to_thread(admins[leg].advance, 120)
        await until(lambda: len(kinds(journal, "arb_funding")) >= 2, task, "funding booked")
        seen = len(lines)
        await until(lambda: len(lines) > seen, task, "a status line with the funding")
        assert f"pair 1 open {qty}: PnL" in lines[-1] and "funding 0.6" in lines[-1]
        with Journal(journal) as j:
            j.add_command("arb_close", 0)
        polls = session.spreads
        await until(lambda: session.pair is None, task, "the pair to close")
        # a manual close pauses automatic entries: the spread is still wide, nothing reopens
        await until(lambda: session.spreads >= polls + 3, task, "more funding polls")
        assert session.pair is None
        session.stop.set()
        result = await task
        assert result.positions == {"alpha": 0, "beta": 0}

    asyncio.run(main())
    assert venue_position(two_urls["a"]) == 0 and venue_position(two_urls["b"]) == 0
    spreads = kinds(journal, "arb_spread")
    assert spreads[0]["interval_a"] == 8 and spreads[0]["interval_b"] == 1
    assert spreads[0]["spread_apr"] > 1.0  # ~175% APR from B's offset
    closed = [p for p in kinds(journal, "arb_pair") if p["status"] == "closed"]
    assert [p["reason"] for p in closed] == ["manual"]
    pnl = kinds(journal, "arb_pnl")[-1]
    funding_b = Decimal(pnl["funding_b"])
    assert funding_b > 0  # the short on B received B's higher funding
    total = sum(Decimal(pnl[k]) for k in ("price_a", "price_b", "funding_a", "funding_b"))
    assert Decimal(pnl["total"]) == total - Decimal(pnl["fees"])
    # every order was journaled before it was sent, with the venue it went to
    orders = read(journal, lambda j: j.orders())
    assert set(orders["venue"]) == {"alpha", "beta"}
    assert (orders["status"] == "filled").all()
    # the journal's positions say which leg is on which venue
    held = read(journal, lambda j: j.positions(include_flat=True))
    assert set(zip(held["venue"], held["symbol"], strict=True)) == {
        ("alpha", "BTC/USDT:USDT"),
        ("beta", "BTC/USDT:USDT"),
    }
    assert set(held["quantity"]) == {0}  # flat at the end, on both
    messages = alerts(journal)
    assert any("opening pair 1" in m for m in messages)
    assert any("pair 1 closed (manual)" in m for m in messages)


def test_the_liquidation_buffer_closes_the_pair_and_the_notional_limit_sizes_it(
    two_urls: dict[str, str], admins: dict, tmp_path: Path
) -> None:
    journal = tmp_path / "arb.sqlite"
    # at 20x a leg is liquidated ~4.5% away; a buffer of half that price puts the long leg's
    # stop above its entry: breached at the first price poll after the open
    params = {"entry_apr": 0.5, "leverage": 20.0, "liq_buffer": 0.5}
    arb = spec(two_urls, journal, params, max_notional_per_venue=600)

    async def main() -> None:
        session = ArbSession(arb)
        task = await start(session)
        closed = lambda: [p for p in kinds(journal, "arb_pair") if p["status"] == "closed"]  # noqa: E731
        await until(lambda: bool(closed()), task, "the pair to close")
        with Journal(journal) as j:
            j.add_command("arb_close", 0)  # pause: no second pair
        await until(lambda: session.paused and session.pair is None, task, "paused and flat")
        session.stop.set()
        await task

    asyncio.run(main())
    assert venue_position(two_urls["a"]) == 0 and venue_position(two_urls["b"]) == 0
    pairs = [p for p in kinds(journal, "arb_pair") if p["pair_id"] == 1]
    opened = next(p for p in pairs if p["status"] == "open")
    assert opened["stops"]["a"]["stop"] > opened["stops"]["a"]["liquidation"]
    assert pairs[-1]["reason"] == "liquidation_buffer"
    # 600 USDT per venue at ~41,000: the open is cut to the limit, not 0.5 x 1000 x 20
    orders = read(journal, lambda j: j.orders())
    notional = max(
        Decimal(pnl["mark_a"]) * abs(Decimal(pnl["qty_a"])) for pnl in kinds(journal, "arb_pnl")
    )
    assert 0 < notional <= 600
    assert Decimal(opened["qty"]) * Decimal(str(orders["average_price"].iloc[0])) <= 600


def test_funding_earned_takes_the_combined_profit_and_closes_the_pair(
    two_urls: dict[str, str], admins: dict, tmp_path: Path
) -> None:
    journal = tmp_path / "arb.sqlite"
    # 1% of the margin at 20x: the short on B earns ~0.0002 of notional per hour net of A's
    # funding, after paying both legs' fees and spread (~0.0011): about 9 hours
    params = {"entry_apr": 0.5, "leverage": 20.0, "liq_buffer": 0.01, "take_profit": 0.01}
    arb = spec(two_urls, journal, params)

    async def main() -> None:
        session = ArbSession(arb)
        task = await start(session)
        await until(lambda: session.pair is not None and session.pair.status == "open", task,
                    "the pair to open")  # fmt: skip
        for _hour in range(16):
            if session.pair is None or session.pair.status != "open":
                break
            polls = session.spreads
            for leg in ("a", "b"):
                await asyncio.to_thread(admins[leg].advance, 60)
            await until(lambda polls=polls: session.spreads >= polls + 2, task, "a funding poll")
        with Journal(journal) as j:
            j.add_command("arb_close", 0)  # pause, so no second pair opens
        await until(lambda: session.paused and session.pair is None, task, "paused and flat")
        session.stop.set()
        await task

    asyncio.run(main())
    first = [p for p in kinds(journal, "arb_pair") if p["pair_id"] == 1][-1]
    assert first["status"] == "closed" and first["reason"] == "take_profit"
    pnl = [p for p in kinds(journal, "arb_pnl") if p["pair"] == 1]
    held, final = [p for p in pnl if p["status"] == "open"][-1], pnl[-1]
    # the exit saw 1% of the margin (marked before the close, as the backtest decides)
    assert Decimal(held["total"]) >= Decimal("0.01") * Decimal(held["margin"])
    assert final["status"] == "closed"
    assert Decimal(final["total"]) > 0  # the closing fees and spread are paid from it
    assert Decimal(final["funding_b"]) > Decimal(final["fees"])  # funding paid for the trip
    assert venue_position(two_urls["a"]) == 0 and venue_position(two_urls["b"]) == 0


def cli(*args: str) -> None:
    """Run `quantdesk ARGS` in-process and require exit 0."""
    with pytest.raises(SystemExit) as done:
        main(list(args))
    assert done.value.code == 0


def test_kill_flatten_closes_the_pair_and_halts_across_a_restart_until_resume(
    two_urls: dict[str, str], admins: dict, tmp_path: Path
) -> None:
    journal = tmp_path / "arb.sqlite"
    config = tmp_path / "quantdesk.toml"
    config.write_text("")

    async def first() -> None:
        session = ArbSession(spec(two_urls, journal))
        task = await start(session)
        cli("arb", "open", "--journal", str(journal))
        await until(lambda: session.pair is not None and session.pair.status == "open", task,
                    "the pair to open")  # fmt: skip
        cli("--config", str(config), "kill", "--flatten", "--journal", str(journal))
        await until(lambda: session.halted and session.pair is None, task, "halted and flat")
        cli("arb", "open", "--journal", str(journal))
        await until(lambda: any("arb open refused" in m for m in alerts(journal)), task,
                    "the open to be refused")  # fmt: skip
        session.stop.set()
        await task

    asyncio.run(first())
    assert venue_position(two_urls["a"]) == 0 and venue_position(two_urls["b"]) == 0
    assert kinds(journal, "arb_pair")[-1]["reason"] == "kill"

    async def second() -> None:
        session = ArbSession(spec(two_urls, journal))
        task = await start(session)
        assert session.halted  # a kill is a fact about the accounts, not about one process
        cli("--config", str(config), "resume", "--journal", str(journal))
        cli("arb", "open", "--journal", str(journal))
        await until(lambda: session.pair is not None and session.pair.status == "open", task,
                    "the pair to open after resume")  # fmt: skip
        session.stop.set()
        await task

    asyncio.run(second())
    assert venue_position(two_urls["a"]) > 0 > venue_position(two_urls["b"])
    states = [p["new"] for p in kinds(journal, "state_change")]
    assert states == ["halted", "active"]
    assert any("trading stays halted after the restart" in m for m in alerts(journal))


def test_the_combined_stop_loss_closes_a_pair_whose_costs_exceed_it(
    two_urls: dict[str, str], admins: dict, tmp_path: Path
) -> None:
    journal = tmp_path / "arb.sqlite"
    # at 20x the open's fees and spread (~0.11% of notional) are ~2.2% of the margin: past 1%
    params = {"entry_apr": 0.5, "leverage": 20.0, "liq_buffer": 0.01, "stop_loss": 0.01}
    arb = spec(two_urls, journal, params)

    async def main() -> None:
        session = ArbSession(arb)
        task = await start(session)
        closed = lambda: [p for p in kinds(journal, "arb_pair") if p["status"] == "closed"]  # noqa: E731
        await until(lambda: bool(closed()), task, "the pair to close")
        with Journal(journal) as j:
            j.add_command("arb_close", 0)
        await until(lambda: session.paused and session.pair is None, task, "paused and flat")
        session.stop.set()
        await task

    asyncio.run(main())
    first = [p for p in kinds(journal, "arb_pair") if p["pair_id"] == 1][-1]
    assert first["reason"] == "stop_loss"
    held = [p for p in kinds(journal, "arb_pnl") if p["pair"] == 1 and p["status"] == "open"][-1]
    assert Decimal(held["total"]) <= Decimal("-0.01") * Decimal(held["margin"])
    assert venue_position(two_urls["a"]) == 0 and venue_position(two_urls["b"]) == 0
