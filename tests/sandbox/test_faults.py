"""Every injected fault, with what a client observes; plus determinism of fills."""

from __future__ import annotations

import time

import ccxt
import pytest

from quantdesk.sandbox import Sandbox, serve_in_thread
from tests.sandbox.conftest import ADMIN_TOKEN, Admin, make_config

BTC = "BTC/USDT"


def test_latency(client, admin: Admin) -> None:
    ex = client()
    admin.faults(latency_ms=300)
    started = time.perf_counter()
    ex.fetch_time()
    assert time.perf_counter() - started >= 0.3


def test_server_errors_do_not_execute(client, admin: Admin) -> None:
    ex = client()
    admin.faults(error_rate=1.0)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.create_order(BTC, "limit", "buy", 0.01, 30000)
    admin("DELETE", "faults")
    assert ex.fetch_open_orders(BTC) == []


def test_error_rate_is_seeded(client, admin: Admin) -> None:
    ex = client()

    def pattern() -> list[bool]:
        admin.faults(error_rate=0.5, seed=3)
        out = []
        for _ in range(12):
            try:
                ex.fetch_time()
                out.append(True)
            except ccxt.ExchangeNotAvailable:
                out.append(False)
        return out

    first, second = pattern(), pattern()
    assert first == second and True in first and False in first


def test_dropped_response_order_exists_and_is_found_by_client_id(client, admin: Admin) -> None:
    ex = client()
    admin.faults(drop_orders=1)
    with pytest.raises(ccxt.NetworkError):
        ex.create_order(BTC, "limit", "buy", 0.01, 30000, {"clientOrderId": "retry-me"})
    found = ex.fetch_order(None, BTC, {"clientOrderId": "retry-me"})
    assert found["status"] == "open" and found["amount"] == 0.01
    # a blind retry with the same client id is refused while the first order is open
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate"):
        ex.create_order(BTC, "limit", "buy", 0.01, 30000, {"clientOrderId": "retry-me"})


def test_hung_response_times_out_but_order_filled(client, admin: Admin) -> None:
    ex = client(timeout=500)
    admin.faults(hang_orders=1)
    with pytest.raises(ccxt.RequestTimeout):
        ex.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "slow"})
    found = ex.fetch_order(None, BTC, {"clientOrderId": "slow"})
    assert found["status"] == "closed" and found["filled"] == 0.01
    assert ex.fetch_balance()["total"]["BTC"] == pytest.approx(1.00999)


def test_connection_reset_executes_nothing(client, admin: Admin) -> None:
    ex = client()
    admin.faults(reset_requests=1)
    with pytest.raises(ccxt.NetworkError):
        ex.create_order(BTC, "limit", "buy", 0.01, 30000)
    assert ex.fetch_open_orders(BTC) == []


def test_rate_limit_burst(client, admin: Admin) -> None:
    ex = client()
    admin.faults(rate_limit_burst=2)
    for _ in range(2):
        with pytest.raises(ccxt.DDoSProtection, match="429"):
            ex.fetch_ticker(BTC)
    assert ex.fetch_ticker(BTC)["last"] > 0


def test_counted_server_errors_then_service(client, admin: Admin) -> None:
    ex = client()
    admin.faults(server_errors=2)
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            ex.create_order(BTC, "limit", "buy", 0.01, 30000)
    assert ex.fetch_open_orders(BTC) == []  # neither 503 executed
    assert admin("GET", "faults")["server_errors"] == 0


def test_slow_requests_answer_late_once(client, admin: Admin) -> None:
    ex = client()
    admin.faults(slow_requests=1, slow_ms=400)
    started = time.perf_counter()
    ex.fetch_time()
    slow = time.perf_counter() - started
    started = time.perf_counter()
    ex.fetch_time()
    assert slow >= 0.4 > time.perf_counter() - started


def test_faults_reset_and_listed(admin: Admin) -> None:
    admin.faults(latency_ms=5, drop_orders=2)
    assert admin("GET", "faults")["drop_orders"] == 2
    admin("POST", "reset")
    assert admin("GET", "faults")["drop_orders"] == 0


def _session(seed: int) -> list[dict]:
    """A fixed script of requests against a fresh sandbox; returns its fill report."""
    from quantdesk.venues import sandbox_client

    with serve_in_thread(Sandbox(make_config(seed))) as base:
        admin = Admin(base, ADMIN_TOKEN)
        ex = sandbox_client("binance", base, enableRateLimit=False)
        ex.load_markets()
        last = ex.fetch_ticker(BTC)["last"]
        ex.create_order(BTC, "market", "buy", 0.3)
        ex.create_order(BTC, "limit", "buy", 0.2, round(last * 0.998, 2))
        ex.create_order(BTC, "market", "sell", 0.1, params={"stopLossPrice": round(last * 0.997)})
        ex.create_order(BTC, "limit", "sell", 0.2, round(last * 1.002, 2))
        admin.advance(240)
        ex.create_order(BTC, "market", "sell", 0.25)
        return admin("GET", "fills")


def test_same_seed_same_requests_same_fills() -> None:
    first, second = _session(7), _session(7)
    assert len(first) >= 4
    assert first == second
    assert _session(8) != first
