"""Order round trips through real ccxt.async_support against the sandbox on loopback.

One round trip = create a resting limit order + cancel it, or a market order (filled against
the book) + the opposite market order. Reports orders/s and per-request latency percentiles,
sequentially and with several coroutines in flight.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
from decimal import Decimal

import numpy as np

from quantdesk.sandbox import AccountConfig, Sandbox, SandboxConfig, serve_in_thread
from quantdesk.venues import sandbox_client

SYMBOL = "BTC/USDT"
ROUND_TRIPS = int(os.environ.get("BENCH_ROUND_TRIPS", "300"))
CONCURRENCY = 8


async def _limit_trips(ex, n: int, price: float, latencies: list[float]) -> None:
    for _ in range(n):
        t0 = time.perf_counter()
        order = await ex.create_order(SYMBOL, "limit", "buy", 0.001, price)
        t1 = time.perf_counter()
        await ex.cancel_order(order["id"], SYMBOL)
        t2 = time.perf_counter()
        latencies += [t1 - t0, t2 - t1]


async def _market_trips(ex, n: int, latencies: list[float]) -> None:
    for _ in range(n):
        for side in ("buy", "sell"):
            t0 = time.perf_counter()
            await ex.create_order(SYMBOL, "market", side, 0.001)
            latencies.append(time.perf_counter() - t0)


async def _run(url: str) -> list[tuple[str, int, float, list[float]]]:
    ex = sandbox_client("binance", url, async_=True, enableRateLimit=False)
    try:
        await ex.load_markets()
        price = round((await ex.fetch_ticker(SYMBOL))["last"] * 0.9, 2)
        await _limit_trips(ex, 20, price, [])  # warm-up: connections, JIT-free but cache-warm
        results = []
        for name, make in (
            ("limit+cancel, sequential", lambda lat: _limit_trips(ex, ROUND_TRIPS, price, lat)),
            ("market buy+sell, sequential", lambda lat: _market_trips(ex, ROUND_TRIPS, lat)),
            (
                f"limit+cancel, {CONCURRENCY} in flight",
                lambda lat: asyncio.gather(
                    *[
                        _limit_trips(ex, ROUND_TRIPS // CONCURRENCY, price, lat)
                        for _ in range(CONCURRENCY)
                    ]
                ),
            ),
        ):
            latencies: list[float] = []
            t0 = time.perf_counter()
            await make(latencies)
            results.append((name, len(latencies), time.perf_counter() - t0, latencies))
        return results
    finally:
        await ex.close()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    """Run the benchmark and print a markdown table for BENCHMARKS.md."""
    big = {"USDT": Decimal("1e9"), "BTC": Decimal("1e4")}
    config = SandboxConfig(
        symbols=[SYMBOL],
        days=2,
        speed=0,
        weight_limit=10**9,
        accounts=[AccountConfig("sandbox-key", "sandbox-secret", big)],
    )
    with serve_in_thread(Sandbox(config)) as url:
        results = asyncio.run(_run(url))
    print(
        f"machine: {os.cpu_count()} CPUs, {_cpu_model()}, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}; {ROUND_TRIPS} round trips per row"
    )
    print("| scenario | requests | requests/s | round trips/s | p50 ms | p95 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, n, elapsed, lat in results:
        ms = np.percentile(np.array(lat) * 1000, [50, 95, 99])
        rate = n / elapsed  # every request places or cancels one order; a round trip is two
        print(
            f"| {name} | {n} | {rate:,.0f} | {rate / 2:,.0f} | "
            f"{ms[0]:.2f} | {ms[1]:.2f} | {ms[2]:.2f} |"
        )


if __name__ == "__main__":
    main()
