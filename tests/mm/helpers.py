"""Hand-made flows for the mm tests: a few events whose fills can be worked out by hand, and a
small recording of trades and L2 book in a store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.data.ticks import BookEvent, book_rows
from quantdesk.mm.flow import BOOK, TRADE, Flow, FlowConfig

TICK = 0.01


def make_flow(events: list[tuple], depth: float = 10.0) -> Flow:
    """Events as (t_ms, kind, side, price_tick, size, bid_tick, ask_tick, bid_size, ask_size)."""
    cols = list(zip(*events, strict=True))
    t = np.array([round(v * 1e6) for v in cols[0]], np.int64)
    config = FlowConfig(hours=1.0, tick=TICK, mid=100.0, depth=depth)
    return Flow(
        config,
        t,
        np.array(cols[1], np.int8),
        np.array(cols[2], np.int8),
        np.array(cols[3], np.int64),
        np.array(cols[4], float),
        np.zeros(len(t), bool),
        np.array(cols[5], np.int64),
        np.array(cols[6], np.int64),
        np.array(cols[7], float),
        np.array(cols[8], float),
    )


def book(t_ms: float, bid: int, ask: int, bsz: float, asz: float) -> tuple:
    """A book event: the touch after it."""
    return (t_ms, BOOK, 1, bid, bsz, bid, ask, bsz, asz)


def sell(t_ms: float, price: int, size: float, bid: int, ask: int, bsz: float, asz: float) -> tuple:
    """A sell-aggressor trade at price, then the touch."""
    return (t_ms, TRADE, -1, price, size, bid, ask, bsz, asz)


def buy(t_ms: float, price: int, size: float, bid: int, ask: int, bsz: float, asz: float) -> tuple:
    """A buy-aggressor trade at price, then the touch."""
    return (t_ms, TRADE, 1, price, size, bid, ask, bsz, asz)


# -- a recording: trades and book events of one symbol, written with the store's writer

T0 = pd.Timestamp("2024-03-01", tz="UTC")
SYMBOL = "BTC/USDT"
TRADES_KEY = SeriesKey("binance", "spot", SYMBOL, "trades")
BOOK_KEY = SeriesKey("binance", "spot", SYMBOL, "book")


def stamp(seconds: float) -> pd.Timestamp:
    """T0 + seconds."""
    return T0 + pd.Timedelta(seconds=seconds)


# (seconds, id, price, amount, aggressor side)
TRADES = [
    (-1.0, 1, 99.99, 3.0, -1),  # before the first snapshot: no book to place it in
    (1.0, 2, 99.99, 2.0, -1),
    (2.0, 3, 99.99, 2.0, -1),
    (3.0, 4, 99.99, 2.0, -1),
    (5.0, 5, 100.02, 4.0, 1),
    (6.0, 6, 99.98, 10.0, -1),  # takes what is left at 99.99, then all of 99.98
]
EVENTS = [
    BookEvent(stamp(-0.5), 1, 90, 90, [(99.95, 1.0)], []),  # a diff before any snapshot
    BookEvent(
        stamp(0),
        0,
        100,
        100,
        [(99.99, 5.0), (99.98, 10.0), (99.97, 8.0)],
        [(100.01, 7.0), (100.02, 10.0), (100.03, 9.0)],
    ),
    BookEvent(stamp(1), 1, 101, 101, [(99.99, 3.0)], []),  # reports trade 2: nothing new
    BookEvent(stamp(2.5), 1, 102, 102, [(99.99, 4.0)], []),  # 1 left after trade 3, 3 added
    BookEvent(stamp(4), 1, 103, 103, [], [(100.01, 0.0)]),  # the ask level is cancelled
]


def recorded_trades() -> pd.DataFrame:
    """TRADES as a store trades frame."""
    return pd.DataFrame(
        {
            "id": [r[1] for r in TRADES],
            "price": [r[2] for r in TRADES],
            "amount": [r[3] for r in TRADES],
            "side": [r[4] for r in TRADES],
        },
        index=pd.DatetimeIndex([stamp(r[0]) for r in TRADES]),
    )


def write_recording(root: Path) -> DataStore:
    """A store at root holding TRADES and EVENTS of SYMBOL (binance spot), as recorded."""
    store = DataStore(root)
    store.append(TRADES_KEY, recorded_trades())
    store.append(BOOK_KEY, pd.concat([book_rows(e) for e in EVENTS]))
    return store
