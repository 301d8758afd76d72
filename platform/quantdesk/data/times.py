"""Parsing user-given times into UTC timestamps, within the range market data can have."""

from __future__ import annotations

import pandas as pd

from quantdesk.errors import DataError

# Market data starts after the Unix epoch and nothing plans bars past 2100; beyond these a
# time is a typo, and pandas' nanosecond timestamps cannot hold years before 1677 or after 2262.
MIN_TIME = pd.Timestamp("1970-01-01", tz="UTC")
MAX_TIME = pd.Timestamp("2100-01-01", tz="UTC")
RANGE_TEXT = f"{MIN_TIME:%Y-%m-%d} .. {MAX_TIME - pd.Timedelta(days=1):%Y-%m-%d}"
_HINT = "use e.g. 2024-01-31 or 2024-01-31T12:00"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_time(value: str | int | float | pd.Timestamp) -> pd.Timestamp:
    """A UTC Timestamp from an ISO date/time, a Timestamp, or integer epoch milliseconds."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            ts = pd.Timestamp(int(value), unit="ms")
        else:
            ts = pd.Timestamp(value)
        if ts is not pd.NaT:
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:
        # OutOfBoundsDatetime is a ValueError: years pandas cannot hold land here too.
        raise DataError(f"invalid time {_shown(value)}: {_HINT}") from exc
    if ts is pd.NaT:
        raise DataError(f"invalid time {_shown(value)}: {_HINT}")
    if not MIN_TIME <= ts < MAX_TIME:
        raise DataError(f"time {_shown(value)} is out of range: use {RANGE_TEXT}")
    return ts.as_unit("ns") if ts.unit != "ns" else ts


def to_ms(ts: pd.Timestamp) -> int:
    """Epoch milliseconds of a timestamp (UTC)."""
    return int(parse_time(ts).value // 1_000_000)
