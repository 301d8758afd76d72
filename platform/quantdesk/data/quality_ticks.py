"""Quality rules over recorded tick series: duplicate trade ids, times running backwards,
bad prices, gaps in the book's update-id sequence and crossed books after each event."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantdesk.data.quality import ERROR, WARNING, Finding
from quantdesk.data.ticks import BOOK, DIFF, SNAPSHOT, TRADES, apply_event, book_events


def check_ticks(frame: pd.DataFrame, kind: str) -> list[Finding]:
    """Every finding for one trades or book frame (raw or as stored)."""
    if kind == TRADES:
        return check_trades(frame)
    if kind == BOOK:
        return check_book(frame)
    raise ValueError(f"not a tick series kind: {kind!r}")


def _finding(rule: str, severity: str, hits: list[pd.Timestamp], detail: str) -> list[Finding]:
    return [Finding(rule, severity, len(hits), hits[0], detail)] if hits else []


def check_trades(frame: pd.DataFrame) -> list[Finding]:
    """Duplicate trade ids, ids or times running backwards, non-finite or non-positive prices."""
    times = pd.DatetimeIndex(frame.index)
    ids = frame["id"].to_numpy(dtype=np.int64)
    dup = pd.Series(ids).duplicated(keep="first").to_numpy()
    back_id = np.flatnonzero(ids[1:] < ids[:-1]) + 1
    back_t = np.flatnonzero(times.asi8[1:] < times.asi8[:-1]) + 1
    price = frame["price"].to_numpy(dtype=np.float64)
    amount = frame["amount"].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(price) | (price <= 0) | ~np.isfinite(amount) | (amount < 0)
    return [
        *_finding("duplicate_ids", ERROR, list(times[dup]), f"{int(dup.sum())} repeated id(s)"),
        *_finding("non_monotonic_ids", WARNING, list(times[back_id]), "trade ids run backwards"),
        *_finding("non_monotonic", WARNING, list(times[back_t]), "trade times run backwards"),
        *_finding("bad_values", ERROR, list(times[bad]), "non-finite or non-positive price/amount"),
    ]


def check_book(frame: pd.DataFrame) -> list[Finding]:
    """Replay the events: sequence gaps, diffs before a snapshot, crossed books, time order."""
    gaps: list[pd.Timestamp] = []
    orphans: list[pd.Timestamp] = []
    stale: list[pd.Timestamp] = []
    crossed: list[pd.Timestamp] = []
    backwards: list[pd.Timestamp] = []
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    last_id: int | None = None
    prev_time: pd.Timestamp | None = None
    missing = 0
    for event in book_events(frame):
        if prev_time is not None and event.time < prev_time:
            backwards.append(event.time)
        prev_time = event.time
        if event.kind == DIFF:
            if last_id is None:
                orphans.append(event.time)
                continue
            if event.last_id <= last_id:
                stale.append(event.time)
                continue
            if event.first_id > last_id + 1:
                gaps.append(event.time)
                missing += event.first_id - last_id - 1
        elif event.kind != SNAPSHOT:
            orphans.append(event.time)
            continue
        apply_event(bids, asks, event)
        last_id = event.last_id
        if bids and asks and max(bids) >= min(asks):
            crossed.append(event.time)
    return [
        *_finding("sequence_gap", ERROR, gaps, f"{missing} update id(s) missing between events"),
        *_finding("diff_before_snapshot", ERROR, orphans, "diffs with no snapshot to apply to"),
        *_finding("stale_diff", WARNING, stale, "diffs at or before the book's update id"),
        *_finding("crossed_book", ERROR, crossed, "best bid >= best ask after the event"),
        *_finding("non_monotonic", WARNING, backwards, "event times run backwards"),
    ]
