"""Live market making against the sandbox: tick-to-quote latency of one live session, and the
memory (RSS) of ten market-making sessions in one process.

The sandbox runs in a child process (its own GIL) on loopback with a manual clock. Latency:
`BENCH_MM_BARS` bars are advanced one at a time (each waited for); for every event that led
to an order, the time from the event being in the session's hands (a ccxt.pro book or trade
update, a timer) to the first order request leaving (after the strategy, the quote diff and the
pre-trade check; the journal write of the intent included). Memory: the process's RSS before
and with `BENCH_MM_SESSIONS` paper sessions quoting the same book concurrently (each its own
ccxt REST and ccxt.pro clients, journal, strategy and risk engine).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import platform
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
import requests

TOKEN = "bench-admin-token-0123456789"
BARS = int(os.environ.get("BENCH_MM_BARS", "150"))
SESSIONS = int(os.environ.get("BENCH_MM_SESSIONS", "10"))


def _serve(queue: mp.Queue, stop: mp.Event) -> None:
    from quantdesk.sandbox import AccountConfig, Sandbox, SandboxConfig, serve_in_thread

    big = {"USDT": Decimal("100000"), "BTC": Decimal("10")}
    config = SandboxConfig(
        symbols=["BTC/USDT"],
        days=5,
        speed=0,
        history_bars=1440,
        weight_limit=10**9,
        accounts=[AccountConfig("sandbox-key", "sandbox-secret", big)],
        admin_token=TOKEN,
        spot_order_limits=((10, 10**6),),
    )
    with serve_in_thread(Sandbox(config)) as url:
        queue.put(url)
        stop.wait()


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _admin(url: str, path: str, body: dict | None = None) -> dict:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    resp = requests.post(f"{url}/sandbox/{path}", json=body, headers=headers, timeout=60)
    resp.raise_for_status()
    return resp.json()


async def _wait(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the session did not keep up")
        await asyncio.sleep(0.005)


async def _latency(url: str, folder: Path) -> list[float]:
    from quantdesk.config import MMLiveConfig
    from tests.mm.session_helpers import mm_spec, running
    from tests.sandbox.conftest import Admin

    # the default reconciliation interval (30 s): a pass holds the event loop for its requests
    spec = mm_spec(
        url, folder / "latency.sqlite", "live", settings=MMLiveConfig(max_inventory=0.005)
    )
    async with running(spec) as session:
        # a bar published before the subscriptions land is never seen
        await asyncio.to_thread(Admin(url, TOKEN).wait_listening, "@trade", "@depth", user=True)
        for _ in range(BARS):
            before = session.market_ms
            await asyncio.to_thread(_admin, url, "advance", {"bars": 1})
            await _wait(lambda b=before: session.market_ms > b)
            await asyncio.sleep(0.05)  # let the requote of this bar leave before the next
        return list(session.latencies)


async def _memory(url: str, folder: Path) -> tuple[float, float, int]:
    from tests.mm.session_helpers import mm_spec, running

    base = _rss_mb()
    specs = [mm_spec(url, folder / f"paper{i}.sqlite", "paper") for i in range(SESSIONS)]
    managers = [running(s) for s in specs]
    sessions = [await m.__aenter__() for m in managers]
    try:
        for _ in range(20):  # every session quotes a few bars before the measurement
            await asyncio.to_thread(_admin, url, "advance", {"bars": 1})
            await asyncio.sleep(0.1)
        quoting = sum(1 for s in sessions if any(o.submit_attempts for o in s.om.orders.values()))
        peak = _rss_mb()
    finally:
        for m in reversed(managers):
            await m.__aexit__(None, None, None)
    return base, peak, quoting


def main() -> None:
    """Run the benchmark and print markdown tables for BENCHMARKS.md."""
    from benchmarks.bench_sandbox_roundtrip import _cpu_model

    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(queue, stop), daemon=True)
    server.start()
    try:
        url = queue.get(timeout=120)
        with tempfile.TemporaryDirectory() as tmp:
            latencies = asyncio.run(_latency(url, Path(tmp)))
            base, peak, quoting = asyncio.run(_memory(url, Path(tmp)))
    finally:
        stop.set()
        server.join(10)
    load = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} CPUs, {_cpu_model()}, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}; load average {load:.1f}"
    )
    ms = np.percentile(np.array(latencies) * 1000, [50, 99])
    print("| live session, sandbox | quotes | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    print(f"| tick (book/trade/timer event) -> order request | {len(latencies)} "
          f"| {ms[0]:.2f} | {ms[1]:.2f} |")  # fmt: skip
    print("| memory | sessions | RSS MB | per session MB |")
    print("|---|---:|---:|---:|")
    print(f"| process before the sessions | 0 | {base:.0f} | |")
    print(f"| {SESSIONS} paper sessions quoting ({quoting} quoted) | {SESSIONS} | {peak:.0f} "
          f"| {(peak - base) / SESSIONS:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
