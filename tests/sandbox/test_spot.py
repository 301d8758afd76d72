"""Spot trading through real ccxt.binance against the sandbox: data, orders, balances, fees."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from quantdesk.model import Side, limit_fill, stop_fill, take_profit_fill
from quantdesk.sandbox import Sandbox
from tests.sandbox.conftest import dec

BTC = "BTC/USDT"
FEE = Decimal("0.001")


def test_markets_and_filters(client) -> None:
    ex = client()
    assert set(ex.markets) == {"BTC/USDT", "ETH/USDT"}
    btc = ex.markets[BTC]
    assert btc["spot"] and btc["active"]
    assert btc["precision"]["price"] == 0.01 and btc["precision"]["amount"] == 1e-05
    assert btc["limits"]["cost"]["min"] == 5.0
    assert abs(ex.fetch_time() - ex.milliseconds()) < 5000  # wall clock, as Binance


def test_ticker_ohlcv_and_book_follow_the_clock(client, admin, sandbox: Sandbox) -> None:
    ex = client()
    series = sandbox.series[BTC]
    i = sandbox.index
    close = series.bar(i).close
    ticker = ex.fetch_ticker(BTC)
    assert dec(ticker["last"]) == close
    assert ticker["timestamp"] == int(series.times[i]) + 59_999
    assert set(ex.fetch_tickers([BTC, "ETH/USDT"])) == {BTC, "ETH/USDT"}
    bars = ex.fetch_ohlcv(BTC, "1m", limit=5)
    assert bars[-1][0] == int(series.times[i])  # nothing after the clock is visible
    assert dec(bars[-1][4]) == close
    book = ex.fetch_order_book(BTC, 5)
    assert book["bids"][0][0] < float(close) < book["asks"][0][0]
    assert len(book["bids"]) == 5

    admin.advance(3)
    assert ex.fetch_ohlcv(BTC, "1m", limit=1)[-1][0] == int(series.times[i + 3])
    assert dec(ex.fetch_ticker(BTC)["last"]) == series.bar(i + 3).close
    hourly = ex.fetch_ohlcv(BTC, "1h", since=int(series.times[0]), limit=2)
    # klines open on UTC hour boundaries: the first whole hour after the first bar
    hour0 = -(-int(series.times[0]) // 3_600_000) * 3_600_000
    j = (hour0 - int(series.times[0])) // 60_000
    first_hour = series.ohlcv[j : j + 60]
    assert hourly[0][0] == hour0
    assert hourly[0][2] == pytest.approx(first_hour[:, 1].max(), abs=0.01)
    assert hourly[0][5] == pytest.approx(first_hour[:, 4].sum(), rel=1e-6)


def test_market_buy_and_sell_move_balances_exactly(client) -> None:
    ex = client()
    buy = ex.create_order(BTC, "market", "buy", 0.05)
    assert buy["status"] == "closed"
    cost = sum(dec(f["price"]) * dec(f["qty"]) for f in buy["info"]["fills"])
    assert dec(buy["info"]["cummulativeQuoteQty"]) == cost
    bal = ex.fetch_balance()
    assert dec(bal["USDT"]["free"]) == Decimal("100000") - cost
    assert dec(bal["BTC"]["free"]) == Decimal("1") + Decimal("0.05") * (1 - FEE)

    sell = ex.create_order(BTC, "market", "sell", 0.02)
    proceeds = dec(sell["info"]["cummulativeQuoteQty"])
    trades = ex.fetch_my_trades(BTC)
    assert len(trades) == len(buy["info"]["fills"]) + len(sell["info"]["fills"])
    sell_fee = sum(dec(t["fee"]["cost"]) for t in trades if t["side"] == "sell")
    assert sell_fee == proceeds * FEE
    assert {t["fee"]["currency"] for t in trades} == {"BTC", "USDT"}
    assert all(t["takerOrMaker"] == "taker" for t in trades)
    bal = ex.fetch_balance()
    assert dec(bal["USDT"]["free"]) == Decimal("100000") - cost + proceeds - sell_fee
    assert dec(bal["BTC"]["total"]) == Decimal("1.05") - Decimal("0.00005") - Decimal("0.02")


def _first_cross(sandbox: Sandbox, symbol: str, rule, side: Side, price: Decimal, bars: int):
    series = sandbox.series[symbol]
    for j in range(sandbox.index + 1, sandbox.index + 1 + bars):
        bar = series.bar(j)
        fill = rule(side, price, bar.open, bar.high, bar.low)
        if fill is not None:
            return j, fill
    raise AssertionError("pick a price the next bars cross")


def _price_crossed_later(sandbox: Sandbox, symbol: str, below: bool, bars: int = 120) -> Decimal:
    series = sandbox.series[symbol]
    window = series.ohlcv[sandbox.index + 1 : sandbox.index + 1 + bars]
    close = series.bar(sandbox.index).close
    extreme = Decimal(repr(float(window[:, 2].min() if below else window[:, 1].max())))
    spec = sandbox.core.markets[symbol]
    return spec.round_price((close + extreme) / 2)


def test_limit_rests_then_fills_when_market_crosses(client, admin, sandbox: Sandbox) -> None:
    ex = client()
    price = _price_crossed_later(sandbox, BTC, below=True)
    order = ex.create_order(BTC, "limit", "buy", 0.1, float(price))
    assert order["status"] == "open"
    bal = ex.fetch_balance()
    assert dec(bal["USDT"]["used"]) == price * Decimal("0.1")
    j, fill_price = _first_cross(sandbox, BTC, limit_fill, Side.BUY, price, 120)
    admin.advance(j - sandbox.index - 1)
    assert ex.fetch_order(order["id"], BTC)["status"] == "open"  # one bar before the cross
    admin.advance(1)
    done = ex.fetch_order(order["id"], BTC)
    assert done["status"] == "closed" and dec(done["average"]) == fill_price
    trade = ex.fetch_my_trades(BTC)[-1]
    assert trade["takerOrMaker"] == "maker" and trade["order"] == order["id"]
    bal = ex.fetch_balance()
    assert dec(bal["USDT"]["used"]) == 0
    assert dec(bal["USDT"]["free"]) == Decimal("100000") - fill_price * Decimal("0.1")
    assert dec(bal["BTC"]["free"]) == Decimal("1") + Decimal("0.1") * (1 - FEE)
    assert ex.fetch_open_orders(BTC) == []


def test_stop_loss_and_take_profit_trigger(client, admin, sandbox: Sandbox) -> None:
    ex = client()
    stop = _price_crossed_later(sandbox, BTC, below=True)
    target = _price_crossed_later(sandbox, BTC, below=False)
    sl = ex.create_order(BTC, "market", "sell", 0.1, params={"stopLossPrice": float(stop)})
    tp = ex.create_order(BTC, "market", "sell", 0.1, params={"takeProfitPrice": float(target)})
    assert sl["info"]["type"] == "STOP_LOSS" and tp["info"]["type"] == "TAKE_PROFIT"
    assert dec(ex.fetch_balance()["BTC"]["used"]) == Decimal("0.2")
    j_sl, px_sl = _first_cross(sandbox, BTC, stop_fill, Side.SELL, stop, 120)
    j_tp, px_tp = _first_cross(sandbox, BTC, take_profit_fill, Side.SELL, target, 120)
    admin.advance(120)
    for order, j, px in ((sl, j_sl, px_sl), (tp, j_tp, px_tp)):
        done = ex.fetch_order(order["id"], BTC)
        assert done["status"] == "closed"
        assert dec(done["average"]) == px
        assert done["lastTradeTimestamp"] == int(sandbox.series[BTC].times[j]) + 60_000


def test_stop_loss_limit_rests_after_trigger(client, admin, sandbox: Sandbox) -> None:
    ex = client()
    stop = _price_crossed_later(sandbox, BTC, below=True)
    order = ex.create_order(BTC, "limit", "sell", 0.1, float(stop), {"stopLossPrice": float(stop)})
    assert order["info"]["type"] == "STOP_LOSS_LIMIT"
    admin.advance(120)
    done = ex.fetch_order(order["id"], BTC)
    assert done["status"] == "closed" and dec(done["average"]) == stop


def test_ioc_fok_and_post_only(client, admin) -> None:
    ex = client()
    admin("POST", "book", {"symbol": BTC, "bids": [[40000, 1]], "asks": [[40010, 0.3], [40020, 1]]})
    ioc = ex.create_order(BTC, "limit", "buy", 0.5, 40010, {"timeInForce": "IOC"})
    assert ioc["status"] == "expired" and ioc["filled"] == 0.3
    fok = ex.create_order(BTC, "limit", "buy", 2, 40020, {"timeInForce": "FOK"})
    assert fok["status"] == "expired" and fok["filled"] == 0
    partial = ex.create_order(BTC, "limit", "buy", 1.5, 40020)
    assert partial["status"] == "open" and partial["filled"] == 1.0
    assert dec(ex.fetch_balance()["USDT"]["used"]) == Decimal("0.5") * 40020
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        ex.create_order(BTC, "limit", "sell", 0.1, 40000, {"postOnly": True})
    maker = ex.create_order(BTC, "limit", "sell", 0.1, 40100, {"postOnly": True})
    assert maker["info"]["type"] == "LIMIT_MAKER" and maker["status"] == "open"


def test_cancel_fetch_and_history(client) -> None:
    ex = client()
    a = ex.create_order(BTC, "limit", "buy", 0.1, 30000, {"clientOrderId": "mine-1"})
    b = ex.create_order(BTC, "limit", "buy", 0.1, 30100)
    c = ex.create_order("ETH/USDT", "limit", "buy", 1, 1000)
    assert a["clientOrderId"] == "mine-1"
    assert ex.fetch_order(None, BTC, {"clientOrderId": "mine-1"})["id"] == a["id"]
    assert {o["id"] for o in ex.fetch_open_orders(BTC)} == {a["id"], b["id"]}
    assert {o["id"] for o in ex.fetch_open_orders()} == {a["id"], b["id"], c["id"]}
    canceled = ex.cancel_order(a["id"], BTC)
    assert canceled["status"] == "canceled"
    rest = ex.cancel_all_orders(BTC)
    assert [o["id"] for o in rest] == [b["id"]]
    assert dec(ex.fetch_balance()["USDT"]["used"]) == Decimal("1000")  # the ETH order
    history = ex.fetch_orders(BTC)
    assert [(o["id"], o["status"]) for o in history] == [
        (a["id"], "canceled"),
        (b["id"], "canceled"),
    ]


def test_accounts_are_isolated(client) -> None:
    mine, theirs = client(), client(key="other-key", secret="other-secret")
    order = mine.create_order(BTC, "limit", "buy", 0.1, 30000)
    assert theirs.fetch_open_orders(BTC) == []
    with pytest.raises(ccxt.OrderNotFound):
        theirs.fetch_order(order["id"], BTC)
    with pytest.raises(ccxt.OrderNotFound):
        theirs.cancel_order(order["id"], BTC)
    assert theirs.fetch_balance()["total"] == {"USDT": 50000.0}
    assert dec(mine.fetch_balance()["USDT"]["used"]) == Decimal("3000")


def test_market_buy_by_cost_uses_quote_order_qty(client) -> None:
    ex = client()
    order = ex.create_order(BTC, "market", "buy", 0.01, 40000)  # cost = amount * price
    assert dec(order["info"]["origQuoteOrderQty"]) == Decimal("400")
    spent = dec(order["info"]["cummulativeQuoteQty"])
    assert Decimal("399") < spent <= Decimal("400")
    assert dec(ex.fetch_balance()["USDT"]["free"]) == Decimal("100000") - spent


def test_admin_sets_balances_and_reports_fills(client, admin) -> None:
    ex = client()
    admin("POST", "balances", {"api_key": "sandbox-key", "balances": {"USDT": "25", "ETH": "3"}})
    assert ex.fetch_balance()["total"] == {"BTC": 1.0, "USDT": 25.0, "ETH": 3.0}
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(BTC, "market", "buy", 0.01)
    admin(
        "POST", "balances", {"api_key": "sandbox-key", "balances": {"USDT": "7"}, "futures": True}
    )
    perp = client("binanceusdm")
    assert perp.fetch_balance()["total"] == {"USDT": 7.0}  # the futures wallet is replaced
    sold = ex.create_order(BTC, "market", "sell", 0.01)
    report = admin("GET", "fills?api_key=sandbox-key")
    assert [f["orderId"] for f in report] == [int(sold["id"])] * len(sold["info"]["fills"])
    assert admin("GET", "fills?api_key=other-key") == []
