"""Implementation shortfall of the execution algorithms against a naive market order, on
replayed books (issue 16).

Books: the market-making research's seeded synthetic flow (quantdesk.mm.flow, 6 hours,
seed 7) replayed; at any instant venue A's book is the flow's touch (price and size) with nine
more levels one tick apart of the flow's typical depth behind it, taker fee 5 bp; venue B
quotes the same mid one tick wider on each side with twice the depth, taker fee 2 bp. Our
orders take liquidity but do not move the replayed book (no impact beyond the book walked):
the comparison is what splitting in time and across venues saves against walking one book
at once, and what waiting costs while the mid moves.

Parent order: buy `BENCH_EXEC_QTY` (default 150, five levels of A's depth) within 10 minutes,
at `BENCH_EXEC_ARRIVALS` (default 40) arrival times spread over the flow. Shortfall in bps of
the arrival mid (A's), fees in, over the filled amount; mean, standard deviation and p95 over
the arrivals.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from quantdesk.execution.algos import due, record, twap, vwap
from quantdesk.execution.books import VenueBook
from quantdesk.execution.routing import route
from quantdesk.mm.flow import TRADE, Flow, FlowConfig, generate_flow
from quantdesk.model import ZERO, Side, dec

QTY = Decimal(os.environ.get("BENCH_EXEC_QTY", "150"))
ARRIVALS = int(os.environ.get("BENCH_EXEC_ARRIVALS", "40"))
HORIZON_MS = 10 * 60_000
SLICES = 10
LEVELS = 10
STEP = Decimal("0.001")
FEE_A, FEE_B = Decimal("0.0005"), Decimal("0.0002")


def books_at(flow: Flow, t_ns: int) -> tuple[VenueBook, VenueBook]:
    """Venue A's and venue B's books at an instant of the replayed flow."""
    i = max(int(np.searchsorted(flow.time_ns, t_ns, side="right")) - 1, 0)
    tick, depth = flow.config.tick, flow.config.depth
    bid, ask = int(flow.bid_tick[i]), int(flow.ask_tick[i])

    def side(top: int, top_size: float, sign: int, wider: int, scale: float):
        levels = [(dec(round((top + sign * wider) * tick, 10)), dec(top_size * scale))]
        levels += [
            (dec(round((top + sign * (wider + k)) * tick, 10)), dec(depth * scale))
            for k in range(1, LEVELS)
        ]
        return tuple(levels)

    a = VenueBook(
        "A",
        side(bid, float(flow.bid_size[i]) or depth, -1, 0, 1.0),
        side(ask, float(flow.ask_size[i]) or depth, 1, 0, 1.0),
        FEE_A,
    )
    b = VenueBook(
        "B",
        side(bid, depth, -1, 1, 2.0),
        side(ask, depth, 1, 1, 2.0),
        FEE_B,
    )
    return a, b


def _fill(books: list[VenueBook], amount: Decimal) -> tuple[Decimal, Decimal]:
    """(amount, cost with fees) of a marketable buy across books."""
    r = route(books, Side.BUY, amount)
    return r.filled, sum((s.notional + s.fee for s in r.slices), ZERO)


def naive(flow: Flow, t0: int, venues: str, profile: list[float]) -> tuple[Decimal, Decimal]:
    """One market order at arrival."""
    a, b = books_at(flow, t0)
    return _fill([a] if venues == "A" else [a, b], QTY)


def scheduled(kind: str) -> Callable[..., tuple[Decimal, Decimal]]:
    """A TWAP or VWAP of SLICES children over the horizon, each a marketable routed order."""

    def run(flow: Flow, t0: int, venues: str, profile: list[float]) -> tuple[Decimal, Decimal]:
        start = t0 // 1_000_000
        if kind == "twap":
            state = twap("x", Side.BUY, QTY, start, start + HORIZON_MS, SLICES, STEP)
        else:
            state = vwap("x", Side.BUY, QTY, start, start + HORIZON_MS, profile, STEP)
        filled, cost = ZERO, ZERO
        for k in range(SLICES):
            now = start + HORIZON_MS * k // SLICES
            for child in due(state, now):
                a, b = books_at(flow, now * 1_000_000)
                got, paid = _fill([a] if venues == "A" else [a, b], child.amount)
                record(state, child.client_id, got, closed=True)
                filled, cost = filled + got, cost + paid
        return filled, cost

    return run


def volume_profile(flow: Flow, t0: int) -> list[float]:
    """Traded volume in each slice's interval of the horizon before arrival (the VWAP's
    forecast of the next horizon: no look at the future)."""
    width = HORIZON_MS * 1_000_000 // SLICES
    edges = t0 - HORIZON_MS * 1_000_000 + width * np.arange(SLICES + 1)
    trades = flow.kind == TRADE
    times, sizes = flow.time_ns[trades], flow.size[trades]
    cum = np.concatenate([[0.0], np.cumsum(sizes)])
    idx = np.searchsorted(times, edges)
    return [float(cum[idx[k + 1]] - cum[idx[k]]) + 1e-9 for k in range(SLICES)]


def main() -> None:
    """Print one markdown table: shortfall per method, and the ratio to the naive order."""
    flow = generate_flow(FlowConfig(hours=6.0), seed=7)
    first, last = int(flow.time_ns[0]), int(flow.time_ns[-1])
    margin = HORIZON_MS * 1_000_000
    arrivals = np.linspace(first + margin, last - margin, ARRIVALS).astype(np.int64)
    methods = [
        ("naive market order, venue A", naive, "A"),
        ("naive market order, routed A+B", naive, "AB"),
        ("TWAP 10 x 1 min, venue A", scheduled("twap"), "A"),
        ("TWAP 10 x 1 min, routed A+B", scheduled("twap"), "AB"),
        ("VWAP 10 x 1 min, routed A+B", scheduled("vwap"), "AB"),
    ]
    rows = []
    t_start = time.perf_counter()
    for name, fn, venues in methods:
        shortfalls, fills = [], []
        for t0 in arrivals:
            a, _ = books_at(flow, int(t0))
            arrival = a.mid()
            filled, cost = fn(flow, int(t0), venues, volume_profile(flow, int(t0)))
            shortfalls.append(float((cost - filled * arrival) / (filled * arrival) * 10_000))
            fills.append(float(filled / QTY))
        rows.append((name, np.array(shortfalls), np.mean(fills)))
    seconds = time.perf_counter() - t_start
    base = rows[0][1].mean()
    print(
        f"\nMachine: {os.cpu_count()} CPUs ({platform.machine()}), Python "
        f"{platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}; buy {QTY} over "
        f"{ARRIVALS} arrivals, {len(flow):,} flow events, {seconds:.1f} s\n"
    )
    print("| method | mean IS bps | std bps | p95 bps | filled | vs naive A |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values, filled in rows:
        print(
            f"| {name} | {values.mean():.2f} | {values.std(ddof=1):.2f} | "
            f"{np.percentile(values, 95):.2f} | {filled:.0%} | {values.mean() / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
