"""Seeded synthetic order flow: trades and best-level book updates of one instrument.

The book is the touch only (best bid/ask price in ticks and the size there), one tick wide.
Events, superposed and simulated exactly by thinning (Ogata), in continuous time:
- trades: a Hawkes self-exciting process (each trade adds `hawkes_alpha` to the intensity,
  decaying at `hawkes_beta`/s), so trades cluster; sizes are Pareto (heavy tail), capped. A
  trade larger than the touch empties it and walks on to the next level (one event per level).
- book updates: size added (more when the touch is thin: depth refills after being consumed)
  or cancelled at the bid or ask; a level emptied by a cancel moves the book one tick away.
- volatility: the whole book shifts one tick up or down at the rate that gives `vol`.
- informed flow: a share of trades is informed; `informed_delay_ms` later the book shifts
  `informed_ticks` in the trade's direction, so fills against them are followed by adverse moves.

When a level empties the book moves one tick that way and the new levels get fresh sizes (a
new inside level is thin, the level behind is a full `depth`). Same seed, same arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numba as nb
import numpy as np

from quantdesk.errors import BacktestError

BOOK = 0  # kind: a change of the best levels (adds, cancels, shifts)
TRADE = 1  # kind: a trade at the touch (side = aggressor: +1 buy, -1 sell)

SECONDS_PER_YEAR = 365.0 * 86400.0
MAX_WALK = 8  # levels one trade may walk through; the rest of a larger order is dropped


@dataclass(frozen=True)
class FlowConfig:
    """The synthetic market: instrument, arrival rates, sizes, volatility and informed flow."""

    hours: float = 6.0
    tick: float = 0.01
    mid: float = 100.0
    vol: float = 0.6  # annualized volatility of the mid (0.6 = 60%)
    trade_rate: float = 1.0  # baseline trade intensity per second (Hawkes mu)
    hawkes_alpha: float = 2.0  # intensity jump per trade
    hawkes_beta: float = 4.0  # intensity decay per second; alpha/beta < 1 keeps it stationary
    book_rate: float = 20.0  # book updates (adds and cancels at the touch) per second
    depth: float = 30.0  # typical size at a level
    size_min: float = 0.5  # Pareto scale of trade sizes
    size_alpha: float = 1.6  # Pareto tail index (smaller = heavier tail)
    size_cap: float = 200.0
    informed_prob: float = 0.2  # share of trades that are informed
    informed_delay_ms: float = 200.0
    informed_ticks: int = 1
    start_ns: int = 1_704_067_200_000_000_000  # 2024-01-01 00:00 UTC: a fixed epoch for dates

    def check(self) -> None:
        """Raise BacktestError naming the first value outside its range."""
        rules = [
            ("hours", 0 < self.hours <= 24 * 7),
            ("tick", self.tick > 0),
            ("mid", self.mid > 100 * self.tick),
            ("vol", 0 <= self.vol <= 10),
            ("trade_rate", self.trade_rate > 0),
            ("hawkes_alpha", self.hawkes_alpha >= 0),
            ("hawkes_beta", self.hawkes_beta > self.hawkes_alpha),  # branching ratio below 1
            ("book_rate", self.book_rate >= 0),
            ("depth", self.depth > 0),
            ("size_min", self.size_min > 0),
            ("size_alpha", self.size_alpha > 0),
            ("size_cap", self.size_cap >= self.size_min),
            ("informed_prob", 0 <= self.informed_prob <= 1),
            ("informed_delay_ms", self.informed_delay_ms >= 0),
            ("informed_ticks", self.informed_ticks >= 0),
        ]
        for name, ok in rules:
            if not ok:
                raise BacktestError(f"flow: {name}={getattr(self, name)!r} is out of range")

    def jump_rate(self) -> float:
        """One-tick book shifts per second giving the configured volatility."""
        per_sqrt_s = self.vol / math.sqrt(SECONDS_PER_YEAR)
        return (per_sqrt_s * self.mid / self.tick) ** 2


@dataclass(frozen=True)
class Flow:
    """Event arrays, one row per event, the book state given after the event."""

    config: FlowConfig
    time_ns: np.ndarray  # int64, ns since config.start_ns
    kind: np.ndarray  # int8: BOOK or TRADE
    side: np.ndarray  # int8: trade aggressor (+1 buy / -1 sell); book: +1 bid, -1 ask, 0 both
    price_tick: np.ndarray  # int64: trade price, or the changed level's price, in ticks
    size: np.ndarray  # float64: trade size, or the changed level's new size
    informed: np.ndarray  # bool: the trade was informed
    bid_tick: np.ndarray  # int64
    ask_tick: np.ndarray  # int64
    bid_size: np.ndarray  # float64
    ask_size: np.ndarray  # float64
    extra: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.time_ns)

    @property
    def price(self) -> np.ndarray:
        """Event prices in currency."""
        return self.price_tick * self.config.tick

    @property
    def bid(self) -> np.ndarray:
        """Best bid after each event."""
        return self.bid_tick * self.config.tick

    @property
    def ask(self) -> np.ndarray:
        """Best ask after each event."""
        return self.ask_tick * self.config.tick

    @property
    def mid(self) -> np.ndarray:
        """Mid after each event."""
        # the same operations as the kernel's mid, so a fill's mid equals mid[pos] exactly
        return (self.bid_tick + self.ask_tick) * 0.5 * self.config.tick


@nb.njit(cache=True)
def _pareto(size_min: float, alpha: float, cap: float) -> float:
    u = 1.0 - np.random.random()  # (0, 1]: never a zero to the negative power
    return min(size_min * u ** (-1.0 / alpha), cap)


@nb.njit(cache=True)
def _fresh_inside(depth: float) -> float:
    # a new inside level starts thin: the first quotes stepping up
    return max(1.0, np.random.exponential(0.3 * depth))


@nb.njit(cache=True)
def _fresh_behind(depth: float) -> float:
    return depth * (0.5 + np.random.random())


@nb.njit(cache=True)
def _simulate(
    seed: int,
    horizon_s: float,
    mid_tick: int,
    mu: float,
    alpha: float,
    beta: float,
    book_rate: float,
    jump_rate: float,
    depth: float,
    size_min: float,
    size_alpha: float,
    size_cap: float,
    informed_prob: float,
    informed_delay_s: float,
    informed_ticks: int,
    cap: int,
) -> tuple:
    np.random.seed(seed)
    t_ns = np.empty(cap, np.int64)
    kind = np.empty(cap, np.int8)
    side = np.empty(cap, np.int8)
    ptick = np.empty(cap, np.int64)
    size = np.empty(cap, np.float64)
    informed = np.zeros(cap, np.bool_)
    bt = np.empty(cap, np.int64)
    at = np.empty(cap, np.int64)
    bs = np.empty(cap, np.float64)
    asz = np.empty(cap, np.float64)
    # pending informed moves: FIFO (the delay is constant, so they come due in order)
    pend_t = np.empty(cap, np.float64)
    pend_d = np.empty(cap, np.int64)
    head = 0
    tail = 0

    b = mid_tick
    a = mid_tick + 1
    bsize = depth
    asize = depth
    n = 0
    # event 0: the initial book
    t_ns[0] = 0
    kind[0] = 0
    side[0] = 0
    ptick[0] = b
    size[0] = bsize
    bt[0] = b
    at[0] = a
    bs[0] = bsize
    asz[0] = asize
    n = 1
    t = 0.0
    excite = 0.0  # Hawkes intensity above mu, at time t
    while n < cap - MAX_WALK - 2:
        bound = mu + excite + book_rate + jump_rate
        dt = np.random.exponential(1.0 / bound)
        if head < tail and pend_t[head] <= t + dt:
            # an informed move comes due first: shift the book, no other event
            excite *= math.exp(-beta * (pend_t[head] - t))
            t = pend_t[head]
            if t > horizon_s:
                break
            d = pend_d[head] * informed_ticks
            head += 1
            if d == 0:
                continue
            b += d
            a += d
            bsize = _fresh_behind(depth) if d < 0 else _fresh_inside(depth)
            asize = _fresh_behind(depth) if d > 0 else _fresh_inside(depth)
            t_ns[n] = np.int64(t * 1e9)
            kind[n] = 0
            side[n] = 0
            ptick[n] = b if d < 0 else a
            size[n] = bsize if d < 0 else asize
            bt[n] = b
            at[n] = a
            bs[n] = bsize
            asz[n] = asize
            n += 1
            continue
        t += dt
        if t > horizon_s:
            break
        excite *= math.exp(-beta * dt)
        u = np.random.random() * bound
        if u < mu + excite:
            # a trade: walks the book while larger than the touch
            s = 1 if np.random.random() < 0.5 else -1
            want = _pareto(size_min, size_alpha, size_cap)
            inf = np.random.random() < informed_prob
            excite += alpha
            stamp = np.int64(t * 1e9)
            for _ in range(MAX_WALK):
                level = asize if s > 0 else bsize
                price = a if s > 0 else b
                take = min(want, level)
                want -= take
                if take >= level:
                    # the level is emptied: the book moves one tick in the trade's direction
                    b += s
                    a += s
                    if s > 0:
                        asize = _fresh_behind(depth)
                        bsize = _fresh_inside(depth)
                    else:
                        bsize = _fresh_behind(depth)
                        asize = _fresh_inside(depth)
                elif s > 0:
                    asize -= take
                else:
                    bsize -= take
                t_ns[n] = stamp
                kind[n] = 1
                side[n] = s
                ptick[n] = price
                size[n] = take
                informed[n] = inf
                bt[n] = b
                at[n] = a
                bs[n] = bsize
                asz[n] = asize
                n += 1
                if want <= 1e-12:
                    break
            if inf:
                pend_t[tail] = t + informed_delay_s
                pend_d[tail] = s
                tail += 1
        elif u < mu + excite + book_rate:
            on_bid = np.random.random() < 0.5
            level = bsize if on_bid else asize
            if np.random.random() < 0.55:
                # an add: larger when the level is thin, so consumed depth refills
                level += np.random.exponential(0.2 * depth) + 0.3 * max(0.0, depth - level)
            else:
                level -= min(level, np.random.exponential(0.15 * depth))
            if level <= 1e-9:
                # a cancel emptied the level: the book moves one tick away from that side
                d = -1 if on_bid else 1
                b += d
                a += d
                bsize = _fresh_behind(depth) if d < 0 else _fresh_inside(depth)
                asize = _fresh_behind(depth) if d > 0 else _fresh_inside(depth)
                side[n] = 0
                ptick[n] = b if on_bid else a
                size[n] = bsize if on_bid else asize
            else:
                if on_bid:
                    bsize = level
                else:
                    asize = level
                side[n] = 1 if on_bid else -1
                ptick[n] = b if on_bid else a
                size[n] = level
            t_ns[n] = np.int64(t * 1e9)
            kind[n] = 0
            bt[n] = b
            at[n] = a
            bs[n] = bsize
            asz[n] = asize
            n += 1
        elif u < mu + excite + book_rate + jump_rate:
            # volatility: the whole book shifts one tick
            d = 1 if np.random.random() < 0.5 else -1
            b += d
            a += d
            bsize = _fresh_behind(depth) if d < 0 else _fresh_inside(depth)
            asize = _fresh_behind(depth) if d > 0 else _fresh_inside(depth)
            t_ns[n] = np.int64(t * 1e9)
            kind[n] = 0
            side[n] = 0
            ptick[n] = b if d < 0 else a
            size[n] = bsize if d < 0 else asize
            bt[n] = b
            at[n] = a
            bs[n] = bsize
            asz[n] = asize
            n += 1
    full = n >= cap - MAX_WALK - 2
    return (
        full,
        t_ns[:n].copy(),
        kind[:n].copy(),
        side[:n].copy(),
        ptick[:n].copy(),
        size[:n].copy(),
        informed[:n].copy(),
        bt[:n].copy(),
        at[:n].copy(),
        bs[:n].copy(),
        asz[:n].copy(),
    )


def generate_flow(config: FlowConfig | None = None, seed: int = 7) -> Flow:
    """Synthetic trades and book updates over config.hours; identical arrays for one seed."""
    config = config or FlowConfig()
    config.check()
    horizon = config.hours * 3600.0
    mean_trades = config.trade_rate / (1 - config.hawkes_alpha / config.hawkes_beta)
    rate = mean_trades * 2 + config.book_rate + config.jump_rate() + mean_trades
    cap = int(horizon * rate * 1.5) + 10_000
    while True:
        full, *arrays = _simulate(
            int(seed) % (2**32),
            horizon,
            round(config.mid / config.tick),
            config.trade_rate,
            config.hawkes_alpha,
            config.hawkes_beta,
            config.book_rate,
            config.jump_rate(),
            config.depth,
            config.size_min,
            config.size_alpha,
            config.size_cap,
            config.informed_prob,
            config.informed_delay_ms / 1000.0,
            config.informed_ticks,
            cap,
        )
        if not full:
            break
        cap *= 2  # a burstier run than the estimate: simulate again with room (same seed)
    return Flow(config, *arrays)


def bars_to_flow(bars: object, tick: float, start_ns: int | None = None) -> Flow:
    """OPTIMISTIC: OHLCV bars as book shifts along open-high-low-close (or open-low-high-close).

    Each bar becomes book events walking the mid through its extremes, with one zero-size level
    and no queue ahead: a quote fills whenever the price reaches it. Used only when the backtest
    is asked for the named optimistic model; it overstates fills and ignores adverse selection.
    """
    import pandas as pd

    frame = bars if isinstance(bars, pd.DataFrame) else pd.DataFrame(bars)
    missing = {"open", "high", "low", "close"} - set(frame.columns)
    if missing:
        raise BacktestError(f"bars need open/high/low/close columns (missing {sorted(missing)})")
    index = frame.index
    if isinstance(index, pd.DatetimeIndex):
        stamps = index.as_unit("ns").asi8.astype(np.int64)  # a us or s index would be read as ns
    else:
        stamps = np.arange(len(frame), dtype=np.int64) * 60_000_000_000
    origin = int(stamps[0]) if start_ns is None else int(start_ns)
    step = np.diff(stamps, append=stamps[-1] + (stamps[1] - stamps[0] if len(stamps) > 1 else 1))
    rows: list[tuple[int, int]] = []
    for i, (o, h, low, c) in enumerate(frame[["open", "high", "low", "close"]].to_numpy()):
        up_first = c >= o  # a rising bar more likely went to its low first
        path = (o, low, h, c) if up_first else (o, h, low, c)
        for j, price in enumerate(path):
            rows.append((int(stamps[i] - origin + step[i] * j // 4), round(price / tick)))
    t = np.array([r[0] for r in rows], np.int64)
    mid = np.array([r[1] for r in rows], np.int64)
    n = len(t)
    zeros = np.zeros(n)
    config = FlowConfig(tick=tick, mid=float(mid[0] * tick), start_ns=origin)
    return Flow(
        config,
        t,
        np.zeros(n, np.int8),
        np.zeros(n, np.int8),
        mid.copy(),
        zeros,
        np.zeros(n, bool),
        mid - 1,
        mid + 1,
        zeros.copy(),
        zeros.copy(),
        extra={"optimistic_bars": 1.0},
    )


def window(flow: Flow, start_ns: int, end_ns: int) -> Flow:
    """The events in [start_ns, end_ns) (ns since the flow's start), rebased to time 0.

    Event 0 is the book as it stood at start_ns (the last event before it), as a flow's first
    event always is: the backtest starts from that touch. The config's start_ns moves along.
    """
    if not 0 <= start_ns < end_ns:
        raise BacktestError(f"window [{start_ns}, {end_ns}) must be non-empty, from 0 on")
    lo = int(np.searchsorted(flow.time_ns, start_ns, side="left"))
    hi = int(np.searchsorted(flow.time_ns, end_ns, side="left"))
    before = max(lo - 1, 0)  # the event whose book stands at start_ns
    rows = np.arange(max(lo, 1), hi)  # event 0 of the flow is its book, never a trade
    pick = np.concatenate([[before], rows]).astype(np.int64)
    time_ns = flow.time_ns[pick] - start_ns
    time_ns[0] = 0
    kind = flow.kind[pick].copy()
    side = flow.side[pick].copy()
    price_tick = flow.price_tick[pick].copy()
    size = flow.size[pick].copy()
    informed = flow.informed[pick].copy()
    kind[0], side[0], informed[0] = BOOK, 0, False
    price_tick[0], size[0] = flow.bid_tick[before], flow.bid_size[before]
    config = replace(
        flow.config,
        start_ns=flow.config.start_ns + int(start_ns),
        hours=(end_ns - start_ns) / 3.6e12,
    )
    return Flow(
        config,
        time_ns,
        kind,
        side,
        price_tick,
        size,
        informed,
        flow.bid_tick[pick].copy(),
        flow.ask_tick[pick].copy(),
        flow.bid_size[pick].copy(),
        flow.ask_size[pick].copy(),
        extra=dict(flow.extra),
    )
