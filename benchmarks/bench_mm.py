"""Events per second of the market-making backtest (quantdesk.mm) on seeded synthetic flow.

Rows: the matching kernel alone (resting quotes, no strategy calls: the numba hot loop over
every event), then the full backtest of each strategy (the kernel stops at every timer, touch
change and fill, and Python calls the strategy, diffs quotes and checks risk), and basic_mm
with a 250 ms requote throttle (touch changes soon after a requote wait). Flow generation
is timed apart. `BENCH_MM_HOURS` sets the hours of flow (default 6, about 510k events).
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from quantdesk.mm import fills as fm
from quantdesk.mm.backtest import MMConfig, run_mm
from quantdesk.mm.flow import FlowConfig, generate_flow
from quantdesk.strategy import load_strategy, repo_strategies_dir

HOURS = float(os.environ.get("BENCH_MM_HOURS", "6"))


def kernel_only(flow) -> tuple[float, int]:
    """Seconds to match 10 resting quotes (re-placed when filled) over every event; fills."""
    orders = fm.new_orders(32)
    state = np.zeros(fm.S_SIZE)
    state[[fm.S_BID, fm.S_ASK, fm.S_BSZ, fm.S_ASZ]] = (
        flow.bid_tick[0],
        flow.ask_tick[0],
        flow.bid_size[0],
        flow.ask_size[0],
    )
    fills = np.zeros((1 << 20, fm.F_COLUMNS))
    arrays = (flow.time_ns, flow.kind, flow.side, flow.price_tick, flow.size)
    arrays += (flow.bid_tick, flow.ask_tick, flow.bid_size, flow.ask_size)
    i, nfill, total = 1, 0, 0
    started = time.perf_counter()
    while i < len(flow):
        for k in range(10):  # refill the ladder around the current touch
            if orders[k, fm.O_LIVE] == fm.FREE:
                side = 1 if k < 5 else -1
                ptick = state[fm.S_BID] - k if side > 0 else state[fm.S_ASK] + (k - 5)
                orders[k, [fm.O_LIVE, fm.O_SIDE, fm.O_PTICK, fm.O_QTY, fm.O_T_ACTIVE]] = (
                    fm.PENDING,
                    side,
                    ptick,
                    1.0,
                    0.0,
                )
                orders[k, fm.O_T_CANCEL] = fm.NEVER
        args = (orders, state, fills, nfill, fm.NEVER, False, False, 0.0, 1, 2.0, 30.0, 0.0, 0.01)
        i, nfill, _ = fm.advance(i, *arrays, *args)
        total += nfill
        nfill = 0
    return time.perf_counter() - started, total


def main() -> None:
    """Run the benchmark and print a markdown table for BENCHMARKS.md."""
    config = FlowConfig(hours=HOURS)
    generate_flow(FlowConfig(hours=0.01), seed=1)  # compile (or load the numba cache)
    t0 = time.perf_counter()
    flow = generate_flow(config, seed=7)
    gen = time.perf_counter() - t0
    n = len(flow)
    kernel_only(generate_flow(FlowConfig(hours=0.01), seed=1))  # warm-up
    rows = [("flow generation", gen, "-", "-")]
    wall, nfills = kernel_only(flow)
    rows.append(("matching kernel alone (10 resting quotes)", wall, "-", f"{nfills:,}"))
    for name, requote in (("basic_mm", 0), ("avellaneda_stoikov", 0), ("basic_mm", 250)):
        strategy = load_strategy(name, {}, repo_strategies_dir())
        config = MMConfig(requote_ms=requote)
        run_mm(strategy, generate_flow(FlowConfig(hours=0.01), seed=1), config)  # warm-up
        t0 = time.perf_counter()
        result = run_mm(strategy, flow, config)
        wall = time.perf_counter() - t0
        s = result.stats
        label = f"backtest {name}" + (f", requote throttle {requote} ms" if requote else "")
        rows.append((label, wall, f"{s['strategy_calls']:,.0f}", f"{s['maker_fills']:,.0f}"))
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}; {HOURS:g} h of flow, {n:,} events"
    )
    print("| run | seconds | events/s | strategy calls | fills |")
    print("|---|---:|---:|---:|---:|")
    for name, wall, calls, nfills in rows:
        print(f"| {name} | {wall:.2f} | {n / wall:,.0f} | {calls} | {nfills} |")


if __name__ == "__main__":
    main()
