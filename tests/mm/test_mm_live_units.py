"""The pieces of a live market-making session on their own: paper quoting's queue model,
strategy-params hot reload, the behaviour monitor, user-stream parsing and the portfolio's
trips when a spot short is covered with the fee paid in the base asset."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from quantdesk.config import parse_config
from quantdesk.engine.portfolio import Portfolio
from quantdesk.errors import ConfigError
from quantdesk.mm.behaviour import BehaviourLimits, BehaviourMonitor
from quantdesk.mm.paper import PaperQuoteVenue
from quantdesk.mm.quotes import ASK, BID, Quote, reducing_quotes
from quantdesk.mm.reload import ParamReloader, apply_params, section_params
from quantdesk.model import Fill, Order, OrderStatus, OrderType, Side, VenueRefused
from quantdesk.strategy import ParamError, strategy_class
from quantdesk.venues.pro_streams import fill_of, touch_of, update_of

SYM = "BTC/USDT"
TICK = Decimal("0.01")


def order(cid: str, side: Side, price: str, amount: str = "0.002") -> Order:
    return Order(cid, SYM, side, OrderType.LIMIT, Decimal(amount), 0, price=Decimal(price))


def paper(bid: float = 100.0, ask: float = 100.02, size: float = 0.005) -> PaperQuoteVenue:
    venue = PaperQuoteVenue("p", SYM, TICK, amount_step=Decimal("0.001"))
    venue.on_touch(bid, ask, size, size, 1)
    return venue


# -- paper quoting ----------------------------------------------------------------------------


async def test_a_bid_at_the_touch_waits_for_the_queue_ahead_then_fills_from_trades() -> None:
    venue = paper()
    await venue.create_order(order("a", Side.BUY, "100.00"))
    assert venue.on_trade(-1, 100.0, 0.004, 2) == []  # 0.005 ahead: 0.001 left ahead
    assert venue.on_trade(+1, 100.02, 1.0, 3) == []  # a buyer never hits our bid
    assert venue.on_trade(-1, 100.0, 0.002, 4) == ["a"]  # 0.001 ahead, then 0.001 of ours
    report = venue.report("a")
    assert (report.status, report.filled) == (OrderStatus.PARTIALLY_FILLED, Decimal("0.001"))
    assert report.fills[0].price == Decimal("100.00") and report.fills[0].trade_id == "a:1"
    assert venue.on_trade(-1, 99.99, 0.0001, 5) == ["a"]  # a trade through fills the rest
    assert venue.report("a").status is OrderStatus.FILLED
    assert venue.report("a").filled == Decimal("0.002")


async def test_inside_the_spread_nothing_is_ahead_and_a_crossing_touch_fills() -> None:
    venue = paper()
    await venue.create_order(order("in", Side.SELL, "100.01"))
    assert venue.orders["in"].queue == 0.0
    assert venue.on_touch(100.01, 100.03, 1, 1, 2) == ["in"]  # the bid reached our ask
    assert venue.report("in").status is OrderStatus.FILLED


async def test_cancels_never_advance_the_queue_and_post_only_refuses_a_cross() -> None:
    venue = paper()
    await venue.create_order(order("b", Side.BUY, "100.00"))
    venue.on_touch(100.0, 100.02, 0.001, 0.005, 2)  # size left the level without a trade
    assert venue.orders["b"].queue == 0.001  # capped to the level, not advanced further
    with pytest.raises(VenueRefused):
        await venue.create_order(order("x", Side.BUY, "100.02"))
    cancelled = await venue.cancel_order(order("b", Side.BUY, "100.00"))
    assert cancelled.status is OrderStatus.CANCELED
    assert venue.on_trade(-1, 99.0, 5, 3) == []  # a cancelled order never fills
    assert await venue.fetch_open_orders() == []


# -- params hot reload -------------------------------------------------------------------------


def write(path: Path, body: str) -> None:
    import os

    path.write_text(body)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a new mtime


def test_a_valid_change_is_applied_an_invalid_one_refused_and_the_command_line_wins(
    tmp_path: Path,
) -> None:
    config = tmp_path / "quantdesk.toml"
    write(config, "[mm.params.basic_mm]\nsize = 0.001\n")
    strategy = strategy_class("basic_mm")(size=0.001, levels=2)
    events: list[tuple[str, str]] = []
    reloader = ParamReloader(config, strategy, {"levels": 2},
                             on_event=lambda k, sev, m, p: events.append((k, sev)))  # fmt: skip
    assert reloader.check() is None  # unchanged file
    write(config, "[mm.params.basic_mm]\nsize = 0.002\nlevels = 3\n")
    assert reloader.check() is True
    assert (strategy.size, strategy.levels) == (0.002, 2)  # --param levels=2 stays
    assert strategy.values["size"] == 0.002
    write(config, "[mm.params.basic_mm]\nsize = -1\n")
    assert reloader.check() is False
    assert strategy.size == 0.002 and "size" in (reloader.last_error or "")
    write(config, "[mm.params.basic_mm\nsize = 0.003\n")  # broken TOML
    assert reloader.check() is False and strategy.size == 0.002
    write(config, "[mm.params.basic_mm]\nunknown = 1\n")
    assert reloader.check() is False and strategy.size == 0.002
    assert [k for k, _ in events] == [
        "params_reloaded",
        "params_rejected",
        "params_rejected",
        "params_rejected",
    ]
    assert events[1][1] == "error"


def test_apply_params_leaves_the_strategy_untouched_on_error() -> None:
    strategy = strategy_class("basic_mm")(size=0.5)
    with pytest.raises(ParamError):
        apply_params(strategy, {"size": 0.7, "levels": 99})
    assert strategy.size == 0.5
    assert section_params({"mm": {"params": {}}}, "basic_mm") == {}


def test_the_mm_section_of_the_config_is_validated() -> None:
    config = parse_config({"mm": {"order_timeout_s": 2, "params": {"basic_mm": {"size": 1}}}})
    assert config.mm.order_timeout_s == 2 and config.mm.reconcile_every_s == 30
    with pytest.raises(ConfigError, match=r"mm\.order_timeout_s"):
        parse_config({"mm": {"order_timeout_s": 0}})
    with pytest.raises(ConfigError, match=r"mm\.typo"):
        parse_config({"mm": {"typo": 1}})


# -- behaviour monitor -------------------------------------------------------------------------


def test_behaviour_limits_wait_for_enough_orders_then_name_the_first_broken() -> None:
    monitor = BehaviourMonitor(
        BehaviourLimits(window_s=10, min_orders=4, max_cancel_ratio=1.5, min_fill_rate=0.2)
    )
    for t in (0, 100, 200):
        monitor.placed(t)
        monitor.cancelled(t)
        monitor.cancelled(t)
    assert monitor.check(300) is None  # 3 orders: below min_orders
    monitor.placed(400)
    assert "cancel ratio 1.50" not in (monitor.check(400) or "")
    monitor.cancelled(400)
    monitor.cancelled(400)
    assert monitor.check(500).startswith("cancel ratio 2.00")
    assert monitor.check(20_000) is None  # the window moved past them
    for t in range(5):
        monitor.placed(30_000 + t)
    assert monitor.check(30_010).startswith("fill rate 0.00%")
    monitor.filled(30_010)
    assert monitor.check(30_010) is None  # 1 of 5 = 20%
    burst = BehaviourMonitor(BehaviourLimits(max_orders_per_s=3))
    for t in (1000, 1200, 1400, 1600):
        burst.placed(t)
    assert burst.check(1700).startswith("4 orders in one second")


# -- user stream parsing -----------------------------------------------------------------------


def test_stream_trades_and_orders_map_to_fills_and_updates() -> None:
    raw = {"id": "7", "order": "3", "symbol": SYM, "side": "buy", "amount": 0.001,
           "price": 41045.56, "fee": {"cost": 1e-06, "currency": "BTC"}, "timestamp": 5,
           "info": {"c": "qd-abc"}}  # fmt: skip
    fill = fill_of(raw, "sandbox")
    assert (fill.client_order_id, fill.trade_id, fill.venue_order_id) == ("qd-abc", "7", "3")
    assert fill.price == Decimal("41045.56") and fill.fee == Decimal("0.000001")
    update = update_of({"clientOrderId": "qd-abc", "status": "canceled", "filled": 0.0005,
                        "id": 3, "timestamp": 9})  # fmt: skip
    assert (update.status, update.filled, update.venue_order_id) == (
        OrderStatus.CANCELED,
        Decimal("0.0005"),
        "3",
    )
    assert touch_of({"bids": [[1, 2]], "asks": []}) is None
    assert touch_of({"bids": [[1, 2]], "asks": [[3, 4]], "timestamp": None}).time_ms == 0


# -- portfolio ---------------------------------------------------------------------------------


def test_covering_a_spot_short_with_a_base_fee_leaves_a_trip_the_next_fill_can_close() -> None:
    pf = Portfolio(cash={"USDT": Decimal(1000)}, currency="USDT")

    def fill(n: int, side: Side, amount: str, fee: str, ccy: str) -> Fill:
        return Fill(str(n), "c", SYM, side, Decimal(amount), Decimal(100), Decimal(fee), ccy, n)

    pf.apply_fill(fill(1, Side.SELL, "0.001", "0.0001", "USDT"))  # short 0.001
    pf.apply_fill(fill(2, Side.BUY, "0.001", "0.000001", "BTC"))  # covered; fee in BTC
    assert pf.positions[SYM].quantity == Decimal("-0.000001")
    pf.apply_fill(fill(3, Side.BUY, "0.001", "0", "BTC"))  # closes the residual, opens long
    assert pf.positions[SYM].quantity == Decimal("0.000999")
    assert len(pf.closed_trips) == 2 and SYM in pf.open_trips


def test_reducing_keeps_only_the_side_back_to_flat_and_never_past_it() -> None:
    ladder = [Quote(BID, 99.0, 0.002, 0), Quote(ASK, 101.0, 0.002, 0), Quote(ASK, 102.0, 0.002, 1)]
    assert reducing_quotes(ladder, 0.0015) == [Quote(ASK, 101.0, 0.0015, 0)]
    both = reducing_quotes(ladder, 0.003)  # all of it filled would leave it flat, not short
    assert both == [Quote(ASK, 101.0, 0.002, 0), Quote(ASK, 102.0, 0.001, 1)]
    assert reducing_quotes(ladder, -0.001) == [Quote(BID, 99.0, 0.001, 0)]
    assert reducing_quotes(ladder, 0.0) == []
