"""The aiohttp server: dispatch, auth, weights, faults, admin endpoints; run or run in a thread.

Admin endpoints (quantdesk.sandbox.admin) live under /sandbox/, need the admin bearer token,
and are served only when `config.admin` is set (the CLI enables them on loopback binds only,
unless asked otherwise):
  GET  /sandbox/clock                 market time, bar index, speed
  POST /sandbox/advance   {"bars": n} move the clock forward n bars and replay them
  POST /sandbox/reset                 initial state (accounts, orders, clock, faults, weights)
  POST /sandbox/balances  {"api_key": k, "balances": {"USDT": "1000"}, "futures": true}
  POST /sandbox/book      {"symbol": "BTC/USDT", "bids": [[p, q]], "asks": [[p, q]]}
  GET  /sandbox/faults    POST /sandbox/faults {...}   DELETE /sandbox/faults
  POST /sandbox/limits    {"weight_limit": 6000, "strikes": 3}  request-weight limit per window
  GET  /sandbox/fills[?api_key=k]     every fill (the fill report)
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from decimal import InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from quantdesk.errors import ConfigError
from quantdesk.sandbox.admin import SANDBOX_KEY, add_admin_routes
from quantdesk.sandbox.api import routes
from quantdesk.sandbox.auth import check_key, too_many, verify
from quantdesk.sandbox.errors import PRECISION_OVER, BinanceError
from quantdesk.sandbox.state import Sandbox
from quantdesk.sandbox.streams import add_stream_routes


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error(exc: BinanceError, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"code": exc.code, "msg": exc.msg}, exc.status, headers)


def _drop(request: web.Request) -> web.Response:
    """Close the connection without answering (the client sees a reset / disconnect)."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


async def _params(request: web.Request) -> tuple[dict[str, str], str, str]:
    query = request.query_string
    body = await request.text() if request.can_read_body else ""
    params = dict(request.query)
    if body:
        params.update(parse_qsl(body, keep_blank_values=True))
    return params, query, body


def make_app(sandbox: Sandbox) -> web.Application:
    """The aiohttp application serving `sandbox`."""
    table = routes()
    app = web.Application()
    app[SANDBOX_KEY] = sandbox

    async def dispatch(request: web.Request) -> web.StreamResponse:
        sb = request.app[SANDBOX_KEY]
        path = request.path
        route = table.get((request.method, path))
        if route is None:
            return web.Response(status=404, text="Not Found")
        faults = sb.faults
        if faults.take("reset_requests"):
            return _drop(request)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.slow_ms and faults.take("slow_requests"):
            await asyncio.sleep(faults.slow_ms / 1000)
        if faults.take("rate_limit_burst"):
            return _error(too_many(sb.limiter.limit), {"Retry-After": "1"})
        if faults.take("server_errors") or faults.error_now():
            return web.Response(status=503, text="Service Unavailable")
        ip = request.remote or "?"
        params, query, body = await _params(request)
        limiter = sb.futures_limiter if route.futures else sb.limiter
        try:
            used = limiter.charge(ip, route.weight_of(params), time.time())
        except BinanceError as exc:
            return _error(exc, {"Retry-After": "60"})
        headers = {"X-MBX-USED-WEIGHT-1M": str(used), "X-MBX-USED-WEIGHT": str(used)}
        try:
            account = None
            if route.signed:
                key = verify(
                    sb.secrets,
                    request.headers.get("X-MBX-APIKEY"),
                    query,
                    body,
                    params,
                    sb.server_ms(),
                )
                account = sb.core.accounts[key]
                if route.places_order:
                    headers |= sb.orders[route.futures].charge(key, time.time())
            elif route.key_only:
                account = sb.core.accounts[
                    check_key(sb.secrets, request.headers.get("X-MBX-APIKEY"))
                ]
            sb.sync()
            data = route.handler(sb, params, account)
        except BinanceError as exc:
            return _error(exc, headers)
        except InvalidOperation:
            # A number that parses but overflows the 28-digit Decimal context downstream.
            return _error(PRECISION_OVER, headers)
        if route.places_order:
            if faults.take("drop_orders"):
                return _drop(request)
            if faults.take("hang_orders"):
                await asyncio.sleep(sb.config.hang_s)
                return _drop(request)
        return _json(data, headers=headers)

    add_stream_routes(app, sandbox)
    app.router.add_route("*", "/api/{tail:.*}", dispatch)
    app.router.add_route("*", "/fapi/{tail:.*}", dispatch)
    if sandbox.config.admin:
        add_admin_routes(app)
    return app


async def start(sandbox: Sandbox, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving on host:port (port 0 picks a free one); return the runner and the port."""
    runner = web.AppRunner(make_app(sandbox), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound


@contextmanager
def serve_in_thread(sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run the server on a background thread (for tests and notebooks); yield its base URL."""
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            ready["runner"], ready["port"] = loop.run_until_complete(start(sandbox, host, port))
        except BaseException as exc:  # handed to the caller's thread
            ready["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(ready["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="quantdesk-sandbox", daemon=True)
    thread.start()
    started.wait()
    if "error" in ready:
        raise ready["error"]
    try:
        yield f"http://{host}:{ready['port']}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def run(sandbox: Sandbox, host: str, port: int, announce: Any = print) -> None:
    """Serve until Ctrl-C (SIGINT) or SIGTERM, then shut down cleanly."""

    async def main() -> None:
        runner, bound = await start(sandbox, host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError, RuntimeError):  # e.g. Windows
                loop.add_signal_handler(sig, stop.set)
        announce(f"sandbox listening on http://{host}:{bound} (Ctrl-C to stop)")
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
        announce("sandbox stopped")

    with suppress(KeyboardInterrupt):
        asyncio.run(main())
