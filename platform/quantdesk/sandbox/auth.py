"""Binance request authentication (HMAC-SHA256, X-MBX-APIKEY, recvWindow) and IP weights."""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass, field

from quantdesk.sandbox.errors import BinanceError

MAX_RECV_WINDOW = 60_000
DEFAULT_RECV_WINDOW = 5_000


def verify(
    secrets: dict[str, str],
    api_key: str | None,
    query: str,
    body: str,
    params: dict[str, str],
    server_ms: int,
) -> str:
    """Check key, signature and timestamp of a signed request; return the api key."""
    secret = secrets[check_key(secrets, api_key)]
    # Binance signs totalParams = query string followed by the request body, minus signature.
    total = query + body
    payload, sep, signature = total.rpartition("&signature=")
    if not sep:
        raise BinanceError(400, -1102, "Mandatory parameter 'signature' was not sent.")
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise BinanceError(400, -1022, "Signature for this request is not valid.")
    try:
        timestamp = int(params["timestamp"])
        recv_window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW))
    except (KeyError, ValueError):
        raise BinanceError(400, -1102, "Mandatory parameter 'timestamp' was not sent.") from None
    if not 0 < recv_window <= MAX_RECV_WINDOW:
        raise BinanceError(400, -1131, "recvWindow must be less than 60000")
    if timestamp > server_ms + 1000 or server_ms - timestamp > recv_window:
        raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    return api_key


def check_key(secrets: dict[str, str], api_key: str | None) -> str:
    """The X-MBX-APIKEY check alone (Binance's USER_STREAM security type); return the key."""
    if not api_key:
        raise BinanceError(401, -2014, "API-key format invalid.")
    if api_key not in secrets:
        raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    return api_key


@dataclass
class WeightLimiter:
    """Request weight per client IP per window (Binance: 1 minute), with 429 then 418 bans.

    A client that keeps sending after a 429 (more than `strikes` times inside the window) is
    banned with 418 for `ban_s` seconds, as Binance does.
    """

    limit: int = 6000
    window_s: float = 60.0
    strikes: int = 3
    ban_s: float = 120.0
    _used: dict[str, tuple[int, int]] = field(default_factory=dict)  # ip -> (window, weight)
    _strikes: dict[str, int] = field(default_factory=dict)
    _banned_until: dict[str, float] = field(default_factory=dict)

    def charge(self, ip: str, weight: int, now_s: float) -> int:
        """Add weight for ip; return the used weight or raise 429 / 418."""
        banned = self._banned_until.get(ip, 0.0)
        if now_s < banned:
            until = int(banned * 1000)
            raise BinanceError(
                418, -1003, f"Way too much request weight used; IP banned until {until}."
            )
        window = math.floor(now_s / self.window_s)
        w, used = self._used.get(ip, (window, 0))
        if w != window:
            used = 0
            self._strikes[ip] = 0
        if used + weight > self.limit:
            strikes = self._strikes.get(ip, 0) + 1
            self._strikes[ip] = strikes
            self._used[ip] = (window, used)
            if strikes > self.strikes:
                self._banned_until[ip] = now_s + self.ban_s
                raise BinanceError(418, -1003, "Way too much request weight used; IP banned.")
            raise too_many(self.limit)
        self._used[ip] = (window, used + weight)
        return used + weight

    def used(self, ip: str, now_s: float) -> int:
        """Weight used by ip in the current window."""
        w, used = self._used.get(ip, (None, 0))
        return used if w == math.floor(now_s / self.window_s) else 0

    def reset(self) -> None:
        """Forget all usage and bans."""
        self._used.clear()
        self._strikes.clear()
        self._banned_until.clear()


def too_many(limit: int) -> BinanceError:
    """HTTP 429 / -1003."""
    return BinanceError(
        429,
        -1003,
        f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE.",
    )


@dataclass
class OrderCounter:
    """Binance's ORDERS limits: new orders per account per window (e.g. 100 per 10 s)."""

    windows: tuple[tuple[int, int], ...]  # (seconds, limit)
    _counts: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)

    def charge(self, account: str, now_s: float) -> dict[str, str]:
        """Count one new order; return the X-MBX-ORDER-COUNT-* headers or raise 429 / -1015."""
        counts = []
        for seconds, limit in self.windows:
            window = math.floor(now_s / seconds)
            w, used = self._counts.get((account, seconds), (window, 0))
            used = used if w == window else 0
            if used + 1 > limit:
                raise BinanceError(
                    429,
                    -1015,
                    f"Too many new orders; current limit is {limit} orders per {_span(seconds)}.",
                )
            counts.append((seconds, window, used + 1))
        headers = {}
        for seconds, window, used in counts:
            self._counts[(account, seconds)] = (window, used)
            headers[f"X-MBX-ORDER-COUNT-{_interval(seconds)}"] = str(used)
        return headers

    def reset(self) -> None:
        """Forget all counts."""
        self._counts.clear()


_UNITS = ((86_400, "D", "DAY"), (3_600, "H", "HOUR"), (60, "M", "MINUTE"), (1, "S", "SECOND"))


def _interval(seconds: int) -> str:
    """10 -> '10S', 60 -> '1M', 86400 -> '1D' (Binance's header suffixes)."""
    for size, letter, _ in _UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{letter}"
    return f"{seconds}S"


def _span(seconds: int) -> str:
    """10 -> '10 SECOND', 60 -> 'MINUTE' (Binance's wording in -1015)."""
    for size, _, word in _UNITS:
        if seconds % size == 0:
            n = seconds // size
            return word if n == 1 else f"{n} {word}"
    return f"{seconds} SECOND"


def rate_limits(weight_limit: int, order_windows: tuple[tuple[int, int], ...]) -> list[dict]:
    """exchangeInfo `rateLimits`: the request weight per minute and each ORDERS window."""
    out = [_limit("REQUEST_WEIGHT", 60, weight_limit)]
    return out + [_limit("ORDERS", seconds, limit) for seconds, limit in order_windows]


def _limit(kind: str, seconds: int, limit: int) -> dict:
    for size, _, word in _UNITS:
        if seconds % size == 0:
            return {
                "rateLimitType": kind,
                "interval": word,
                "intervalNum": seconds // size,
                "limit": limit,
            }
    raise ValueError(seconds)
