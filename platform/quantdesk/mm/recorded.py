"""Recorded trades and L2 book from the data store as the mm backtest's event Flow.

The recorder (`quantdesk data record`) stores trades and book events (REST snapshots, then
depth diffs with absolute level sizes). The queue kernel needs what the synthetic flow gives:
one event per trade or touch change, each carrying the touch after it (best bid/ask in ticks
and the size there). The conversion replays the full L2 book and merges the trades in:
- a trade consumes the book it hits (levels better than its price first, then its own level),
  so the touch after a trade already shows the traded size gone; the depth diff reporting the
  same size later changes nothing, and is not read as a cancel ahead of our order (which the
  `prob` queue model would otherwise count a second time);
- a diff sets absolute sizes, so whatever the trades took is corrected to the venue's book;
- at equal timestamps trades come first: the diff stamped with a trade's millisecond is the
  one that reports it;
- a diff that leaves the touch as it was is dropped (deeper levels do not reach the kernel;
  the size ahead of an order placed behind the touch is `deep_queue`, by default the median
  size of levels 2-5 in the recorded snapshots);
- a level set by a diff wins over stale levels of the other side it crosses (removed);
- a side left without any level (a trade took all the recording showed) stands, size 0, at
  the trade's price until a diff fills it again; such events are counted (`emptied`);
- book rows keep their recorded order: an event stamped before the one recorded ahead of it
  takes that one's time, so event times never go back.
Event 0 is the book at the start (the given start, or the first snapshot after it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from quantdesk.data.store import DataStore
from quantdesk.data.ticks import ASK, BID, BOOK, SNAPSHOT, TRADES
from quantdesk.data.times import parse_time
from quantdesk.errors import BacktestError, NoDataError, QuantdeskError
from quantdesk.mm.flow import BOOK as FLOW_BOOK
from quantdesk.mm.flow import TRADE as FLOW_TRADE
from quantdesk.mm.flow import Flow, FlowConfig

PRICE_TOL = 1e-6  # a price off the tick grid by more than this many ticks is a wrong tick


def infer_tick(prices: np.ndarray) -> float:
    """The largest step every gap between distinct prices is a multiple of."""
    unique = np.unique(prices[np.isfinite(prices)])
    gaps = np.diff(unique)
    if not len(gaps):
        raise BacktestError("cannot infer the tick size from one price: pass the tick")
    # float rounding leaves ~1e-16 x the price in each gap: a remainder below 1e-10 x the
    # price is that rounding, not a finer tick
    tol = max(float(np.abs(unique).max()) * 1e-10, 1e-300)
    step = float(gaps.min())
    for gap in np.unique(gaps):
        a, b = float(gap), step
        while b > tol:
            a, b = b, math.fmod(a, b)
            if b > a - tol:  # a remainder of (almost) a whole step is a zero one
                b = 0.0
        step = a
    return round(step, max(-math.floor(math.log10(tol)), 0))  # drop the rounding noise


def _ticks(prices: np.ndarray, tick: float, what: str) -> np.ndarray:
    scaled = prices / tick
    out = np.rint(scaled)
    off = np.abs(scaled - out)
    if len(off) and float(np.nanmax(off)) > PRICE_TOL * max(1.0, float(np.nanmax(np.abs(out)))):
        bad = float(prices[int(np.nanargmax(off))])
        raise BacktestError(f"{what} price {bad:g} is not a multiple of the tick {tick:g}")
    return out.astype(np.int64)


class _Side:
    """One side of the local book: size per price tick and the best price."""

    def __init__(self, sign: int) -> None:
        self.sign = sign  # +1 bids (best = highest), -1 asks (best = lowest)
        self.levels: dict[int, float] = {}
        self.best: int | None = None
        self.last: int | None = None  # the best price before the side was emptied

    def clear(self) -> None:
        """Remove every level."""
        self.levels.clear()
        self._rebest()

    def _rebest(self) -> None:
        if not self.levels:
            self.last = self.best if self.best is not None else self.last
            self.best = None
        else:
            self.best = max(self.levels) if self.sign > 0 else min(self.levels)

    def better(self, a: int, b: int) -> bool:
        """a is a better price than b on this side."""
        return a > b if self.sign > 0 else a < b

    def set(self, price: int, size: float) -> None:
        """Set a level's absolute size (0 removes it)."""
        if size <= 0:
            if self.levels.pop(price, None) is not None and price == self.best:
                self._rebest()
            return
        self.levels[price] = size
        if self.best is None or self.better(price, self.best):
            self.best = price

    def drop_through(self, price: int, inclusive: bool) -> None:
        """Remove levels better than price (and at it, if inclusive)."""
        while self.best is not None and (
            self.better(self.best, price) or (inclusive and self.best == price)
        ):
            del self.levels[self.best]
            self._rebest()

    def take(self, price: int, size: float) -> None:
        """A trade of size at price against this side: better levels go, then its own shrinks."""
        self.drop_through(price, inclusive=False)
        left = self.levels.get(price)
        if left is not None:
            self.set(price, left - size if left - size > 1e-12 else 0.0)
        if self.best is None:
            self.last = price  # emptied: the side stands where the trade printed

    def touch(self) -> tuple[int, float]:
        """(best price, size there); emptied: where the last level was, size 0."""
        if self.best is not None:
            return self.best, self.levels[self.best]
        if self.last is None:
            raise BacktestError("a side of the book has no level yet")  # guarded by the caller
        return self.last, 0.0


