"""Recorded tick series: trades and L2 book events (snapshots + diffs), and book replay.

A "trades" series holds one row per trade: its exchange id, price, amount and taker side
(+1 buy, -1 sell), indexed by trade time. A "book" series holds one row per price level of each
event: kind 0 is a REST snapshot (first_id = last_id = its lastUpdateId), kind 1 a depth diff
with Binance's U (first_id) and u (last_id); side 0 bids, 1 asks, amount 0 removes the level.
A diff that changes nothing is kept as one row with side -1, so the id sequence stays whole.
Book rows keep the order they were recorded in: replay applies them in that order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantdesk.errors import DataError, NoDataError

TRADES = "trades"
BOOK = "book"
TICK_KINDS = (TRADES, BOOK)
TRADE_COLUMNS = ["id", "price", "amount", "side"]
BOOK_COLUMNS = ["kind", "first_id", "last_id", "side", "price", "amount"]
SNAPSHOT, DIFF = 0, 1
BID, ASK, NO_LEVEL = 0, 1, -1
_INTS = {"id", "side", "kind", "first_id", "last_id"}
_BOOK_KEY = ["kind", "first_id", "last_id", "side", "price"]


@dataclass(frozen=True)
class BookEvent:
    """One snapshot or diff: its ids, time and the (price, amount) levels per side."""

    time: pd.Timestamp
    kind: int
    first_id: int
    last_id: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


def tick_columns(kind: str) -> list[str]:
    """The columns of a trades or book series."""
    return TRADE_COLUMNS if kind == TRADES else BOOK_COLUMNS


def _typed(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"data lacks column(s) {', '.join(missing)}")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise DataError("data must be indexed by time (a DatetimeIndex)")
    index = frame.index
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    out = {}
    for c in columns:
        values = pd.to_numeric(frame[c], errors="coerce")
        if c in _INTS:
            if values.isna().any():
                raise DataError(f"column {c} has missing or non-numeric values")
            out[c] = values.to_numpy(dtype=np.int64)
        else:
            out[c] = values.to_numpy(dtype=np.float64)
    return pd.DataFrame(out, index=index.as_unit("ns").rename("time"))


def normalize_ticks(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Typed columns and a UTC 'time' index; trades sorted by id (last copy of an id wins),
    book rows in recorded order with repeated rows (same event and level) dropped."""
    out = _typed(frame, tick_columns(kind))
    if kind == TRADES:
        out = out[~out["id"].duplicated(keep="last")]
        return out.iloc[np.argsort(out["id"].to_numpy(), kind="stable")]
    key = out[_BOOK_KEY].copy()
    key["price"] = key["price"].fillna(-1.0)
    return out[~key.duplicated(keep="first").to_numpy()]


def trades_frame(trades: list[dict]) -> pd.DataFrame:
    """A trades frame from ccxt unified trades (id, timestamp, price, amount, side)."""
    return pd.DataFrame(
        {
            "id": [int(t["id"]) for t in trades],
            "price": [float(t["price"]) for t in trades],
            "amount": [float(t["amount"]) for t in trades],
            "side": [1 if t.get("side") == "buy" else -1 for t in trades],
        },
        index=pd.to_datetime([int(t["timestamp"]) for t in trades], unit="ms", utc=True),
    )


def book_rows(event: BookEvent) -> pd.DataFrame:
    """The rows one book event is stored as."""
    levels = [(BID, p, q) for p, q in event.bids] + [(ASK, p, q) for p, q in event.asks]
    if not levels:
        levels = [(NO_LEVEL, np.nan, np.nan)]
    n = len(levels)
    return pd.DataFrame(
        {
            "kind": [event.kind] * n,
            "first_id": [event.first_id] * n,
            "last_id": [event.last_id] * n,
            "side": [s for s, _, _ in levels],
            "price": [p for _, p, _ in levels],
            "amount": [q for _, _, q in levels],
        },
        index=pd.DatetimeIndex([event.time] * n),
    )


def book_events(frame: pd.DataFrame) -> Iterator[BookEvent]:
    """The stored book rows grouped back into events, in recorded order."""
    if frame.empty:
        return
    kind = frame["kind"].to_numpy()
    first = frame["first_id"].to_numpy()
    last = frame["last_id"].to_numpy()
    side = frame["side"].to_numpy()
    price = frame["price"].to_numpy(dtype=np.float64)
    amount = frame["amount"].to_numpy(dtype=np.float64)
    change = (kind[1:] != kind[:-1]) | (first[1:] != first[:-1]) | (last[1:] != last[:-1])
    starts = [0, *(np.flatnonzero(change) + 1).tolist(), len(frame)]
    times = frame.index
    for a, b in itertools.pairwise(starts):
        bids = [(price[i], amount[i]) for i in range(a, b) if side[i] == BID]
        asks = [(price[i], amount[i]) for i in range(a, b) if side[i] == ASK]
        yield BookEvent(times[a], int(kind[a]), int(first[a]), int(last[a]), bids, asks)


def apply_event(bids: dict[float, float], asks: dict[float, float], event: BookEvent) -> None:
    """Apply a snapshot (replaces the book) or a diff (amount 0 removes a level) in place."""
    if event.kind == SNAPSHOT:
        bids.clear()
        asks.clear()
    for book, levels in ((bids, event.bids), (asks, event.asks)):
        for p, q in levels:
            if q == 0:
                book.pop(p, None)
            else:
                book[p] = q


@dataclass(frozen=True)
class Book:
    """A rebuilt order book: levels best first, and the update id it stands at."""

    time: pd.Timestamp
    last_id: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


def replay_book(
    frame: pd.DataFrame, at: pd.Timestamp | str | None = None, depth: int | None = None
) -> Book:
    """The book as of time `at` (default: the end) from a stored book series' snapshot+diffs."""
    cutoff = None if at is None else pd.Timestamp(at)
    if cutoff is not None and cutoff.tzinfo is None:
        cutoff = cutoff.tz_localize("UTC")
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    state: tuple[pd.Timestamp, int] | None = None
    for event in book_events(frame):
        if cutoff is not None and event.time > cutoff:
            break
        if event.kind != SNAPSHOT and state is None:
            continue  # diffs recorded before any snapshot cannot be placed
        apply_event(bids, asks, event)
        state = (event.time, event.last_id)
    if state is None:
        raise NoDataError(f"no book snapshot at or before {cutoff or 'the end'}")
    top_bids = sorted(bids.items(), key=lambda kv: -kv[0])[:depth]
    top_asks = sorted(asks.items())[:depth]
    return Book(state[0], state[1], top_bids, top_asks)
