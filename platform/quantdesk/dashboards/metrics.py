"""Prometheus metrics of a session, computed from its journal at every scrape.

`serve_metrics(journal, port)` starts prometheus-client's HTTP server on 127.0.0.1 in the
engine process (`quantdesk run --metrics-port N`). Values come from the journal the engine
writes, so what Grafana shows is what the dashboards and reports show.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from quantdesk.dashboards.session_view import read_session
from quantdesk.engine.journal import Journal

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LEVELS = {"normal": 0, "elevated": 1, "high": 2, "critical": 3}
STATES = ("active", "reducing", "halted")
ACKED = ("new", "partially_filled", "filled", "canceled", "rejected", "expired")


def order_latencies(journal: Journal) -> list[float]:
    """Seconds from sending each order (submitted) to the venue's first answer."""
    events = journal.order_events()
    sent: dict[str, int] = {}
    latencies = []
    for cid, new, ts in zip(events["client_order_id"], events["new"], events["ts"], strict=True):
        if new == "submitted":
            sent.setdefault(cid, int(ts))
        elif new in ACKED and cid in sent:
            latencies.append((int(ts) - sent.pop(cid)) / 1000.0)
    return latencies


def histogram(values: list[float], buckets: tuple[float, ...]) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs, +Inf last."""
    out = [(str(b), float(sum(v <= b for v in values))) for b in buckets]
    return [*out, ("+Inf", float(len(values)))]


class JournalCollector:
    """A prometheus-client collector reading one journal at each scrape."""

    def __init__(self, journal: Journal | str, clock: Callable[[], float] = time.time) -> None:
        """journal: an open Journal, or its path/URL (opened at the first scrape)."""
        self._journal = journal
        self.clock = clock

    @property
    def journal(self) -> Journal:
        """The journal, opened on first use."""
        if not isinstance(self._journal, Journal):
            self._journal = Journal(self._journal)
        return self._journal

    def describe(self) -> list[Metric]:
        """Nothing up front: families are built at collect time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every metric family, from the journal as it is now."""
        journal = self.journal
        view = read_session(journal)
        orders = journal.orders()
        now = self.clock()

        by_status = GaugeMetricFamily(
            "quantdesk_orders_by_status", "Orders by current status", labels=["status"]
        )
        for status, n in sorted(Counter(orders["status"]).items()):
            by_status.add_metric([status], n)
        yield by_status
        total = CounterMetricFamily("quantdesk_orders", "Orders created")
        total.add_metric([], len(orders))
        yield total

        latencies = order_latencies(journal)
        latency = HistogramMetricFamily(
            "quantdesk_order_latency_seconds", "Order round trip: sent to the venue's first answer"
        )
        latency.add_metric([], histogram(latencies, LATENCY_BUCKETS), sum_value=sum(latencies))
        yield latency

        fills = CounterMetricFamily("quantdesk_fills", "Fills journaled")
        fills.add_metric([], journal.count("fills"))
        yield fills

        rejected = orders[orders["status"] == "rejected"]
        rejections = CounterMetricFamily(
            "quantdesk_rejections", "Rejected orders by reason", labels=["reason"]
        )
        for reason, n in sorted(Counter(r.split(":")[0] for r in rejected["reason"]).items()):
            rejections.add_metric([reason or "unknown"], n)
        yield rejections

        position = GaugeMetricFamily("quantdesk_position", "Position quantity", labels=["symbol"])
        realized = GaugeMetricFamily(
            "quantdesk_realized_pnl", "Realized PnL (gross) per symbol", labels=["symbol"]
        )
        for row in journal.positions(include_flat=True).to_dict("records"):
            position.add_metric([row["symbol"]], float(row["quantity"]))
            realized.add_metric([row["symbol"]], float(row["realized_pnl"]))
        yield position
        yield realized

        yield _gauge("quantdesk_equity", "Session equity", _last(view.equity))
        for part, value in view.pnl.items():
            yield _gauge(f"quantdesk_pnl_{part}", f"Session PnL: {part}", float(value))
        yield _gauge("quantdesk_risk_score", "Risk score 0-100", view.score)
        yield _gauge(
            "quantdesk_risk_level", "0 normal, 1 elevated, 2 high, 3 critical", LEVELS[view.level]
        )
        usage = GaugeMetricFamily(
            "quantdesk_limit_usage", "Share of each limit used", labels=["limit"]
        )
        for name, used in sorted(view.usage.items()):
            usage.add_metric([name], used)
        yield usage
        state = GaugeMetricFamily(
            "quantdesk_trading_state", "1 for the current state", labels=["state"]
        )
        for name in STATES:
            state.add_metric([name], 1.0 if view.state == name else 0.0)
        yield state
        breaker = GaugeMetricFamily(
            "quantdesk_breaker_open",
            "1 when the venue's circuit breaker is not closed",
            labels=["venue"],
        )
        for venue, value in sorted(view.breakers.items()):
            breaker.add_metric([venue], 0.0 if value == "closed" else 1.0)
        yield breaker
        events = journal.events()
        diffs = CounterMetricFamily(
            "quantdesk_reconcile_differences", "Reconciliation differences found"
        )
        diffs.add_metric([], int(events["kind"].str.startswith("reconcile_").sum()))
        yield diffs
        yield _gauge(
            "quantdesk_feed_lag_seconds", "Seconds since the last bar was processed",
            _age(view.last_bar_ms, now),
        )  # fmt: skip
        yield _gauge(
            "quantdesk_heartbeat_age_seconds", "Seconds since the journal's newest write",
            _age(view.heartbeat_ms, now),
        )  # fmt: skip


def _gauge(name: str, doc: str, value: Any) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], float("nan") if value is None else float(value))
    return family


def _last(series: Any) -> float | None:
    return float(series.iloc[-1]) if len(series) else None


def _age(ms: int | None, now_s: float) -> float | None:
    return None if ms is None else max(0.0, now_s - ms / 1000.0)


def metrics_registry(journal: Journal | str) -> CollectorRegistry:
    """A registry with the journal's metrics and this process's (memory, CPU, open files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JournalCollector(journal))
    ProcessCollector(registry=registry)
    return registry


def serve_metrics(target: str, port: int, addr: str = "127.0.0.1") -> None:
    """Serve /metrics for the journal at target on addr:port (a background thread); nothing
    is opened or written until the first scrape, so a busy port leaves no journal behind."""
    start_http_server(port, addr=addr, registry=metrics_registry(target))
