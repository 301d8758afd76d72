"""Order state machine, fills on orders, deterministic client order ids."""

from __future__ import annotations

import itertools
from decimal import Decimal as D

import pytest

from quantdesk.model import (
    CLIENT_ID_PATTERN,
    Fill,
    IllegalTransition,
    Order,
    OrderStatus,
    OrderType,
    Side,
    check_transition,
    client_order_id,
)

S = OrderStatus

# Written out by hand (not derived from the table) so the test catches a table edit.
LEGAL = {
    (S.PENDING, S.SUBMITTED),
    (S.PENDING, S.CANCELED),
    (S.PENDING, S.REJECTED),
    (S.SUBMITTED, S.NEW),
    (S.SUBMITTED, S.PARTIALLY_FILLED),
    (S.SUBMITTED, S.FILLED),
    (S.SUBMITTED, S.CANCELING),
    (S.SUBMITTED, S.CANCELED),
    (S.SUBMITTED, S.REJECTED),
    (S.SUBMITTED, S.EXPIRED),
    (S.NEW, S.PARTIALLY_FILLED),
    (S.NEW, S.FILLED),
    (S.NEW, S.CANCELING),
    (S.NEW, S.CANCELED),
    (S.NEW, S.EXPIRED),
    (S.PARTIALLY_FILLED, S.PARTIALLY_FILLED),
    (S.PARTIALLY_FILLED, S.FILLED),
    (S.PARTIALLY_FILLED, S.CANCELING),
    (S.PARTIALLY_FILLED, S.CANCELED),
    (S.PARTIALLY_FILLED, S.EXPIRED),
    (S.CANCELING, S.CANCELED),
    (S.CANCELING, S.FILLED),
    (S.CANCELING, S.EXPIRED),
    (S.CANCELING, S.NEW),
    (S.CANCELING, S.PARTIALLY_FILLED),
}
ALL_PAIRS = list(itertools.product(S, S))


def make_order(status: OrderStatus = S.PENDING, amount: str = "2", **kw) -> Order:
    order = Order(
        client_order_id="qd-test-1",
        symbol="BTC/USDT",
        side=Side.BUY,
        type=kw.pop("type", OrderType.LIMIT),
        amount=D(amount),
        price=kw.pop("price", D("100")),
        created_ms=1_000,
        status=status,
        **kw,
    )
    return order


def fill(trade_id: str, amount: str, price: str = "100", ts: int = 2_000) -> Fill:
    return Fill(
        trade_id=trade_id,
        client_order_id="qd-test-1",
        symbol="BTC/USDT",
        side=Side.BUY,
        amount=D(amount),
        price=D(price),
        fee=D("0.1"),
        fee_currency="USDT",
        timestamp=ts,
    )


@pytest.mark.parametrize(("old", "new"), sorted(LEGAL))
def test_legal_transition(old: OrderStatus, new: OrderStatus) -> None:
    order = make_order(old)
    event = order.transition(new, 5_000, reason="r")
    assert order.status is new
    assert (event.old, event.new, event.timestamp, event.reason) == (old, new, 5_000, "r")
    assert order.updated_ms == 5_000


@pytest.mark.parametrize(("old", "new"), [p for p in ALL_PAIRS if p not in LEGAL])
def test_illegal_transition_raises_and_keeps_state(old: OrderStatus, new: OrderStatus) -> None:
    order = make_order(old)
    with pytest.raises(IllegalTransition) as info:
        order.transition(new, 5_000)
    assert (info.value.old, info.value.new) == (old, new)
    assert order.status is old and order.updated_ms == 1_000
    with pytest.raises(IllegalTransition):
        check_transition("x", old, new)


def test_terminal_states_have_no_exits() -> None:
    terminal = {s for s in S if s.is_terminal}
    assert terminal == {S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED}
    assert not any(old in terminal for old, _ in LEGAL)


def test_partial_then_full_fill_updates_average_and_fees() -> None:
    order = make_order(S.NEW)
    ev1 = order.apply_fill(fill("t1", "0.5", "100"))
    assert ev1 is not None and ev1.new is S.PARTIALLY_FILLED
    ev2 = order.apply_fill(fill("t2", "1.5", "104"))
    assert ev2 is not None and ev2.new is S.FILLED
    assert order.filled == D("2")
    assert order.average_price == D("103")  # (50 + 156) / 2
    assert order.fee == D("0.2")


