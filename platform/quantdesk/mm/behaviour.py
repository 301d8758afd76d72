"""The quoting behaviour monitor: message rate, cancel ratio and fill rate over a window.

A market maker that fires orders too fast, cancels far more than it fills or stops getting
filled is misbehaving (a loop, a stale book, a venue-side problem) whatever its PnL says. Each
`check` measures over the last `window_s` seconds and names the first limit broken; the
session then acts (REDUCING or the kill switch, per `monitor_action`). The ratios wait until
`min_orders` orders were placed in the window, so a quiet start never trips them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BehaviourLimits:
    """None switches a limit off."""

    window_s: float = 60.0
    min_orders: int = 20
    max_orders_per_s: float | None = None
    max_cancel_ratio: float | None = None
    min_fill_rate: float | None = None


@dataclass
class BehaviourMonitor:
    """Counts places, cancels and filled orders by time (ms) and checks them against limits."""

    limits: BehaviourLimits
    places: deque[int] = field(default_factory=deque)
    cancels: deque[int] = field(default_factory=deque)
    fills: deque[int] = field(default_factory=deque)

    def placed(self, now_ms: int) -> None:
        """One order placed."""
        self.places.append(now_ms)

    def cancelled(self, now_ms: int) -> None:
        """One cancel sent."""
        self.cancels.append(now_ms)

    def filled(self, now_ms: int) -> None:
        """One of our orders got (part of) a fill."""
        self.fills.append(now_ms)

    def _trim(self, now_ms: int) -> None:
        start = now_ms - self.limits.window_s * 1000
        for queue in (self.places, self.cancels, self.fills):
            while queue and queue[0] <= start:
                queue.popleft()

    def rates(self, now_ms: int) -> dict[str, float]:
        """orders/s (busiest second), cancel ratio and fill rate over the window."""
        self._trim(now_ms)
        per_second: dict[int, int] = {}
        for t in self.places:
            per_second[t // 1000] = per_second.get(t // 1000, 0) + 1
        n = len(self.places)
        return {
            "orders": float(n),
            "orders_per_s": float(max(per_second.values(), default=0)),
            "cancel_ratio": len(self.cancels) / n if n else 0.0,
            "fill_rate": len(self.fills) / n if n else 0.0,
        }

    def check(self, now_ms: int) -> str | None:
        """Why the behaviour breaks a limit now (None: within every limit)."""
        lim = self.limits
        r = self.rates(now_ms)
        if lim.max_orders_per_s is not None and r["orders_per_s"] > lim.max_orders_per_s:
            return f"{r['orders_per_s']:.0f} orders in one second (max {lim.max_orders_per_s:g})"
        if r["orders"] < lim.min_orders:
            return None
        if lim.max_cancel_ratio is not None and r["cancel_ratio"] > lim.max_cancel_ratio:
            return f"cancel ratio {r['cancel_ratio']:.2f} above {lim.max_cancel_ratio:g}"
        if lim.min_fill_rate is not None and r["fill_rate"] < lim.min_fill_rate:
            return f"fill rate {r['fill_rate']:.2%} below {lim.min_fill_rate:.2%}"
        return None