def _ns(index: pd.Index) -> np.ndarray:
    """Epoch ns of a time index, whatever its unit (a frame from the store is ns, others vary)."""
    stamps = pd.DatetimeIndex(index)
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
    return stamps.as_unit("ns").asi8


def _events(book: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """Row spans of the stored book events: (starts, ends, time_ns, kind)."""
    kind = book["kind"].to_numpy()
    first = book["first_id"].to_numpy()
    last = book["last_id"].to_numpy()
    change = (kind[1:] != kind[:-1]) | (first[1:] != first[:-1]) | (last[1:] != last[:-1])
    starts = np.concatenate([[0], np.flatnonzero(change) + 1]).astype(np.int64)
    ends = np.concatenate([starts[1:], [len(book)]]).astype(np.int64)
    times = _ns(book.index)[starts]
    return starts, ends, times, kind[starts]


def _deep_size(book: pd.DataFrame, starts: np.ndarray, ends: np.ndarray, kinds: np.ndarray):
    """Median size of levels 2-5 of each side over the snapshots (None without such levels)."""
    side = book["side"].to_numpy()
    price = book["price"].to_numpy(np.float64)
    amount = book["amount"].to_numpy(np.float64)
    sizes: list[float] = []
    for a, b, k in zip(starts, ends, kinds, strict=True):
        if k != SNAPSHOT:
            continue
        for s, sign in ((BID, -1.0), (ASK, 1.0)):
            rows = np.flatnonzero((side[a:b] == s) & (amount[a:b] > 0)) + a
            order = rows[np.argsort(sign * price[rows], kind="stable")]
            sizes.extend(amount[order[1:5]].tolist())
    return float(np.median(sizes)) if sizes else None


def flow_from_ticks(
    trades: pd.DataFrame,
    book: pd.DataFrame,
    start: pd.Timestamp | str | None = None,
    tick: float | None = None,
) -> Flow:
    """The Flow of recorded trades and book rows (store layout), from start (see the module)."""
    if trades.empty:
        raise BacktestError("no recorded trades to replay")
    if book.empty:
        raise BacktestError("no recorded book to replay")
    b_side = book["side"].to_numpy()
    b_amount = book["amount"].to_numpy(np.float64)
    b_price = book["price"].to_numpy(np.float64)
    if tick is None:
        tick = infer_tick(np.concatenate([b_price[b_side >= 0], trades["price"].to_numpy()]))
    if not (math.isfinite(tick) and tick > 0):
        raise BacktestError(f"the tick must be a positive number, got {tick:g}")
    level = b_side >= 0
    b_tick = np.zeros(len(book), np.int64)
    b_tick[level] = _ticks(b_price[level], tick, "book")
    trade_ns = _ns(trades.index)
    order = np.argsort(trade_ns, kind="stable")  # by id in the store; merge by time
    t_time = trade_ns[order]
    t_side = trades["side"].to_numpy()[order].astype(np.int64)
    t_tick = _ticks(trades["price"].to_numpy(np.float64)[order], tick, "trade")
    t_size = trades["amount"].to_numpy(np.float64)[order]

    starts, ends, e_time, e_kind = _events(book)
    snaps = e_time[e_kind == SNAPSHOT]
    if not len(snaps):
        raise BacktestError("the recorded book holds no snapshot: its diffs cannot be placed")
    if start is None:
        t0 = int(snaps[0])
    else:
        t0 = _utc(start).value
        if snaps[0] > t0:
            t0 = int(snaps[0])  # the book is known from its first snapshot on

    bids, asks = _Side(1), _Side(-1)
    synced = False
    # the loops read and write one element at a time: Python lists are several times faster
    side_l, tick_l, amount_l = b_side.tolist(), b_tick.tolist(), b_amount.tolist()
    start_l, end_l, time_l, kind_l = (
        starts.tolist(),
        ends.tolist(),
        e_time.tolist(),
        e_kind.tolist(),
    )
    tt_l, ts_l, tp_l, tq_l = t_time.tolist(), t_side.tolist(), t_tick.tolist(), t_size.tolist()
    out: list[tuple] = []  # (t, kind, side, price tick, size, bid, ask, bid size, ask size)
    emptied = 0

    def apply(e: int) -> None:
        nonlocal synced
        if kind_l[e] == SNAPSHOT:
            bids.clear()
            asks.clear()
            synced = True
        elif not synced:
            return  # diffs before the first snapshot cannot be placed
        top_bid: int | None = None
        top_ask: int | None = None
        for r in range(start_l[e], end_l[e]):
            s, p, q = side_l[r], tick_l[r], amount_l[r]
            if s == BID:
                bids.set(p, q)
                if q > 0 and (top_bid is None or p > top_bid):
                    top_bid = p
            elif s == ASK:
                asks.set(p, q)
                if q > 0 and (top_ask is None or p < top_ask):
                    top_ask = p
        # a level this event set wins over stale levels of the other side it crosses
        if top_bid is not None:
            asks.drop_through(top_bid, inclusive=True)
        if top_ask is not None:
            bids.drop_through(top_ask, inclusive=True)

    def touch() -> tuple[int, int, float, float]:
        # an emptied side stands, with size 0, where its last level was (never crossing)
        (b, bs), (a, asz) = bids.touch(), asks.touch()
        if b >= a:
            if bids.best is None:
                b = a - 1
            else:
                a = b + 1
        return b, a, bs, asz

    def emit(t: int, kind: int, side: int, p: int, sz: float) -> None:
        nonlocal emptied
        t -= t0
        if out and t < out[-1][0]:
            t = out[-1][0]  # stamped before the event it was recorded after
        out.append((t, kind, side, p, sz, *touch()))
        emptied += bids.best is None or asks.best is None

    e = 0
    n_events, n_trades = len(start_l), len(tt_l)
    while e < n_events and time_l[e] <= t0:
        apply(e)
        e += 1
    if bids.best is None or asks.best is None:
        raise BacktestError(
            f"the recorded book has no two-sided touch at {pd.Timestamp(t0, tz='UTC')}"
        )
    emit(t0, FLOW_BOOK, 0, bids.best, bids.touch()[1])
    j = int(np.searchsorted(t_time, t0, side="left"))  # trades before the book are dropped
    while e < n_events or j < n_trades:
        if j < n_trades and (e >= n_events or tt_l[j] <= time_l[e]):
            s, p, q = ts_l[j], tp_l[j], tq_l[j]
            (asks if s > 0 else bids).take(p, q)
            emit(tt_l[j], FLOW_TRADE, s, p, q)
            j += 1
            continue
        before = touch()
        apply(e)
        now = touch()
        if now != before:
            bid_moved = now[0] != before[0] or now[2] != before[2]
            ask_moved = now[1] != before[1] or now[3] != before[3]
            side = 0 if bid_moved and ask_moved else (1 if bid_moved else -1)
            p, sz = (now[0], now[2]) if side >= 0 else (now[1], now[3])
            emit(time_l[e], FLOW_BOOK, side, p, sz)
        e += 1

    cols = list(zip(*out, strict=True))
    out_t = np.array(cols[0], np.int64)
    out_kind = np.array(cols[1], np.int8)
    out_b = np.array(cols[5], np.int64)
    out_a = np.array(cols[6], np.int64)
    out_bs = np.array(cols[7], np.float64)
    first_mid = (out_b[0] + out_a[0]) * 0.5 * tick
    deep = _deep_size(book, starts, ends, e_kind) or float(np.median(out_bs)) or 1.0
    config = FlowConfig(
        hours=max(float(out_t[-1]) / 3.6e12, 1e-9),
        tick=tick,
        mid=first_mid,
        depth=deep,
        informed_prob=0.0,  # not known from a recording: adverse selection is measured instead
        start_ns=t0,
    )
    return Flow(
        config,
        out_t,
        out_kind,
        np.array(cols[2], np.int8),
        np.array(cols[3], np.int64),
        np.array(cols[4], np.float64),
        np.zeros(len(out), bool),
        out_b,
        out_a,
        out_bs,
        np.array(cols[8], np.float64),
        extra={
            "recorded": 1.0,
            "trades": float(np.sum(out_kind == FLOW_TRADE)),
            "emptied": float(emptied),
        },
    )


def _utc(when: str | pd.Timestamp) -> pd.Timestamp:
    try:
        return parse_time(when)
    except QuantdeskError as exc:
        raise BacktestError(str(exc)) from None


def _span(start: Any, end: Any) -> str:
    return f"between {start or 'the start'} and {end or 'the end'}"


def store_flow(
    store: DataStore,
    symbol: str,
    exchange: str | None = None,
    market: str | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    tick: float | None = None,
) -> Flow:
    """The Flow of a symbol's recorded trades and book in the store between start and end."""
    start = None if start is None else _utc(start)
    end = None if end is None else _utc(end)
    try:
        trades_key = store.resolve(symbol, TRADES, exchange, market)
        trades = store.read(trades_key, start, end)
    except NoDataError as exc:
        raise BacktestError(f"no recorded trades: {exc}") from None
    except QuantdeskError as exc:
        raise BacktestError(str(exc)) from None
    if trades.empty:
        raise BacktestError(f"no recorded trades for {trades_key} {_span(start, end)}")
    try:
        book_key = store.resolve(symbol, BOOK, trades_key.exchange, trades_key.market)
        # the book from its beginning: the snapshot the range's diffs continue may be older
        book = store.read(book_key, None, end)
    except NoDataError as exc:
        raise BacktestError(f"no recorded book: {exc}") from None
    except QuantdeskError as exc:
        raise BacktestError(str(exc)) from None
    lo = None if start is None else _utc(start)
    if book.empty or (lo is not None and not (book.index >= lo).any()):
        raise BacktestError(f"no recorded book for {book_key} {_span(start, end)}")
    return flow_from_ticks(trades, book, start, tick)


def flow_to_recording(flow: Flow, levels: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A Flow as the recorder would have stored it: (trades, book) frames in the store layout.

    The book starts with a snapshot of `levels` levels a side (the touch, then the flow's depth
    behind it); after each event (a trade walking the book counts once, with the events at its
    timestamp) one diff sets the touch and the level behind it on both sides, so the replay's
    touch after every timestamp is the flow's. Used to test and time the replay on synthetic
    flow with realistic statistics.
    """
    tick, depth = flow.config.tick, flow.config.depth
    origin = flow.config.start_ns
    t = flow.time_ns
    last_of_stamp = np.append(t[1:] != t[:-1], True)
    trade = flow.kind == FLOW_TRADE
    trades = pd.DataFrame(
        {
            "id": np.flatnonzero(trade).astype(np.int64),
            "price": flow.price_tick[trade] * tick,
            "amount": flow.size[trade],
            "side": flow.side[trade].astype(np.int64),
        },
        index=pd.to_datetime(origin + t[trade], utc=True),
    )
    b0, a0 = int(flow.bid_tick[0]), int(flow.ask_tick[0])
    snap_side = [BID] * levels + [ASK] * levels
    snap_price = [b0 - k for k in range(levels)] + [a0 + k for k in range(levels)]
    snap_amount = [flow.bid_size[0]] + [depth] * (levels - 1)
    snap_amount += [flow.ask_size[0]] + [depth] * (levels - 1)
    rows = np.flatnonzero(last_of_stamp[1:]) + 1  # one diff per timestamp after event 0
    k = len(rows)
    # each diff: bid touch, bid behind, ask touch, ask behind
    side = np.tile(np.array([BID, BID, ASK, ASK]), k)
    bid, ask = flow.bid_tick[rows], flow.ask_tick[rows]
    price = np.column_stack([bid, bid - 1, ask, ask + 1]).ravel()
    full = np.full(k, depth)
    amount = np.column_stack([flow.bid_size[rows], full, flow.ask_size[rows], full]).ravel()
    ids = np.repeat(np.arange(2, k + 2, dtype=np.int64), 4)
    book = pd.DataFrame(
        {
            "kind": np.concatenate([np.zeros(2 * levels, np.int64), np.ones(4 * k, np.int64)]),
            "first_id": np.concatenate([np.ones(2 * levels, np.int64), ids]),
            "last_id": np.concatenate([np.ones(2 * levels, np.int64), ids]),
            "side": np.concatenate([snap_side, side]).astype(np.int64),
            "price": np.concatenate([snap_price, price]) * tick,
            "amount": np.concatenate([snap_amount, amount]).astype(np.float64),
        },
        index=pd.to_datetime(
            origin + np.concatenate([np.zeros(2 * levels, np.int64), np.repeat(t[rows], 4)]),
            utc=True,
        ),
    )
    return trades, book
