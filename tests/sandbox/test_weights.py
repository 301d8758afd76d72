"""Request weights, limits and ORDERS counts as in Binance's spot and USD-M docs."""

from __future__ import annotations

import ccxt
import pytest
import requests

from quantdesk.sandbox import Sandbox, serve_in_thread
from quantdesk.venues import sandbox_client
from tests.sandbox.conftest import make_config

BTC, PERP = "BTC/USDT", "BTC/USDT:USDT"


def _cost(url: str, path: str, **params) -> int:
    """Weight one public call adds to X-MBX-USED-WEIGHT-1M (a ping before it reads the count)."""
    prefix = "/api/v3" if path.startswith("/api/") else "/fapi/v1"
    before = int(requests.get(f"{url}{prefix}/ping", timeout=5).headers["X-MBX-USED-WEIGHT-1M"])
    resp = requests.get(url + path, params=params, timeout=5)
    assert resp.status_code == 200, resp.text
    return int(resp.headers["X-MBX-USED-WEIGHT-1M"]) - before


@pytest.mark.parametrize(
    ("path", "params", "weight"),
    [
        ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 100}, 5),
        ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 500}, 25),
        ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 1000}, 50),
        ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 5000}, 250),
        ("/api/v3/ticker/24hr", {"symbol": "BTCUSDT"}, 2),
        ("/api/v3/ticker/24hr", {}, 80),
        ("/api/v3/exchangeInfo", {}, 20),
        ("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 50}, 2),
        ("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 100}, 5),
        ("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 500}, 10),
        ("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 1000}, 20),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 99}, 1),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1000}, 5),
        ("/fapi/v1/ticker/24hr", {"symbol": "BTCUSDT"}, 1),
        ("/fapi/v1/ticker/24hr", {}, 40),
        ("/fapi/v1/exchangeInfo", {}, 1),
    ],
)
def test_weight_per_endpoint_and_parameters(url: str, admin, path, params, weight) -> None:
    assert _cost(url, path, **params) == weight


def test_spot_and_futures_weights_are_separate_with_binance_limits(url: str, admin) -> None:
    spot = requests.get(f"{url}/api/v3/exchangeInfo", timeout=5)
    fut = requests.get(f"{url}/fapi/v1/exchangeInfo", timeout=5)
    assert int(spot.headers["X-MBX-USED-WEIGHT-1M"]) == 20
    assert int(fut.headers["X-MBX-USED-WEIGHT-1M"]) == 1  # not on top of the spot weight
    limits = {(r["rateLimitType"], r["interval"], r["intervalNum"]): r["limit"]
              for r in fut.json()["rateLimits"]}  # fmt: skip
    assert limits == {
        ("REQUEST_WEIGHT", "MINUTE", 1): 2400,
        ("ORDERS", "SECOND", 10): 300,
        ("ORDERS", "MINUTE", 1): 1200,
    }
    limits = {(r["rateLimitType"], r["interval"], r["intervalNum"]): r["limit"]
              for r in spot.json()["rateLimits"]}  # fmt: skip
    assert limits == {
        ("REQUEST_WEIGHT", "MINUTE", 1): 6000,
        ("ORDERS", "SECOND", 10): 100,
        ("ORDERS", "DAY", 1): 200_000,
    }


def test_futures_weight_limit_is_2400(url: str, admin) -> None:
    for _ in range(2400 // 40):
        assert requests.get(f"{url}/fapi/v1/ticker/24hr", timeout=5).status_code == 200
    over = requests.get(f"{url}/fapi/v1/ticker/24hr", timeout=5)
    assert over.status_code == 429 and over.json()["code"] == -1003
    assert "2400" in over.json()["msg"]
    assert requests.get(f"{url}/api/v3/ping", timeout=5).status_code == 200  # spot unaffected


def test_orders_limit_and_count_headers() -> None:
    config = make_config()
    config.spot_order_limits = ((10, 3), (86_400, 1000))
    with serve_in_thread(Sandbox(config)) as base:
        ex = sandbox_client("binance", base, enableRateLimit=False)
        ex.load_markets()
        for n in (1, 2, 3):
            ex.create_order(BTC, "limit", "buy", 0.01, 30000)
            assert ex.last_response_headers["X-MBX-ORDER-COUNT-10S"] == str(n)
            assert ex.last_response_headers["X-MBX-ORDER-COUNT-1D"] == str(n)
        with pytest.raises(ccxt.DDoSProtection, match="-1015"):
            ex.create_order(BTC, "limit", "buy", 0.01, 30000)
        assert len(ex.fetch_open_orders(BTC)) == 3  # the refused order was not placed
