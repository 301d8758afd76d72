"""Market-making sessions (`quantdesk mm run`): the backtest's QuoteStrategy on a live venue's
book, in paper mode (quotes matched locally, never sent) or live mode (orders at the venue).

One event loop takes, in arrival order: the touch (ccxt.pro watch_order_book), market trades
(watch_trades), and in live mode our own orders and fills (watch_orders / watch_my_trades); a
timer adds `on_timer` calls. After each event the strategy states the quotes it wants and
`mm.quotes.diff_quotes` turns them into cancels and places against the working orders, within
its message budget and the order timeout (a quote older than `order_timeout_s` is re-placed).
Every place passes the RiskEngine (trading state, order rate, cancel ratio, price band, sizes)
and goes through the OrderManager, which journals the intent before the request leaves.

Fills come from the user stream; a gap in it (a reconnect), or an order event whose fills the
stream has not delivered, is backfilled over REST (trade ids dedupe, so nothing doubles). A
control task polls the kill switch every `kill_poll_s` (a kill cancels every quote at once),
and every second runs the risk monitors (daily loss, drawdown), the [risk] hot reload, the
strategy-params hot reload and the behaviour monitor (orders/s, cancel ratio, fill rate);
live mode reconciles journal and venue every `reconcile_every_s`. Stopping always cancels the
quotes: nobody watches them after the session ends.

This module builds on system/live.py's pieces (LiveJournal, Mode, symbol resolution) without
changing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from quantdesk.alerts import Alerter, AlertsConfig
from quantdesk.config import MMLiveConfig, VenueConfig
from quantdesk.engine.clock import WallClock
from quantdesk.engine.journal import Journal
from quantdesk.engine.order_manager import OrderManager
from quantdesk.engine.portfolio import Portfolio
from quantdesk.engine.reconcile import Reconciler, ReconcileReport, UnknownOrders
from quantdesk.errors import ConfigError
from quantdesk.mm.backtest import Book, MMContext, MMFill, Trade
from quantdesk.mm.behaviour import BehaviourLimits, BehaviourMonitor
from quantdesk.mm.paper import PaperQuoteVenue
from quantdesk.mm.quotes import (
    Action,
    Quote,
    QuoteLimits,
    RateLimiter,
    Working,
    diff_quotes,
    reducing_quotes,
)
from quantdesk.mm.reload import ParamReloader
from quantdesk.model import (
    ZERO,
    Fill,
    Instrument,
    Order,
    OrderStatus,
    OrderType,
    RetryPolicy,
    Side,
    TradingState,
    VenueError,
    VenueOrder,
    client_order_id,
    dec,
    split_symbol,
)
from quantdesk.risk.breaker import BreakerVenue
from quantdesk.risk.checks import RiskEngine
from quantdesk.risk.guard import RiskGuard
from quantdesk.risk.killswitch import journaled_state
from quantdesk.risk.limits import RiskConfig
from quantdesk.strategy import QuoteStrategy
from quantdesk.system.kernel import venue_breaker
from quantdesk.system.live import LiveJournal, Mode, _venue_symbol
from quantdesk.venues.ccxt_venue import CcxtVenue
from quantdesk.venues.pro_streams import MarketTrade, OrderUpdate, ProStreams, Touch, pro_exchange

log = logging.getLogger(__name__)
S = OrderStatus
# A refused cancel (the quote filled a moment before) is looked up after a backoff: a quote's
# backoff starts at 50 ms, not the bar sessions' 500 ms, or one race stalls the requote loop.
# Throttling still multiplies it (RetryPolicy.throttle_factor).
QUOTE_RETRY = RetryPolicy(base=0.05, factor=2.0, cap=5.0, max_attempts=5)
STRATEGY_PREFIX = "mm"  # client ids qd-... hash (mm:STRATEGY, symbol, session start, seq)


@dataclass
class MMSessionSpec:
    """Everything `quantdesk mm run` decides."""

    strategy: QuoteStrategy
    symbol: str
    mode: Mode
    venue_name: str
    venue: VenueConfig
    journal: Path
    settings: MMLiveConfig = field(default_factory=MMLiveConfig)
    overrides: dict[str, Any] = field(default_factory=dict)  # --param: wins on every reload
    until_ms: int | None = None  # venue (market) time
    capital: Decimal | None = None  # quote currency; default: 98% of the free quote balance
    max_inventory: float | None = None  # base units; default: settings.max_inventory
    risk: RiskConfig | None = None  # [risk] (defaults when None): rate limits, monitors, kill
    config_path: Path | None = None  # quantdesk.toml: [risk] and [mm.params] hot reload
    alerts: AlertsConfig | None = None
    kill_poll_s: float = 0.1


@dataclass
class MMSessionResult:
    """What a session did."""

    orders: int
    fills: int
    position: Decimal
    equity: Decimal
    capital: Decimal
    state: TradingState
    reconciliations: list[ReconcileReport] = field(default_factory=list)
    stopped_by_signal: bool = False
    stats: dict[str, float] = field(default_factory=dict)


class MMSession:
    """One paper or live market-making session on one symbol."""

    def __init__(
        self,
        spec: MMSessionSpec,
        *,
        env: Mapping[str, str] | None = None,
        stop: asyncio.Event | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        """env: where credentials are read; stop: set it to stop gracefully; on_status: gets a
        status line every [mm] status_every_s."""
        self.spec = spec
        self.on_status = on_status
        self.env = env
        self.stop = stop or asyncio.Event()
        self.clock = WallClock()
        self.started = asyncio.Event()  # set once recovered, reconciled and streaming
        self.reports: list[ReconcileReport] = []
        self.latencies: list[float] = []  # seconds from an event's arrival to its first order
        self.market_ms = 0
        self.counts = {"places": 0, "cancels": 0, "denied": 0, "deferred": 0, "backfills": 0}
        self._event_t: float | None = None
        self._seq = 0
        self._ids: dict[int, tuple[str, int]] = {}  # diff's int id -> (client id, level)
        self._events: asyncio.Queue[tuple[str, Any, float]] = asyncio.Queue()
        self._new_fills = 0
        self._queued_touches = 0
        self._reconcile_due = False
        self._reconcile_due_ms = 0
        self._fill_desired: list[Quote] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self) -> MMSessionResult:
        """Start (recover, reconcile, subscribe), quote until --until or a stop, shut down."""
        spec = self.spec
        data = CcxtVenue.from_config(spec.venue_name, spec.venue, self.env)
        journal = LiveJournal(spec.journal)
        self.alerter = (
            Alerter.from_config(spec.alerts, journal=journal, env=self.env)
            if spec.alerts is not None
            else None
        )
        streams = ProStreams(pro_exchange(spec.venue, self.env), "", spec.venue_name)
        self.streams = streams
        try:
            return await self._run(data, journal, streams)
        finally:
            await streams.close()
            if self.alerter is not None:
                await asyncio.to_thread(self.alerter.close, 5.0)
            journal.close()
            await data.close()

    async def _run(self, data: CcxtVenue, journal: Journal, streams: ProStreams) -> MMSessionResult:
        spec = self.spec
        rules = await data.load()
        symbol = _venue_symbol(spec.symbol, rules, spec.venue.market)
        self.symbol, self.rule = symbol, rules[symbol]
        self.base, self.quote = split_symbol(symbol)
        self.perp = ":" in symbol
        self.tick = float(self.rule.price_tick)
        streams.symbol = symbol
        start = await self._session_start(data, journal)
        capital = Decimal(start["capital"])
        self.session_ms = int(start["since_ms"])
        self.outside = {k: Decimal(v) for k, v in start["balances"].items()}
        self.outside[self.quote] = self.outside.get(self.quote, ZERO) - capital
        self.portfolio = Portfolio(cash={self.quote: capital}, currency=self.quote)
        for fill in journal.load_fills():
            self.portfolio.apply_fill(fill)
        fee = self.rule.maker_fee or ZERO
        live = spec.mode is Mode.LIVE
        self.paper = None
        if not live:
            self.paper = PaperQuoteVenue(
                f"{spec.venue_name}-paper",
                symbol,
                self.rule.price_tick,
                amount_step=self.rule.amount_step,
                maker_fee=fee,
            )
        venue: Any = data if live else self.paper
        risk_config = spec.risk or RiskConfig()
        alert = self.alerter.alert if self.alerter is not None else None
        breaker = venue_breaker(venue.name, risk_config, alert)
        restored = journaled_state(journal)
        self.risk = RiskEngine(
            {symbol: self.rule},
            risk_config,
            self.portfolio,
            clock=self.clock,
            fee_rate=fee,
            journal=journal,
            alerter=self.alerter,
            breakers={venue.name: breaker},
            state=restored[0] if restored else TradingState.ACTIVE,
        )
        settings = spec.settings
        refresh = getattr(spec.strategy, "refresh_ticks", None)
        # the diff stays inside the risk engine's rate and ratio limits, so it defers what the
        # engine would deny (a deferred quote waits; a denied one is journaled as a refusal)
        rl = self.risk.limits(spec.strategy.label())
        self.limits = QuoteLimits(
            refresh_ticks=int(refresh) if refresh is not None else 1,
            timeout_ns=int(settings.order_timeout_s * 1e9),
            max_orders_per_s=min(settings.max_orders_per_s, rl.max_orders_per_second),
            max_cancel_ratio=min(settings.max_cancel_ratio, rl.max_cancel_ratio),
            ratio_window_s=rl.cancel_ratio_window_s,
            ratio_min_orders=rl.cancel_ratio_min_orders,
        )
        self.limiter = RateLimiter(self.limits)
        self.behaviour = BehaviourMonitor(
            BehaviourLimits(
                window_s=settings.monitor_window_s,
                min_orders=settings.monitor_min_orders,
                max_orders_per_s=settings.monitor_max_orders_per_s,
                max_cancel_ratio=settings.monitor_max_cancel_ratio,
                min_fill_rate=settings.monitor_min_fill_rate,
            )
        )
        self.params = (
            ParamReloader(
                spec.config_path, spec.strategy, spec.overrides, on_event=self._param_event
            )
            if spec.config_path is not None
            else None
        )
        self.max_inventory = spec.max_inventory or settings.max_inventory
        strategy = spec.strategy
        if hasattr(strategy, "reset"):
            strategy.reset()
        self.book = Book(0, 0.0, 0.0, 0.0, 0.0)
        self.ctx = MMContext(0, self.clock() * 1_000_000, 0, self.tick, self.book,
                             max_inventory=self.max_inventory)  # fmt: skip
        self.desired: list[Quote] = []
        self.watch_trades = type(strategy).on_trade is not QuoteStrategy.on_trade
        self.notify_fills = type(strategy).on_fill is not QuoteStrategy.on_fill
        self.om = OrderManager(
            BreakerVenue(venue, breaker),
            journal,
            self.clock,
            rng=random.Random(),
            policy=QUOTE_RETRY,
            on_fill=self._booked,
        )
        self.journal = journal
        known = journal.load_orders(open_only=False)
        self.om.remember([o for o in known if o.status.is_terminal])
        self._seq = len(known)
        await self.om.recover(journal.load_orders(open_only=True))
        if not live:  # a paper venue forgets its orders with the process
            for order in [o for o in self.om.orders.values() if o.status.is_open]:
                await self.om.cancel(order.client_order_id, "paper session restarted")
        self.guard = RiskGuard(self.risk, [self.om], journal=journal, config_path=spec.config_path)
        self.reconciler = None
        if live:
            self.reconciler = Reconciler(
                data, self.om, journal, self.portfolio, [symbol], self.clock,
                unknown_orders=UnknownOrders.CANCEL, since_ms=self.session_ms,
                outside=self.outside,
            )  # fmt: skip
            await self._reconcile(attempts=10)
            self.reconciler.venue = BreakerVenue(data, breaker)
        await self.guard.kill_switch.poll()  # a kill queued while no session ran acts first
        # quotes a previous life left resting were decided on a book long gone (and a halted
        # session may only cancel): the strategy quotes afresh from the first touch
        await self._cancel_all("stale quote from a previous session")
        tasks = [
            asyncio.create_task(streams.touches(self._put("touch"))),
            asyncio.create_task(streams.trades(self._put("trade"))),
            asyncio.create_task(self._control()),
            asyncio.create_task(self._timer()),
        ]
        if live:
            backfill = self._put("backfill")
            tasks += [
                asyncio.create_task(
                    streams.my_trades(self._put("fill"), on_reconnect=lambda: backfill(None))
                ),
                asyncio.create_task(
                    streams.orders(self._put("order"), on_reconnect=lambda: backfill(None))
                ),
            ]
        journal.record_risk_event(
            "session_resumed" if start.get("resumed") else "session_started",
            f"{spec.mode} market making on {spec.venue_name}: {strategy!r} {symbol}",
            self.clock(),
            severity="info",
            payload={"strategy": strategy.label(), "params": _plain(strategy.values),
                     "symbol": symbol, "capital": str(capital), "kind": "mm"},
        )  # fmt: skip
        self.started.set()
        try:
            await self._loop()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            # whatever ended the loop: quotes nobody watches any more must not rest
            await self._cancel_all("shutdown")
        if self.reconciler is not None:
            self.reconciler.venue = data
            await self._reconcile(attempts=10)
        journal.record_risk_event(
            "session_stopped",
            "stopped by signal" if self.stop.is_set() else "reached --until",
            self.clock(),
            severity="info",
        )
        mid = dec(self.book.mid) if self.book.bid else None
        pos = self.portfolio.positions.get(symbol)
        marks = {symbol: mid} if mid is not None else {}
        equity = self.portfolio.equity(marks) if marks or not (pos and pos.quantity) else capital
        return MMSessionResult(
            orders=len([o for o in self.om.orders.values() if o.submit_attempts]),
            fills=journal.count("fills"),
            position=pos.quantity if pos else ZERO,
            equity=equity,
            capital=capital,
            state=self.risk.state,
            reconciliations=self.reports,
            stopped_by_signal=self.stop.is_set(),
            stats={k: float(v) for k, v in self.counts.items()}
            | {k: float(v) for k, v in self.behaviour.rates(self.clock()).items()},
        )

    def finished(self) -> bool:
        """A stop was requested, or the market clock reached --until."""
        if self.stop.is_set():
            return True
        until = self.spec.until_ms
        return until is not None and self.market_ms >= until

    # --- events ------------------------------------------------------------------------------

    def _put(self, kind: str) -> Callable[[Any], None]:
        def put(item: Any) -> None:
            if kind == "touch":
                self._queued_touches += 1
            self._events.put_nowait((kind, item, time.perf_counter()))

        return put

    async def _timer(self) -> None:
        put = self._put("timer")
        while True:
            await asyncio.sleep(self.spec.settings.timer_s)
            put(None)

    async def _loop(self) -> None:
        while not self.finished():
            waited = self.clock() - self._reconcile_due_ms
            if self._reconcile_due and (self._events.empty() or waited > 5_000):
                # between two events, never while an order is in flight (a fill of an order
                # whose ack is still travelling would look foreign), and preferably with no
                # stream event waiting unread (a busy market waits at most 5 s more)
                self._reconcile_due = False
                await self._reconcile(attempts=1)
            try:
                kind, item, t = await asyncio.wait_for(self._events.get(), 0.2)
            except TimeoutError:
                continue
            if kind == "touch":
                self._queued_touches -= 1
                if self._queued_touches > 0:
                    self._on_touch(item, call=False)  # a newer touch is queued: quote on it
                    continue
            self._event_t = t
            desired = await self._handle(kind, item)
            if self._new_fills:
                fills, self._new_fills = self._new_fills, 0
                await self.guard.after_step(self.clock(), new_fills=fills)
                if desired is None and self.book.bid:
                    # as in the backtest: a fill is answered by on_fill's quotes, else on_book's
                    self._sync_ctx()
                    desired = self._fill_desired or self.spec.strategy.on_book(self.book, self.ctx)
                self._fill_desired = None
            if desired is not None and self.book.bid:
                await self._quote(desired)
            self._event_t = None

    async def _handle(self, kind: str, item: Any) -> list[Quote] | None:
        strategy, ctx = self.spec.strategy, self.ctx
        self._sync_ctx()
        if kind == "touch":
            return self._on_touch(item, call=True)
        if kind == "trade":
            trade: MarketTrade = item
            self.market_ms = max(self.market_ms, trade.time_ms)
            if self.paper is not None:
                self._paper_updates(self.paper.on_trade(*_trade_args(trade)))
            if self.watch_trades and self.book.bid:
                self._sync_ctx()
                got = Trade(trade.time_ms * 1_000_000, trade.side, trade.price, trade.size)
                return strategy.on_trade(got, ctx) or None
            return None
        if kind == "fill":
            self._stream_fill(item)
            return None
        if kind == "order":
            await self._stream_order(item)
            return None
        if kind == "backfill":
            self.counts["backfills"] += 1
            with contextlib.suppress(VenueError):
                await self.om.refresh()  # REST: whatever the stream gap hid
            return None
        if not self.book.bid:
            return None
        self._sync_ctx()
        desired = strategy.on_timer(ctx.now_ns, ctx)
        # as in the backtest: None re-diffs the last quotes (stale ones time out); [] pulls all
        return self.desired if desired is None else desired

    def _on_touch(self, touch: Touch, call: bool) -> list[Quote] | None:
        book = self.book
        book.time_ns = (touch.time_ms or self.clock()) * 1_000_000
        book.bid, book.ask, book.bid_size, book.ask_size = (
            touch.bid, touch.ask, touch.bid_size, touch.ask_size
        )  # fmt: skip
        if touch.time_ms:
            self.market_ms = max(self.market_ms, touch.time_ms)
        self.risk.update_price(self.symbol, dec(book.mid))
        if self.paper is not None:
            self._paper_updates(
                self.paper.on_touch(*_touch_args(touch, self.market_ms or self.clock()))
            )
        if not call:
            return None
        self._sync_ctx()
        desired = self.spec.strategy.on_book(book, self.ctx)
        return desired

    def _sync_ctx(self) -> None:
        ctx = self.ctx
        ctx.now_ns = self.clock() * 1_000_000
        pos = self.portfolio.positions.get(self.symbol)
        ctx.inventory = float(pos.quantity) if pos else 0.0
        ctx.cash = float(self.portfolio.cash.get(self.quote, ZERO))
        ctx.working = self._working()
        ctx.quoting = self.risk.state is not TradingState.HALTED

    def _paper_updates(self, changed: list[str]) -> None:
        assert self.paper is not None
        for cid in changed:
            self.om.apply_update(self.paper.report(cid))

    def _booked(self, fill: Fill) -> None:
        """The order manager applied a new fill: book it, count it, tell the strategy."""
        self.portfolio.apply_fill(fill)
        self._new_fills += 1
        self.behaviour.filled(self.clock())
        if self.notify_fills:
            side = 1 if fill.side is Side.BUY else -1
            mmfill = MMFill(
                fill.timestamp * 1_000_000, side, float(fill.price), float(fill.amount),
                self.book.mid, float(fill.fee), True, -1,
            )  # fmt: skip
            self._fill_desired = self.spec.strategy.on_fill(mmfill, self.ctx) or None

    def _stream_fill(self, fill: Fill) -> None:
        """A fill from watch_my_trades, applied through its order (once: trade ids dedupe)."""
        order = self.om.orders.get(fill.client_order_id)
        if order is None and fill.venue_order_id:
            order = next(
                (o for o in self.om.orders.values() if o.venue_order_id == fill.venue_order_id),
                None,
            )
        if order is None or fill.trade_id in order.fill_ids or order.status.is_terminal:
            return  # not ours, or known: reconciliation books foreign fills
        fill = replace(fill, client_order_id=order.client_order_id)
        total = order.filled + fill.amount
        if total > order.amount:
            return  # a fill the order cannot hold: REST (reconciliation) settles it
        status = S.FILLED if total == order.amount else S.PARTIALLY_FILLED
        self.om.apply_update(
            VenueOrder(order.client_order_id, status, fill.venue_order_id, total, fills=(fill,))
        )

    async def _stream_order(self, update: OrderUpdate) -> None:
        """An order event from watch_orders: a status the stream fully explains is adopted;
        one whose fills it has not delivered yet is backfilled over REST."""
        order = self.om.orders.get(update.client_order_id)
        if order is None or order.status.is_terminal or order.status is S.PENDING:
            return
        if update.status in (S.NEW, S.PARTIALLY_FILLED) and update.filled <= order.filled:
            return  # an ack or a fill already applied
        if update.filled != order.filled:
            self.counts["backfills"] += 1
            with contextlib.suppress(VenueError):
                await self.om.refresh_order(order.client_order_id)
            return
        if update.status.is_terminal:
            self.om.apply_update(
                VenueOrder(
                    order.client_order_id, update.status, update.venue_order_id, order.filled
                )
            )

    # --- quoting -----------------------------------------------------------------------------

    def _working(self) -> list[Working]:
        out = []
        for oid, (cid, level) in list(self._ids.items()):
            order = self.om.orders.get(cid)
            if order is None or order.status.is_terminal:
                del self._ids[oid]
                continue
            out.append(
                Working(
                    oid,
                    1 if order.side is Side.BUY else -1,
                    float(order.price or 0),
                    float(order.remaining),
                    level,
                    order.created_ms * 1_000_000,
                    cancelling=order.status is S.CANCELING,
                )
            )
        return out

    async def _quote(self, desired: list[Quote]) -> None:
        """Diff the desired quotes against the working orders and send what is allowed."""
        state = self.risk.state
        if state is TradingState.HALTED:
            return  # the kill switch cancelled everything; nothing new until a resume
        self.desired = desired
        if state is TradingState.REDUCING:
            desired = reducing_quotes(desired, self.ctx.inventory)
        self._follow_risk_limits()
        now_ns = self.clock() * 1_000_000
        result = diff_quotes(desired, self._working(), now_ns, self.tick, self.limits, self.limiter)
        self.counts["deferred"] += result.deferred
        for action in result.actions:
            if self.risk.state is TradingState.HALTED:
                return  # the kill switch acted while this diff was being sent
            await self._act(action)

    async def _act(self, action: Action) -> None:
        if action.kind in ("cancel", "amend"):
            # an amend is a cancel + place: the venue API has no size amend
            cid = self._ids[action.order_id][0]
            self.risk.record_cancel()
            self.behaviour.cancelled(self.clock())
            self.counts["cancels"] += 1
            await self.om.cancel(cid, "requote")
            if action.kind == "cancel":
                return
        assert action.quote is not None
        await self._place(action.quote)

    def _follow_risk_limits(self) -> None:
        """Keep the diff's budget inside the risk engine's limits after a [risk] hot reload."""
        rl = self.risk.limits(self.spec.strategy.label())
        settings = self.spec.settings
        limits = replace(
            self.limits,
            max_orders_per_s=min(settings.max_orders_per_s, rl.max_orders_per_second),
            max_cancel_ratio=min(settings.max_cancel_ratio, rl.max_cancel_ratio),
            ratio_window_s=rl.cancel_ratio_window_s,
            ratio_min_orders=rl.cancel_ratio_min_orders,
        )
        if limits != self.limits:
            self.limits = self.limiter.limits = limits

    def _free(self, position: Decimal) -> dict[str, Decimal]:
        """What the pre-trade check may spend: the session's cash; on spot also the base the
        account holds (a spot ask sells it; paper lends up to max_inventory)."""
        free = {self.quote: self.portfolio.cash.get(self.quote, ZERO)}
        if not self.perp:
            held = self.outside.get(self.base, ZERO) + position
            if self.paper is not None:
                held = max(position, ZERO) + dec(self.max_inventory)
            free[self.base] = max(held, ZERO)
        return free

    async def _place(self, quote: Quote) -> None:
        rule: Instrument = self.rule
        pos = self.portfolio.positions.get(self.symbol)
        position = pos.quantity if pos else ZERO
        working = sum(
            (w.size for w in self._working() if w.side == quote.side and not w.cancelling), 0.0
        )
        room = self.max_inventory - (quote.side * float(position) + working)
        size = dec(min(quote.size, room))
        amount = (size / rule.amount_step).to_integral_value(ROUND_FLOOR) * rule.amount_step
        rounding = ROUND_FLOOR if quote.side > 0 else ROUND_CEILING
        price = (dec(quote.price) / rule.price_tick).to_integral_value(rounding) * rule.price_tick
        if amount <= 0 or amount < rule.min_amount or amount * price < rule.min_notional:
            return
        reduces = position != 0 and (quote.side > 0) == (position < 0)
        now = self.clock()
        order = Order(
            client_order_id=client_order_id(
                f"{STRATEGY_PREFIX}:{self.spec.strategy.label()}",
                self.symbol,
                self.session_ms,
                self._seq,
            ),
            symbol=self.symbol,
            side=Side.BUY if quote.side > 0 else Side.SELL,
            type=OrderType.LIMIT,
            amount=amount,
            created_ms=now,
            price=price,
            reduce_only=self.risk.state is TradingState.REDUCING and reduces,
            strategy_id=self.spec.strategy.label(),
            decision_price=price,
        )
        decision = self.risk.check_order(
            order, reference_price=dec(self.book.mid), position=position, free=self._free(position)
        )
        if not decision.approved:
            self.counts["denied"] += 1
            return
        # ids are used densely (only approved orders take one) and a restart continues after
        # every journaled order: no client id is ever generated twice for another order
        self._seq += 1
        order = decision.applied_to(order)
        self._ids[self._seq] = (order.client_order_id, quote.level)
        self.behaviour.placed(now)
        self.counts["places"] += 1
        if self._event_t is not None:
            self.latencies.append(time.perf_counter() - self._event_t)
            self._event_t = None
        await self.om.submit(order)

    async def _cancel_all(self, reason: str) -> None:
        for order in [o for o in self.om.orders.values() if o.status.is_open]:
            with contextlib.suppress(VenueError):
                await self.om.cancel(order.client_order_id, reason)

    # --- control -----------------------------------------------------------------------------

    async def _control(self) -> None:
        """Kill switch every kill_poll_s; monitors, reloads, behaviour every second;
        reconciliation every reconcile_every_s (live: flagged here, run by the event loop)."""
        every = self.spec.settings.reconcile_every_s * 1000
        status_every = self.spec.settings.status_every_s * 1000
        last_slow = last_reconcile = last_status = self.clock()
        while True:
            await asyncio.sleep(self.spec.kill_poll_s)
            try:
                await self.guard.kill_switch.poll()
                now = self.clock()
                if now - last_slow < 1000:
                    continue
                last_slow = now
                await self.guard.after_step(now)
                if self.params is not None:
                    self.params.check()
                await self._check_behaviour(now)
                if self.on_status is not None and now - last_status >= status_every:
                    last_status = now
                    self.on_status(self.status_line())
            except VenueError as exc:  # the venue failed a cancel or a lookup: next round
                log.warning("control step failed (%s); retrying", type(exc).__name__)
            if self.reconciler is not None and now - last_reconcile >= every:
                last_reconcile = now
                self._reconcile_due, self._reconcile_due_ms = True, now  # run by the loop

    def status_line(self) -> str:
        """Touch, inventory, equity, quotes resting, orders and fills so far, trading state."""
        pos = self.portfolio.positions.get(self.symbol)
        qty = pos.quantity if pos else ZERO
        mid = dec(self.book.mid) if self.book.bid else None
        equity = self.portfolio.equity({self.symbol: mid}) if mid is not None else None
        resting = sum(1 for o in self.om.orders.values() if o.status.is_open)
        return (
            f"status: {self.symbol} bid {self.book.bid:g} ask {self.book.ask:g} | inventory "
            f"{qty} | equity {equity if equity is None else round(equity, 2)} | quotes {resting} "
            f"| places {self.counts['places']} cancels {self.counts['cancels']} fills "
            f"{self.journal.count('fills')} | {self.risk.state.value}"
        )

    async def _check_behaviour(self, now: int) -> None:
        why = self.behaviour.check(now)
        if why is None or self.risk.state is TradingState.HALTED:
            return
        message = f"quoting behaviour: {why}"
        if self.spec.settings.monitor_action == "halt":
            await self.guard.kill_switch.trigger(message)
        elif self.risk.set_state(TradingState.REDUCING, message):
            await self._cancel_all("behaviour monitor: reducing")

    def _param_event(self, kind: str, severity: str, message: str, payload: dict) -> None:
        self.journal.record_risk_event(kind, message, self.clock(), severity, payload)
        if self.alerter is not None:
            self.alerter.alert(severity, message, key=kind)

    async def _reconcile(self, attempts: int) -> bool:
        assert self.reconciler is not None
        for attempt in range(1, attempts + 1):
            try:
                report = await self.reconciler.run()
            except VenueError as exc:
                log.warning("reconciliation failed (%s), attempt %d", type(exc).__name__, attempt)
                self.journal.record_risk_event(
                    "reconcile_failed", type(exc).__name__, self.clock(), "warning"
                )
                if attempt < attempts:
                    await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
                continue
            self.reports.append(report)
            if self.alerter is not None:  # journaled by the reconciler; people hear of it too
                for d in report.differences:
                    if d.kind != "order":  # an order's state caught up: routine
                        self.alerter.alert(
                            "warning",
                            f"reconcile {d.kind} {d.key}: journal {d.journal}, venue {d.venue}: "
                            f"{d.action}",
                            key=f"reconcile:{d.kind}:{d.key}",
                        )
            return True
        return False

    async def _session_start(self, data: CcxtVenue, journal: Journal) -> dict[str, Any]:
        """The journal's session record (balances, capital, venue time), made once."""
        spec = self.spec
        events = journal.events("session")
        if len(events):
            payload = dict(events["payload"].iloc[0])
            if (payload.get("mode"), payload.get("venue")) != (spec.mode, spec.venue_name):
                raise ConfigError(
                    f"journal {spec.journal} belongs to a {payload.get('mode')} session on "
                    f"{payload.get('venue')}: use another --journal"
                )
            return payload | {"resumed": True}
        venue_ms = await data.fetch_time_ms(self.symbol)
        if spec.mode is Mode.LIVE:
            venue_balances = await data.fetch_balances()
            balances = {a: b.total for a, b in venue_balances.items()}
            bal = venue_balances.get(self.quote)
            available = bal.free if bal is not None else ZERO
        else:
            paper = spec.capital or Decimal(10_000)
            balances, available = {self.quote: paper}, paper
        capital = spec.capital or available * Decimal("0.98")
        if capital > available:
            raise ConfigError(
                f"--capital {capital} is more than the free {available} {self.quote} "
                f"on {spec.venue_name}"
            )
        payload = {
            "mode": str(spec.mode),
            "venue": spec.venue_name,
            "balances": {a: str(v) for a, v in balances.items()},
            "capital": str(capital),
            "since_ms": venue_ms + 1,
        }
        journal.record_risk_event("session", "session record", self.clock(), "info", payload)
        return payload


def _touch_args(touch: Touch, now_ms: int) -> tuple[float, float, float, float, int]:
    return touch.bid, touch.ask, touch.bid_size, touch.ask_size, touch.time_ms or now_ms


def _trade_args(trade: MarketTrade) -> tuple[int, float, float, int]:
    return trade.side, trade.price, trade.size, trade.time_ms


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in values.items()}


async def run_mm_session(
    spec: MMSessionSpec,
    *,
    env: Mapping[str, str] | None = None,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
    on_status: Callable[[str], None] | None = None,
) -> MMSessionResult:
    """Run one market-making session to its end (--until, or `stop` being set)."""
    session = MMSession(spec, env=env, stop=stop, on_status=on_status)
    if started is not None:
        session.started = started
    return await session.run()
