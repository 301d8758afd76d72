"""Portfolio accounting against hand-computed numbers."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal as D

import pytest

from quantdesk.engine.portfolio import Portfolio, funding_payment
from quantdesk.model import Fill, Side, split_symbol

DAY = 86_400_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
_ids = itertools.count()


def f(side: str, amount: str, price: str, fee: str = "0", ts: int = T0, symbol: str = "BTC/USDT",
      fee_ccy: str = "USDT") -> Fill:  # fmt: skip
    return Fill(
        trade_id=f"t{next(_ids)}",
        client_order_id="c",
        symbol=symbol,
        side=Side(side),
        amount=D(amount),
        price=D(price),
        fee=D(fee),
        fee_currency=fee_ccy,
        timestamp=ts,
    )


def test_split_symbol() -> None:
    assert split_symbol("BTC/USDT") == ("BTC", "USDT")
    assert split_symbol("BTC/USDT:USDT") == ("BTC", "USDT")
    assert split_symbol("ETH/BTC") == ("ETH", "BTC")
    with pytest.raises(ValueError):
        split_symbol("BTCUSDT")


def test_increase_reduce_flip_funding_close_by_hand() -> None:
    pf = Portfolio(cash={"USDT": D(10_000)})
    sym = "BTC/USDT:USDT"
    pf.apply_fill(f("buy", "1", "100", "0.1", T0, sym))
    pf.apply_fill(f("buy", "1", "110", "0.11", T0 + 1, sym))
    pos = pf.positions[sym]
    assert (pos.quantity, pos.average_price) == (D(2), D(105))
    assert pf.cash["USDT"] == D("9789.79")

    assert pf.apply_fill(f("sell", "1.5", "120", "0.18", T0 + 2, sym)) == D("22.5")
    assert (pos.quantity, pos.average_price) == (D("0.5"), D(105))  # reduction keeps the average
    assert pf.cash["USDT"] == D("9969.61")
    assert pos.unrealized_pnl(D(100)) == D("-2.5")

    # sell 1 @ 90 crosses zero: closes 0.5 (-7.5) and opens a 0.5 short at 90
    assert pf.apply_fill(f("sell", "1", "90", "0.09", T0 + 3, sym)) == D("-7.5")
    assert (pos.quantity, pos.average_price) == (D("-0.5"), D(90))
    assert pf.realized_pnl() == D(15)
    [trip1] = pf.closed_trips
    assert trip1.direction == 1 and trip1.entry_price == D(105) and trip1.exit_price == D("112.5")
    assert trip1.pnl == D(15) and trip1.fees == D("0.435") and trip1.net_pnl == D("14.565")
    assert (trip1.entry_ms, trip1.exit_ms) == (T0, T0 + 3)

    marks = {sym: D(80)}
    assert pf.unrealized_pnl(marks) == D(5)
    assert pf.equity(marks) == D("10019.52")  # 10000 + 15 realized + 5 unrealized - 0.48 fees

    payment = funding_payment(pos.quantity, D(80), D("0.0001"))
    assert payment == D("0.004")  # shorts receive a positive rate
    pf.apply_funding(sym, payment, T0 + 4)

    assert pf.apply_fill(f("buy", "0.5", "85", "0.0425", T0 + 5, sym)) == D("2.5")
    assert pos.quantity == 0 and pos.average_price == 0
    trip2 = pf.closed_trips[1]
    assert trip2.direction == -1 and trip2.fees == D("0.0875") and trip2.funding == D("0.004")
    assert trip2.net_pnl == D("2.4165")
    assert pf.cash["USDT"] == D("10016.9815") == pf.equity({})
    assert pf.funding == D("0.004") and pf.fees == {"USDT": D("0.5225")}
    assert pos.fees == D("0.5225") and pos.funding == D("0.004")


def test_short_increase_averages_and_reduction_profits() -> None:
    pf = Portfolio(cash={"USDT": D(1000)})
    pf.apply_fill(f("sell", "1", "100"))
    pf.apply_fill(f("sell", "1", "90"))
    pos = pf.positions["BTC/USDT"]
    assert (pos.quantity, pos.average_price) == (D(-2), D(95))
    assert pf.apply_fill(f("buy", "0.5", "80")) == D("7.5")
    assert pf.cash["USDT"] == D(1000 + 100 + 90 - 40)
    assert pf.equity({"BTC/USDT": D(80)}) == D(1150 - 120)


def test_fee_in_base_asset_shrinks_the_position() -> None:
    pf = Portfolio(cash={"USDT": D(10_000)})
    pf.apply_fill(f("buy", "1", "100", "0.001", fee_ccy="BTC"))
    pos = pf.positions["BTC/USDT"]
    assert pos.quantity == D("0.999") and pos.fees == D("0.1")
    assert pf.cash["USDT"] == D(9900) and pf.fees == {"BTC": D("0.001")}
    assert pf.equity({"BTC/USDT": D(100)}) == D("9999.9")


def test_fee_in_third_currency_needs_a_mark() -> None:
    pf = Portfolio(cash={"USDT": D(1000), "BNB": D(1)})
    pf.apply_fill(f("buy", "1", "100", "0.01", fee_ccy="BNB"))
    assert pf.cash["BNB"] == D("0.99") and pf.cash["USDT"] == D(900)
    with pytest.raises(KeyError, match="BNB/USDT"):
        pf.equity({"BTC/USDT": D(100)})
    assert pf.equity({"BTC/USDT": D(100), "BNB/USDT": D(300)}) == D(900 + 100 + 297)


def test_equity_curve_daily_pnl_drawdown_and_trade_stats() -> None:
    pf = Portfolio(cash={"USDT": D(1000)})
    sym = "BTC/USDT"
    pf.apply_fill(f("buy", "1", "100", ts=T0))
    pf.mark(T0 + 1, {sym: D(100)})  # 1000
    pf.mark(T0 + 2, {sym: D(150)})  # 1050 (peak)
    pf.mark(T0 + DAY, {sym: D(120)})  # 1020
    pf.apply_fill(f("sell", "1", "120", ts=T0 + DAY + 1))  # win +20
    pf.apply_fill(f("buy", "2", "100", ts=T0 + DAY + 2))
    pf.mark(T0 + DAY + 3, {sym: D(90)})  # 1000
    pf.apply_fill(f("sell", "2", "95", ts=T0 + 2 * DAY))  # loss -10
    pf.mark(T0 + 2 * DAY + 1, {sym: D(95)})  # 1010
    pf.apply_fill(f("sell", "1", "95", ts=T0 + 2 * DAY + 2))
    pf.apply_fill(f("buy", "1", "90", ts=T0 + 2 * DAY + 3))  # short win +5
    pf.mark(T0 + 2 * DAY + 4, {sym: D(90)})  # 1015

    assert [v for _, v in pf.equity_curve] == [D(x) for x in (1000, 1050, 1020, 1000, 1010, 1015)]
    assert pf.daily_pnl() == [
        (date(2024, 1, 1), D(50)),
        (date(2024, 1, 2), D(-50)),
        (date(2024, 1, 3), D(15)),
    ]
    stats = pf.trade_stats()
    assert (stats.trades, stats.wins, stats.losses) == (3, 2, 1)
    assert stats.win_rate == D(2) / D(3)
    assert stats.average_win == D("12.5") and stats.average_loss == D(-10)
    assert stats.net_pnl == D(15)
    assert stats.max_drawdown_value == D(50) and stats.max_drawdown == D(50) / D(1050)
    with pytest.raises(ValueError, match="time order"):
        pf.mark(T0, {sym: D(90)})


def test_two_portfolios_do_not_share_state() -> None:
    a, b = Portfolio(cash={"USDT": D(1)}), Portfolio(cash={"USDT": D(2)})
    a.apply_fill(f("buy", "1", "1"))
    assert b.positions == {} and b.cash == {"USDT": D(2)} and b.closed_trips == []


def test_random_fills_keep_the_accounting_identity() -> None:
    """equity == start + realized + unrealized - fees + funding, after any fill sequence."""
    import random

    rng = random.Random(11)
    pf = Portfolio(cash={"USDT": D(100_000)})
    syms = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    marks = {s: D(100) for s in syms}
    for i in range(400):
        sym = rng.choice(syms)
        marks[sym] = (marks[sym] * D(rng.randint(95, 105)) / 100).quantize(D("0.01"))
        if rng.random() < 0.1:
            pf.apply_funding(sym, D(rng.randint(-50, 50)) / 100, T0 + i)
            continue
        amount = D(rng.randint(1, 300)) / 100
        fee = (amount * marks[sym] * D("0.0004")).quantize(D("0.00000001"))
        qty = pf.positions[sym].quantity if sym in pf.positions else D(0)
        toward_flat = "sell" if qty > 0 else "buy"
        side = toward_flat if rng.random() < 0.65 else rng.choice(["buy", "sell"])
        pf.apply_fill(f(side, str(amount), str(marks[sym]), str(fee), T0 + i, sym))
        expected = (
            D(100_000)
            + pf.realized_pnl()
            + pf.unrealized_pnl(marks)
            - pf.fees.get("USDT", D(0))
            + pf.funding
        )
        # exact up to the 28-digit division behind each average price
        assert abs(pf.equity(marks) - expected) < D("1e-18")
    closed = sum((t.net_pnl for t in pf.closed_trips), D(0))
    open_part = sum((t.pnl - t.fees + t.funding for t in pf.open_trips.values()), D(0))
    net = pf.realized_pnl() - pf.fees["USDT"] + pf.funding
    assert abs(closed + open_part - net) < D(
        "1e-18"
    )  # every fee and funding payment lands in exactly one trip
    assert len(pf.closed_trips) > 20
