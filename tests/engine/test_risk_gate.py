"""Pre-trade risk gate: trading states, precision, market limits, notional cap, balances."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from ccxt.base.decimal_to_precision import DECIMAL_PLACES

from quantdesk.model import (
    Decision,
    Instrument,
    Order,
    OrderStatus,
    OrderType,
    Reason,
    RiskDecision,
    Side,
    TradingState,
)
from quantdesk.risk.gate import PreTradeRisk

# Shaped like ccxt's binance market dicts (TICK_SIZE precision mode).
BTC_SPOT = {
    "symbol": "BTC/USDT",
    "precision": {"amount": 0.001, "price": 0.1},
    "limits": {"amount": {"min": 0.001, "max": 9000.0}, "cost": {"min": 5.0, "max": None}},
}
BTC_PERP = {**BTC_SPOT, "symbol": "BTC/USDT:USDT"}


def rules() -> dict[str, Instrument]:
    return {m["symbol"]: Instrument.from_ccxt(m) for m in (BTC_SPOT, BTC_PERP)}


def order(side: str = "buy", amount: str = "1", price: str | None = "100", **kw) -> Order:
    typ = kw.pop("type", OrderType.LIMIT if price else OrderType.MARKET)
    return Order(
        "qd-1",
        kw.pop("symbol", "BTC/USDT"),
        Side(side),
        typ,
        D(amount),
        created_ms=0,
        price=D(price) if price else None,
        **kw,
    )


RICH = {"USDT": D(1_000_000), "BTC": D(100)}


def check(gate: PreTradeRisk, o: Order, ref: str | None = None, pos: str = "0", free=None):
    return gate.check_order(
        o,
        reference_price=D(ref) if ref else None,
        position=D(pos),
        free=RICH if free is None else free,
    )


def test_market_rules_from_ccxt_both_precision_modes() -> None:
    r = rules()["BTC/USDT"]
    assert (r.amount_step, r.price_tick) == (D("0.001"), D("0.1"))
    assert (r.min_amount, r.max_amount, r.min_notional) == (D("0.001"), D(9000), D(5))
    assert not r.is_derivative and rules()["BTC/USDT:USDT"].is_derivative
    places = Instrument.from_ccxt(
        {"symbol": "X/Y", "precision": {"amount": 3, "price": 2}, "limits": {}}, DECIMAL_PLACES
    )
    assert (places.amount_step, places.price_tick, places.max_amount) == (
        D("0.001"),
        D("0.01"),
        None,
    )


def test_precision_rounds_amount_down_and_prices_passively() -> None:
    gate = PreTradeRisk(rules())
    buy = check(gate, order("buy", "0.12345", "100.07"))
    assert buy.decision is Decision.APPROVED and buy.reason is None
    assert (buy.amount, buy.price) == (D("0.123"), D("100.0"))
    sell = check(gate, order("sell", "0.12345", "100.01"))
    assert sell.price == D("100.1")
    stop = check(gate, order("sell", "1", None, type=OrderType.STOP, trigger_price=D("95.06")))
    assert stop.trigger_price == D("95.1") and stop.price is None


def test_market_limits() -> None:
    gate = PreTradeRisk(rules())
    tiny = check(gate, order(amount="0.0004"))
    assert (tiny.decision, tiny.reason) == (Decision.DENIED, Reason.MIN_AMOUNT)
    small = check(gate, order(amount="0.04"))  # 4 USDT < 5
    assert (small.decision, small.reason) == (Decision.DENIED, Reason.MIN_NOTIONAL)
    huge = check(gate, order(amount="10000", price="1"), free={"USDT": D(10**9)})
    assert (huge.decision, huge.reason, huge.amount) == (
        Decision.APPROVED_REDUCED,
        Reason.MAX_AMOUNT,
        D(9000),
    )


def test_max_notional_per_order_reduces_then_denies() -> None:
    gate = PreTradeRisk(rules(), max_order_notional=D(500))
    capped = check(gate, order(amount="10", price="100"))
    assert (capped.decision, capped.reason, capped.amount) == (
        Decision.APPROVED_REDUCED,
        Reason.MAX_NOTIONAL,
        D(5),
    )
    assert "reduced from 10 to 5" in capped.message
    gate.max_order_notional = D(3)  # below the market's minimum notional: nothing left to send
    denied = check(gate, order(amount="10", price="100"))
    assert (denied.decision, denied.reason) == (Decision.DENIED, Reason.MAX_NOTIONAL)


def test_market_order_uses_reference_price() -> None:
    gate = PreTradeRisk(rules(), max_order_notional=D(1000))
    assert check(gate, order(price=None)).reason is Reason.NO_PRICE
    ok = check(gate, order(amount="20", price=None), ref="100")
    assert ok.amount == D(10) and ok.price is None


def test_spot_balances() -> None:
    gate = PreTradeRisk(rules(), fee_rate=D("0.001"))
    buy = check(gate, order(amount="5", price="100"), free={"USDT": D(250)})
    assert (buy.reason, buy.amount) == (Reason.INSUFFICIENT_BALANCE, D("2.497"))  # 250 / 100.1
    broke = check(gate, order(amount="5", price="100"), free={"USDT": D("0.3")})
    assert (broke.decision, broke.reason) == (Decision.DENIED, Reason.INSUFFICIENT_BALANCE)
    sell = check(gate, order("sell", "1", "100"), free={"BTC": D("0.5")})
    assert (sell.decision, sell.amount) == (Decision.APPROVED_REDUCED, D("0.5"))


def test_derivative_margin_counts_the_part_that_closes() -> None:
    gate = PreTradeRisk(rules(), leverage=D(10))
    perp = {"symbol": "BTC/USDT:USDT"}
    ok = check(gate, order("buy", "3", "100", **perp), pos="-1", free={"USDT": D(100)})
    assert ok.decision is Decision.APPROVED  # 1 closes, 2 need 20 USDT margin
    cut = check(gate, order("buy", "3", "100", **perp), pos="-1", free={"USDT": D(5)})
    assert (cut.decision, cut.amount) == (Decision.APPROVED_REDUCED, D("1.5"))
    with_fees = PreTradeRisk(rules(), leverage=D(10), fee_rate=D("0.001"))
    opened = check(with_fees, order("buy", "3", "100", **perp), free={"USDT": D(11)})
    assert opened.amount == D("1.089")  # 11 / (10 margin + 0.1 fee) per unit


def test_cash_margin_lets_a_short_sale_through_and_caps_buys_by_the_cash() -> None:
    """The backtest's cash model (a replay of target weights): a sale needs no balance, a buy
    its cost plus fee out of the cash, the part closing a short included; spot is unchanged."""
    gate = PreTradeRisk(rules(), fee_rate=D("0.001"), cash_margin=True)
    perp = {"symbol": "BTC/USDT:USDT"}
    short = check(gate, order("sell", "50", "100", **perp), pos="2", free={"USDT": D(0)})
    assert (short.decision, short.amount) == (Decision.APPROVED, D(50))
    cover = check(gate, order("buy", "5", "100", **perp), pos="-3", free={"USDT": D("100.1")})
    assert (cover.decision, cover.amount) == (Decision.APPROVED_REDUCED, D(4))  # 3 + 1
    margin = PreTradeRisk(rules(), fee_rate=D("0.001"))
    refused = check(margin, order("sell", "50", "100", **perp), pos="2", free={"USDT": D(0)})
    assert (refused.decision, refused.amount) == (Decision.APPROVED_REDUCED, D(2))
    spot = check(gate, order("sell", "5"), free={"USDT": D(0), "BTC": D(1)})
    assert (spot.decision, spot.amount) == (Decision.APPROVED_REDUCED, D(1))


def test_halted_allows_only_cancels() -> None:
    gate = PreTradeRisk(rules(), state=TradingState.HALTED)
    for o in (order(), order("sell", reduce_only=True)):
        d = check(gate, o, pos="1")
        assert (d.decision, d.reason) == (Decision.DENIED, Reason.HALTED)
    assert gate.allows_cancel()


def test_reducing_allows_only_reduce_only_orders_that_reduce() -> None:
    gate = PreTradeRisk(rules(), state=TradingState.REDUCING)
    assert check(gate, order("sell"), pos="0.5").reason is Reason.REDUCING_ONLY
    ok = check(gate, order("sell", "0.5", reduce_only=True), pos="0.5", free={})
    assert ok.decision is Decision.APPROVED  # no balance needed to reduce
    clipped = check(gate, order("sell", "2", reduce_only=True), pos="0.5")
    assert (clipped.decision, clipped.reason, clipped.amount) == (
        Decision.APPROVED_REDUCED,
        Reason.REDUCE_ONLY_CLIPPED,
        D("0.5"),
    )
    wrong_way = check(gate, order("buy", reduce_only=True), pos="0.5")
    assert wrong_way.reason is Reason.REDUCE_ONLY_INCREASES
    # closing a small remainder below the minimum notional is allowed for reduce-only orders
    dust = check(gate, order("sell", "0.01", "100", reduce_only=True), pos="0.01")
    assert dust.decision is Decision.APPROVED


def test_unknown_market_denied() -> None:
    assert check(PreTradeRisk({}), order()).reason is Reason.UNKNOWN_MARKET


def test_applied_to_builds_a_fresh_pending_order() -> None:
    gate = PreTradeRisk(rules(), max_order_notional=D(500))
    original = order(amount="10", price="100.07")
    decision = check(gate, original)
    sent = decision.applied_to(original)
    assert (sent.amount, sent.price, sent.status) == (D(5), D("100.0"), OrderStatus.PENDING)
    assert (
        sent.client_order_id == original.client_order_id and sent.fill_ids is not original.fill_ids
    )
    denied = RiskDecision(Decision.DENIED, D(1), None, None, Reason.HALTED)
    with pytest.raises(ValueError, match="denied"):
        denied.applied_to(original)
