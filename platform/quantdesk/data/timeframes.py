"""Timeframe strings ("1m", "1h", "1d") and their pandas equivalents."""

from __future__ import annotations

import re

import pandas as pd

from quantdesk.errors import DataError

_UNITS = {"m": "min", "h": "h", "d": "D", "w": "W"}
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PATTERN = re.compile(r"^(\d+)([mhdw])$", re.ASCII)
# A year is the longest bar anything is resampled to; longer ones are typos (and overflow
# pandas' Timedelta past ~292 years).
MAX_BAR_MS = 366 * 86_400_000


def _parse(timeframe: str) -> tuple[int, str]:
    match = _PATTERN.match(timeframe or "")
    if not match or int(match.group(1)) == 0:
        raise DataError(f"invalid timeframe {timeframe!r}: use e.g. 1m, 5m, 1h, 4h, 1d, 1w")
    n, unit = int(match.group(1)), match.group(2)
    if n * _UNIT_MS[unit] > MAX_BAR_MS:
        raise DataError(f"invalid timeframe {timeframe!r}: bars are at most 366d")
    return n, unit


def validate_timeframe(timeframe: str) -> str:
    """Return the timeframe unchanged, or raise DataError if it is not like '15m' or '1d'."""
    _parse(timeframe)
    return timeframe


def timeframe_ms(timeframe: str) -> int:
    """Length of one bar in milliseconds."""
    n, unit = _parse(timeframe)
    return n * _UNIT_MS[unit]


def timeframe_delta(timeframe: str) -> pd.Timedelta:
    """Length of one bar as a Timedelta."""
    return pd.Timedelta(milliseconds=timeframe_ms(timeframe))


def pandas_freq(timeframe: str) -> str:
    """The pandas frequency alias for a timeframe ('1h' -> '1h', '1d' -> '1D')."""
    n, unit = _parse(timeframe)
    if unit == "w":
        # Binance weeks open on Monday.
        return f"{n}W-MON"
    return f"{n}{_UNITS[unit]}"
