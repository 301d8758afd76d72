"""Binance error codes surface as the right ccxt exception classes."""

from __future__ import annotations

import ccxt
import pytest
import requests

BTC = "BTC/USDT"


def test_authentication_errors(client, url: str) -> None:
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        client(secret="wrong-secret").fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        client(key="nobody", secret="x").fetch_balance()
    resp = requests.get(f"{url}/api/v3/account", params={"timestamp": 1}, timeout=5)
    assert resp.status_code == 401 and resp.json()["code"] == -2014  # no X-MBX-APIKEY


def test_insufficient_funds(client) -> None:
    ex = client()
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(BTC, "limit", "buy", 3, 40000)
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(BTC, "market", "sell", 1.5)
    assert ex.fetch_balance()["used"] == {"BTC": 0.0, "USDT": 0.0}


def test_filter_failures(client) -> None:
    ex = client()
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        ex.privatePostOrder(base | {"quantity": "0.01", "price": "40000.001"})
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        ex.privatePostOrder(base | {"quantity": "0.000011", "price": "40000"})
    # -1013 NOTIONAL is BadRequest in ccxt's top-level table (InvalidOrder only on Binance hosts)
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        ex.create_order(BTC, "limit", "buy", 0.0001, 40000)


def test_duplicate_client_order_id(client) -> None:
    ex = client()
    ex.create_order(BTC, "limit", "buy", 0.01, 30000, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        ex.create_order(BTC, "limit", "buy", 0.01, 30000, {"clientOrderId": "dup"})
    assert len(ex.fetch_open_orders(BTC)) == 1


def test_stop_that_would_trigger_immediately(client) -> None:
    ex = client()
    last = ex.fetch_ticker(BTC)["last"]
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        ex.create_order(BTC, "market", "sell", 0.01, params={"stopLossPrice": round(last * 1.01)})


def test_order_not_found_and_bad_symbol(client) -> None:
    ex = client()
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        ex.fetch_order("424242", BTC)
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        ex.cancel_order("424242", BTC)
    with pytest.raises(ccxt.BadSymbol):
        ex.publicGetTicker24hr({"symbol": "NOPEUSDT"})
    with pytest.raises(ccxt.BadSymbol):
        ex.privateGetOpenOrders({"symbol": "NOPEUSDT"})


def test_timestamp_outside_recv_window(client, admin) -> None:
    ex = client()
    admin.faults(skew_ms=120_000)  # the server clock runs two minutes ahead
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        ex.fetch_balance()
    synced = client(options={"adjustForTimeDifference": True})
    synced.load_time_difference()
    assert synced.options["timeDifference"] <= -119_000
    assert synced.fetch_balance()["total"]["USDT"] == 100000.0


def test_weight_limit_429_then_418_ban(client, admin) -> None:
    ex = client()
    admin("POST", "limits", {"weight_limit": 10, "strikes": 2})
    ex.fetch_time()
    assert int(ex.last_response_headers["X-MBX-USED-WEIGHT-1M"]) == 1
    for _ in range(4):
        ex.fetch_ticker(BTC)  # weight 2 each: 9 used
    # ccxt's binance.handle_errors turns any 429/418 into DDoSProtection before reading the body
    for _ in range(2):
        with pytest.raises(ccxt.DDoSProtection, match="429"):
            ex.fetch_ticker(BTC)
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        ex.fetch_ticker(BTC)
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        ex.fetch_time()  # banned now, whatever the weight
