"""Pre-trade check latency of the RiskEngine with every limit on.

Every limit is configured (gross and per-order notional caps included), a circuit breaker is
attached, the portfolio holds 8 positions (one a perpetual, so the liquidation-buffer rule runs),
and the rate limits are set high enough that the checks run to the end instead of stopping at
the first denial. Scenarios: a spot market buy that passes, a perpetual buy reduced (by the
per-order notional cap, after every size rule ran), and a limit order denied by the price band
(early exit). `BENCH_RISK_CHECKS` sets the count per scenario (default 20000).
"""

from __future__ import annotations

import os
import platform
import time
from decimal import Decimal as D

import numpy as np

from quantdesk.engine.portfolio import Portfolio
from quantdesk.model import Fill, Instrument, Order, OrderType, Side
from quantdesk.risk.breaker import CircuitBreaker
from quantdesk.risk.checks import RiskEngine
from quantdesk.risk.limits import RiskConfig

CHECKS = int(os.environ.get("BENCH_RISK_CHECKS", "20000"))
BASES = ("BTC", "ETH", "SOL", "BNB", "XRP", "DOGE", "ADA", "DOT", "LTC")


def _engine() -> tuple[RiskEngine, list[int]]:
    symbols = [f"{b}/USDT" for b in BASES] + ["BTC/USDT:USDT"]
    markets = {
        s: Instrument(s, D("0.001"), D("0.01"), min_amount=D("0.001"), min_notional=D(5))
        for s in symbols
    }
    config = RiskConfig(
        max_gross_exposure=D(500_000),
        max_order_notional=D(50_000),
        max_orders_per_second=10**9,
        max_orders_per_minute=10**9,
        cancel_ratio_min_orders=1,
        max_cancel_ratio=10.0,
        strategies={"bench": {"max_symbol_exposure": 0.2}},
    )
    now = [1_700_000_000_000]
    portfolio = Portfolio(cash={"USDT": D(1_000_000)})
    risk = RiskEngine(
        markets,
        config,
        portfolio,
        clock=lambda: now[0],
        leverage=D(5),
        breakers={"bench": CircuitBreaker("bench")},
    )
    for i, s in enumerate(symbols):
        risk.update_price(s, D(100 + i))
    for i, s in enumerate([*symbols[1:8], "BTC/USDT:USDT"]):
        portfolio.apply_fill(
            Fill(f"t{i}", f"qd-{i}", s, Side.BUY, D(100), D(100 + i), D(0), "USDT", 0)
        )
    return risk, now


def _time(risk: RiskEngine, now: list[int], make) -> tuple[np.ndarray, dict[str, int]]:
    latencies = np.empty(CHECKS)
    outcomes: dict[str, int] = {}
    for i in range(CHECKS):
        order = make(i)
        now[0] += 1
        t0 = time.perf_counter_ns()
        decision = risk.check_order(order)
        latencies[i] = time.perf_counter_ns() - t0
        key = decision.decision.value + (f" ({decision.reason.value})" if decision.reason else "")
        outcomes[key] = outcomes.get(key, 0) + 1
    return latencies / 1000, outcomes


def main() -> None:
    """Run the benchmark and print a markdown table for BENCHMARKS.md."""

    def spot(i: int) -> Order:
        return Order(
            f"qd-s{i}",
            "BTC/USDT",
            Side.BUY,
            OrderType.MARKET,
            D("10"),
            0,
            strategy_id="bench",
            venue="bench",
        )

    def perp(i: int) -> Order:
        return Order(
            f"qd-p{i}",
            "BTC/USDT:USDT",
            Side.BUY,
            OrderType.MARKET,
            D("5000"),
            0,
            strategy_id="bench",
            venue="bench",
        )

    def banded(i: int) -> Order:
        return Order(
            f"qd-b{i}",
            "ETH/USDT",
            Side.BUY,
            OrderType.LIMIT,
            D("1"),
            0,
            price=D(150),
            strategy_id="bench",
            venue="bench",
        )

    rows = []
    for name, make in (
        ("spot buy, approved", spot),
        ("perp buy, reduced", perp),
        ("limit outside price band, denied", banded),
    ):
        risk, now = _engine()
        _time(risk, now, make)  # warm-up pass (caches, deques at steady size)
        lat, outcomes = _time(risk, now, make)
        rows.append((name, lat, outcomes))
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}; {CHECKS} checks per row"
    )
    print("| scenario | outcome | checks/s | p50 us | p99 us | max us |")
    print("|---|---|---:|---:|---:|---:|")
    for name, lat, outcomes in rows:
        p50, p99 = np.percentile(lat, [50, 99])
        outcome = ", ".join(f"{k}: {v}" for k, v in outcomes.items())
        print(
            f"| {name} | {outcome} | {1e6 / lat.mean():,.0f} | {p50:.1f} | {p99:.1f} | "
            f"{lat.max():.0f} |"
        )


if __name__ == "__main__":
    main()
