"""Market-data events per second through a session on the sandbox's kline streams
(feed = streams), and stream-to-order latency.

The sandbox runs in a child process (its own GIL) on loopback (bench_streams' server). One admin
advance of BENCH_SESSION_EVENTS bars publishes that many 1m kline events back to back; each is a
closed bar. Three layers are timed from that request until the last bar is through:

- ccxt.pro alone: `CcxtVenue.watch_candles` (watch_ohlcv plus the kline flags) until every
  candle is in hand;
- the feed: `StreamBarFeed` until it has handed out every bar as a step (closing rules, the
  REST backfill of what ccxt's candle cache dropped);
- a paper session: `run_session` on BTC/USDT 1m until it has processed every bar: strategy,
  risk gate, simulated fills, the journal (which commits every write, as a live session must)
  and the feed's own work; once with `flip` (signals in numpy: the session's own cost) and once
  with sma_cross(2, 3) (vectorbt on every bar's window, BENCH_SESSION_SMA_EVENTS bars).

Latency (live session, orders at the sandbox), per bar over BENCH_SESSION_ROUNDS bars: from the
stream update that closes a bar leaving `watch_candles` ("event received") to the order it
causes entering `CcxtVenue.create_order` ("order sent", before its request leaves). Only bars
on which sma_cross trades count. The probes wrap two CcxtVenue methods in this process only.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import platform
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import requests

from benchmarks.bench_streams import TOKEN, _serve

SYMBOL = "BTC/USDT"
EVENTS = int(os.environ.get("BENCH_SESSION_EVENTS", "5000"))
SMA_EVENTS = int(os.environ.get("BENCH_SESSION_SMA_EVENTS", "300"))
ROUNDS = int(os.environ.get("BENCH_SESSION_ROUNDS", "300"))
MINUTE = 60_000
ENV = {"BENCH_KEY": "sandbox-key", "BENCH_SECRET": "sandbox-secret"}


def _admin(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    method = "POST" if body is not None else "GET"
    resp = requests.request(
        method, f"{url}/sandbox/{path}", json=body, headers=headers, timeout=120
    )
    resp.raise_for_status()
    return resp.json()


async def _wait_listening(url: str, part: str) -> None:
    """Until the sandbox has a stream subscription containing `part` (never a fixed sleep)."""
    while True:
        clients = (await asyncio.to_thread(_admin, url, "streams"))["clients"]
        if any(part in n for c in clients for n in c["streams"]):
            return
        await asyncio.sleep(0.02)


class Probe:
    """Counts and times candle updates leaving watch_candles and orders entering create_order."""

    def __init__(self) -> None:
        self.updates = 0
        self.received: dict[int, float] = {}  # candle open ms -> when its closing update came
        self.sent: list[tuple[float, int]] = []  # (when, the bar whose step sent it)
        self.newest = -1
        self.stepping = -1  # the bar the kernel is processing
        self.stepped = -1  # the newest bar the kernel has processed

    def install(self) -> None:
        """Wrap CcxtVenue.watch_candles / create_order and Kernel.step (this process only)."""
        from quantdesk.engine.kernel import Kernel
        from quantdesk.venues.ccxt_venue import CcxtVenue

        watch, create, step = CcxtVenue.watch_candles, CcxtVenue.create_order, Kernel.step
        probe = self

        async def watch_candles(venue: Any, symbol: str, timeframe: str) -> Any:
            rows = await watch(venue, symbol, timeframe)
            now = time.perf_counter()
            probe.updates += len(rows)
            for row, closed in rows:
                if closed:
                    probe.received.setdefault(int(row[0]), now)
                    probe.newest = max(probe.newest, int(row[0]))
            return rows

        async def create_order(venue: Any, order: Any) -> Any:
            probe.sent.append((time.perf_counter(), probe.stepping))
            return await create(venue, order)

        async def kernel_step(kernel: Any, events: Any, *args: Any, **kwargs: Any) -> Any:
            probe.stepping = events[0].bar.time
            try:
                return await step(kernel, events, *args, **kwargs)
            finally:
                probe.stepped = max(probe.stepped, events[0].bar.time)

        Kernel.step = kernel_step  # type: ignore[method-assign]
        CcxtVenue.watch_candles = watch_candles  # type: ignore[method-assign]
        CcxtVenue.create_order = create_order  # type: ignore[method-assign]


def _venue_config(url: str) -> Any:
    from quantdesk.config import VenueConfig

    return VenueConfig(
        exchange="binance",
        market="spot",
        sandbox_url=url,
        api_key_env="BENCH_KEY",
        api_secret_env="BENCH_SECRET",
        rate_limit_ms=1,
        feed="streams",
        stream_stall_s=60,
    )


async def _ccxt_only(url: str, n: int) -> tuple[int, float]:
    """Candle updates per second out of watch_candles alone."""
    from quantdesk.venues import sandbox_pro_client
    from quantdesk.venues.ccxt_venue import CcxtVenue

    client = sandbox_pro_client(
        "binance", url, enableRateLimit=False, options={"OHLCVLimit": n * 2}
    )
    venue = CcxtVenue(client, "bench")
    try:
        await venue.load()
        seen: set[int] = set()
        first = asyncio.Event()

        async def consume() -> None:
            while len(seen) < n:
                rows = await venue.watch_candles(SYMBOL, "1m")
                if not first.is_set():
                    first.set()
                    continue
                seen.update(int(r[0]) for r, _ in rows)

        task = asyncio.ensure_future(consume())
        await _wait_listening(url, "@kline_1m")
        await asyncio.to_thread(_admin, url, "advance", {"bars": 1})
        await asyncio.wait_for(first.wait(), 30)
        t0 = time.perf_counter()
        await asyncio.to_thread(_admin, url, "advance", {"bars": n})
        await asyncio.wait_for(task, 600)
        return len(seen), time.perf_counter() - t0
    finally:
        await venue.close()


async def _feed_only(url: str, n: int) -> tuple[int, int, float]:
    """Bars per second handed out by StreamBarFeed (no kernel behind it)."""
    from quantdesk.system.bar_streams import StreamBarFeed
    from quantdesk.venues.ccxt_venue import CcxtVenue

    venue = CcxtVenue.from_config("bench", _venue_config(url), ENV)
    try:
        await venue.load()
        feed = StreamBarFeed(venue, [SYMBOL], "1m", poll_s=1.0, stall_s=60)
        warm = await feed.history(1)
        feed.until_ms = warm[-1][0].bar.time + n * MINUTE
        steps = 0

        async def consume() -> None:
            nonlocal steps
            async for _ in feed:
                steps += 1

        task = asyncio.ensure_future(consume())
        await _wait_listening(url, "@kline_1m")
        t0 = time.perf_counter()
        await asyncio.to_thread(_admin, url, "advance", {"bars": n})
        await asyncio.wait_for(task, 600)
        elapsed = time.perf_counter() - t0
        await feed.close()
        return steps, feed.stats.backfilled, elapsed
    finally:
        await venue.close()


def _strategy(name: str) -> Any:
    """sma_cross(2, 3) (vectorbt on every bar's window), or `flip`: long after an up close,
    flat after a down close, in numpy: the session's own cost per bar, and an order on about
    every other bar."""
    from quantdesk.strategy import Signals, SignalStrategy, load_strategy

    if name == "sma_cross":
        return load_strategy("sma_cross", {"fast": 2, "slow": 3})

    class Flip(SignalStrategy):
        params: ClassVar[dict[str, Any]] = {}
        timeframe = "1m"
        warmup = 1

        def signals(self, bars: Any) -> Signals:
            up = bars["close"].diff() > 0
            return Signals(entries=up, exits=~up)

    return Flip()


def _spec(url: str, journal: Path, mode: Any, until_ms: int, strategy: str = "flip") -> Any:
    from quantdesk.system.live import SessionSpec

    return SessionSpec(
        strategy=_strategy(strategy),
        symbols=[SYMBOL],
        mode=mode,
        venue_name="sandbox",
        venue=_venue_config(url),
        journal=journal,
        timeframe="1m",
        until_ms=until_ms,
        capital=Decimal(2000),
        poll_s=1.0,
        reconcile_every_s=3600.0,
    )


async def _session(
    url: str, n: int, probe: Probe, work: Path, strategy: str
) -> tuple[int, int, float]:
    """Paper session: bars per second processed after one burst of n."""
    from quantdesk.system.live import Mode, run_session

    start = (await asyncio.to_thread(_admin, url, "clock"))["time"]
    started = asyncio.Event()
    path = work / f"paper-{strategy}.sqlite"
    spec = _spec(url, path, Mode.PAPER, start + (n - 1) * MINUTE, strategy)
    task = asyncio.ensure_future(run_session(spec, env=ENV, started=started))
    await asyncio.wait([asyncio.ensure_future(started.wait()), task], return_when="FIRST_COMPLETED")
    await _wait_listening(url, "@kline_1m")
    before = probe.updates
    t0 = time.perf_counter()
    await asyncio.to_thread(_admin, url, "advance", {"bars": n})
    result = await asyncio.wait_for(task, 1200)
    return result.steps, probe.updates - before, time.perf_counter() - t0


async def _latency(url: str, rounds: int, probe: Probe, work: Path) -> list[float]:
    """Live session, one bar at a time: closing update received -> order sent, in seconds."""
    from quantdesk.system.live import Mode, run_session

    start = (await asyncio.to_thread(_admin, url, "clock"))["time"]
    started = asyncio.Event()
    spec = _spec(url, work / "live.sqlite", Mode.LIVE, start + rounds * MINUTE)
    task = asyncio.ensure_future(run_session(spec, env=ENV, started=started))
    await asyncio.wait([asyncio.ensure_future(started.wait()), task], return_when="FIRST_COMPLETED")
    await _wait_listening(url, "@kline_1m")
    probe.sent.clear()
    while not task.done():
        now = (await asyncio.to_thread(_admin, url, "advance", {"bars": 1}))["time"]
        # the next bar only once the kernel has processed this one: rounds do not queue up
        while probe.stepped < now - MINUTE and not task.done():
            await asyncio.sleep(0.001)
    await task
    return [when - probe.received[bar] for when, bar in probe.sent if bar in probe.received]


async def _run(url: str) -> dict[str, Any]:
    probe = Probe()
    probe.install()
    out: dict[str, Any] = {"ccxt": await _ccxt_only(url, EVENTS)}
    out["feed"] = await _feed_only(url, EVENTS)
    with tempfile.TemporaryDirectory() as tmp:
        out["session"] = await _session(url, EVENTS, probe, Path(tmp), "flip")
        out["sma"] = await _session(url, SMA_EVENTS, probe, Path(tmp), "sma_cross")
        out["latency"] = await _latency(url, ROUNDS, probe, Path(tmp))
    return out


def main() -> None:
    """Run the benchmark and print markdown tables for BENCHMARKS.md."""
    from benchmarks.bench_sandbox_roundtrip import _cpu_model

    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(queue, stop), daemon=True)
    server.start()
    try:
        url = queue.get(timeout=120)
        res = asyncio.run(_run(url))
    finally:
        stop.set()
        server.join(10)
    load = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} CPUs, {_cpu_model()}, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}; load average {load:.1f}"
    )
    print(
        "| layer (one burst of 1m klines) | events | bars out | backfilled | seconds | events/s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    got, secs = res["ccxt"]
    print(f"| ccxt.pro watch_candles | {got:,} | - | - | {secs:.2f} | {got / secs:,.0f} |")
    steps, filled, secs = res["feed"]
    print(
        f"| StreamBarFeed | {steps - filled:,} | {steps:,} | {filled:,} | {secs:.2f} "
        f"| {steps / secs:,.0f} |"
    )
    for key, name in (("session", "flip (numpy)"), ("sma", "sma_cross (vectorbt)")):
        steps, updates, secs = res[key]
        print(
            f"| paper session, {name} | {updates:,} | {steps:,} | - | {secs:.2f} "
            f"| {steps / secs:,.0f} |"
        )
    lat = np.array(res["latency"]) * 1000
    print("| latency | orders | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|---:|")
    if len(lat):
        p50, p99 = np.percentile(lat, [50, 99])
        print(
            f"| closing kline received -> order sent (live session) | {len(lat)} "
            f"| {p50:.2f} | {p99:.2f} | {lat.max():.2f} |"
        )


if __name__ == "__main__":
    main()
