"""The engine kernel: one asyncio loop, single-threaded, one fixed order of work per bar.

clock -> feed -> strategy -> risk (pre-trade) -> order manager -> venue -> fills -> portfolio
-> journal

For each step of the feed (bars sharing one open time T, closing at T + timeframe):
1. clock to T; a bar-driven venue (SimVenue) opens the bars: resting stops trigger on them,
   queued market orders fill at the open; changed orders are looked up by the order manager;
2. confirm mode: approve / reject commands from the journal are applied;
3. historical feeds: each runner acts on its last close's signals at this open (sized at the
   venue's price now): intents -> risk gate -> order manager -> venue -> fills -> portfolio;
   then each target-weight runner rebalances the step's symbols together, one order at a time
   (sells first), each filled before the next is sized; a live feed on a bar venue (paper)
   rebalances target weights here too, at the open after the close that decided them;
4. clock to T + timeframe; the venue closes the bars (resting limits match);
5. runners see the closed bars (signals); live feeds act on them at once (step 3 again), since
   the next bar does not exist yet (target weights: only on a live venue, valued at the close);
6. equity snapshot (every `equity_every` steps and at the end), journal batch commit.

Fills reach the portfolio, the journal (positions) and the runner that owns the order, in that
order, through the order manager's `on_fill`; what runners ask for in reply (protective orders,
cancels) is carried out before the step moves on. Several runners and symbols share one venue,
one order manager and one portfolio.

Execution modes: `auto` sends orders; `confirm` journals them (status pending, reason
"awaiting approval") and sends one only after an `approve` command for its client id (see
`quantdesk approve`), withdrawing it on `reject`; `signals-only` journals the intended orders
(pending -> canceled, reason "signals-only") and sends nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from quantdesk.engine.clock import SimClock
from quantdesk.engine.feeds import BarEvent, Feed
from quantdesk.engine.order_manager import OrderManager
from quantdesk.engine.portfolio import Portfolio, funding_payment
from quantdesk.engine.runner import Cancel, Intent, Runner
from quantdesk.model import (
    ZERO,
    BarVenue,
    BookTop,
    Fill,
    FundingEvent,
    Order,
    OrderEvent,
    OrderJournal,
    OrderStatus,
    RetryPolicy,
    RiskCheck,
    Side,
    Venue,
    client_order_id,
    dec,
    is_flatten_order,
    split_symbol,
    state_refusal,
)


class Guard(Protocol):
    """What the kernel runs after each step (quantdesk.risk.guard.RiskGuard)."""

    risk: Any

    def update_prices(self, marks: Mapping[str, Decimal]) -> None:
        """The latest marks."""
        ...

    async def after_step(self, now_ms: int, new_fills: int) -> None:
        """Monitors, kill switch commands and config reload after one step."""
        ...


class ExecutionMode(StrEnum):
    """How orders leave the engine."""

    AUTO = "auto"
    CONFIRM = "confirm"
    SIGNALS_ONLY = "signals-only"


class Kernel:
    """Runs runners against one venue; see the module docstring for the order of work."""

    def __init__(
        self,
        venue: Venue,
        portfolio: Portfolio,
        journal: OrderJournal,
        clock: Any,
        *,
        runners: Iterable[Runner] = (),
        risk: RiskCheck | None = None,
        mode: ExecutionMode = ExecutionMode.AUTO,
        amount_step: Decimal = Decimal("1e-18"),
        timeframe_ms: int = 0,
        equity_every: int = 1,
        commit_every: int = 5_000,
        seed: int = 0,
        retry: RetryPolicy | None = None,
        order_timeout_ms: int | None = None,
        guard: Callable[[OrderManager], Guard] | None = None,
        funding: Mapping[str, Sequence[tuple[int, Decimal]]] | None = None,
    ) -> None:
        """clock: SimClock (replay) or WallClock; journal: Journal or MemoryJournal; retry: the
        backoff of ambiguous order failures; order_timeout_ms: working orders older than this
        are cancelled (protective orders excepted); guard: builds the risk guard (monitors,
        kill switch, hot reload) over the kernel's order manager, run after each step;
        funding: per perpetual, (settlement ms, rate) in time order, settled on the position
        held when the clock reaches it (Portfolio.apply_funding, then QuoteStrategy.on_funding)."""
        self.venue = venue
        self.portfolio = portfolio
        self.journal = journal
        self.clock = clock
        self.risk = risk
        self.mode = ExecutionMode(mode)
        self.step_size = Decimal(amount_step)
        self.timeframe_ms = int(timeframe_ms)
        self.equity_every = max(1, int(equity_every))
        self.commit_every = max(1, int(commit_every))
        self.om = OrderManager(
            venue,
            journal,
            clock,
            rng=random.Random(seed),
            policy=retry,
            sleep=clock.sleep,
            order_timeout_ms=order_timeout_ms,
            on_fill=self._on_fill,
        )
        self.runners: list[Runner] = []
        self.held: dict[str, tuple[Order, Runner, Intent]] = {}  # confirm mode
        self.closes: dict[str, float] = {}
        self.steps = 0
        self.fills: list[Fill] = []  # every fill applied, in order
        self.bar_ms = 0  # open time of the bar in progress
        self._owner: dict[str, tuple[Runner, str]] = {}  # client id -> (runner, tag)
        self._followups: list[tuple[Runner, Intent | Cancel]] = []
        self._bar_venue = isinstance(venue, BarVenue)
        if self._bar_venue:
            # resolved once: a BreakerVenue looks each attribute up anew (inspect per access)
            bv: Any = venue
            self._open_bar, self._range_bar, self._close_bar = (
                bv.open_bar,
                bv.range_bar,
                bv.close_bar,
            )
            self._venue_quote = bv.quote
        self._sim_clock = isinstance(clock, SimClock)
        self._by_symbol: dict[str, list[Runner]] = {}
        self._opening: dict[str, float] = {}  # opens of the step being acted on at its open
        self.guard: Guard | None = guard(self.om) if guard is not None else None
        self.funding = {s: sorted(rows) for s, rows in (funding or {}).items()}
        self._funding_next = dict.fromkeys(self.funding, 0)
        self.funding_events: list[FundingEvent] = []  # every settlement applied, in order
        for runner in runners:
            self.add_runner(runner)

    def add_runner(self, runner: Runner) -> None:
        """Run one more strategy in this kernel (ids must be distinct)."""
        if any(r.strategy_id == runner.strategy_id for r in self.runners):
            raise ValueError(f"two runners with strategy id {runner.strategy_id!r}")
        self.runners.append(runner)
        self._by_symbol.clear()
        if hasattr(runner, "context"):
            runner.context = self  # quote strategies see clock, portfolio and orders through it

    # --- Market (what runners may ask) ----------------------------------------------------------

    def quote(self, symbol: str, side: Side) -> Decimal | None:
        """The venue's price for a market order now, else the last close."""
        if self._bar_venue:
            return self._venue_quote(symbol, side)
        close = self.closes.get(symbol)
        return None if close is None else dec(close)

    def amount_step(self, symbol: str) -> Decimal:
        """Amount granularity of orders."""
        return self.step_size

    def bar_open(self, symbol: str) -> Decimal | None:
        """The open of the bar in progress while runners act on it (historical feeds); None
        when they act on a close (live), the next open being unknown then."""
        price = self._opening.get(symbol)
        return None if price is None else dec(price)

    def order_tag(self, client_order_id: str) -> str:
        """What a runner placed an order for ("entry", "exit", "sl", "tp"); "" if not a runner's."""
        owner = self._owner.get(client_order_id)
        return owner[1] if owner else ""

    # --- running --------------------------------------------------------------------------------

    async def run(self, feed: Feed, *, progress: bool = False, total: int | None = None) -> None:
        """Consume the whole feed. Replays commit the journal in batches of commit_every steps
        (far fewer commits); live feeds commit every write, so readers see it at once."""
        self.timeframe_ms = self.timeframe_ms or feed.timeframe_ms
        batch = getattr(self.journal, "batch", None) if feed.historical else None
        bar = tqdm(total=total, unit="bar", disable=not progress, mininterval=0.5)
        with ExitStack() as stack:
            if batch is not None:
                stack.enter_context(batch())
            signal_rows = self._signal_rows(feed)
            if signal_rows is not None:
                await self._run_rows(feed, signal_rows, stack, batch, bar)  # type: ignore[arg-type]
            else:
                async for step in feed:
                    await self.step(step, act_on_close=not feed.historical)
                    bar.update(1)
                    self._commit_due(stack, batch)
            self.snapshot()
        bar.close()

    def _signal_rows(self, feed: Feed) -> Any:
        """The rows whose close some runner acts on, when this run may skip the others in bulk
        (a prepared replay on a simulated clock and bar venue, no work between bars: no
        funding, risk guard, order timeout, approvals, quotes or rebalancing); else None."""
        if not (
            feed.historical
            and hasattr(feed, "rows")
            and self._sim_clock
            and self._bar_venue
            and hasattr(self.venue, "skip_bar")
            and not self.funding
            and self.guard is None
            and self.om.order_timeout_ms is None
            and self.mode is not ExecutionMode.CONFIRM
            and self.runners
        ):
            return None
        rows = []
        for runner in self.runners:
            if hasattr(runner, "on_book") or hasattr(runner, "rebalance"):
                return None
            signal_rows = getattr(runner, "signal_rows", None)
            found = None if signal_rows is None else signal_rows()
            if found is None:
                return None
            rows.append(found)
        return np.unique(np.concatenate(rows))

    def _quiet(self) -> bool:
        """Nothing can happen on a bar without signals: nothing queued, working or pending."""
        return (
            not self._followups
            and self.venue.idle()  # type: ignore[attr-defined]
            and all(r.idle() for r in self.runners)  # type: ignore[attr-defined]
        )

    async def _run_rows(
        self, feed: Any, signal_rows: Any, stack: ExitStack, batch: Any, bar: Any
    ) -> None:
        """A historical feed row by row: rows that can change nothing (no signal at their
        close while all is quiet) are skipped in bulk, up to the next equity snapshot or
        journal commit; every other row is a full step. Same results as stepping each row."""
        rows = feed.rows()
        n = len(feed)
        signal_rows = signal_rows.tolist()
        k = 0  # signal_rows[k] is the first signal row >= i
        i = 0
        while i < n:
            while k < len(signal_rows) and signal_rows[k] < i:
                k += 1
            at_signal = k < len(signal_rows) and signal_rows[k] == i
            if not at_signal and self._quiet():
                due = self.equity_every - self.steps % self.equity_every
                if batch is not None:
                    due = min(due, self.commit_every - self.steps % self.commit_every)
                stop = min(rows.stop_after(i, due), n)
                if k < len(signal_rows):
                    stop = min(stop, signal_rows[k])
                done = self._skip_rows(rows, i, stop)
                i = stop
            else:
                step = feed.step_at(i)
                i += 1
                if not step:
                    continue
                await self.step(step)
                done = 1
            if not done:
                continue
            bar.update(done)
            self._commit_due(stack, batch)

    def _commit_due(self, stack: ExitStack, batch: Any) -> None:
        """Commit the journal batch every commit_every steps and open the next one."""
        if batch is not None and self.steps % self.commit_every == 0:
            stack.close()
            stack.enter_context(batch())

    def _skip_rows(self, rows: Any, start: int, stop: int) -> int:
        """Rows [start, stop) while quiet: the clock, the last closes (kernel, venue, runners)
        and the step count move as stepping them would move them; returns the steps."""
        count = rows.steps(start, stop)
        if not count:
            return 0
        last = rows.last[stop - 1]
        self.bar_ms = open_ms = int(rows.times[int(last.max())])
        self.clock.advance_to(open_ms)
        self.clock.advance_to(max(open_ms + self.timeframe_ms, open_ms))
        closes = self.closes
        # symbols first seen here enter the closes in the order their first bars came
        order = sorted(
            range(len(rows.symbols)),
            key=lambda j: (rows.symbols[j] not in closes, rows.first[j], j),
        )
        for j in order:
            r = int(last[j])
            if r < start:
                continue
            symbol = rows.symbols[j]
            b = rows.bar(r, j)
            closes[symbol] = b.close
            self.venue.skip_bar(symbol, b)  # type: ignore[attr-defined]
            for runner in self._runners_of(symbol):
                runner.skip(symbol, b.close)  # type: ignore[attr-defined]
        self.steps += count
        if self.steps % self.equity_every == 0:
            self.snapshot()
        return count

    async def step(self, events: Sequence[BarEvent], act_on_close: bool = False) -> None:
        """Process the bars of one step (same open time), in the kernel's fixed order."""
        if not events:
            return
        open_ms = events[0].bar.time
        self.bar_ms = open_ms
        fills_before = len(self.fills)
        sim = self._sim_clock
        if sim:
            self.clock.advance_to(open_ms)
        if self.funding:
            self._settle_funding(open_ms)
        changed = False
        if self._bar_venue:
            for ev in events:
                if self._open_bar(ev.symbol, ev.bar):
                    changed = True
        if changed:
            await self.om.refresh()
            await self._drain()
        await self._housekeeping()
        self._books(events)
        if self._followups:
            await self._drain()
        if self.mode is ExecutionMode.CONFIRM:
            await self._commands()
        if not act_on_close:
            self._opening = {ev.symbol: ev.bar.open for ev in events}
            await self._act(events)
            self._opening = {}
        elif self._bar_venue:
            # paper: the bar venue opens this bar now, so target weights decided on the last
            # close rebalance at this open, as in a replay (valued and sized at the open, each
            # order filled before the next is sized); a live venue rebalances at the close
            self._opening = {ev.symbol: ev.bar.open for ev in events}
            await self._rebalance(events)
            self._opening = {}
        changed = False
        if self._bar_venue:
            # The bar's range comes after every order at its open (the fill convention).
            for ev in events:
                if self._range_bar(ev.symbol):
                    changed = True
        if changed:
            await self.om.refresh()
            await self._drain()
        close_ms = events[0].bar.time + self.timeframe_ms
        if sim and close_ms > open_ms:
            self.clock.advance_to(close_ms)
        changed = False
        if self._bar_venue:
            for ev in events:
                if self._close_bar(ev.symbol, ev.bar):
                    changed = True
        if changed:
            await self.om.refresh()
            await self._drain()
        followups = self._followups
        for ev in events:
            self.closes[ev.symbol] = ev.bar.close
            for runner in self._runners_of(ev.symbol):
                for action in runner.on_close(ev):
                    followups.append((runner, action))
        if followups:
            await self._drain()
        if act_on_close:
            await self._act(events, rebalance=not self._bar_venue)
        self.steps += 1
        if self.steps % self.equity_every == 0:
            self.snapshot()
        if self.guard is not None:
            self.guard.update_prices(self.marks())
            await self.guard.after_step(self.clock(), len(self.fills) - fills_before)

    async def _act(self, events: Sequence[BarEvent], rebalance: bool = True) -> None:
        followups = self._followups
        for ev in events:
            for runner in self._runners_of(ev.symbol):
                for action in runner.on_open(ev.symbol, ev.bar.time, self):
                    followups.append((runner, action))
        if followups:
            await self._drain()
        if rebalance:
            await self._rebalance(events)

    async def _rebalance(self, events: Sequence[BarEvent]) -> None:
        followups = self._followups
        for runner in self.runners:
            # a target-weight runner (WeightRunner) rebalances the whole step at once: each
            # order it yields is carried out (and, on a bar venue, filled) before it sizes the
            # next, so its buys spend the cash its sells released
            rebalance = getattr(runner, "rebalance", None)
            if rebalance is None:
                continue
            for actions in rebalance(events, self):
                followups.extend((runner, action) for action in actions)
                await self._drain()

    def _runners_of(self, symbol: str) -> list[Runner]:
        """The runners trading symbol (cached: looked up on every bar)."""
        runners = self._by_symbol.get(symbol)
        if runners is None:
            runners = [r for r in self.runners if symbol in r.symbols]
            self._by_symbol[symbol] = runners
        return runners

    async def _drain(self) -> None:
        """Carry out queued intents and cancels, including those their fills cause."""
        while self._followups:
            runner, action = self._followups.pop(0)
            if isinstance(action, Cancel):
                await self._cancel(action)
            else:
                await self._place(runner, action)

    async def _cancel(self, action: Cancel) -> None:
        held = self.held.pop(action.client_order_id, None)
        if held is not None:
            self._withdraw(held[0], action.reason or "cancelled before approval")
            return
        order = self.om.orders.get(action.client_order_id)
        if order is not None and not order.status.is_terminal:
            await self.om.cancel(action.client_order_id, action.reason)
            if self.guard is not None:
                self.guard.risk.record_cancel()

    async def _place(self, runner: Runner, intent: Intent) -> None:
        """Intent -> Order -> risk gate -> (mode) -> order manager."""
        cid = client_order_id(runner.strategy_id, intent.symbol, intent.bar_ms, intent.seq)
        if cid in self.om.orders or cid in self.held:
            return  # the same decision again (e.g. after a restart): never a second order
        order = Order(
            client_order_id=cid,
            symbol=intent.symbol,
            side=intent.side,
            type=intent.type,
            amount=intent.amount,
            created_ms=self.clock(),
            price=intent.price,
            trigger_price=intent.trigger_price,
            reduce_only=intent.reduce_only,
            strategy_id=runner.strategy_id,
            venue=self.venue.name,
            decision_price=self.decision_price(intent),
        )
        if self.risk is not None:
            decision = self.risk.check_order(
                order,
                reference_price=self.quote(intent.symbol, intent.side),
                position=self._position(intent.symbol),
                free=self._free(intent.symbol),
            )
            if not decision.approved:
                self._refuse(order, f"risk: {decision.reason}: {decision.message}")
                return
            order = decision.applied_to(order)
        self._owner[cid] = (runner, intent.tag)
        runner.placed(intent, cid)  # type: ignore[attr-defined]
        if self.mode is ExecutionMode.SIGNALS_ONLY:
            self._withdraw(order, "signals-only: not sent", journal_pending=True)
            runner.assume(intent)
            return
        if self.mode is ExecutionMode.CONFIRM and intent.tag not in ("sl", "tp"):
            # Protective orders of an approved entry go out with it; new exposure waits.
            for old_cid, (old, old_runner, old_intent) in list(self.held.items()):
                if old_runner is runner and old_intent.symbol == intent.symbol:
                    del self.held[old_cid]
                    self._withdraw(old, "superseded by a newer signal")
            order.reason = "awaiting approval"
            self.journal.record_order(order)
            self.held[cid] = (order, runner, intent)
            return
        await self.om.submit(order)

    def decision_price(self, intent: Intent) -> Decimal | None:
        """The price the strategy decided on: the runner's (a signal's close), else the limit
        price, else the trigger, else the last close seen (a quote strategy's market order)."""
        for price in (intent.decision_price, intent.price, intent.trigger_price):
            if price is not None:
                return Decimal(price)
        close = self.closes.get(intent.symbol)
        return None if close is None else dec(close)

    def _journal_event(self, order: Order, old: OrderStatus | None, new: OrderStatus) -> None:
        self.journal.record_event(
            OrderEvent(order.client_order_id, old, new, self.clock(), order.reason)
        )

    def _withdraw(self, order: Order, reason: str, journal_pending: bool = False) -> None:
        """A PENDING order that will never be sent: journaled as canceled."""
        if journal_pending:
            self.journal.record_order(order)
            self._journal_event(order, None, OrderStatus.PENDING)
        event = order.transition(OrderStatus.CANCELED, self.clock(), reason)
        self.journal.record_event(event)
        self.journal.record_order(order)

    def _refuse(self, order: Order, reason: str) -> None:
        """A PENDING order the risk gate denied: journaled as rejected, with a risk event."""
        self.journal.record_order(order)
        self._journal_event(order, None, OrderStatus.PENDING)
        event = order.transition(OrderStatus.REJECTED, self.clock(), reason)
        self.journal.record_event(event)
        self.journal.record_order(order)
        if getattr(self.risk, "journal", None) is self.journal:
            return  # the risk engine already journaled this denial, with its full reason
        record = getattr(self.journal, "record_risk_event", None)
        if record is not None:
            record("order_denied", reason, self.clock(), payload={"order": order.client_order_id})

    async def idle(self) -> None:
        """Work between bars (live feeds call it while waiting): approvals go out at once,
        stale orders are cancelled, funding settles, kill/resume commands and monitors run."""
        if self.funding:
            self._settle_funding(self.clock())
        await self._housekeeping()
        if self._followups:
            await self._drain()
        if self.mode is ExecutionMode.CONFIRM and self.held:
            await self._commands()
        if self.guard is not None:
            self.guard.update_prices(self.marks())
            await self.guard.after_step(self.clock(), 0)

    async def _housekeeping(self) -> None:
        """Cancel working orders older than the order timeout (when one is set)."""
        if self.om.order_timeout_ms is not None:
            await self.om.cancel_stale()

    def _books(self, events: Sequence[BarEvent]) -> None:
        """Tell quote strategies the best bid/ask at this open (the venue's quotes)."""
        for ev in events:
            runners = [r for r in self._runners_of(ev.symbol) if hasattr(r, "on_book")]
            if not runners:
                continue
            book = BookTop(
                ev.symbol,
                ev.bar.time,
                self.quote(ev.symbol, Side.SELL),
                self.quote(ev.symbol, Side.BUY),
            )
            for runner in runners:
                for action in runner.on_book(book):  # type: ignore[attr-defined]
                    self._followups.append((runner, action))

    def _settle_funding(self, now_ms: int) -> None:
        """Book every funding settlement due by now_ms on the position held at that time."""
        for symbol, rows in self.funding.items():
            i = self._funding_next[symbol]
            while i < len(rows) and rows[i][0] <= now_ms:
                t, rate = rows[i]
                i += 1
                quantity = self._position(symbol)
                close = self.closes.get(symbol)
                if not quantity or close is None:
                    continue
                amount = funding_payment(quantity, dec(close), Decimal(rate))
                self.portfolio.apply_funding(symbol, amount, t)
                event = FundingEvent(symbol, t, Decimal(rate), amount)
                self.funding_events.append(event)
                for runner in self._runners_of(symbol):
                    hook = getattr(runner, "on_funding", None)
                    if hook is not None:
                        self._followups.extend((runner, a) for a in hook(event))
            self._funding_next[symbol] = i

    async def _commands(self) -> None:
        """Confirm mode: send approved orders, withdraw rejected ones."""
        pending = getattr(self.journal, "pending_commands", None)
        if pending is None or not self.held:
            return
        for command in pending():
            if command.kind not in ("approve", "reject") or command.target not in self.held:
                continue
            if not self.journal.consume_command(command.id, self.clock()):  # type: ignore[attr-defined]
                continue
            order, _runner, _intent = self.held.pop(command.target)
            if command.kind == "reject":
                # who rejected it stays on the order (the dashboard and the CLI say who asked)
                self._withdraw(order, f"rejected by {command.payload.get('by') or 'operator'}")
            elif (refusal := self._too_late(order)) is not None:
                self._refuse(order, refusal)
            else:
                order.reason = ""
                await self.om.submit(order)
                await self._drain()

    def _too_late(self, order: Order) -> str | None:
        """Why an approved order may no longer go out: the risk gate checked it when it was
        held, and a kill (or a reduce-only state) since then must win over the approval."""
        state = getattr(self.risk, "state", None)
        refusal = None if state is None else state_refusal(state, order.reduce_only)
        if refusal is None:
            return None
        reason, message = refusal
        return f"risk: {reason}: {message} (the state changed while the order awaited approval)"

    # --- fills and valuation --------------------------------------------------------------------

    def _on_fill(self, fill: Fill) -> None:
        """Order manager callback: portfolio, journal position, then the owning runner."""
        self.portfolio.apply_fill(fill)
        self.fills.append(fill)
        record = getattr(self.journal, "record_position", None)
        if record is not None:
            record(self.portfolio.positions[fill.symbol], venue=fill.venue)
        owner = self._owner.get(fill.client_order_id)
        if owner is not None:
            runner, tag = owner
            for action in runner.on_fill(fill, tag, self.bar_ms):
                self._followups.append((runner, action))
        elif is_flatten_order(self.om.orders.get(fill.client_order_id)):
            # the kill switch closed the strategies' positions: their sleeves must know, or
            # after a resume they would wait to sell what is no longer held
            for runner in self._runners_of(fill.symbol):
                for action in runner.on_fill(fill, "flatten", self.bar_ms):
                    self._followups.append((runner, action))

    def _position(self, symbol: str) -> Decimal:
        pos = self.portfolio.positions.get(symbol)
        return pos.quantity if pos is not None else ZERO

    def _free(self, symbol: str) -> dict[str, Decimal]:
        base, quote = split_symbol(symbol)
        return {
            quote: self.portfolio.cash.get(quote, ZERO),
            base: max(self._position(symbol), ZERO),
        }

    def marks(self) -> dict[str, Decimal]:
        """Last closes as Decimal marks."""
        return {s: dec(c) for s, c in self.closes.items()}

    def equity(self) -> Decimal:
        """Portfolio value at the last closes."""
        return self.portfolio.equity(self.marks())

    def snapshot(self) -> Decimal | None:
        """Append an equity snapshot to the portfolio and the journal (at the last close)."""
        if not self.closes:
            return None
        marks = self.marks()
        ts = self.clock()
        if self.portfolio.equity_curve and self.portfolio.equity_curve[-1][0] == ts:
            return self.portfolio.equity_curve[-1][1]
        value = self.portfolio.mark(ts, marks)
        record = getattr(self.journal, "record_equity", None)
        if record is not None:
            cash = self.portfolio.cash.get(self.portfolio.currency, ZERO)
            record(ts, value, cash, self.portfolio.unrealized_pnl(marks))
        return value
