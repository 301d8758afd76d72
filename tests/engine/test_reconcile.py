"""Reconciliation against the sandbox over HTTP with real ccxt: missing fills applied exactly
once, unknown venue orders adopted or cancelled, orders that moved while unobserved caught up,
balance differences adjusted, and every difference journaled."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal as D
from pathlib import Path

import pytest

from quantdesk.engine.journal import Journal
from quantdesk.engine.order_manager import OrderManager
from quantdesk.engine.portfolio import Portfolio
from quantdesk.engine.reconcile import Reconciler, ReconcileReport, UnknownOrders
from quantdesk.model import Order, OrderStatus, OrderType, Side, client_order_id
from quantdesk.venues import sandbox_client
from quantdesk.venues.ccxt_venue import CcxtVenue
from tests.sandbox.conftest import KEY, Admin, admin, sandbox, url  # noqa: F401

S = OrderStatus
BTC = "BTC/USDT"
START = {"USDT": D("100000"), "BTC": D("1")}


@dataclass
class Rig:
    venue: CcxtVenue
    journal: Journal
    portfolio: Portfolio
    manager: OrderManager

    def reconciler(self, unknown: UnknownOrders = UnknownOrders.CANCEL) -> Reconciler:
        return Reconciler(
            self.venue, self.manager, self.journal, self.portfolio, [BTC], lambda: 1,
            unknown_orders=unknown,
        )  # fmt: skip


async def no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def rig(url: str, admin: Admin, tmp_path: Path) -> AsyncIterator[Rig]:  # noqa: F811
    ex = sandbox_client("binance", url, async_=True, enableRateLimit=False, timeout=700)
    venue = CcxtVenue(ex, "sandbox")
    await venue.load()
    journal = Journal(tmp_path / "journal.db")
    portfolio = Portfolio(cash=dict(START))
    manager = OrderManager(
        venue, journal, lambda: 1, rng=random.Random(0), sleep=no_sleep,
        on_fill=portfolio.apply_fill,
    )  # fmt: skip
    yield Rig(venue, journal, portfolio, manager)
    journal.close()
    await venue.close()


def order(seq: int, amount: str, type_: OrderType = OrderType.MARKET, **kw: object) -> Order:
    return Order(
        client_order_id=client_order_id("rc", BTC, 0, seq),
        symbol=BTC,
        side=kw.pop("side", Side.BUY),  # type: ignore[arg-type]
        type=type_,
        amount=D(amount),
        created_ms=0,
        **kw,  # type: ignore[arg-type]
    )


def venue_balances(admin: Admin) -> dict[str, D]:  # noqa: F811
    fills = admin("GET", "fills")
    out = dict(START)
    for f in fills:
        qty, price, fee = D(f["qty"]), D(f["price"]), D(f["commission"])
        sign = 1 if f["side"] == "buy" else -1
        out["BTC"] += sign * qty
        out["USDT"] -= sign * qty * price
        out[f["commissionAsset"]] -= fee
    return out


async def test_clean_when_in_line_and_journal_gets_venue_balances(rig: Rig, admin: Admin) -> None:  # noqa: F811
    await rig.manager.submit(order(1, "0.05"))
    report = await rig.reconciler().run()
    assert report.clean, report.differences
    balances = rig.journal.balances().set_index("asset")["total"].to_dict()
    assert balances == venue_balances(admin)
    [pos] = rig.journal.positions().to_dict("records")
    assert pos["quantity"] == balances["BTC"] - 1  # the spot position is the base held


async def test_missing_fills_applied_exactly_once(rig: Rig, admin: Admin) -> None:  # noqa: F811
    # an order placed behind the engine's back (e.g. by a previous life that lost its journal)
    await rig.venue.exchange.create_order(
        BTC, "market", "buy", 0.03, None, {"newClientOrderId": "x1"}
    )
    first = await rig.reconciler().run()
    trades = admin("GET", "fills")
    assert first.fills_applied == len(trades) > 0
    assert {d.key for d in first.of("missing_fill")} == {str(t["tradeId"]) for t in trades}
    assert set(rig.journal.fills()["client_order_id"]) == {"x1"}
    assert rig.portfolio.positions[BTC].quantity == D("0.03") - sum(
        D(t["commission"]) for t in trades
    )
    assert not first.of("balance")  # the applied fills explain the balances
    second = await rig.reconciler().run()
    assert second.clean and rig.journal.count("fills") == len(trades)
    events = rig.journal.events("reconcile_missing_fill")
    assert len(events) == len(trades) and events["payload"][0]["action"] == "journaled and booked"


async def test_unknown_open_order_cancelled(rig: Rig) -> None:
    last = (await rig.venue.exchange.fetch_ticker(BTC))["last"]
    await rig.venue.exchange.create_order(
        BTC, "limit", "buy", 0.01, round(last * 0.9, 2), {"newClientOrderId": "stray"}
    )
    eth = (await rig.venue.exchange.fetch_ticker("ETH/USDT"))["last"]
    await rig.venue.exchange.create_order(
        "ETH/USDT", "limit", "buy", 0.1, round(eth * 0.9, 2), {"newClientOrderId": "other"}
    )
    report = await rig.reconciler(UnknownOrders.CANCEL).run()
    [diff] = report.of("unknown_order")
    assert diff.key == "stray" and diff.action.startswith("cancelled")
    assert await rig.venue.exchange.fetch_open_orders(BTC) == []
    assert "stray" not in rig.manager.orders
    # a market the engine does not trade is left alone
    assert [o["clientOrderId"] for o in await rig.venue.exchange.fetch_open_orders()] == ["other"]


async def test_unknown_open_order_adopted_and_its_later_fills_applied(
    rig: Rig,
    admin: Admin,  # noqa: F811
) -> None:
    last = (await rig.venue.exchange.fetch_ticker(BTC))["last"]
    placed = await rig.venue.exchange.create_order(
        BTC, "limit", "sell", 0.01, round(last * 1.001, 2), {"newClientOrderId": "mine"}
    )
    assert placed["status"] == "open"
    report = await rig.reconciler(UnknownOrders.ADOPT).run()
    assert [d.key for d in report.of("unknown_order")] == ["mine"]
    adopted = rig.manager.orders["mine"]
    assert adopted.status is S.NEW and adopted.price == D(str(placed["price"]))
    assert rig.journal.orders().set_index("client_order_id").loc["mine", "status"] == "new"
    for _ in range(48):  # until the market trades up through the limit
        admin.advance(30)
        if admin("GET", "fills"):
            break
    report = await rig.reconciler(UnknownOrders.ADOPT).run()
    assert [d.key for d in report.of("order")] == ["mine"]
    assert adopted.status is S.FILLED
    assert rig.journal.count("fills") == len(admin("GET", "fills"))
    assert rig.portfolio.positions[BTC].quantity == D("-0.01")


async def test_order_filled_while_unobserved_is_caught_up(rig: Rig, admin: Admin) -> None:  # noqa: F811
    last = D(str((await rig.venue.exchange.fetch_ticker(BTC))["last"]))
    price = rig.venue.rules[BTC].round_price(last * D("0.999"), Side.BUY)
    o = await rig.manager.submit(order(2, "0.02", OrderType.LIMIT, price=price))
    assert o.status is S.NEW
    for _ in range(48):  # until the market trades down through the limit
        admin.advance(30)
        if admin("GET", "fills"):
            break
    report = await rig.reconciler().run()
    [diff] = report.of("order")
    assert diff.key == o.client_order_id and o.status is S.FILLED
    assert not report.of("missing_fill")  # the fills came through the order, not as strays
    assert rig.journal.count("fills") == len(admin("GET", "fills"))
    transitions = rig.journal.order_events(o.client_order_id)["new"].tolist()
    assert transitions == ["pending", "submitted", "new", "filled"]


async def test_balance_difference_is_adjusted_and_journaled(rig: Rig, admin: Admin) -> None:  # noqa: F811
    admin("POST", "balances", {"api_key": KEY, "balances": {"USDT": "100250"}})  # a deposit
    report = await rig.reconciler().run()
    [diff] = report.of("balance")
    assert (diff.key, diff.journal, diff.venue) == ("USDT", "100000", "100250")
    assert rig.portfolio.cash["USDT"] == D("100250")
    assert rig.journal.events("reconcile_balance")["payload"][0]["venue_value"] == "100250"
    assert (await rig.reconciler().run()).clean


async def test_perp_position_from_missing_fills_matches_venue(
    url: str,  # noqa: F811
    admin: Admin,  # noqa: F811
    tmp_path: Path,
) -> None:
    perp = "ETH/USDT:USDT"
    ex = sandbox_client("binanceusdm", url, async_=True, enableRateLimit=False)
    venue = CcxtVenue(ex, "sandbox-usdm", market="usdm")
    await venue.load()
    try:
        with Journal(tmp_path / "perp.db") as journal:
            portfolio = Portfolio(cash={"USDT": D("100000")})
            manager = OrderManager(
                venue, journal, lambda: 1, rng=random.Random(0), sleep=no_sleep,
                on_fill=portfolio.apply_fill,
            )  # fmt: skip
            rec = Reconciler(venue, manager, journal, portfolio, [perp], lambda: 1)
            await ex.create_order(perp, "market", "sell", 0.4, None, {"newClientOrderId": "p1"})
            report = await rec.run()
            assert report.fills_applied > 0 and not report.of("position")
            [pos] = (await venue.fetch_positions()).values()
            assert portfolio.positions[perp].quantity == pos.quantity == D("-0.4")
            await ex.create_order(perp, "market", "buy", 0.1, None, {"newClientOrderId": "p2"})
            report = await rec.run()
            assert portfolio.positions[perp].quantity == D("-0.3") and not report.of("position")
            [row] = journal.positions().to_dict("records")
            assert (row["venue"], row["symbol"], row["quantity"]) == (
                "sandbox-usdm",
                perp,
                D("-0.3"),
            )
            assert (await rec.run()).clean
    finally:
        await venue.close()


async def test_fills_of_two_orders_met_in_one_pass_both_go_through_their_orders(
    rig: Rig,
    admin: Admin,  # noqa: F811
) -> None:
    # the fills step meets the first order's trade, refreshes every open order (which applies
    # the second order's trade too and finishes it): the second is no stray either
    last = D(str((await rig.venue.exchange.fetch_ticker(BTC))["last"]))
    price = rig.venue.rules[BTC].round_price(last * D("0.999"), Side.BUY)
    a = await rig.manager.submit(order(3, "0.01", OrderType.LIMIT, price=price))
    b = await rig.manager.submit(order(4, "0.01", OrderType.LIMIT, price=price))
    for _ in range(48):
        admin.advance(30)
        if len(admin("GET", "fills")) >= 2:
            break
    reconciler = rig.reconciler()
    report = ReconcileReport(1)
    await reconciler._fills(report)  # the fills step on its own: the orders were not refreshed
    assert a.status is S.FILLED and b.status is S.FILLED
    actions = {d.key: d.action for d in report.of("missing_fill")}
    assert len(actions) == 2 and set(actions.values()) == {"applied via order"}
    assert rig.journal.count("fills") == 2
