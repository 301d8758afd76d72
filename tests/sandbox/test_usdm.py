"""USD-M futures through real ccxt.binanceusdm: positions, leverage, PnL, funding, algo stops."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import numpy as np
import pytest

from quantdesk.sandbox import Sandbox
from tests.sandbox.conftest import OTHER_KEY, OTHER_SECRET, dec

PERP = "BTC/USDT:USDT"
TAKER = Decimal("0.0004")


def test_markets_ticker_book(client, sandbox: Sandbox) -> None:
    ex = client("binanceusdm")
    assert set(ex.markets) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}
    market = ex.markets[PERP]
    assert market["swap"] and market["linear"] and market["settle"] == "USDT"
    close = sandbox.series[PERP].bar(sandbox.index).close
    assert dec(ex.fetch_ticker(PERP)["last"]) == close
    assert dec(ex.fetch_ohlcv(PERP, "1m", limit=2)[-1][4]) == close
    book = ex.fetch_order_book(PERP)
    assert book["bids"][0][0] < float(close) < book["asks"][0][0]


def test_position_pnl_follows_mark_and_closes(client, admin, sandbox: Sandbox) -> None:
    ex = client("binanceusdm")
    assert ex.set_leverage(5, PERP)["leverage"] == 5
    opened = ex.create_order(PERP, "market", "buy", 0.2)
    entry = dec(opened["average"])
    fee_open = dec(opened["cost"]) * TAKER
    admin.advance(30)
    mark = sandbox.series[PERP].bar(sandbox.index).close
    [pos] = ex.fetch_positions([PERP])
    assert pos["side"] == "long" and pos["contracts"] == 0.2 and pos["leverage"] == 5
    assert dec(pos["entryPrice"]) == entry and dec(pos["markPrice"]) == mark
    assert dec(pos["info"]["unRealizedProfit"]) == Decimal("0.2") * (mark - entry)
    liq = entry * (1 - Decimal("0.2")) / (1 - Decimal("0.004"))
    assert dec(pos["liquidationPrice"]) == sandbox.core.markets[PERP].round_price(liq)
    bal = ex.fetch_balance()
    wallet = Decimal("100000") - fee_open
    assert dec(bal["USDT"]["total"]) == wallet + Decimal("0.2") * (mark - entry)
    assert dec(bal["USDT"]["used"]) == Decimal("0.2") * entry / 5

    closed = ex.create_order(PERP, "market", "sell", 0.2, params={"reduceOnly": True})
    exit_ = dec(closed["average"])
    trades = ex.fetch_my_trades(PERP)
    assert dec(trades[-1]["info"]["realizedPnl"]) == Decimal("0.2") * (exit_ - entry)
    assert ex.fetch_positions([PERP]) == []
    bal = ex.fetch_balance()
    expected = wallet - dec(closed["cost"]) * TAKER + Decimal("0.2") * (exit_ - entry)
    assert dec(bal["USDT"]["total"]) == expected == dec(bal["USDT"]["free"])
    incomes = {i["incomeType"] for i in ex.fapiPrivateGetIncome({"symbol": "BTCUSDT"})}
    assert incomes == {"COMMISSION", "REALIZED_PNL"}


def test_funding_paid_by_long_received_by_short(client, admin, sandbox: Sandbox) -> None:
    long_, short = client("binanceusdm"), client("binanceusdm", OTHER_KEY, OTHER_SECRET)
    long_.create_order(PERP, "market", "buy", 0.5)
    short.create_order(PERP, "market", "sell", 0.5)
    wallets = [dec(c.fetch_balance()["info"]["totalWalletBalance"]) for c in (long_, short)]
    rate_info = long_.fetch_funding_rate(PERP)
    series = sandbox.series[PERP]
    next_time = rate_info["fundingTimestamp"]
    k = int(np.searchsorted(series.funding_times, next_time))
    rate = Decimal(repr(float(series.funding_rates[k]))).quantize(Decimal("1e-8"))
    assert dec(rate_info["fundingRate"]) == rate
    bar_index = int(np.searchsorted(series.times, next_time)) - 1  # the bar closing at funding
    admin.advance(bar_index - sandbox.index)
    mark = series.bar(bar_index).close
    payment = (Decimal("0.5") * mark * rate).quantize(Decimal("1e-8"))
    [paid] = long_.fetch_funding_history(PERP)
    [received] = short.fetch_funding_history(PERP)
    assert dec(paid["info"]["income"]) == -payment
    assert dec(received["info"]["income"]) == payment
    assert paid["timestamp"] == next_time
    after = [dec(c.fetch_balance()["info"]["totalWalletBalance"]) for c in (long_, short)]
    assert after == [wallets[0] - payment, wallets[1] + payment]
    history = long_.fetch_funding_rate_history(PERP)
    assert history[-1]["timestamp"] == next_time and dec(history[-1]["fundingRate"]) == rate
    assert long_.fetch_funding_rate(PERP)["fundingTimestamp"] == next_time + 8 * 3600_000


def test_algo_stop_market_triggers(client, admin, sandbox: Sandbox) -> None:
    ex = client("binanceusdm")
    ex.create_order(PERP, "market", "buy", 0.1)
    series = sandbox.series[PERP]
    window = series.ohlcv[sandbox.index + 1 : sandbox.index + 121]
    close = series.bar(sandbox.index).close
    stop = sandbox.core.markets[PERP].round_price(
        (close + Decimal(repr(float(window[:, 2].min())))) / 2
    )
    order = ex.create_order(
        PERP, "market", "sell", 0.1, params={"stopLossPrice": float(stop), "reduceOnly": True}
    )
    assert order["info"]["orderType"] == "STOP_MARKET" and order["status"] == "open"
    assert [o["id"] for o in ex.fetch_open_orders(PERP, params={"trigger": True})] == [order["id"]]
    assert ex.fetch_open_orders(PERP) == []  # plain orders and algo orders are separate lists
    admin.advance(120)
    done = ex.fetch_order(order["id"], PERP, {"trigger": True})
    assert done["status"] == "closed" and done["filled"] == 0.1
    assert ex.fetch_positions([PERP]) == []


def test_algo_cancel_and_limit_orders(client) -> None:
    ex = client("binanceusdm")
    algo = ex.create_order(PERP, "market", "buy", 0.1, params={"stopLossPrice": 90000})
    ex.cancel_order(algo["id"], PERP, {"trigger": True})
    assert ex.fetch_order(algo["id"], PERP, {"trigger": True})["status"] == "canceled"
    limit = ex.create_order(PERP, "limit", "buy", 0.1, 30000)
    assert limit["status"] == "open"
    assert dec(ex.fetch_balance()["USDT"]["used"]) == Decimal("3000") / 20
    ex.cancel_all_orders(PERP)
    assert ex.fetch_order(limit["id"], PERP)["status"] == "canceled"
    assert [o["id"] for o in ex.fetch_orders(PERP)] == [limit["id"]]
    assert dec(ex.fetch_balance()["USDT"]["used"]) == 0


def test_usdm_order_rejections(client, admin) -> None:
    ex = client("binanceusdm")
    admin("POST", "book", {"symbol": PERP, "bids": [[40000, 1]], "asks": [[40010, 0.3]]})
    with pytest.raises(ccxt.InvalidOrder, match="-5022"):
        ex.create_order(PERP, "limit", "buy", 0.1, 40010, {"postOnly": True})
    with pytest.raises(ccxt.InvalidOrder, match="-5021"):
        ex.create_order(PERP, "limit", "buy", 1, 40010, {"timeInForce": "FOK"})
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(PERP, "limit", "buy", 100, 40000)
    with pytest.raises(ccxt.BadRequest):
        ex.set_leverage(0, PERP)
