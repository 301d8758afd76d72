"""One sandbox server per test session (manual clock), reset before every test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from quantdesk.sandbox import AccountConfig, Sandbox, SandboxConfig, serve_in_thread
from quantdesk.venues import sandbox_client

KEY, SECRET = "sandbox-key", "sandbox-secret"
OTHER_KEY, OTHER_SECRET = "other-key", "other-secret"
ADMIN_TOKEN = "test-admin-token-0123456789"


def make_config(seed: int = 7) -> SandboxConfig:
    """Small market, manual clock, two accounts."""
    return SandboxConfig(
        symbols=["BTC/USDT", "ETH/USDT"],
        seed=seed,
        days=2,
        speed=0,
        history_bars=1440,
        accounts=[
            AccountConfig(KEY, SECRET),
            AccountConfig(OTHER_KEY, OTHER_SECRET, {"USDT": Decimal("50000")}),
        ],
        hang_s=1.5,
        rate_window_s=3600.0,  # weight windows never roll over in the middle of a test
        admin_token=ADMIN_TOKEN,
    )


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    return Sandbox(make_config())


@pytest.fixture(scope="session")
def url(sandbox: Sandbox) -> Iterator[str]:
    with serve_in_thread(sandbox) as base:
        yield base


class Admin:
    """Calls the /sandbox/ admin endpoints with the admin bearer token."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}

    def __call__(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.request(
            method, f"{self.base}/sandbox/{path}", json=body, headers=self.headers, timeout=10
        )
        resp.raise_for_status()
        return resp.json()

    def advance(self, bars: int) -> dict[str, Any]:
        return self("POST", "advance", {"bars": bars})

    def faults(self, **faults: Any) -> dict[str, Any]:
        return self("POST", "faults", faults)

    def listening(self, *parts: str, user: bool = False) -> bool:
        """Whether open stream clients subscribe to a stream containing each of `parts`
        (case-insensitive, e.g. "@kline_1m"), and with user=True, to a user data stream."""
        clients = self("GET", "streams")["clients"]
        names = [n.lower() for c in clients for n in c["streams"]]
        users = any(c["user_stream"] or c["user_subscriptions"] for c in clients)
        return all(any(p.lower() in n for n in names) for p in parts) and (users or not user)

    def wait_listening(self, *parts: str, user: bool = False, timeout: float = 30) -> None:
        """Block until `listening(*parts, user=user)` holds; fail after timeout seconds."""
        deadline = time.monotonic() + timeout
        while not self.listening(*parts, user=user):
            assert time.monotonic() < deadline, f"no subscription {parts} user={user} landed"
            time.sleep(0.02)


async def landed(admin: Admin, *parts: str, user: bool = False, timeout: float = 30) -> None:
    """Wait until the sandbox has the subscriptions (see Admin.listening): a stream event sent
    before its subscription lands is lost, so tests wait on this, not on a fixed sleep."""
    await asyncio.to_thread(admin.wait_listening, *parts, user=user, timeout=timeout)


@pytest.fixture
def admin(url: str, sandbox: Sandbox) -> Admin:
    api = Admin(url, sandbox.config.admin_token)
    api("POST", "reset")
    return api


@pytest.fixture
def client(url: str, admin: Admin) -> Callable[..., Any]:
    """Factory for real ccxt clients (sync) pointed at the sandbox."""

    def make(exchange: str = "binance", key: str = KEY, secret: str = SECRET, **config: Any) -> Any:
        ex = sandbox_client(exchange, url, key, secret, enableRateLimit=False, **config)
        ex.load_markets()
        return ex

    return make


def dec(value: Any) -> Decimal:
    """Decimal from a ccxt/Binance string field."""
    return Decimal(str(value))
