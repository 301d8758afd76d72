"""A live session end to end against the sandbox over HTTP with real ccxt: closed candles ->
sma_cross signals -> orders -> fills -> position -> exit, with faults on the way; the journal is
then compared with the venue (orders, transitions, fills, positions, balances)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from quantdesk.config import VenueConfig
from quantdesk.engine.journal import Journal
from quantdesk.engine.kernel import ExecutionMode
from quantdesk.errors import ConfigError
from quantdesk.model import RetryPolicy
from quantdesk.risk.limits import RiskConfig
from quantdesk.strategy import load_strategy
from quantdesk.system.live import Mode, SessionSpec, run_session
from quantdesk.venues import sandbox_client
from tests.sandbox.conftest import KEY, SECRET, Admin, admin, sandbox, url  # noqa: F401

BTC = "BTC/USDT"
ETH = "ETH/USDT"
START = {"BTC": D(1), "ETH": D(0)}  # the sandbox account's base holdings
MINUTE = 60_000
ENV = {"QD_TEST_KEY": KEY, "QD_TEST_SECRET": SECRET}


def spec(url: str, journal: Path, until_ms: int, **kw: Any) -> SessionSpec:  # noqa: F811
    venue = VenueConfig(
        exchange="binance",
        market="spot",
        sandbox_url=url,
        api_key_env="QD_TEST_KEY",
        api_secret_env="QD_TEST_SECRET",
    )
    return SessionSpec(
        strategy=load_strategy("sma_cross", {"fast": 2, "slow": 3}),
        symbols=kw.pop("symbols", [BTC]),
        mode=kw.pop("mode", Mode.LIVE),
        venue_name="sandbox",
        venue=venue,
        journal=journal,
        timeframe="1m",
        until_ms=until_ms,
        capital=D("2000"),
        poll_s=0.01,
        reconcile_every_s=0.3,
        retry=RetryPolicy(base=0.05, cap=0.4, max_attempts=6, throttle_cap=0.8),
        **kw,
    )


async def drive(
    admin: Admin,  # noqa: F811
    session: asyncio.Task,
    started: asyncio.Event,
    every_s: float = 0.03,
) -> None:
    """Once the session trades, advance the sandbox clock one bar at a time until it ends."""
    await asyncio.wait(
        [asyncio.ensure_future(started.wait()), session], return_when="FIRST_COMPLETED"
    )
    while not session.done():
        await asyncio.to_thread(admin.advance, 1)
        await asyncio.sleep(every_s)


@pytest.fixture
async def ccxt_client(url: str, admin: Admin) -> AsyncIterator[Any]:  # noqa: F811
    admin("POST", "limits", {"weight_limit": 1_000_000})
    ex = sandbox_client("binance", url, async_=True, enableRateLimit=False)
    await ex.load_markets()
    yield ex
    await ex.close()


async def run(spec_: SessionSpec, admin: Admin) -> Any:  # noqa: F811
    started = asyncio.Event()
    task = asyncio.create_task(run_session(spec_, env=ENV, started=started))
    await asyncio.wait_for(asyncio.gather(task, drive(admin, task, started)), 120)
    return task.result()


async def assert_journal_matches_venue(
    journal: Journal,
    ex: Any,
    admin: Admin,  # noqa: F811
    symbols: tuple[str, ...] = (BTC,),
) -> None:
    orders = journal.orders()
    sent = orders[orders["submit_attempts"] > 0]
    at_venue = [o for s in symbols for o in await ex.fetch_orders(s)]
    venue_ids = [o["clientOrderId"] for o in at_venue]
    assert len(venue_ids) == len(set(venue_ids)), "an order was placed twice"
    assert set(venue_ids) <= set(sent["client_order_id"])
    status = {"closed": "filled", "canceled": "canceled", "open": "new", "expired": "expired"}
    by_id = sent.set_index("client_order_id")
    for o in at_venue:
        row = by_id.loc[o["clientOrderId"]]
        assert row["status"] == status[o["status"]] or (
            o["status"] == "open" and row["status"] == "partially_filled"
        )
        assert row["filled"] == D(str(o["filled"]))
    fills = journal.fills()
    report = admin("GET", "fills")
    assert sorted(fills["trade_id"]) == sorted(str(f["tradeId"]) for f in report)
    assert sum(fills["amount"]) == sum(D(f["qty"]) for f in report)
    balances = journal.balances().set_index("asset")["total"].to_dict()
    venue = await ex.fetch_balance()
    positions = journal.positions(include_flat=True).set_index("symbol")["quantity"].to_dict()
    for symbol in symbols:
        base = symbol.split("/")[0]
        assert balances.get(base, D(0)) == D(str(venue["total"].get(base) or 0)), base
        assert positions.get(symbol, D(0)) == balances.get(base, D(0)) - START[base]
    assert balances["USDT"] == D(str(venue["total"]["USDT"]))


async def test_live_round_trips_journal_equals_venue(
    url: str,  # noqa: F811
    admin: Admin,  # noqa: F811
    ccxt_client: Any,
    tmp_path: Path,
) -> None:
    start = admin("GET", "clock")["time"]
    path = tmp_path / "live.sqlite"
    result = await run(spec(url, path, start + 45 * MINUTE, symbols=[BTC, ETH]), admin)
    with Journal(path) as journal:
        orders = journal.orders().sort_values("created_ms")
        assert result.orders == len(orders) >= 4
        for symbol in (BTC, ETH):  # an entry and an exit in each market
            assert {"buy", "sell"} <= set(orders.loc[orders["symbol"] == symbol, "side"])
        assert set(orders["status"]) == {"filled"}
        first = orders.iloc[0]["client_order_id"]
        events = journal.order_events(first)["new"].tolist()
        # one partially_filled per extra book level the market order walked
        assert events[:2] == ["pending", "submitted"] and events[-1] == "filled"
        assert set(events[2:-1]) <= {"partially_filled"}
        assert len(events) - 2 == len(journal.load_fills(first))
        assert len(journal.equity_curve()) > 0
        assert all(r.clean for r in result.reconciliations)
        assert len(journal.events("reconcile_missing_fill")) == 0
        await assert_journal_matches_venue(journal, ccxt_client, admin, (BTC, ETH))
        kinds = journal.events()["kind"].tolist()
        assert kinds[0] == "session" and "session_stopped" in kinds
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert KEY.encode() not in raw and SECRET.encode() not in raw  # credentials never journaled


async def test_live_under_faults_nothing_doubled_nothing_lost(
    url: str,  # noqa: F811
    admin: Admin,  # noqa: F811
    ccxt_client: Any,
    tmp_path: Path,
) -> None:
    start = admin("GET", "clock")["time"]
    path = tmp_path / "faults.sqlite"
    started = asyncio.Event()
    task = asyncio.create_task(
        run_session(spec(url, path, start + 40 * MINUTE), env=ENV, started=started)
    )

    async def chaos() -> None:
        await started.wait()
        faults = [
            {"rate_limit_burst": 4},
            {"error_rate": 0.3, "seed": 5},
            {"reset_requests": 2},
            # these fire on the next order placements, whenever they come
            {"drop_orders": 1, "hang_orders": 1},
        ]
        i = 0
        while not task.done():
            if i % 5 == 0 and i // 5 < len(faults):
                await asyncio.to_thread(admin.faults, **faults[i // 5])
            await asyncio.to_thread(admin.advance, 1)
            await asyncio.sleep(0.03)
            i += 1

    await asyncio.wait_for(asyncio.gather(task, chaos()), 180)
    left = admin("GET", "faults")
    assert left["drop_orders"] == left["hang_orders"] == 0  # both hit an order placement
    result = task.result()
    with Journal(path) as journal:
        assert len(journal.fills()) > 0
        assert result.orders >= 2
        await assert_journal_matches_venue(journal, ccxt_client, admin)


async def test_paper_mode_fills_in_process_and_sends_nothing(
    url: str,  # noqa: F811
    admin: Admin,  # noqa: F811
    ccxt_client: Any,
    tmp_path: Path,
) -> None:
    start = admin("GET", "clock")["time"]
    path = tmp_path / "paper.sqlite"
    result = await run(spec(url, path, start + 30 * MINUTE, mode=Mode.PAPER), admin)
    assert result.fills > 0
    assert await ccxt_client.fetch_orders(BTC) == [] and admin("GET", "fills") == []
    with Journal(path) as journal:
        assert set(journal.fills()["venue"]) == {"sandbox-paper"}
    # a journal belongs to one mode and venue: a live session refuses to resume it
    with pytest.raises(ConfigError, match="belongs to a paper session"):
        await run_session(spec(url, path, start), env=ENV)


async def test_confirm_mode_sends_an_approved_order_without_waiting_for_a_bar(
    url: str,  # noqa: F811
    admin: Admin,  # noqa: F811
    ccxt_client: Any,
    tmp_path: Path,
) -> None:
    start = admin("GET", "clock")["time"]
    path = tmp_path / "confirm.sqlite"
    stop, started = asyncio.Event(), asyncio.Event()
    session = spec(url, path, start + 60 * MINUTE, execution=ExecutionMode.CONFIRM)
    task = asyncio.create_task(run_session(session, env=ENV, stop=stop, started=started))
    await asyncio.wait_for(started.wait(), 60)
    reader = Journal(path)
    try:
        held = []
        for _ in range(60):  # bars until the strategy wants an order
            await asyncio.to_thread(admin.advance, 1)
            await asyncio.sleep(0.1)
            orders = reader.orders()
            held = list(orders.loc[orders["reason"] == "awaiting approval", "client_order_id"])
            if held:
                break
        assert held and await ccxt_client.fetch_orders(BTC) == []  # nothing sent unapproved
        frozen = admin("GET", "clock")["time"]
        reader.add_command("approve", 0, target=held[0])
        for _ in range(100):  # the clock stands still: no bar closes meanwhile
            placed = await ccxt_client.fetch_orders(BTC)
            if placed:
                break
            await asyncio.sleep(0.05)
        assert [o["clientOrderId"] for o in placed] == held[:1]
        assert admin("GET", "clock")["time"] == frozen
        assert reader.pending_commands() == []  # consumed exactly once
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        reader.close()
    assert task.result().stopped_by_signal


async def test_kill_command_flattens_and_halts_between_bars(
    url: str,  # noqa: F811
    admin: Admin,  # noqa: F811
    ccxt_client: Any,
    tmp_path: Path,
) -> None:
    start = admin("GET", "clock")["time"]
    path = tmp_path / "kill.sqlite"
    stop, started = asyncio.Event(), asyncio.Event()
    session = spec(url, path, start + 80 * MINUTE, risk=RiskConfig())
    task = asyncio.create_task(run_session(session, env=ENV, stop=stop, started=started))
    await asyncio.wait_for(started.wait(), 60)
    reader = Journal(path)
    try:
        for _ in range(60):  # bars until the strategy holds a position
            await asyncio.to_thread(admin.advance, 1)
            await asyncio.sleep(0.1)
            if len(reader.positions()):
                break
        assert len(reader.positions()) == 1
        reader.add_command("kill", 0, payload={"reason": "operator", "flatten": True})
        for _ in range(100):  # the clock stands still: the kill is carried out between bars
            if len(reader.events("kill")):
                break
            await asyncio.sleep(0.05)
        assert "operator" in reader.events("kill")["message"].iloc[0]
        dust = D("0.00001")  # below the market's amount step: cannot be sold

        def held() -> D:
            return sum(reader.positions()["quantity"], D(0))

        for _ in range(100):
            if held() < dust:
                break
            await asyncio.sleep(0.05)
        balance = (await ccxt_client.fetch_balance())["total"]["BTC"]
        assert held() < dust and D(str(balance)) - 1 == held()  # flat at the venue too
        placed = len(await ccxt_client.fetch_orders(BTC))
        for _ in range(20):  # halted: the strategy's signals no longer reach the venue
            await asyncio.to_thread(admin.advance, 1)
            await asyncio.sleep(0.05)
        assert len(await ccxt_client.fetch_orders(BTC)) == placed
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        reader.close()
