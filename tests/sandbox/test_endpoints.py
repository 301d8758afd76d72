"""Endpoints strategies commonly call, through binance-connector / binance-futures-connector
and ccxt: tickers, book tickers, trade tape, avgPrice, order/test, commission rate, margin
type, position mode, single open order, funding of all symbols, symbol and interval checks."""

from __future__ import annotations

import time

import ccxt
import pytest
from binance.error import ClientError
from binance.spot import Spot
from binance.um_futures import UMFutures

from quantdesk.sandbox import Sandbox
from tests.sandbox.conftest import KEY, SECRET, dec

BTC, PERP = "BTC/USDT", "BTC/USDT:USDT"
HOUR = 3_600_000


@pytest.fixture
def spot(url: str, admin) -> Spot:
    return Spot(api_key=KEY, api_secret=SECRET, base_url=url)


@pytest.fixture
def um(url: str, admin) -> UMFutures:
    return UMFutures(key=KEY, secret=SECRET, base_url=url)


def _code(call, *args, **kwargs) -> int:
    with pytest.raises(ClientError) as exc:
        call(*args, **kwargs)
    return exc.value.error_code


def test_spot_price_book_and_avg_price(spot: Spot, sandbox: Sandbox) -> None:
    close = sandbox.series[BTC].bar(sandbox.index).close
    assert dec(spot.ticker_price("BTCUSDT")["price"]) == close
    assert {t["symbol"] for t in spot.ticker_price()} == {"BTCUSDT", "ETHUSDT"}
    top = spot.book_ticker("BTCUSDT")
    depth = spot.depth("BTCUSDT", limit=5)
    assert [top["bidPrice"], top["askPrice"]] == [depth["bids"][0][0], depth["asks"][0][0]]
    assert dec(top["bidPrice"]) < close < dec(top["askPrice"])
    window = sandbox.series[BTC].ohlcv[sandbox.index - 4 : sandbox.index + 1]
    vwap = (window[:, 4] * window[:, 3]).sum() / window[:, 4].sum()
    avg = spot.avg_price("BTCUSDT")
    assert avg["mins"] == 5 and float(avg["price"]) == pytest.approx(vwap, rel=1e-9)


def test_trade_tape_recent_and_aggregated(spot: Spot, sandbox: Sandbox) -> None:
    recent = spot.trades("BTCUSDT", limit=5)
    assert [t["id"] for t in recent] == list(range(sandbox.index - 4, sandbox.index + 1))
    assert dec(recent[-1]["price"]) == sandbox.series[BTC].bar(sandbox.index).close
    start = int(time.time() * 1000) - HOUR
    agg = spot.agg_trades("BTCUSDT", startTime=start, endTime=start + HOUR)
    assert 58 <= len(agg) <= 61 and all(start <= a["T"] <= start + HOUR for a in agg)
    assert spot.agg_trades("BTCUSDT", fromId=agg[0]["a"], limit=3)[0]["a"] == agg[0]["a"]
    assert _code(spot.agg_trades, "BTCUSDT", startTime=start, endTime=start + 2 * HOUR) == -1102


def test_order_test_validates_and_places_nothing(spot: Spot, client) -> None:
    price = float(spot.ticker_price("BTCUSDT")["price"])
    assert spot.new_order_test("BTCUSDT", "BUY", "LIMIT", quantity=0.01, price=round(price, 2),
                               timeInForce="GTC") == {}  # fmt: skip
    assert _code(spot.new_order_test, "BTCUSDT", "BUY", "LIMIT", quantity="0.000001",
                 price=round(price, 2), timeInForce="GTC") == -1013  # fmt: skip
    assert _code(spot.new_order_test, "BTCUSDT", "BUY", "LIMIT", quantity=0.01,
                 price=round(price, 2)) == -1102  # fmt: skip
    assert client().fetch_open_orders(BTC) == []


def test_unknown_symbol_and_bad_interval(spot: Spot, um: UMFutures) -> None:
    assert _code(spot.exchange_info, symbol="FOOUSDT") == -1121
    assert [s["symbol"] for s in spot.exchange_info(symbol="ETHUSDT")["symbols"]] == ["ETHUSDT"]
    for interval in ("7m", "2d", "1s", "1M"):
        assert _code(spot.klines, "BTCUSDT", interval) == -1120
    assert len(um.klines("BTCUSDT", "3m", limit=4)) == 4


def test_futures_price_book_and_commission(um: UMFutures, sandbox: Sandbox) -> None:
    close = sandbox.series[PERP].bar(sandbox.index).close
    price = um.ticker_price("BTCUSDT")
    assert dec(price["price"]) == close and price["time"] == sandbox.now_ms()
    top = um.book_ticker("BTCUSDT")
    assert dec(top["bidPrice"]) < close < dec(top["askPrice"])
    assert um.commission_rate("BTCUSDT") == {
        "symbol": "BTCUSDT",
        "makerCommissionRate": "0.0002",
        "takerCommissionRate": "0.0004",
    }
    assert len(um.trades("BTCUSDT", limit=3)) == 3


def test_margin_type_cross_by_default_then_isolated(um: UMFutures, client) -> None:
    ex = client("binanceusdm")
    ex.create_order(PERP, "market", "buy", 0.01)
    assert ex.fetch_positions([PERP])[0]["marginMode"] == "cross"
    assert _code(um.change_margin_type, "BTCUSDT", "ISOLATED") == -4048  # a position is open
    ex.create_order(PERP, "market", "sell", 0.01, params={"reduceOnly": True})
    with pytest.raises(ccxt.MarginModeAlreadySet):
        ex.set_margin_mode("cross", PERP)
    assert um.change_margin_type("BTCUSDT", "ISOLATED") == {"code": 200, "msg": "success"}
    ex.create_order(PERP, "market", "buy", 0.01)
    assert ex.fetch_positions([PERP])[0]["marginMode"] == "isolated"
    assert _code(um.change_margin_type, "BTCUSDT", "SOMETIMES") == -1130


def test_position_mode_is_one_way(um: UMFutures) -> None:
    assert um.get_position_mode() == {"dualSidePosition": False}
    assert _code(um.change_position_mode, "false") == -4059
    assert _code(um.change_position_mode, "true") == -1130


def test_single_open_order(um: UMFutures, client) -> None:
    ex = client("binanceusdm")
    last = ex.fetch_ticker(PERP)["last"]
    order = ex.create_order(PERP, "limit", "buy", 0.01, round(last * 0.9, 1))
    query = {"symbol": "BTCUSDT", "orderId": order["id"]}
    got = um.sign_request("GET", "/fapi/v1/openOrder", dict(query))  # it signs the dict in place
    assert got["orderId"] == int(order["id"]) and got["status"] == "NEW"
    ex.cancel_order(order["id"], PERP)
    assert _code(um.sign_request, "GET", "/fapi/v1/openOrder", dict(query)) == -2013


def test_funding_rates_of_every_symbol(um: UMFutures, client) -> None:
    rows = um.funding_rate(None)
    assert {r["symbol"] for r in rows} == {"BTCUSDT", "ETHUSDT"}
    assert [r["fundingTime"] for r in rows] == sorted(r["fundingTime"] for r in rows)
    history = client("binanceusdm").fetch_funding_rate_history()
    assert {h["symbol"] for h in history} == {PERP, "ETH/USDT:USDT"}
