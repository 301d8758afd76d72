"""The live pair executor over real order managers and scripted venues (no network): limits,
catching up a leg cut short, a naked leg reported when its repair fails."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal as D

from quantdesk.arbitrage.execution import ExecConfig
from quantdesk.arbitrage.live_exec import Leg, Limits, PairExecutor
from quantdesk.engine.order_manager import MemoryJournal, OrderManager
from quantdesk.engine.portfolio import Portfolio
from quantdesk.model import Fill, Instrument, Order, OrderStatus, VenueOrder, VenueRefused
from quantdesk.risk.breaker import CircuitBreaker

SYMBOL = "BTC/USDT:USDT"
PRICE = D("40000")


class ScriptedVenue:
    """Fills each order by the next fraction of its queue (1 when empty); 0 refuses it."""

    def __init__(self, name: str, fractions: list[str] | None = None) -> None:
        self.name = name
        self.fractions = [D(f) for f in fractions or []]
        self.orders: list[Order] = []

    async def create_order(self, order: Order) -> VenueOrder:
        self.orders.append(order)
        fraction = self.fractions.pop(0) if self.fractions else D(1)
        if fraction == 0:
            raise VenueRefused("insufficient margin")
        filled = (order.amount * fraction).quantize(D("0.00001"))
        fill = Fill(f"t{len(self.orders)}", order.client_order_id, SYMBOL, order.side, filled,
                    PRICE, D(0), "USDT", 0, self.name)  # fmt: skip
        status = OrderStatus.FILLED if filled == order.amount else OrderStatus.EXPIRED
        return VenueOrder(order.client_order_id, status, f"v{len(self.orders)}", filled, PRICE,
                          fills=(fill,))  # fmt: skip

    async def fetch_order_by_client_id(self, symbol: str, cid: str) -> None:
        return None

    async def cancel_order(self, order: Order) -> None:
        raise AssertionError("the executor never cancels")

    async def fetch_open_orders(self, symbol: str | None = None) -> list:
        return []


def legs(a: ScriptedVenue, b: ScriptedVenue) -> dict[str, Leg]:
    rules = Instrument(SYMBOL, D("0.00001"), D("0.01"), min_amount=D("0.00001"))
    out = {}
    for name, venue in (("a", a), ("b", b)):
        portfolio = Portfolio(cash={"USDT": D(10_000)})
        om = OrderManager(venue, MemoryJournal(), lambda: 0, rng=random.Random(0),
                          on_fill=portfolio.apply_fill)  # fmt: skip
        out[name] = Leg(name, venue.name, SYMBOL, om, CircuitBreaker(venue.name), portfolio,
                        rules, mark=PRICE)  # fmt: skip
    return out


def executor(pair: dict[str, Leg], limits: Limits | None = None) -> tuple[PairExecutor, list]:
    events: list[tuple[str, str, D, str]] = []
    ids = iter(range(1, 1000))
    ex = PairExecutor(
        pair, ExecConfig(slices=2, retries=1, tolerance=0.05),
        lambda kind, leg, qty, detail: events.append((kind, leg, qty, detail)),
        lambda leg: f"t-{next(ids)}{leg}", lambda: 0, limits,
    )  # fmt: skip
    return ex, events


def test_the_per_venue_notional_limit_refuses_an_increase_but_not_a_reduction() -> None:
    pair = legs(ScriptedVenue("alpha"), ScriptedVenue("beta"))
    ex, events = executor(pair, Limits(per_venue=D("500")))

    async def run() -> None:
        assert await ex.send("a", D("0.01"), "test") == D("0.01")  # 400 USDT: within
        assert await ex.send("a", D("0.01"), "test") == 0  # 800: refused, nothing sent
        assert await ex.send("a", D("-0.01"), "test", reduce_only=True) == D("-0.01")

    asyncio.run(run())
    assert [e[0] for e in events] == ["limit"]
    assert len(pair["a"].om.orders) == 2


def test_a_leg_behind_catches_up_first_and_the_slices_stay_matched() -> None:
    pair = legs(ScriptedVenue("alpha"), ScriptedVenue("beta"))
    ex, events = executor(pair)
    targets = {"a": D("0.02"), "b": D("-0.02")}

    async def run() -> None:
        await ex.send("a", D("0.01"), "before the crash")  # A's slice 1 went out, B's did not
        assert await ex.execute(targets, 1, lambda k: None, closing=False)

    asyncio.run(run())
    assert (pair["a"].qty, pair["b"].qty) == (D("0.02"), D("-0.02"))
    b_orders = [o.amount for o in pair["b"].om.orders.values()]
    assert b_orders == [D("0.01"), D("0.01")]  # caught up, then one matched slice
    assert not [e for e in events if e[0] in ("unwound", "repaired")]


def test_a_refused_repair_is_a_naked_leg_reported_not_hidden() -> None:
    # B refuses its slice and the retry; A fills its slice, then refuses both cut-backs
    pair = legs(ScriptedVenue("alpha", ["1", "0", "0"]), ScriptedVenue("beta", ["0", "0"]))
    ex, events = executor(pair)

    async def run() -> bool:
        return await ex.execute({"a": D("0.02"), "b": D("-0.02")}, 2, lambda k: None, False)

    assert asyncio.run(run()) is False
    kinds = [e[0] for e in events]
    assert "naked_leg" in kinds and "aborted" in kinds
    naked = next(e for e in events if e[0] == "naked_leg")
    assert naked[1] == "a" and naked[2] == D("0.01")
