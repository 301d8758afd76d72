"""Fault injection: latency, 5xx errors, dropped order responses, resets, skew, 429 bursts.

Counted faults ("the next N requests") are exactly reproducible; the random error rate draws
from a generator seeded by the fault configuration, never from the wall clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from typing import Any

from quantdesk.errors import ConfigError

DAY_MS = 86_400_000
# Accepted range per fault: counts are non-negative, latency and skew stay within a day.
_RANGES: dict[str, tuple[float, float]] = {
    "latency_ms": (0, DAY_MS),
    "error_rate": (0, 1),
    "drop_orders": (0, 10**6),
    "hang_orders": (0, 10**6),
    "reset_requests": (0, 10**6),
    "rate_limit_burst": (0, 10**6),
    "server_errors": (0, 10**6),
    "slow_requests": (0, 10**6),
    "slow_ms": (0, DAY_MS),
    "skew_ms": (-DAY_MS, DAY_MS),
    "seed": (0, 2**63),
    "stream_disconnects": (0, 10**6),
    "stream_stall_ms": (0, DAY_MS),
    "depth_gaps": (0, 10**6),
}


@dataclass
class Faults:
    """Active faults; all off by default."""

    latency_ms: int = 0  # added to every non-admin request
    error_rate: float = 0.0  # probability of a 503 without executing the request
    drop_orders: int = 0  # next N order placements execute, then the connection is closed
    hang_orders: int = 0  # next N order placements execute, then the response never comes
    reset_requests: int = 0  # next N requests: connection reset before anything executes
    rate_limit_burst: int = 0  # next N requests answered 429
    server_errors: int = 0  # next N requests answered 503 without executing
    slow_requests: int = 0  # next N requests wait slow_ms before executing
    slow_ms: int = 0
    skew_ms: int = 0  # server clock offset (fetch_time and the recvWindow check)
    seed: int = 0
    stream_disconnects: int = 0  # next N stream connections dropped at the next publish
    stream_stall_ms: int = 0  # streams publish nothing for this long, then catch up
    depth_gaps: int = 0  # next N depth events skip one update id (a gap in U/u)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        """Build from an admin request body; unknown keys, wrong types and ranges are errors."""
        names = {f.name for f in fields(cls) if not f.name.startswith("_")}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        for name, value in data.items():
            lo, hi = _RANGES[name]
            numeric = (
                isinstance(value, float | int) if name == "error_rate" else isinstance(value, int)
            )
            if isinstance(value, bool) or not numeric or not lo <= value <= hi:
                raise ConfigError(f"fault {name} must be a number within {lo}..{hi}")
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in data.items()})

    def as_dict(self) -> dict[str, Any]:
        """Public view."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def take(self, name: str) -> bool:
        """Consume one unit of a counted fault; True if it fires."""
        left = getattr(self, name)
        if left > 0:
            setattr(self, name, left - 1)
            return True
        return False

    def error_now(self) -> bool:
        """Draw whether this request fails with a 5xx."""
        return self.error_rate > 0 and self._rng.random() < self.error_rate
