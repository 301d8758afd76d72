"""The market-making backtest: the numba matching kernel runs through the events and stops
only when the strategy must act; Python then calls the strategy, diffs quotes and applies risk.

The strategy is called at its timer (`on_timer`), when the touch price moved (`on_book`), after
one of our orders filled (`on_fill` if overridden, then `on_book`) and on trades only if it
overrides `on_trade`: calling it on every event would cost far more than the matching. Its
decision on event i reaches the exchange feed + entry latency after event i.

Risk, checked at every stop of the kernel: inventory (a quote is clipped so that inventory
plus every working order on its side stays within `max_inventory`, so no fill can breach it),
a daily loss limit (flatten, stop quoting until the next UTC day) and a max drawdown of equity
from its peak (flatten, stop for good). Flattening is a taker order at the touch.

PnL split, exact: spread capture (side x (mid at fill - price) x qty), inventory PnL (held
inventory x each mid move) and fees (minus fees paid, plus rebates) sum to total PnL (cash +
inventory x last mid). Money is float64 (research simulator); sums use math.fsum.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from quantdesk.errors import BacktestError
from quantdesk.mm import fills as fm
from quantdesk.mm.flow import Flow, bars_to_flow
from quantdesk.mm.quotes import (
    Action,
    Quote,
    QuoteLimits,
    RateLimiter,
    Working,
    diff_quotes,
)
from quantdesk.strategy import QuoteStrategy

QUEUE = "queue"  # the queue-position model on order-book events
OPTIMISTIC_BARS = "optimistic_bars"  # bars as price paths, nothing ahead in the queue
FILL_MODELS = (QUEUE, OPTIMISTIC_BARS)
AS_HORIZONS_MS = (100, 1_000, 10_000)
DAY_NS = 86_400_000_000_000
SLOTS = 32  # resting orders at once; more levels than this is not a quote ladder


@dataclass(frozen=True)
class MMConfig:
    """Venue, latency, queue model, quote limits, timer, risk limits and capital."""

    venue: fm.Venue = fm.VENUES["rebate"]
    latency: fm.Latency = field(default_factory=fm.Latency)
    queue: fm.RiskAverse | fm.ProbQueue = field(default_factory=fm.RiskAverse)
    limits: QuoteLimits = field(default_factory=QuoteLimits)
    timer_ms: float = 1000.0
    capital: float = 10_000.0
    max_inventory: float = 10.0
    daily_loss_limit: float = 200.0  # currency
    max_drawdown: float = 0.05  # fraction of capital
    deep_queue: float | None = None  # size ahead behind the touch; None: the flow's depth
    fill_model: str = QUEUE
    min_size: float = 1e-9
    # touch changes within this long after an on_book call wait (fills never do): a requote
    # throttle, as market makers run to bound message rates; 0 = every touch change
    requote_ms: float = 0.0


@dataclass(slots=True)
class Book:
    """The touch as the strategy sees it."""

    time_ns: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float

    @property
    def mid(self) -> float:
        """(bid + ask) / 2."""
        return (self.bid + self.ask) / 2


@dataclass(slots=True)
class Trade:
    """A market trade: aggressor side (+1 buy, -1 sell), price and size."""

    time_ns: int
    side: int
    price: float
    size: float


@dataclass(slots=True)
class MMFill:
    """One of our fills."""

    time_ns: int
    side: int
    price: float
    qty: float
    mid: float
    fee: float
    maker: bool
    order_id: int


@dataclass(slots=True)
class MMContext:
    """What a hook may read: clock, touch, inventory and limits, working orders."""

    now_ns: int
    start_ns: int
    end_ns: int
    tick: float
    book: Book
    inventory: float = 0.0
    max_inventory: float = 0.0
    cash: float = 0.0
    working: list[Working] = field(default_factory=list)
    quoting: bool = True


@dataclass
class MMResult:
    """A run: fills, sampled paths, the PnL split and the stats."""

    strategy: str
    params: dict[str, Any]
    config: MMConfig
    flow: Flow
    fills: pd.DataFrame
    paths: pd.DataFrame  # per second: mid, inventory, equity, spread, inventory_pnl, fees
    quotes: pd.DataFrame  # the top desired bid/ask at each strategy decision
    stats: dict[str, float]
    stop_reason: str = ""


def _is_bars(data: Any) -> bool:
    cols = getattr(data, "columns", None)
    if cols is None:
        return False
    names = {str(c[0] if isinstance(c, tuple) else c).lower() for c in cols}
    return {"open", "high", "low", "close"} <= names


def as_flow(data: Any, fill_model: str, tick: float | None = None) -> Flow:
    """The events to run on: a Flow, or bars only under the named optimistic model."""
    if fill_model not in FILL_MODELS:
        raise BacktestError(f"unknown fill model {fill_model!r} (known: {', '.join(FILL_MODELS)})")
    if isinstance(data, Flow):
        if data.extra.get("optimistic_bars") and fill_model != OPTIMISTIC_BARS:
            raise BacktestError(
                "this flow was made from bars: run it with fill_model='optimistic_bars'"
            )
        return data
    if _is_bars(data):
        if fill_model != OPTIMISTIC_BARS:
            raise BacktestError(
                "market making needs order-book events (trades and touch updates): OHLCV bars "
                "show neither queue position nor the spread; pass a Flow, or choose "
                f"fill_model={OPTIMISTIC_BARS!r} to accept optimistic fills"
            )
        if tick is None or tick <= 0:
            raise BacktestError("fill_model='optimistic_bars' needs the tick size")
        return bars_to_flow(data, tick)
    raise BacktestError(f"market making runs on a Flow of events, not {type(data).__name__}")


def _overrides(strategy: QuoteStrategy, hook: str) -> bool:
    return getattr(type(strategy), hook) is not getattr(QuoteStrategy, hook)


class _Run:
    """The mutable state of one backtest (orders, fills, inventory, risk)."""

    def __init__(self, strategy: QuoteStrategy, flow: Flow, config: MMConfig) -> None:
        self.strategy, self.flow, self.config = strategy, flow, config
        self.tick = flow.config.tick
        self.action_ns = config.latency.action_ns
        self.orders = fm.new_orders(SLOTS)
        self.state = np.zeros(fm.S_SIZE)
        for col, arr in ((fm.S_BID, flow.bid_tick), (fm.S_ASK, flow.ask_tick)):
            self.state[col] = arr[0]
        self.state[fm.S_BSZ], self.state[fm.S_ASZ] = flow.bid_size[0], flow.ask_size[0]
        self.state[fm.S_VIEW_BID], self.state[fm.S_VIEW_ASK] = flow.bid_tick[0], flow.ask_tick[0]
        self.fills = np.zeros((4096, fm.F_COLUMNS))
        self.nfill = 0
        self.seen = 0
        self.working: dict[int, Working] = {}
        self.slot: dict[int, int] = {}
        self.free = list(range(SLOTS - 1, -1, -1))
        self.next_id = 1
        self.inventory = 0.0
        self.cash = 0.0
        self.peak = config.capital
        self.day = -1
        self.day_equity = config.capital
        self.quoting = True
        self.resume_day = -1
        self.stop_reason = ""
        refresh = getattr(strategy, "refresh_ticks", None)  # a strategy param overrides it
        self.limits = (
            config.limits if refresh is None else replace(config.limits, refresh_ticks=int(refresh))
        )
        self.limiter = RateLimiter(self.limits)
        self.places = self.cancels = self.amends = self.deferred = self.clipped = 0
        self.placed_qty = 0.0
        self.calls = 0
        self.desired: list[Quote] = []
        self.quote_log: list[tuple[int, float, float]] = []
        self.max_abs_inventory = 0.0
        end = int(flow.time_ns[-1])
        book = Book(0, flow.bid[0], flow.ask[0], flow.bid_size[0], flow.ask_size[0])
        self.ctx = MMContext(0, 0, end, self.tick, book, max_inventory=config.max_inventory)

    # -- orders ---------------------------------------------------------------------------
    def sync(self) -> None:
        """Forget orders the kernel finished (filled, cancelled, rejected); refresh sizes."""
        for order_id in list(self.working):
            k = self.slot[order_id]
            row = self.orders[k]
            if row[fm.O_LIVE] == fm.FREE or row[fm.O_ID] != order_id:
                del self.working[order_id], self.slot[order_id]
                self.free.append(k)
            else:
                self.working[order_id].size = row[fm.O_QTY]

    def side_exposure(self, side: int) -> float:
        """Inventory if every working order of side filled, in side's direction."""
        working = sum(w.size for w in self.working.values() if w.side == side)
        return side * self.inventory + working

    def apply(self, desired: list[Quote], now: int) -> None:
        """Diff desired quotes against working orders and send the allowed actions."""
        self.desired = desired
        result = diff_quotes(
            desired,
            list(self.working.values()),
            now,
            self.tick,
            self.limits,
            self.limiter,
        )
        self.deferred += result.deferred
        for action in result.actions:
            self._send(action, now)

    def _send(self, action: Action, now: int) -> None:
        at = float(now + self.action_ns)
        if action.kind == "cancel":
            self.cancel(action.order_id, at)
        elif action.kind == "amend":
            k = self.slot[action.order_id]
            self.orders[k, fm.O_T_AMEND] = at
            self.orders[k, fm.O_NEW_QTY] = action.quote.size
            self.working[action.order_id].size = action.quote.size
            self.amends += 1
        else:
            quote = action.quote
            room = self.config.max_inventory - self.side_exposure(quote.side)
            size = min(quote.size, room)
            if size < quote.size:
                self.clipped += 1
            if size <= self.config.min_size or not self.free:
                return
            k = self.free.pop()
            row = self.orders[k]
            row[:] = 0.0
            row[fm.O_LIVE] = fm.PENDING
            row[fm.O_SIDE] = quote.side
            row[fm.O_PTICK] = int(quote.price / self.tick + 0.5)
            row[fm.O_QTY] = size
            row[fm.O_T_ACTIVE] = at
            row[fm.O_T_CANCEL] = fm.NEVER
            row[fm.O_T_AMEND] = fm.NEVER
            row[fm.O_ID] = self.next_id
            row[fm.O_LEVEL] = quote.level
            self.working[self.next_id] = Working(
                self.next_id, quote.side, row[fm.O_PTICK] * self.tick, size, quote.level, now
            )
            self.slot[self.next_id] = k
            self.next_id += 1
            self.places += 1
            self.placed_qty += size

    def cancel(self, order_id: int, at: float) -> None:
        """Schedule a cancel to reach the exchange at `at`."""
        k = self.slot[order_id]
        self.orders[k, fm.O_T_CANCEL] = min(self.orders[k, fm.O_T_CANCEL], at)
        self.working[order_id].cancelling = True
        self.cancels += 1

    # -- fills and risk ---------------------------------------------------------------------
    def book_fills(self) -> list[MMFill]:
        """Inventory and cash from the fills the kernel added since the last call."""
        out = []
        for row in self.fills[self.seen : self.nfill]:
            side, price, qty, fee = (
                int(row[fm.F_SIDE]),
                row[fm.F_PRICE],
                row[fm.F_QTY],
                row[fm.F_FEE],
            )
            self.inventory += side * qty
            self.cash -= side * price * qty + fee
            self.max_abs_inventory = max(self.max_abs_inventory, abs(self.inventory))
            out.append(
                MMFill(
                    int(row[fm.F_TIME]),
                    side,
                    price,
                    qty,
                    row[fm.F_MID],
                    fee,
                    bool(row[fm.F_MAKER]),
                    int(row[fm.F_ORDER]),
                )
            )
        self.seen = self.nfill
        return out

    def grow_fills(self) -> None:
        """Double the fill table (the kernel stops before it runs out)."""
        self.fills = np.concatenate([self.fills, np.zeros_like(self.fills)])

    def flatten(self, now: int, pos: int) -> None:
        """Cancel everything and close the inventory with a taker order at the touch."""
        for order_id, order in self.working.items():
            if not order.cancelling:
                self.cancel(order_id, float(now + self.action_ns))
        if abs(self.inventory) <= self.config.min_size:
            return
        side = -1 if self.inventory > 0 else 1
        price = (self.state[fm.S_ASK] if side > 0 else self.state[fm.S_BID]) * self.tick
        qty = abs(self.inventory)
        mid = (self.state[fm.S_BID] + self.state[fm.S_ASK]) * 0.5 * self.tick
        if self.nfill + 1 >= len(self.fills) - SLOTS * fm.MAX_SAME_TIME - 2:
            self.grow_fills()
        self.fills[self.nfill] = (
            now,
            side,
            price,
            qty,
            mid,
            self.config.venue.taker_fee * price * qty,
            0.0,
            -1,
            pos,
        )
        self.nfill += 1
        self.book_fills()

    def risk(self, now: int, pos: int) -> None:
        """Daily loss limit and drawdown stop on equity at the current mid."""
        mid = (self.state[fm.S_BID] + self.state[fm.S_ASK]) * 0.5 * self.tick
        equity = self.config.capital + self.cash + self.inventory * mid
        day = (self.flow.config.start_ns + now) // DAY_NS
        if day != self.day:
            self.day, self.day_equity = day, equity
            if not self.quoting and self.resume_day == day:
                self.quoting = True
        self.peak = max(self.peak, equity)
        if not self.quoting:
            return
        if self.peak - equity > self.config.max_drawdown * self.config.capital:
            self.quoting, self.resume_day = False, -1
            self.stop_reason = (
                f"max drawdown at {pd.Timestamp(self.flow.config.start_ns + now, tz='UTC')}"
            )
            self.flatten(now, pos)
        elif equity - self.day_equity < -self.config.daily_loss_limit:
            self.quoting, self.resume_day = False, day + 1
            self.stop_reason = (
                f"daily loss limit at {pd.Timestamp(self.flow.config.start_ns + now, tz='UTC')}"
            )
            self.flatten(now, pos)

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> float:
        """Run through every event; the wall time in seconds."""
        flow, cfg, strategy = self.flow, self.config, self.strategy
        timer_ns = int(cfg.timer_ms * 1e6)
        next_timer = float(timer_ns)
        watch_trades = _overrides(strategy, "on_trade")
        notify_fills = _overrides(strategy, "on_fill")
        deep = cfg.deep_queue if cfg.deep_queue is not None else flow.config.depth
        if flow.extra.get("optimistic_bars"):
            deep = 0.0
        ctx, book = self.ctx, self.ctx.book
        arrays = (
            flow.time_ns,
            flow.kind,
            flow.side,
            flow.price_tick,
            flow.size,
            flow.bid_tick,
            flow.ask_tick,
            flow.bid_size,
            flow.ask_size,
        )
        n = len(flow)
        i = 1
        st = self.state
        changed = st[fm.S_CHANGED]
        requote_ns = cfg.requote_ms * 1e6
        touch_after = 0.0
        started = time.perf_counter()
        while i < n:
            i, self.nfill, reason = fm.advance(
                i,
                *arrays,
                self.orders,
                self.state,
                self.fills,
                self.nfill,
                next_timer,
                watch_trades,
                True,
                touch_after,
                cfg.queue.code,
                cfg.queue.power,
                deep,
                cfg.venue.maker_fee,
                self.tick,
            )
            if reason == fm.END:
                break
            if reason == fm.FULL:
                self.grow_fills()
            now = int(next_timer) if reason == fm.TIMER else int(flow.time_ns[i - 1])
            pos = i - 1
            new_fills = self.book_fills() if self.nfill > self.seen else []
            if new_fills or st[fm.S_CHANGED] != changed:
                changed = st[fm.S_CHANGED]
                self.sync()  # only when the kernel finished or resized an order
            book.time_ns = now
            book.bid = self.state[fm.S_BID] * self.tick
            book.ask = self.state[fm.S_ASK] * self.tick
            book.bid_size, book.ask_size = self.state[fm.S_BSZ], self.state[fm.S_ASZ]
            ctx.now_ns, ctx.inventory, ctx.cash = now, self.inventory, self.cash
            ctx.working = list(self.working.values())
            self.risk(now, pos)
            if not self.quoting and new_fills and abs(self.inventory) > cfg.min_size:
                # an order still resting while its cancel travelled filled after the flatten
                self.flatten(now, pos)
            ctx.quoting = self.quoting
            desired: list[Quote] | None = None
            self.calls += 1
            if notify_fills:
                for fill in new_fills:
                    desired = strategy.on_fill(fill, ctx) or desired
            if reason == fm.TIMER:
                next_timer += timer_ns
                desired = strategy.on_timer(now, ctx)
            elif reason in (fm.TOUCH, fm.FILLED):
                desired = strategy.on_book(book, ctx)
                touch_after = now + requote_ns
            elif reason == fm.TRADE_SEEN:
                j = i - 1
                trade = Trade(now, int(flow.side[j]), flow.price_tick[j] * self.tick, flow.size[j])
                desired = strategy.on_trade(trade, ctx) or None
            self.state[fm.S_VIEW_BID], self.state[fm.S_VIEW_ASK] = (
                self.state[fm.S_BID],
                self.state[fm.S_ASK],
            )
            if not self.quoting:
                continue
            if desired is None and reason == fm.TIMER:
                desired = self.desired  # re-diff: stale orders time out
            if desired is not None:
                self.apply(desired, now)
                top_bid = max((q.price for q in desired if q.side > 0), default=math.nan)
                top_ask = min((q.price for q in desired if q.side < 0), default=math.nan)
                self.quote_log.append((now, top_bid, top_ask))
        return time.perf_counter() - started


