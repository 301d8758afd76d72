"""The /sandbox/ admin endpoints: bearer token required, every input validated."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest
import requests

from tests.sandbox.conftest import KEY, OTHER_KEY, Admin

BTC = "BTC/USDT"
ENDPOINTS = [
    ("GET", "clock"),
    ("POST", "advance"),
    ("POST", "reset"),
    ("POST", "balances"),
    ("POST", "book"),
    ("GET", "faults"),
    ("POST", "faults"),
    ("DELETE", "faults"),
    ("POST", "limits"),
    ("GET", "fills"),
]


def _raw(url: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.request(method, f"{url}/sandbox/{path}", json=body, headers=headers, timeout=5)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_admin_endpoint_needs_the_token(url: str, admin: Admin, method, path) -> None:
    for token in (None, "wrong-token", ""):
        resp = _raw(url, method, path, {}, token)
        assert resp.status_code == 401, (method, path, token)
        assert "admin token required" in resp.json()["error"]


def test_without_token_nothing_changes_and_nothing_leaks(url: str, admin: Admin, client) -> None:
    ex = client()
    ex.create_order(BTC, "market", "buy", 0.01)
    before = admin("GET", "clock")
    assert _raw(url, "GET", "fills").status_code == 401
    assert _raw(url, "POST", "advance", {"bars": 50}).status_code == 401
    assert (
        _raw(url, "POST", "balances", {"api_key": KEY, "balances": {"USDT": 1e9}}).status_code
        == 401
    )
    assert _raw(url, "POST", "limits", {"weight_limit": 1}).status_code == 401
    assert admin("GET", "clock") == before
    assert ex.fetch_balance()["total"]["USDT"] < 100_000
    assert len(admin("GET", "fills")) == 1
    assert ex.fetch_ticker(BTC)["last"] > 0  # the weight limit did not change


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("limits", {"weight_limit": -1}, "weight_limit must be within 1.."),
        ("limits", {"weight_limit": 0}, "weight_limit must be within 1.."),
        ("limits", {"weight_limit": "6000"}, "weight_limit must be an integer"),
        ("limits", {"strikes": -3}, "strikes must be within 0.."),
        ("limits", {"weight": 10}, "unknown field(s): weight"),
        ("advance", {"bars": -1}, "bars must be within 0.."),
        ("advance", {"bars": 1.5}, "bars must be an integer"),
        ("advance", {"bars": True}, "bars must be an integer"),
        ("balances", {"api_key": "nobody", "balances": {"USDT": 1}}, "unknown api_key"),
        ("balances", {"api_key": KEY, "balances": {"USDT": -5}}, "balance USDT must be within"),
        ("balances", {"api_key": KEY, "balances": {"USDT": "NaN"}}, "balance USDT must be within"),
        ("balances", {"api_key": KEY, "balances": {"USDT": "1e30"}}, "balance USDT must be within"),
        ("balances", {"api_key": KEY, "balances": {"USDT": "lots"}}, "is not a number"),
        ("balances", {"api_key": KEY, "balances": {"usdt": 5}}, "upper-case"),
        ("balances", {"api_key": KEY, "balances": {}}, "non-empty"),
        ("balances", {"api_key": KEY, "balances": {"USDT": 5}, "futures": "yes"}, "true or false"),
        ("book", {"symbol": "DOGE/USDT", "bids": [], "asks": []}, "unknown symbol"),
        ("book", {"symbol": BTC, "bids": [[40010, 1]], "asks": [[40000, 1]]}, "crossed"),
        ("book", {"symbol": BTC, "bids": [[40000, -1]]}, "bids qty must be within above 0"),
        ("book", {"symbol": BTC, "bids": [[39000, 1], [39500, 1]]}, "descending"),
        ("book", {"symbol": BTC, "asks": [[40000]]}, "list of [price, qty]"),
        ("faults", {"latency_ms": -5}, "latency_ms must be a number within"),
        ("faults", {"error_rate": 2}, "error_rate must be a number within 0..1"),
        ("faults", {"drop_orders": True}, "drop_orders must be a number"),
        ("faults", {"drop_orders": "2"}, "drop_orders must be a number"),
        ("faults", {"explode": 1}, "unknown field(s): explode"),
    ],
)
def test_bad_admin_input_is_400_and_changes_nothing(
    url: str, admin: Admin, client, path: str, body: dict, message: str
) -> None:
    ex = client()
    balance = ex.fetch_balance()["total"]
    resp = _raw(url, "POST", path, body, admin.headers["Authorization"].split()[1])
    assert resp.status_code == 400, resp.text
    assert message in resp.json()["error"]
    assert ex.fetch_balance()["total"] == balance
    assert admin("GET", "faults")["latency_ms"] == 0
    assert admin("POST", "limits", {})["weight_limit"] == 6000
    assert ex.fetch_ticker(BTC)["last"] > 0


def test_fills_filter_refuses_an_unknown_account(admin: Admin, client) -> None:
    client().create_order(BTC, "market", "buy", 0.01)
    assert len(admin("GET", "fills?api_key=" + KEY)) == 1
    assert admin("GET", "fills?api_key=" + OTHER_KEY) == []
    with pytest.raises(requests.HTTPError, match="400"):
        admin("GET", "fills?api_key=nobody")


@pytest.mark.parametrize("cost", ["1e30", "-5", "12.5e3", "1" * 21, "NaN", "Infinity"])
def test_absurd_quote_order_qty_is_a_binance_error(client, cost: str) -> None:
    ex = client()
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quoteOrderQty": cost}
    with pytest.raises(ccxt.BadRequest, match="-1100"):
        ex.privatePostOrder(order)
    assert ex.fetch_balance()["total"]["USDT"] == 100_000.0
