"""Sandbox errors raise the ccxt classes that the same answer raises from Binance's own hosts."""

from __future__ import annotations

import json

import ccxt
import pytest

from quantdesk.sandbox.errors import _REJECTS, from_reject
from quantdesk.venues import sandbox_client
from quantdesk.venues.models import Reject
from tests.sandbox.conftest import KEY, SECRET

PERP = "BTC/USDT:USDT"
BINANCE = {"binance": "https://api.binance.com/api/v3/order",
           "binanceusdm": "https://fapi.binance.com/fapi/v1/order"}  # fmt: skip
OTHER_ANSWERS = [
    (-1100, "Illegal characters found in parameter 'quantity'."),
    (-1111, "Precision is over the maximum defined for this asset."),
    (-1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."),
    (-1115, "Invalid timeInForce."),
    (-1116, "Invalid orderType."),
    (-1120, "Invalid interval."),
    (-1121, "Invalid symbol."),
    (-2011, "Unknown order sent."),
    (-2013, "Order does not exist."),
    (-1021, "Timestamp for this request is outside of the recvWindow."),
    (-1022, "Signature for this request is not valid."),
    (-2014, "API-key format invalid."),
    (-2015, "Invalid API-key, IP, or permissions for action."),
    (-4028, "Leverage is not valid"),
]


def _raised(exchange: ccxt.Exchange, url: str, code: int, msg: str) -> type | None:
    body = json.dumps({"code": code, "msg": msg})
    try:
        exchange.handle_errors(400, "Bad Request", url, "POST", {}, body, json.loads(body), {}, "")
    except ccxt.BaseError as exc:
        return type(exc)
    return None


def _answers(futures: bool) -> list[tuple[int, str]]:
    out = [(e.code, e.msg) for e in (from_reject(r, futures) for r in _REJECTS)]
    return out + OTHER_ANSWERS


@pytest.mark.parametrize("exchange", ["binance", "binanceusdm"])
def test_every_sandbox_answer_raises_what_binance_raises(exchange: str) -> None:
    futures = exchange == "binanceusdm"
    ours = sandbox_client(exchange, "http://127.0.0.1:8800")
    reference = getattr(ccxt, exchange)()
    url = "http://127.0.0.1:8800" + BINANCE[exchange].split(".com", 1)[1]
    for code, msg in _answers(futures):
        expected = _raised(reference, BINANCE[exchange], code, msg)
        assert expected is not None and expected is not ccxt.ExchangeError, (code, msg)
        assert _raised(ours, url, code, msg) is expected, (exchange, code, msg)


def test_usdm_answers_use_binance_codes() -> None:
    codes = {r: from_reject(r, futures=True).code for r in _REJECTS}
    assert codes[Reject.INSUFFICIENT_FUNDS] == -2019
    assert codes[Reject.REDUCE_ONLY] == -2022
    assert codes[Reject.NOTIONAL] == -4164
    assert codes[Reject.FOK_UNFILLED] == -5021
    assert codes[Reject.WOULD_TAKE] == -5022


def test_usdm_rejections_through_ccxt(client) -> None:
    ex = client("binanceusdm")
    last = ex.fetch_ticker(PERP)["last"]
    with pytest.raises(ccxt.InvalidOrder, match="-2022"):
        ex.create_order(PERP, "market", "sell", 0.01, params={"reduceOnly": True})
    with pytest.raises(ccxt.InvalidOrder, match="-4164"):
        ex.create_order(PERP, "limit", "buy", 0.0001, round(last * 0.99, 1))
    with pytest.raises(ccxt.OrderNotFillable, match="-5021"):
        ex.create_order(PERP, "limit", "buy", 500, round(last * 1.001, 1), {"timeInForce": "FOK"})
    with pytest.raises(ccxt.OrderNotFillable, match="-5022"):
        ex.create_order(PERP, "limit", "buy", 0.01, round(last * 1.01, 1), {"timeInForce": "GTX"})
    with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):
        ex.create_order(PERP, "limit", "buy", 100, round(last * 0.99, 1))
    with pytest.raises(ccxt.BadRequest, match="timeInForce"):  # futures LIMIT needs it too
        ex.fapiPrivatePostOrder(
            {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01",
             "price": str(round(last * 0.99, 1))}
        )  # fmt: skip
    assert ex.fetch_open_orders(PERP) == []


def test_futures_connector_sees_binance_codes(url: str, admin) -> None:
    from binance.error import ClientError
    from binance.um_futures import UMFutures

    um = UMFutures(key=KEY, secret=SECRET, base_url=url)
    price = float(um.mark_price("BTCUSDT")["markPrice"])
    with pytest.raises(ClientError) as exc:
        um.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=100,
                     price=round(price * 0.99, 1), timeInForce="GTC")  # fmt: skip
    assert exc.value.error_code == -2019
    with pytest.raises(ClientError) as exc:
        um.new_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01, reduceOnly="true")
    assert exc.value.error_code == -2022
