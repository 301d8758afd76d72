"""RiskEngine pre-trade checks: each limit at, just below and just above its threshold."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from quantdesk.engine.journal import Journal
from quantdesk.model import Decision, Reason, TradingState
from quantdesk.risk.breaker import CircuitBreaker
from quantdesk.risk.checks import liquidation_price, max_position_for_buffer
from tests.risk.helpers import Clock, engine, fill, order

APPROVED, REDUCED, DENIED = Decision.APPROVED, Decision.APPROVED_REDUCED, Decision.DENIED
LOOSE = {"max_symbol_exposure": 100.0, "max_leverage": 100.0, "risk_per_trade": 1.0}


def test_risk_per_trade_stop_distance_times_size() -> None:
    # equity 100000 x 2% = 2000 at risk; stop 10 below the entry: 200 units.
    risk = engine(max_symbol_exposure=100.0, max_leverage=100.0)
    assert risk.check_order(order("199.999"), stop_price=D(90)).decision is APPROVED
    assert risk.check_order(order("200"), stop_price=D(90)).decision is APPROVED
    above = risk.check_order(order("200.001"), stop_price=D(90))
    assert (above.decision, above.reason, above.amount) == (REDUCED, Reason.RISK_PER_TRADE, D(200))


def test_risk_per_trade_uses_default_stop_loss() -> None:
    # no stop given: default_stop_loss 4% of 100 = 4 per unit -> 2000 / 4 = 500 units.
    risk = engine(max_symbol_exposure=100.0, max_leverage=100.0, default_stop_loss=0.04)
    assert risk.check_order(order("500")).decision is APPROVED
    above = risk.check_order(order("500.001"))
    assert (above.reason, above.amount) == (Reason.RISK_PER_TRADE, D(500))


def test_symbol_exposure_default_15_percent() -> None:
    risk = engine()  # 15% of 100000 = 15000 -> 150 units at 100
    assert risk.check_order(order("149.999")).decision is APPROVED
    assert risk.check_order(order("150")).decision is APPROVED
    above = risk.check_order(order("150.001"))
    assert (above.decision, above.reason, above.amount) == (REDUCED, Reason.SYMBOL_EXPOSURE, D(150))


def test_symbol_exposure_counts_the_existing_position_and_shorts() -> None:
    risk = engine()
    fill(risk.portfolio, "BTC/USDT:USDT", "-150")  # short at the limit (equity unchanged)
    more = risk.check_order(order("1", "sell", "BTC/USDT:USDT"))
    assert (more.decision, more.reason) == (DENIED, Reason.SYMBOL_EXPOSURE)
    # buying 300 closes 150 and opens a 150 long: exactly at the limit
    flip = risk.check_order(order("300", "buy", "BTC/USDT:USDT"))
    assert flip.decision is APPROVED


def test_max_open_positions() -> None:
    risk = engine(max_open_positions=2)
    fill(risk.portfolio, "ETH/USDT", "1")
    assert risk.check_order(order("1", symbol="SOL/USDT")).decision is APPROVED  # 2nd: at limit
    fill(risk.portfolio, "SOL/USDT", "1")
    third = risk.check_order(order("1", symbol="BTC/USDT"))
    assert (third.decision, third.reason) == (DENIED, Reason.MAX_POSITIONS)
    # adding to an open position opens nothing new
    assert risk.check_order(order("1", symbol="ETH/USDT")).decision is APPROVED


def test_gross_exposure_currency_cap() -> None:
    risk = engine(**LOOSE, max_gross_exposure=D(20000))
    fill(risk.portfolio, "ETH/USDT", "50")  # 5000 of gross exposure
    assert risk.check_order(order("149.999")).decision is APPROVED
    assert risk.check_order(order("150")).decision is APPROVED
    above = risk.check_order(order("150.001"))
    assert (above.decision, above.reason, above.amount) == (REDUCED, Reason.GROSS_EXPOSURE, D(150))


def test_leverage_gross_over_equity() -> None:
    risk = engine(max_symbol_exposure=100.0, risk_per_trade=1.0, max_leverage=0.5)
    assert risk.check_order(order("499.999")).decision is APPROVED
    assert risk.check_order(order("500")).decision is APPROVED
    above = risk.check_order(order("500.001"))
    assert (above.decision, above.reason, above.amount) == (REDUCED, Reason.LEVERAGE, D(500))


def test_max_order_notional() -> None:
    risk = engine(**LOOSE, max_order_notional=D(10000))
    assert risk.check_order(order("99.999")).decision is APPROVED
    assert risk.check_order(order("100")).decision is APPROVED
    above = risk.check_order(order("100.001"))
    assert (above.decision, above.reason, above.amount) == (REDUCED, Reason.MAX_NOTIONAL, D(100))


def test_price_band() -> None:
    risk = engine()  # 5% band around the last price 100
    assert risk.check_order(order("1", price="104.99")).decision is APPROVED
    assert risk.check_order(order("1", price="105")).decision is APPROVED
    assert risk.check_order(order("1", "sell", "BTC/USDT:USDT", price="95")).decision is APPROVED
    above = risk.check_order(order("1", price="105.01"))
    assert (above.decision, above.reason) == (DENIED, Reason.PRICE_BAND)
    below = risk.check_order(order("1", "sell", price="94.99", symbol="BTC/USDT:USDT"))
    assert (below.decision, below.reason) == (DENIED, Reason.PRICE_BAND)


def test_orders_per_second_and_per_minute() -> None:
    clock = Clock()
    risk = engine(clock=clock, max_orders_per_second=3, max_orders_per_minute=5)
    assert [risk.check_order(order("1")).decision for _ in range(3)] == [APPROVED] * 3
    fourth = risk.check_order(order("1"))
    assert (fourth.decision, fourth.reason) == (DENIED, Reason.ORDER_RATE)
    clock.now += 999
    assert risk.check_order(order("1")).reason is Reason.ORDER_RATE  # still the same second
    clock.now += 1
    assert risk.check_order(order("1")).decision is APPROVED  # 4th in the minute
    clock.now += 1000
    assert risk.check_order(order("1")).decision is APPROVED  # 5th: at the per-minute limit
    clock.now += 1000
    sixth = risk.check_order(order("1"))
    assert (sixth.decision, sixth.reason) == (DENIED, Reason.ORDER_RATE)
    clock.now += 60_000
    assert risk.check_order(order("1")).decision is APPROVED


def test_orders_per_second_when_the_clock_steps_back() -> None:
    # The per-second count walks approvals newest first and stops at the first one a second
    # old; after a step back it must still do so (not count every approval kept in the window).
    clock = Clock()
    risk = engine(clock=clock, max_orders_per_second=2, **LOOSE)
    assert risk.check_order(order("1")).decision is APPROVED
    clock.now -= 500
    assert risk.check_order(order("1")).decision is APPROVED
    clock.now += 1100  # 600 ms after the first, 1100 ms after the newest
    assert risk.check_order(order("1")).decision is APPROVED
    assert risk.check_order(order("1")).decision is APPROVED
    third = risk.check_order(order("1"))
    assert (third.reason, third.message) == (Reason.ORDER_RATE, "2 orders in the last second")
    clock.now += 60_000  # the window empties: counting by the window's length again
    assert [risk.check_order(order("1")).decision for _ in range(3)] == [APPROVED] * 2 + [DENIED]


@pytest.mark.parametrize(("cancels", "expected"), [(1, APPROVED), (2, APPROVED), (3, DENIED)])
def test_cancel_to_order_ratio(cancels: int, expected: Decision) -> None:
    clock = Clock()
    risk = engine(
        clock=clock, max_cancel_ratio=0.5, cancel_ratio_min_orders=4, max_orders_per_second=100
    )
    for _ in range(4):
        assert risk.check_order(order("1")).decision is APPROVED
    for _ in range(cancels):
        risk.record_cancel()
    result = risk.check_order(order("1"))  # ratio cancels / 4: 0.25, 0.5 (at), 0.75
    assert result.decision is expected
    if expected is DENIED:
        assert result.reason is Reason.CANCEL_RATIO
        clock.now += 300_000  # the window rolls over: the old cancels no longer count
        assert risk.check_order(order("1")).decision is APPROVED


def test_cancel_ratio_needs_a_minimum_of_orders() -> None:
    risk = engine(max_cancel_ratio=0.5, cancel_ratio_min_orders=4)
    for _ in range(3):
        risk.check_order(order("1"))
        risk.record_cancel()
    assert risk.check_order(order("1")).decision is APPROVED  # 3 orders: ratio not yet applied


def test_liquidation_price_solves_the_margin_equation() -> None:
    mmr, equity, mark = D("0.004"), D(1000), D(100)
    for q in (D(50), D(-50)):
        p = liquidation_price(q, mark, equity, mmr)
        assert equity + q * (p - mark) == pytest.approx(mmr * abs(q) * p)
    assert liquidation_price(D(5), mark, equity, mmr) is None  # equity covers it at any price
    assert liquidation_price(D(0), mark, equity, mmr) is None


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_liquidation_buffer_reduces_perp_orders(side: str) -> None:
    risk = engine(
        leverage="100",
        max_symbol_exposure=1000.0,
        max_leverage=1000.0,
        risk_per_trade=1.0,
        default_stop_loss=0.001,
    )
    cap = max_position_for_buffer(side == "buy", D(100), D(100000), D("0.05"), D("0.004"))
    at = cap.quantize(D("0.001"), rounding="ROUND_FLOOR")
    assert risk.check_order(order(str(at), side, "BTC/USDT:USDT")).decision is APPROVED
    above = risk.check_order(order(str(at + D("0.002")), side, "BTC/USDT:USDT"))
    assert (above.decision, above.reason, above.amount) == (REDUCED, Reason.LIQUIDATION_BUFFER, at)
    sign = 1 if side == "buy" else -1
    liq = liquidation_price(sign * at, D(100), D(100000), D("0.004"))
    assert abs(liq - 100) / 100 >= D("0.05")
    over = liquidation_price(sign * (at + D("0.002")), D(100), D(100000), D("0.004"))
    assert abs(over - 100) / 100 < D("0.05")
    # spot markets have no liquidation: the same size passes the buffer rule
    spot = risk.check_order(
        order(
            str(at + D("0.002")),
            side,
            "BTC/USDT",
        )
    )
    assert spot.reason is not Reason.LIQUIDATION_BUFFER


def test_liquidation_buffer_reject_mode() -> None:
    risk = engine(
        leverage="100",
        max_symbol_exposure=1000.0,
        max_leverage=1000.0,
        risk_per_trade=1.0,
        default_stop_loss=0.001,
        liquidation_action="reject",
    )
    result = risk.check_order(order("19000", "buy", "BTC/USDT:USDT"))
    assert (result.decision, result.reason) == (DENIED, Reason.LIQUIDATION_BUFFER)


def test_states_reducing_and_halted() -> None:
    risk = engine()
    fill(risk.portfolio, "BTC/USDT:USDT", "2")
    risk.set_state(TradingState.REDUCING, "test")
    assert risk.check_order(order("1")).reason is Reason.REDUCING_ONLY
    reduce = risk.check_order(order("1", "sell", "BTC/USDT:USDT", reduce_only=True))
    assert reduce.decision is APPROVED
    risk.set_state(TradingState.HALTED, "test")
    halted = risk.check_order(order("1", "sell", "BTC/USDT:USDT", reduce_only=True))
    assert (halted.decision, halted.reason) == (DENIED, Reason.HALTED)
    assert risk.allows_cancel()
    # automatic moves never de-escalate; only a forced move (resume) does
    assert not risk.set_state(TradingState.ACTIVE, "auto")
    assert risk.state is TradingState.HALTED
    assert risk.set_state(TradingState.ACTIVE, "resume", force=True)
    assert risk.check_order(order("1")).decision is APPROVED


def test_reduce_only_skips_size_rules() -> None:
    risk = engine(max_symbol_exposure=0.001)
    fill(risk.portfolio, "BTC/USDT:USDT", "100")
    assert risk.check_order(order("1", "buy", "BTC/USDT:USDT")).reason is Reason.SYMBOL_EXPOSURE
    close = risk.check_order(order("100", "sell", "BTC/USDT:USDT", reduce_only=True))
    assert close.decision is APPROVED


def test_spot_sell_uses_the_held_position_as_balance() -> None:
    risk = engine()
    fill(risk.portfolio, "ETH/USDT", "10")
    assert risk.check_order(order("10", "sell", "ETH/USDT")).decision is APPROVED
    over = risk.check_order(order("11", "sell", "ETH/USDT"))
    assert (over.reason, over.amount) == (Reason.INSUFFICIENT_BALANCE, D(10))


def test_per_strategy_overrides() -> None:
    risk = engine(strategies={"tight": {"max_symbol_exposure": 0.05}})
    assert risk.check_order(order("100")).decision is APPROVED
    tight = risk.check_order(order("100", strategy_id="tight"))
    assert (tight.reason, tight.amount) == (Reason.SYMBOL_EXPOSURE, D(50))


def test_circuit_open_denies_and_alerts() -> None:
    class Alerts:
        def __init__(self) -> None:
            self.sent: list[tuple] = []

        def alert(self, severity, message, **kw) -> None:
            self.sent.append((severity, message))

    now = [0.0]
    breaker = CircuitBreaker("sandbox", failures=1, clock=lambda: now[0])
    risk = engine()
    risk.breakers = {"sandbox": breaker}
    risk.alerter = Alerts()
    assert risk.check_order(order("1", venue="sandbox")).decision is APPROVED
    breaker.record_failure()
    denied = risk.check_order(order("1", venue="sandbox"))
    assert (denied.decision, denied.reason) == (DENIED, Reason.CIRCUIT_OPEN)
    assert risk.alerter.sent == [("error", "circuit breaker for sandbox is open")]
    assert risk.check_order(order("1", venue="other")).decision is APPROVED


def test_denials_and_reductions_are_journaled(tmp_path) -> None:
    risk = engine()
    risk.journal = Journal(tmp_path / "j.sqlite")
    risk.check_order(order("1", price="200"))
    risk.check_order(order("1000"))
    risk.check_order(order("1"))
    events = risk.journal.events()
    assert list(events["kind"]) == ["order_denied", "order_reduced"]
    assert [p["reason"] for p in events["payload"]] == ["price_band", "symbol_exposure"]
    risk.journal.close()


def test_no_equity_denies_new_risk() -> None:
    risk = engine(cash="0")
    result = risk.check_order(order("1"))
    assert (result.decision, result.reason) == (DENIED, Reason.NO_EQUITY)