def test_duplicate_trade_id_is_ignored() -> None:
    order = make_order(S.NEW)
    order.apply_fill(fill("t1", "0.5"))
    assert order.apply_fill(fill("t1", "0.5")) is None
    assert order.filled == D("0.5")


def test_fill_racing_a_cancel() -> None:
    order = make_order(S.CANCELING)
    assert order.apply_fill(fill("t1", "1")) is None  # still canceling
    assert order.status is S.CANCELING and order.filled == D("1")
    event = order.apply_fill(fill("t2", "1"))
    assert event is not None and event.old is S.CANCELING and event.new is S.FILLED


def test_market_order_filled_on_arrival_skips_new() -> None:
    order = make_order(S.SUBMITTED, type=OrderType.MARKET, price=None)
    event = order.apply_fill(fill("t1", "2"))
    assert event is not None and (event.old, event.new) == (S.SUBMITTED, S.FILLED)


@pytest.mark.parametrize("status", [S.PENDING, S.CANCELED, S.FILLED, S.REJECTED, S.EXPIRED])
def test_fill_on_unsent_or_terminal_order_is_illegal(status: OrderStatus) -> None:
    order = make_order(status)
    with pytest.raises(IllegalTransition):
        order.apply_fill(fill("t1", "1"))


def test_overfill_and_foreign_fill_rejected() -> None:
    order = make_order(S.NEW)
    with pytest.raises(ValueError, match="remaining"):
        order.apply_fill(fill("t1", "2.5"))
    foreign = Fill("t9", "other", "BTC/USDT", Side.BUY, D(1), D(1), D(0), "USDT", 1)
    with pytest.raises(ValueError, match="belongs"):
        order.apply_fill(foreign)
    assert order.filled == 0


def test_order_validation() -> None:
    with pytest.raises(ValueError, match="price"):
        make_order(type=OrderType.LIMIT, price=None)
    with pytest.raises(ValueError, match="trigger"):
        make_order(type=OrderType.STOP, price=None)
    with pytest.raises(ValueError, match="amount"):
        make_order(amount="0")
    with pytest.raises(ValueError, match="client order id"):
        Order("bad id!", "BTC/USDT", Side.BUY, OrderType.MARKET, D(1), created_ms=0)


def test_client_order_id_is_deterministic_and_binance_valid() -> None:
    a = client_order_id("sma_cross#1", "BTC/USDT:USDT", 1_700_000_000_000, 0)
    assert a == client_order_id("sma_cross#1", "BTC/USDT:USDT", 1_700_000_000_000, 0)
    assert CLIENT_ID_PATTERN.match(a) and len(a) <= 36 and a.startswith("qd-")
    others = {
        client_order_id("sma_cross#1", "BTC/USDT:USDT", 1_700_000_000_000, 1),
        client_order_id("sma_cross#2", "BTC/USDT:USDT", 1_700_000_000_000, 0),
        client_order_id("sma_cross#1", "ETH/USDT:USDT", 1_700_000_000_000, 0),
        client_order_id("sma_cross#1", "BTC/USDT:USDT", 1_700_000_060_000, 0),
    }
    assert a not in others and len(others) == 4
    long_prefix = client_order_id("x" * 200, "Ünïcode/?", 0, 99, prefix="abcdefgh")
    assert CLIENT_ID_PATTERN.match(long_prefix) and len(long_prefix) == 36
    with pytest.raises(ValueError):
        client_order_id("s", "BTC/USDT", 0, 0, prefix="bad-prefix")


def test_the_status_cannot_be_assigned_only_transitioned() -> None:
    """Assigning the field would skip the table: a filled order could be made open again."""
    order = make_order()
    with pytest.raises(AttributeError, match=r"only through Order\.transition"):
        order.status = S.FILLED
    assert order.status is S.PENDING
    order.transition(S.SUBMITTED, 0)
    assert order.status is S.SUBMITTED
    with pytest.raises(IllegalTransition):
        order.transition(S.PENDING, 1)