def run_mm(
    strategy: QuoteStrategy,
    data: Any,
    config: MMConfig | None = None,
    tick: float | None = None,
) -> MMResult:
    """Backtest a quoting strategy on a Flow of events (bars only under OPTIMISTIC_BARS)."""
    config = config or MMConfig()
    if not isinstance(strategy, QuoteStrategy):
        raise BacktestError(f"{type(strategy).__name__} is not a QuoteStrategy")
    flow = as_flow(data, config.fill_model, tick)
    if len(flow) < 2:
        raise BacktestError("the flow holds fewer than 2 events")
    if hasattr(strategy, "reset"):
        strategy.reset()
    state = _Run(strategy, flow, config)
    wall = state.run()
    return _result(state, wall)


def _result(run: _Run, wall: float) -> MMResult:
    flow, cfg = run.flow, run.config
    n = len(flow)
    rows = run.fills[: run.nfill]
    fills = pd.DataFrame(
        rows, columns=["time_ns", "side", "price", "qty", "mid", "fee", "maker", "order_id", "pos"]
    )
    for col in ("time_ns", "side", "order_id", "pos"):
        fills[col] = fills[col].astype(np.int64)
    fills["maker"] = fills["maker"].astype(bool)
    fills.insert(0, "time", pd.to_datetime(flow.config.start_ns + fills["time_ns"], utc=True))
    mid = flow.mid
    side, qty, price, fee = (
        rows[:, fm.F_SIDE],
        rows[:, fm.F_QTY],
        rows[:, fm.F_PRICE],
        rows[:, fm.F_FEE],
    )
    pos = rows[:, fm.F_POS].astype(np.int64)
    signed = side * qty
    inv = np.cumsum(np.bincount(pos, weights=signed, minlength=n))
    cash_flow = -signed * price - fee
    cash = np.cumsum(np.bincount(pos, weights=cash_flow, minlength=n))
    spread_each = signed * (mid[pos] - price)
    moves = inv[:-1] * np.diff(mid)
    # the split, each part summed exactly rounded: they add up to the total to ~1e-12
    spread_pnl = math.fsum(spread_each)
    fees_pnl = -math.fsum(fee)
    inventory_pnl = math.fsum(moves)
    total = math.fsum(cash_flow) + float(inv[-1]) * float(mid[-1])
    equity = cfg.capital + cash + inv * mid
    # paths sampled each second (the last event at or before it)
    grid = np.arange(0, int(flow.time_ns[-1]) + 1, 1_000_000_000)
    at = np.maximum(np.searchsorted(flow.time_ns, grid, side="right") - 1, 0)
    index = pd.to_datetime(flow.config.start_ns + grid, utc=True)
    paths = pd.DataFrame(
        {
            "mid": mid[at],
            "inventory": inv[at],
            "equity": equity[at],
            "spread": np.cumsum(np.bincount(pos, weights=spread_each, minlength=n))[at],
            "inventory_pnl": np.concatenate([[0.0], np.cumsum(moves)])[at],
            "fees": -np.cumsum(np.bincount(pos, weights=fee, minlength=n))[at],
        },
        index=index,
    )
    paths["total"] = paths["equity"] - cfg.capital
    quotes = pd.DataFrame(run.quote_log, columns=["time_ns", "bid", "ask"])
    quotes.index = pd.to_datetime(flow.config.start_ns + quotes.pop("time_ns"), utc=True)
    stats = _stats(run, fills, paths, mid, wall, total, spread_pnl, inventory_pnl, fees_pnl)
    return MMResult(
        run.strategy.label(),
        dict(run.strategy.values),
        cfg,
        flow,
        fills,
        paths,
        quotes,
        stats,
        run.stop_reason,
    )


