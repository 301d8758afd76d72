"""Market-data events per second through ccxt.pro watch_trades from the sandbox's streams, and
stream-to-order latency.

The sandbox runs in a child process (its own GIL) on loopback. Throughput: one admin advance of
BENCH_STREAM_EVENTS bars publishes that many aggTrade events back to back; the clock runs from
the advance request until ccxt.pro has handed over every one of them (unique ids counted).
Latency, per bar: from the advance request (the bar is published) to the trade in hand
("stream"), and to a limit order acknowledged over REST in reaction to it ("stream-to-order").
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import platform
import time
from decimal import Decimal

import numpy as np
import requests

SYMBOL = "BTC/USDT"
EVENTS = int(os.environ.get("BENCH_STREAM_EVENTS", "20000"))
ROUNDS = int(os.environ.get("BENCH_STREAM_ROUNDS", "200"))
TOKEN = "bench-admin-token-0123456789"


def _serve(queue: mp.Queue, stop: mp.Event) -> None:
    from quantdesk.sandbox import AccountConfig, Sandbox, SandboxConfig, serve_in_thread

    big = {"USDT": Decimal("1e9"), "BTC": Decimal("1e4")}
    config = SandboxConfig(
        symbols=[SYMBOL],
        days=30,
        speed=0,
        history_bars=1440,
        weight_limit=10**9,
        accounts=[AccountConfig("sandbox-key", "sandbox-secret", big)],
        admin_token=TOKEN,
        spot_order_limits=((10, 10**6),),  # the latency loop places an order per bar
    )
    with serve_in_thread(Sandbox(config)) as url:
        queue.put(url)
        stop.wait()


def _advance(url: str, bars: int) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    requests.post(f"{url}/sandbox/advance", json={"bars": bars}, headers=headers, timeout=60)


async def _throughput(ex, url: str, n: int) -> tuple[int, float]:
    seen: set[int] = set()
    ready = asyncio.Event()

    async def consume() -> None:
        while len(seen) < n:
            trades = await ex.watch_trades(SYMBOL, params={"name": "aggTrade"})
            ready.set()
            seen.update(int(t["id"]) for t in trades)

    task = asyncio.ensure_future(consume())
    await asyncio.to_thread(_advance, url, 1)  # subscribe and warm up on one bar
    await asyncio.wait_for(ready.wait(), 30)
    seen.clear()
    t0 = time.perf_counter()
    await asyncio.to_thread(_advance, url, n)
    await asyncio.wait_for(task, 300)
    return len(seen), time.perf_counter() - t0


async def _latency(ex, url: str, rounds: int) -> tuple[list[float], list[float]]:
    price = round((await ex.fetch_ticker(SYMBOL))["last"] * 0.5, 2)
    stream, order = [], []
    for _ in range(rounds):
        watch = asyncio.ensure_future(ex.watch_trades(SYMBOL, params={"name": "aggTrade"}))
        await asyncio.sleep(0)
        t0 = time.perf_counter()
        await asyncio.to_thread(_advance, url, 1)
        await asyncio.wait_for(watch, 10)
        t1 = time.perf_counter()
        placed = await ex.create_order(SYMBOL, "limit", "buy", 0.001, price)
        t2 = time.perf_counter()
        stream.append(t1 - t0)
        order.append(t2 - t0)
        await ex.cancel_order(placed["id"], SYMBOL)
    return stream, order


async def _run(url: str) -> tuple[tuple[int, float], tuple[list[float], list[float]]]:
    from quantdesk.sandbox.streams import pro_client

    ex = pro_client("binance", url, enableRateLimit=False, options={"tradesLimit": EVENTS * 2})
    try:
        await ex.load_markets()
        rate = await _throughput(ex, url, EVENTS)
        lat = await _latency(ex, url, ROUNDS)
        return rate, lat
    finally:
        await ex.close()


def main() -> None:
    """Run the benchmark and print markdown tables for BENCHMARKS.md."""
    from benchmarks.bench_sandbox_roundtrip import _cpu_model

    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(queue, stop), daemon=True)
    server.start()
    try:
        url = queue.get(timeout=120)
        (got, elapsed), (stream, order) = asyncio.run(_run(url))
    finally:
        stop.set()
        server.join(10)
    load = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} CPUs, {_cpu_model()}, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}; load average {load:.1f}"
    )
    print("| scenario | events | seconds | events/s |")
    print("|---|---:|---:|---:|")
    print(
        f"| watch_trades (aggTrade), one burst | {got:,} | {elapsed:.2f} | {got / elapsed:,.0f} |"
    )
    print("| latency | rounds | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for name, values in (("bar published -> trade in hand", stream),
                         ("bar published -> limit order acknowledged", order)):  # fmt: skip
        ms = np.percentile(np.array(values) * 1000, [50, 99])
        print(f"| {name} | {len(values)} | {ms[0]:.2f} | {ms[1]:.2f} |")


if __name__ == "__main__":
    main()
