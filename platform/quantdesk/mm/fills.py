"""Queue-position fill model (in the spirit of hftbacktest), latency and fees: the numba kernel
that matches our resting orders against the event flow.

Our orders never change the market's book (their size is not in the flow); each tracks the
size ahead of it at its price:
- an order joins behind the size already at its level (a level behind the touch: `deep_queue`
  ahead, the flow only shows the touch; inside the spread: nothing ahead);
- a trade at its price consumes the queue ahead first, then the order; a trade through its
  price (worse for the aggressor), or the opposite touch reaching it, fills it whole;
- a size decrease at its level that is not a trade is a cancel: `RiskAverse` never advances
  the order for it, `ProbQueue` advances it by the part of the cancel likely ahead of it
  (hftbacktest's PowerProbQueueModel: P(behind) = back^n / (back^n + front^n)).
An order or cancel reaches the exchange `entry_ms` after the strategy sent it, and the strategy
sees each event `feed_ms` after it happened; orders that would cross on arrival are rejected
(post-only). Fees are a fraction of notional per venue; a negative maker fee is a rebate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

# order table columns (float64; times are ns since the flow's start, exact below 2**53)
O_LIVE, O_SIDE, O_PTICK, O_QTY, O_QUEUE, O_T_ACTIVE, O_T_CANCEL = 0, 1, 2, 3, 4, 5, 6
O_ID, O_LEVEL, O_T_AMEND, O_NEW_QTY, O_FILLED = 7, 8, 9, 10, 11
O_COLUMNS = 12
FREE, PENDING, ACTIVE = 0, 1, 2
NEVER = 2.0**62

# fill table columns
F_TIME, F_SIDE, F_PRICE, F_QTY, F_MID, F_FEE, F_MAKER, F_ORDER, F_POS = 0, 1, 2, 3, 4, 5, 6, 7, 8
F_COLUMNS = 9

# kernel state (float64): the exchange touch before the next event, counters, uptime
S_BID, S_ASK, S_BSZ, S_ASZ, S_LAST_T, S_UPTIME, S_REJECTS, S_VIEW_BID, S_VIEW_ASK = range(9)
S_CHANGED = 9  # counts orders done or resized without a fill: Python re-reads the table then
S_SIZE = 10

MAX_SAME_TIME = 16  # room in the fill table for events sharing one timestamp

# why the kernel returned
END, FILLED, TOUCH, TIMER, TRADE_SEEN, FULL = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class RiskAverse:
    """Cancels never advance a resting order: only trades at its price do (the safe bound)."""

    code: int = 0
    power: float = 1.0


@dataclass(frozen=True)
class ProbQueue:
    """Cancels advance an order by the share likely ahead of it (power n of front/back)."""

    power: float = 2.0
    code: int = 1


QUEUE_MODELS = {"risk_averse": RiskAverse(), "prob": ProbQueue()}


@dataclass(frozen=True)
class Venue:
    """Fees as fractions of notional; a negative fee is a rebate paid to us."""

    name: str
    maker_fee: float
    taker_fee: float


VENUES = {
    "binance-um": Venue("binance-um", 0.0002, 0.0005),
    "rebate": Venue("rebate", -0.00005, 0.0003),  # a maker-rebate tier (-0.5 bp)
    "zero": Venue("zero", 0.0, 0.0),
}


@dataclass(frozen=True)
class Latency:
    """Feed latency (event to strategy) and order-entry latency (strategy to exchange), ms."""

    feed_ms: float = 5.0
    entry_ms: float = 10.0

    @property
    def action_ns(self) -> int:
        """ns from an event to the exchange acting on an order decided on it."""
        return round((self.feed_ms + self.entry_ms) * 1e6)


@nb.njit(cache=True)
def cancel_advance(front: float, back: float, cancelled: float, code: int, power: float) -> float:
    """The queue ahead after `cancelled` left a level holding front (ahead) + back (behind)."""
    if code == 0 or cancelled <= 0:
        return front
    fb = back**power
    ff = front**power
    prob_behind = fb / (fb + ff) if fb + ff > 0 else 0.0
    est = front - (1.0 - prob_behind) * cancelled + min(back - prob_behind * cancelled, 0.0)
    return max(est, 0.0)


@nb.njit(cache=True)
def join_queue(side: int, ptick: int, bid: int, ask: int, bsz: float, asz: float, deep: float):
    """Size ahead of an order arriving at ptick, or -1 when it would cross (post-only reject)."""
    if side > 0:
        if ptick >= ask:
            return -1.0
        if ptick == bid:
            return bsz
        return deep if ptick < bid else 0.0
    if ptick <= bid:
        return -1.0
    if ptick == ask:
        return asz
    return deep if ptick > ask else 0.0


@nb.njit(cache=True)
def _fill(orders, k, qty, t, mid, tick, fee_rate, fills, nfill, pos):
    price = orders[k, O_PTICK] * tick
    fills[nfill, F_TIME] = t
    fills[nfill, F_SIDE] = orders[k, O_SIDE]
    fills[nfill, F_PRICE] = price
    fills[nfill, F_QTY] = qty
    fills[nfill, F_MID] = mid
    fills[nfill, F_FEE] = fee_rate * price * qty
    fills[nfill, F_MAKER] = 1.0
    fills[nfill, F_ORDER] = orders[k, O_ID]
    fills[nfill, F_POS] = pos
    orders[k, O_QTY] -= qty
    orders[k, O_FILLED] += qty
    if orders[k, O_QTY] <= 1e-12:
        orders[k, O_LIVE] = FREE
    return nfill + 1


@nb.njit(cache=True)
def advance(
    i0,
    t_ns,
    kind,
    side,
    ptick,
    size,
    bid_t,
    ask_t,
    bid_sz,
    ask_sz,
    orders,
    state,
    fills,
    nfill,
    stop_t,
    watch_trades,
    watch_touch,
    touch_after,
    qcode,
    qpower,
    deep,
    maker_fee,
    tick,
):
    """Process events from i0 until one needs the strategy; (next index, fills, reason).

    Returns after an event that filled us (FILLED), moved the touch away from what the
    strategy last saw (TOUCH, if watch_touch, from touch_after on), printed a trade when
    watched (TRADE_SEEN), before the first event at or after stop_t (TIMER), with the fill
    table nearly full (FULL) or at the end.
    """
    n = len(t_ns)
    nord = orders.shape[0]
    cap = fills.shape[0] - nord * MAX_SAME_TIME - 2
    nfill0 = nfill
    for i in range(i0, n):
        t = float(t_ns[i])
        if t >= stop_t:
            return i, nfill, TIMER
        pb = int(state[S_BID])
        pa = int(state[S_ASK])
        pbs = state[S_BSZ]
        pas = state[S_ASZ]
        mid = (pb + pa) * 0.5 * tick
        # uptime: both sides quoted over the time since the last event
        has_bid = False
        has_ask = False
        for k in range(nord):
            live = orders[k, O_LIVE]
            if live == ACTIVE:
                if orders[k, O_SIDE] > 0:
                    has_bid = True
                else:
                    has_ask = True
        if has_bid and has_ask:
            state[S_UPTIME] += t - state[S_LAST_T]
        state[S_LAST_T] = t
        # orders, amends and cancels that reached the exchange before this event
        for k in range(nord):
            live = orders[k, O_LIVE]
            if live == FREE:
                continue
            if orders[k, O_T_CANCEL] <= t:
                orders[k, O_LIVE] = FREE
                state[S_CHANGED] += 1
                continue
            if live == PENDING and orders[k, O_T_ACTIVE] <= t:
                q = join_queue(
                    int(orders[k, O_SIDE]), int(orders[k, O_PTICK]), pb, pa, pbs, pas, deep
                )
                if q < 0:
                    orders[k, O_LIVE] = FREE
                    state[S_REJECTS] += 1
                    state[S_CHANGED] += 1
                    continue
                orders[k, O_QUEUE] = q
                orders[k, O_LIVE] = ACTIVE
            if orders[k, O_T_AMEND] <= t:
                # a size decrease keeps the queue position; never below what already filled
                orders[k, O_QTY] = min(orders[k, O_QTY], orders[k, O_NEW_QTY])
                orders[k, O_T_AMEND] = NEVER
                state[S_CHANGED] += 1
                if orders[k, O_QTY] <= 1e-12:
                    orders[k, O_LIVE] = FREE
        b = bid_t[i]
        a = ask_t[i]
        bs = bid_sz[i]
        asz = ask_sz[i]
        if kind[i] == 1:
            s = side[i]
            tp = ptick[i]
            ts = size[i]
            for k in range(nord):
                if orders[k, O_LIVE] != ACTIVE or orders[k, O_SIDE] == s:
                    continue
                op = orders[k, O_PTICK]
                through = op < tp if s > 0 else op > tp
                if through:
                    nfill = _fill(
                        orders, k, orders[k, O_QTY], t, mid, tick, maker_fee, fills, nfill, i - 1
                    )
                elif op == tp:
                    ahead = orders[k, O_QUEUE]
                    got = min(max(ts - ahead, 0.0), orders[k, O_QTY])
                    orders[k, O_QUEUE] = max(ahead - ts, 0.0)
                    if got > 0:
                        nfill = _fill(orders, k, got, t, mid, tick, maker_fee, fills, nfill, i - 1)
        # the book after the event: crossings, a level becoming the touch, cancels ahead
        for k in range(nord):
            if orders[k, O_LIVE] != ACTIVE:
                continue
            op = int(orders[k, O_PTICK])
            if orders[k, O_SIDE] > 0:
                mine, prev_mine, now_sz, prev_sz, opp = b, pb, bs, pbs, a
                crossed = op >= opp
                inside = op > mine
            else:
                mine, prev_mine, now_sz, prev_sz, opp = a, pa, asz, pas, b
                crossed = op <= opp
                inside = op < mine
            if crossed:
                nfill = _fill(
                    orders, k, orders[k, O_QTY], t, mid, tick, maker_fee, fills, nfill, i - 1
                )
            elif inside:
                orders[k, O_QUEUE] = 0.0
            elif op == mine:
                q = orders[k, O_QUEUE]
                if kind[i] == 0 and prev_mine == mine and now_sz < prev_sz:
                    q = cancel_advance(q, max(prev_sz - q, 0.0), prev_sz - now_sz, qcode, qpower)
                orders[k, O_QUEUE] = min(q, now_sz)
        state[S_BID] = b
        state[S_ASK] = a
        state[S_BSZ] = bs
        state[S_ASZ] = asz
        if nfill >= cap:
            return i + 1, nfill, FULL
        # events sharing a timestamp (one order walking the book) reach the strategy together
        if i + 1 < n and t_ns[i + 1] == t_ns[i]:
            continue
        if nfill > nfill0:
            return i + 1, nfill, FILLED
        if watch_touch and t >= touch_after and (b != state[S_VIEW_BID] or a != state[S_VIEW_ASK]):
            return i + 1, nfill, TOUCH
        if watch_trades and kind[i] == 1:
            return i + 1, nfill, TRADE_SEEN
    return n, nfill, END


def new_orders(slots: int = 64) -> np.ndarray:
    """An empty order table (every slot free, no cancel or amend scheduled)."""
    table = np.zeros((slots, O_COLUMNS))
    table[:, O_T_CANCEL] = NEVER
    table[:, O_T_AMEND] = NEVER
    return table
