"""Parsing user-given times into UTC timestamps."""

from __future__ import annotations

import pandas as pd

from quantdesk.errors import DataError


def parse_time(value: str | int | float | pd.Timestamp) -> pd.Timestamp:
    """A UTC Timestamp from an ISO date/time, a Timestamp, or integer epoch milliseconds."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            ts = pd.Timestamp(int(value), unit="ms")
        else:
            ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"invalid time {value!r}: use e.g. 2024-01-31 or 2024-01-31T12:00") from exc
    if ts is pd.NaT:
        raise DataError(f"invalid time {value!r}: use e.g. 2024-01-31 or 2024-01-31T12:00")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def to_ms(ts: pd.Timestamp) -> int:
    """Epoch milliseconds of a timestamp (UTC)."""
    return int(parse_time(ts).value // 1_000_000)
