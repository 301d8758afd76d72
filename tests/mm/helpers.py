"""Hand-made flows for the mm tests: a few events whose fills can be worked out by hand."""

from __future__ import annotations

import numpy as np

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