def adverse_selection(flow: Flow, fills: pd.DataFrame, horizon_ms: float) -> float:
    """Mean mid move after our maker fills, in the fill's direction, bps (negative = adverse)."""
    maker = fills[fills["maker"]]
    if maker.empty:
        return math.nan
    t = maker["time_ns"].to_numpy() + int(horizon_ms * 1e6)
    later = flow.mid[np.maximum(np.searchsorted(flow.time_ns, t, side="right") - 1, 0)]
    at = maker["mid"].to_numpy()
    return float(np.mean(maker["side"].to_numpy() * (later - at) / at) * 1e4)


def _stats(
    run: _Run,
    fills: pd.DataFrame,
    paths: pd.DataFrame,
    mid: np.ndarray,
    wall: float,
    total: float,
    spread_pnl: float,
    inventory_pnl: float,
    fees_pnl: float,
) -> dict[str, float]:
    flow, cfg = run.flow, run.config
    hours = max(float(flow.time_ns[-1]) / 3.6e12, 1e-9)
    minute = paths["equity"].iloc[::60].to_numpy()
    rets = np.diff(minute) / cfg.capital
    sharpe = (
        float(rets.mean() / rets.std() * math.sqrt(525_600))
        if len(rets) > 1 and rets.std() > 0
        else 0.0
    )
    eq = paths["equity"].to_numpy()
    drawdown = float(np.max(np.maximum.accumulate(eq) - eq) / cfg.capital) if len(eq) else 0.0
    maker = fills[fills["maker"]]
    stats = {
        "total_pnl": total,
        "spread_pnl": spread_pnl,
        "inventory_pnl": inventory_pnl,
        "fees_pnl": fees_pnl,
        "fills": float(len(fills)),
        "maker_fills": float(len(maker)),
        "volume": float(fills["qty"].sum()),
        "fill_ratio": float(maker["qty"].sum() / run.placed_qty) if run.placed_qty else 0.0,
        "cancel_ratio": run.cancels / run.places if run.places else 0.0,
        "orders": float(run.places),
        "cancels": float(run.cancels),
        "amends": float(run.amends),
        "deferred": float(run.deferred),
        "clipped": float(run.clipped),
        "rejects": float(run.state[fm.S_REJECTS]),
        "quote_uptime": float(run.state[fm.S_UPTIME] / max(float(flow.time_ns[-1]), 1.0)),
        "max_inventory": run.max_abs_inventory,
        "final_inventory": run.inventory,
        "sharpe": sharpe,
        "max_drawdown": drawdown,
        "daily_return": total / cfg.capital * 24.0 / hours,
        "events": float(len(flow)),
        "strategy_calls": float(run.calls),
        "wall_s": wall,
        "events_per_s": len(flow) / wall if wall > 0 else math.inf,
        "stopped": float(bool(run.stop_reason)),
    }
    for h in AS_HORIZONS_MS:
        stats[f"adverse_{h}ms_bps"] = adverse_selection(flow, fills, h)
    return stats
