"""`quantdesk arb run`: funding-rate arbitrage live on two venues, one pair at a time.

Each venue ([venues.NAME], USD-M) is its own PerpVenue with its own circuit breaker, order
manager (every intent journaled before it is sent), portfolio (fills of that venue only: the
journal's positions name the venue) and reconciliation. One loop:
- every funding_poll_s: both venues' settled rates, normalized per hour by the interval each
  settles on, give the spread and each direction's net APR (fees and slippage of both legs over
  the expected hold: `arbitrage.opportunity`); the strategy's streaks and entry rule decide an
  open; funding the venues paid or charged is booked (once per payment id);
- every price_poll_s: both marks; an open pair's combined PnL, the liquidation buffer of each
  leg and the strategy's exit rules (stop-loss / take-profit on the combined return, spread
  exit, timed exit) decide a close; the legs' imbalance is checked and repaired;
- manual `arb_open` / `arb_close` journal commands (`quantdesk arb open/close`) act at once;
- every reconcile_every_s: both venues reconciled; every difference is journaled and alerted.
The pair's state is journaled before each step's orders (`arbitrage.pair`), so a restart
recovers the orders in flight, reconciles, and carries on from the positions the venues hold:
a slice that was done is never sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from quantdesk.alerts import Alerter, AlertsConfig
from quantdesk.arbitrage.backtest import ArbRules
from quantdesk.arbitrage.execution import ExecConfig
from quantdesk.arbitrage.live_exec import LEGS, Leg, Limits, PairExecutor
from quantdesk.arbitrage.live_rates import Spread, observe
from quantdesk.arbitrage.pair import (
    CLOSED,
    CLOSING,
    OPEN,
    OPENING,
    WORKING,
    PairState,
    current_pair,
    leg_parts,
    pair_history,
    pair_pnl,
    record_pair,
)
from quantdesk.arbitrage.risk import breaches, liquidation_price, pair_return, stop_price
from quantdesk.config import ArbConfig, VenueConfig
from quantdesk.engine.clock import WallClock
from quantdesk.engine.order_manager import OrderManager
from quantdesk.engine.portfolio import Portfolio
from quantdesk.engine.reconcile import Reconciler
from quantdesk.errors import ConfigError
from quantdesk.model import (
    ZERO,
    Fill,
    Instrument,
    Order,
    OrderStatus,
    RetryPolicy,
    TradingState,
    VenueError,
    dec,
)
from quantdesk.risk.breaker import BreakerVenue
from quantdesk.risk.killswitch import journaled_state
from quantdesk.risk.limits import RiskConfig
from quantdesk.system.kernel import venue_breaker
from quantdesk.system.live import STARTUP_RETRY, LiveJournal, VenueDown
from quantdesk.venues.perp_venue import PerpVenue

SESSION_EVENT = "arb_session"
SPREAD_EVENT = "arb_spread"
PNL_EVENT = "arb_pnl"
EXEC_EVENT = "arb_exec"
FUNDING_EVENT = "arb_funding"
PAUSE_EVENT = "arb_pause"
HOUR_MS = 3_600_000
# how loud each execution event is: a naked leg is the one someone must see at once
SEVERITY = {
    "partial_fill": "warning",
    "leg_failed": "error",
    "leg_unknown": "error",
    "limit": "warning",
    "repaired": "warning",
    "unwound": "error",
    "squared": "warning",
    "rebalanced": "error",
    "forced_close": "warning",
    "naked_leg": "critical",
    "aborted": "error",
}


@dataclass
class ArbSpec:
    """Everything `quantdesk arb run` decides."""

    strategy: ArbRules
    arb: ArbConfig
    venues: dict[str, VenueConfig]  # by venue name: arb.venue_a and arb.venue_b
    journal: Path
    risk: RiskConfig | None = None
    alerts: AlertsConfig | None = None
    until_ms: int | None = None  # stop once venue A's clock reaches it
    retry: RetryPolicy | None = None


@dataclass
class ArbResult:
    """What a session did, for the CLI summary and tests."""

    pairs: list[PairState]
    positions: dict[str, Decimal]  # by venue name
    orders: int
    stopped_by_signal: bool = False
    open_pair: PairState | None = None
    spreads: int = 0


class ArbSession:
    """One arbitrage session over two venues (see the module)."""

    def __init__(
        self,
        spec: ArbSpec,
        *,
        env: Mapping[str, str] | None = None,
        stop: asyncio.Event | None = None,
        after_order: Callable[[Order], Awaitable[None] | None] | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        """env: where credentials are read; stop: set it to stop; after_order: told each order
        once its venue answered (tests place a crash there); on_status: one line per funding
        poll (the spread, the pair and its PnL)."""
        self.on_status = on_status
        self.spec = spec
        self.env = env
        self.stop = stop or asyncio.Event()
        self.after_order = after_order
        self.clock = WallClock()
        self.started = asyncio.Event()
        self.names = {"a": spec.arb.venue_a, "b": spec.arb.venue_b}
        self.params = spec.strategy.values
        self.streaks = {1: 0, -1: 0}
        self.spread: Spread | None = None
        self.spreads = 0
        self.venue_ms = 0
        self.pair: PairState | None = None
        self._drop_journal = False
        self.halted = False  # a kill: no new pair until a resume
        self.paused = False  # after a manual close: no automatic entry until a manual open

    # --- set-up -----------------------------------------------------------------------------

    async def run(self) -> ArbResult:
        """Start (recover, reconcile), trade until --until or a stop, reconcile and stop."""
        spec = self.spec
        for name in self.names.values():
            config = spec.venues.get(name)
            if config is None:
                raise ConfigError(f"[arb] names venue {name!r}, which [venues] does not define")
            if config.market != "usdm":
                raise ConfigError(f'venue {name} must be a USD-M venue (market = "usdm")')
        self.venues = {
            leg: PerpVenue.from_config(self.names[leg], spec.venues[self.names[leg]], self.env)
            for leg in LEGS
        }
        self.journal = LiveJournal(spec.journal)
        self.alerter = Alerter.from_config(
            spec.alerts or AlertsConfig(), journal=self.journal, env=self.env
        )
        fresh = not spec.journal.exists()
        try:
            return await self._run()
        except VenueDown:
            if fresh and not self.started.is_set():
                self._drop_journal = True  # nothing happened: leave nothing behind
            raise
        finally:
            await asyncio.to_thread(self.alerter.close, 5.0)
            self.journal.close()
            for venue in self.venues.values():
                await venue.close()
            if self._drop_journal:
                for leftover in (
                    spec.journal,
                    *(Path(f"{spec.journal}{x}") for x in ("-wal", "-shm")),
                ):
                    leftover.unlink(missing_ok=True)

    async def _starting(self, leg: str, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """A start-up call, retried on transient failures; VenueDown when it never works."""
        rng = random.Random()
        for attempt in range(1, STARTUP_RETRY.max_attempts + 1):
            try:
                return await call()
            except VenueError as exc:
                if attempt == STARTUP_RETRY.max_attempts:
                    raise VenueDown(
                        f"venue {self.names[leg]} did not {what} after {attempt} attempts "
                        f"({type(exc).__name__})"
                    ) from None
                await asyncio.sleep(STARTUP_RETRY.delay(attempt, rng))
        raise AssertionError("unreachable")

    def _alert(self, severity: str, message: str, **payload: Any) -> None:
        self.alerter.alert(severity, message, payload=payload)

    async def _run(self) -> ArbResult:
        arb, journal = self.spec.arb, self.journal
        symbol = arb.symbol
        rules = {}
        for leg in LEGS:
            markets = await self._starting(leg, "load its markets", self.venues[leg].load)
            if symbol not in markets:
                raise ConfigError(f"venue {self.names[leg]} has no market {symbol}")
            rules[leg] = markets[symbol]
            lev = round(float(self.params["leverage"]))
            await self._starting(
                leg, "set leverage", lambda v=self.venues[leg], n=lev: v.set_leverage(symbol, n)
            )
        since = await self._session_record()
        await self._build(rules, since)
        for leg in LEGS:
            await self._reconcile(leg, attempts=10)
        await self._read_prices()
        self.pair = current_pair(journal)
        restored = journaled_state(journal)
        self.halted = restored is not None and restored[0] is not TradingState.ACTIVE
        if self.halted:
            self._alert("warning", f"arb: trading stays halted after the restart ({restored[1]})")
        pauses = journal.events(PAUSE_EVENT)
        self.paused = bool(len(pauses)) and bool(pauses["payload"].iloc[-1]["paused"])
        resumed = journal.count("fills") > 0 or self.pair is not None
        journal.record_risk_event(
            "arb_session_resumed" if resumed else "arb_session_started",
            f"arb {symbol}: {self.names['a']} vs {self.names['b']}",
            self.clock(),
            "info",
            {"pair": None if self.pair is None else self.pair.payload()},
        )
        if self.pair is not None and self.pair.status in WORKING:
            self._alert(
                "warning",
                f"arb: resuming pair {self.pair.pair_id} ({self.pair.status}, "
                f"{self.pair.slices_done}/{self.pair.slices} slices done) from the venues' "
                f"positions a={self.legs['a'].qty} b={self.legs['b'].qty}",
            )
            await self._work()
        await self._check_imbalance()
        self.started.set()
        await self._loop()
        for leg in LEGS:
            await self._reconcile(leg, attempts=3)
        journal.record_risk_event(
            "arb_session_stopped",
            "stopped" if self.stop.is_set() else "reached --until",
            self.clock(),
            "info",
        )
        return ArbResult(
            pairs=pair_history(journal),
            positions={self.names[leg]: self.legs[leg].qty for leg in LEGS},
            orders=journal.count("orders"),
            stopped_by_signal=self.stop.is_set(),
            open_pair=self.pair,
            spreads=self.spreads,
        )

    async def _build(self, rules: dict[str, Instrument], since: dict[str, int]) -> None:
        """Per venue: its portfolio rebuilt from the journal (its fills, its funding), breaker,
        order manager (finished client ids remembered, unfinished orders recovered: intents
        never sent withdrawn, unanswered ones looked up) and reconciler; then the executor."""
        spec, arb, journal = self.spec, self.spec.arb, self.journal
        symbol = arb.symbol
        self.legs: dict[str, Leg] = {}
        fills = journal.load_fills()
        known = [o for o in journal.load_orders(open_only=False) if o.status.is_terminal]
        unfinished = journal.load_orders(open_only=True)
        self.funding_seen = {
            (p["venue"], p["id"]) for p in journal.events(FUNDING_EVENT)["payload"]
        }
        for leg in LEGS:
            name = self.names[leg]
            portfolio = Portfolio(cash={"USDT": dec(arb.capital) / 2}, currency="USDT")
            for fill in fills:
                if fill.venue == name:
                    portfolio.apply_fill(fill)
            for p in journal.events(FUNDING_EVENT)["payload"]:
                if p["venue"] == name:
                    portfolio.apply_funding(symbol, Decimal(p["amount"]), int(p["ts"]))
            breaker = venue_breaker(name, spec.risk, self.alerter.alert)
            om = OrderManager(
                BreakerVenue(self.venues[leg], breaker),
                journal,
                self.clock,
                rng=random.Random(),
                policy=spec.retry,
                on_fill=lambda fill, leg=leg: self._on_fill(leg, fill),
            )
            om.remember(o for o in known if o.venue == name)
            self.legs[leg] = Leg(leg, name, symbol, om, breaker, portfolio, rules[leg])
        for leg in LEGS:
            await self.legs[leg].om.recover([o for o in unfinished if o.venue == self.names[leg]])
        self.reconcilers = {
            leg: Reconciler(
                self.venues[leg],
                self.legs[leg].om,
                journal,
                self.legs[leg].portfolio,
                [symbol],
                self.clock,
                since_ms=since[leg],
            )
            for leg in LEGS
        }
        self.since = since
        self.funding_since = {
            leg: max(
                [
                    int(p["ts"])
                    for p in journal.events(FUNDING_EVENT)["payload"]
                    if p["venue"] == self.names[leg]
                ]
                or [since[leg]]
            )
            for leg in LEGS
        }
        self.order_seq = journal.count("orders")
        self.executor = PairExecutor(
            self.legs,
            ExecConfig(
                slices=int(self.params["slices"]), retries=arb.retries, tolerance=arb.tolerance
            ),
            self._emit,
            self._next_id,
            self.clock,
            Limits(
                None if arb.max_notional_per_venue is None else dec(arb.max_notional_per_venue),
                None if arb.max_total_notional is None else dec(arb.max_total_notional),
            ),
            self.after_order,
        )

    async def _session_record(self) -> dict[str, int]:
        """The journal's session record (the venues, and their clocks at the first start):
        trades and funding before it are the accounts' history, not this session's."""
        events = self.journal.events(SESSION_EVENT)
        if len(events):
            payload = dict(events["payload"].iloc[0])
            if payload.get("venues") != self.names or payload.get("symbol") != self.spec.arb.symbol:
                raise ConfigError(
                    f"journal {self.spec.journal} belongs to an arb session of "
                    f"{payload.get('symbol')} on {payload.get('venues')}: use another --journal"
                )
            return {leg: int(payload["since_ms"][leg]) for leg in LEGS}
        since = {}
        for leg in LEGS:
            ms = await self._starting(
                leg,
                "tell its time",
                lambda v=self.venues[leg]: v.fetch_time_ms(self.spec.arb.symbol),
            )
            since[leg] = ms + 1
        self.journal.record_risk_event(
            SESSION_EVENT,
            "arb session record",
            self.clock(),
            "info",
            {
                "venues": self.names,
                "symbol": self.spec.arb.symbol,
                "since_ms": since,
                "capital": str(self.spec.arb.capital),
            },
        )
        return since

    def _on_fill(self, leg: str, fill: Fill) -> None:
        legs = self.legs[leg]
        legs.portfolio.apply_fill(fill)
        pos = legs.portfolio.positions[fill.symbol]
        self.journal.record_position(pos, legs.venue)

    def _next_id(self, leg: str) -> str:
        # every order is journaled before it is sent, so the journal's count never repeats
        self.order_seq += 1
        pair = self.pair.pair_id if self.pair is not None else 0
        return f"arb-{pair}-{self.order_seq}{leg}"

    def _emit(self, kind: str, leg: str, qty: Decimal, detail: str) -> None:
        venue = self.names.get(leg, "pair")
        message = f"arb {kind} on {venue}: {detail} (qty {qty})"
        payload = {"kind": kind, "leg": leg, "venue": venue, "qty": str(qty), "detail": detail}
        if self.pair is not None:
            payload["pair"] = self.pair.pair_id
        self.journal.record_risk_event(
            EXEC_EVENT, message, self.clock(), SEVERITY.get(kind, "info"), payload
        )
        self._alert(SEVERITY.get(kind, "info"), message, **payload)

    # --- the loop ---------------------------------------------------------------------------

    async def _loop(self) -> None:
        arb = self.spec.arb
        loop = asyncio.get_running_loop()
        due = {"funding": 0.0, "prices": 0.0, "reconcile": loop.time() + arb.reconcile_every_s}
        every = {
            "funding": arb.funding_poll_s,
            "prices": arb.price_poll_s,
            "reconcile": arb.reconcile_every_s,
        }
        while not self.stop.is_set():
            if self.spec.until_ms is not None and self.venue_ms >= self.spec.until_ms:
                return
            await self._commands()
            now = loop.time()
            if now >= due["prices"]:
                due["prices"] = now + every["prices"]
                if await self._read_prices():
                    await self._retry_step()
                    await self._check_exit()
                    await self._check_imbalance()
            if now >= due["funding"]:
                due["funding"] = now + every["funding"]
                await self._read_funding()
            if now >= due["reconcile"]:
                due["reconcile"] = now + every["reconcile"]
                for leg in LEGS:
                    await self._reconcile(leg, attempts=1)
                await self._check_imbalance()
            wait = max(min(due.values()) - loop.time(), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=wait)

    async def _read_prices(self) -> bool:
        """Both legs' marks (and venue A's clock); False if a venue did not answer."""
        ok = True
        for leg in LEGS:
            venue, symbol = self.venues[leg], self.spec.arb.symbol
            try:
                ms, price = await self.legs[leg].breaker.call(venue.fetch_mark, symbol)
            except VenueError as exc:
                ok = False
                self._alert(
                    "warning",
                    f"arb: no price from {self.names[leg]} ({type(exc).__name__})",
                    venue=self.names[leg],
                )
                continue
            self.legs[leg].mark = price
            if leg == "a":
                self.venue_ms = ms
        return ok

    async def _read_funding(self) -> None:
        """Both venues' settled rates -> the spread; streaks and the entry rule; payments."""
        arb, p = self.spec.arb, self.params
        settled = {}
        for leg in LEGS:
            try:
                settled[leg] = await self.legs[leg].breaker.call(
                    self.venues[leg].fetch_settlements, arb.symbol, 10
                )
                await self._book_funding(leg)
            except VenueError as exc:
                self._alert(
                    "warning",
                    f"arb: no funding from {self.names[leg]} ({type(exc).__name__})",
                    venue=self.names[leg],
                )
                return
        fees = {leg: self._taker_fee(leg) for leg in LEGS}
        self.spread = observe(
            settled,
            self.names,
            fees,
            float(p["slippage_bps"]),
            float(p["hold_hours"]),
            arb.maintenance_margin,
        )
        spread_apr = self.spread.spread_apr
        long_a, short_a = self.spread.net_long_a, self.spread.net_short_a
        self.spreads += 1
        payload = self.spread.payload() | {
            "entry_apr": float(p["entry_apr"]),
            "venue_a": self.names["a"],
            "venue_b": self.names["b"],
            "symbol": arb.symbol,
            "venue_ms": self.venue_ms,
        }
        self.journal.record_risk_event(
            SPREAD_EVENT, f"spread {spread_apr:.2%} APR", self.clock(), "info", payload
        )
        if self.on_status is not None:
            self.on_status(self._status_line())
        if self.pair is None and not self.paused and not self.halted:
            self.streaks[1] = self.spec.strategy.streak(self.streaks[1], long_a)
            self.streaks[-1] = self.spec.strategy.streak(self.streaks[-1], short_a)
            direction = self.spec.strategy.entry(self.streaks[1], self.streaks[-1])
            if direction:
                self.streaks = {1: 0, -1: 0}
                net = long_a if direction > 0 else short_a
                await self._open(direction, f"entry: net {net:.2%} APR")

    def _status_line(self) -> str:
        """The spread and the pair, in one line."""
        assert self.spread is not None
        sp, entry = self.spread, float(self.params["entry_apr"])
        line = (
            f"spread {sp.spread_apr:.2%} APR (net long A {sp.net_long_a:.2%}, short A "
            f"{sp.net_short_a:.2%}; entry {entry:.2%})"
        )
        if self.halted:
            line += "; halted"
        elif self.paused:
            line += "; entries paused"
        state = self.pair
        if state is None:
            return line + "; no pair"
        pnl = pair_pnl(state, self._portfolios(), self._symbols(), self._marks())
        price = sum(pnl.price.values(), ZERO)
        funding = sum(pnl.funding.values(), ZERO)
        return (
            f"{line}; pair {state.pair_id} {state.status} {state.qty}: PnL {pnl.total:.2f} "
            f"(price {price:.2f}, funding {funding:.2f}, fees {-pnl.fees:.2f})"
        )

    def _taker_fee(self, leg: str) -> float:
        """The configured taker fee of a leg's venue, else its market's."""
        fee = self.spec.arb.taker_fees.get(self.names[leg])
        return float(self.legs[leg].rules.taker_fee or 0) if fee is None else fee

    async def _book_funding(self, leg: str) -> None:
        """Funding payments the venue booked since the session began, each once (read from
        the last one booked on)."""
        name, symbol = self.names[leg], self.spec.arb.symbol
        since = self.funding_since.get(leg, self.since[leg])
        payments = await self.legs[leg].breaker.call(
            self.venues[leg].fetch_funding_payments, symbol, since
        )
        for pay in payments:
            self.funding_since[leg] = max(self.funding_since.get(leg, 0), pay.time_ms)
            if (name, pay.id) in self.funding_seen or pay.time_ms < self.since[leg]:
                continue
            self.funding_seen.add((name, pay.id))
            portfolio = self.legs[leg].portfolio
            portfolio.apply_funding(symbol, pay.amount, pay.time_ms)
            self.journal.record_risk_event(
                FUNDING_EVENT,
                f"funding {pay.amount} on {name}",
                self.clock(),
                "info",
                {"venue": name, "id": pay.id, "amount": str(pay.amount), "ts": pay.time_ms},
            )
            self.journal.record_position(portfolio.positions[symbol], name)

    async def _commands(self) -> None:
        """arb_open / arb_close (`quantdesk arb open/close`), kill / resume (`quantdesk kill
        [--flatten]` / `quantdesk resume`), each consumed once."""
        for command in self.journal.pending_commands():
            if command.kind not in ("arb_open", "arb_close", "kill", "resume"):
                continue
            if not self.journal.consume_command(command.id, self.clock()):
                continue
            if command.kind == "kill":
                reason = str(command.payload.get("reason") or "kill")
                self._set_halted(True, reason)
                if command.payload.get("flatten") and self.pair is not None:
                    await self._close("kill")
            elif command.kind == "resume":
                self._set_halted(False, str(command.payload.get("reason") or "resume"))
            elif command.kind == "arb_close":
                self._pause(True, "manual close: no automatic entry until `quantdesk arb open`")
                if self.pair is None:
                    self._alert("warning", "arb close: no pair is open")
                else:
                    await self._close("manual")
            elif self.halted:
                self._alert("warning", "arb open refused: trading is halted (quantdesk resume)")
            elif self.pair is not None:
                self._alert("warning", f"arb open: pair {self.pair.pair_id} is already open")
            else:
                if self.paused:
                    self._pause(False, "manual open: automatic entries resume")
                await self._read_prices()
                await self._open(int(command.payload.get("direction", 1)), "manual")

    def _set_halted(self, halted: bool, reason: str) -> None:
        """HALTED: no pair opens (an open pair keeps its exits) until a resume; journaled as
        the kill switch journals it, so a restart comes back halted."""
        old, new = ("active", "halted") if halted else ("halted", "active")
        if self.halted == halted:
            return
        self.halted = halted
        message = f"trading state {old} -> {new}: {reason}"
        severity = "critical" if halted else "info"
        payload = {"old": old, "new": new, "reason": reason}
        self.journal.record_risk_event("state_change", message, self.clock(), severity, payload)
        self._alert(severity, f"arb: {message}", **payload)

    def _pause(self, paused: bool, message: str) -> None:
        self.paused = paused
        self.journal.record_risk_event(
            PAUSE_EVENT, message, self.clock(), "info", {"paused": paused}
        )
        self._alert("info", f"arb: {message}")

    # --- opening, closing, risk ------------------------------------------------------------

    def _size(self) -> Decimal:
        """Base quantity per leg: size x capital as margin, half per venue, x leverage, within
        the notional limits, on both venues' step."""
        arb, p = self.spec.arb, self.params
        price = max(self.legs["a"].mark, self.legs["b"].mark)
        if price <= 0:
            return ZERO
        leverage = dec(round(float(p["leverage"])))
        notional = dec(p["size"]) * dec(arb.capital) / 2 * leverage
        if arb.max_notional_per_venue is not None:
            notional = min(notional, dec(arb.max_notional_per_venue))
        if arb.max_total_notional is not None:
            notional = min(notional, dec(arb.max_total_notional) / 2)
        step = max(leg.rules.amount_step for leg in self.legs.values())
        return (notional / price / step).to_integral_value(ROUND_DOWN) * step

    async def _open(self, direction: int, reason: str) -> None:
        down = [leg.venue for leg in self.legs.values() if not leg.breaker.allows_new_orders()]
        if down:
            # one leg could not be placed: opening would only buy the other and sell it back
            self._alert("error", f"arb: not opening ({reason}): {', '.join(down)} is down")
            return
        qty = self._size()
        minimum = max(
            max(leg.rules.min_amount, leg.rules.amount_step) for leg in self.legs.values()
        )
        if qty < minimum:
            self._alert("warning", f"arb: pair too small to open ({qty} below {minimum})")
            return
        previous = pair_history(self.journal)
        self.pair = PairState(
            pair_id=(previous[-1].pair_id + 1) if previous else 1,
            status=OPENING,
            direction=direction,
            qty=qty,
            opened_ms=self.venue_ms,
            slices=int(self.params["slices"]),
            reason=reason,
            baseline={
                leg: leg_parts(self.legs[leg].portfolio, self.spec.arb.symbol) for leg in LEGS
            },
        )
        side = "long A / short B" if direction > 0 else "short A / long B"
        record_pair(self.journal, self.pair, self.clock(), f"opening pair: {side} {qty}")
        self._alert("info", f"arb: opening pair {self.pair.pair_id} {side} {qty} ({reason})")
        await self._work()

    async def _close(self, reason: str) -> None:
        assert self.pair is not None
        self.pair.status, self.pair.reason, self.pair.slices_done = CLOSING, reason, 0
        record_pair(self.journal, self.pair, self.clock(), f"closing pair: {reason}")
        self._alert("info", f"arb: closing pair {self.pair.pair_id} ({reason})")
        await self._work()

    async def _work(self) -> None:
        """Carry the pair's current step (opening or closing) through, from the positions."""
        state = self.pair
        assert state is not None
        done0 = state.slices_done

        def on_slice(k: int) -> None:
            state.slices_done = done0 + k
            record_pair(self.journal, state, self.clock(), f"{state.status}: slice {k} done")

        closing = state.status == CLOSING
        await self.executor.execute(
            state.targets(), state.slices - done0, on_slice, closing=closing
        )
        legs = self.legs
        flat = not legs["a"].qty and not legs["b"].qty
        if closing or flat:
            if not flat:
                return  # a leg is still open: the imbalance check keeps at it
            pnl = pair_pnl(state, self._portfolios(), self._symbols(), self._marks())
            if not closing:
                state.reason = "open_failed: no slice filled on both legs"
                self._alert("error", f"arb: pair {state.pair_id} did not open (legs unwound)")
            state.status, state.closed_ms = CLOSED, self.venue_ms
            record_pair(self.journal, state, self.clock(), f"closed: {state.reason}")
            self._record_pnl(state, pnl)
            self._alert(
                "info",
                f"arb: pair {state.pair_id} closed ({state.reason}), PnL {pnl.total:.4f}",
                **pnl.payload(),
            )
            self.pair = None
            return
        state.status = OPEN
        state.qty = self.executor.hedged_qty  # what both legs hold, a cut-short open included
        leverage = float(self.params["leverage"])
        margin = ZERO
        for leg in LEGS:
            pos = legs[leg].portfolio.positions[self.spec.arb.symbol]
            side = 1 if pos.quantity > 0 else -1
            liq = liquidation_price(
                float(pos.average_price), side, leverage, self.spec.arb.maintenance_margin
            )
            stop = stop_price(liq, side, float(self.params["liq_buffer"]))
            state.stops[leg] = {"stop": stop, "liquidation": liq, "side": side}
            margin += abs(pos.quantity) * pos.average_price
        state.margin = margin / dec(leverage)
        record_pair(self.journal, state, self.clock(), "open")

    def _portfolios(self) -> dict[str, Portfolio]:
        return {leg: self.legs[leg].portfolio for leg in LEGS}

    def _symbols(self) -> dict[str, str]:
        return dict.fromkeys(LEGS, self.spec.arb.symbol)

    def _marks(self) -> dict[str, Decimal]:
        return {leg: self.legs[leg].mark for leg in LEGS}

    def _record_pnl(self, state: PairState, pnl: Any) -> None:
        self.journal.record_risk_event(
            PNL_EVENT,
            f"pair {state.pair_id} PnL {pnl.total}",
            self.clock(),
            "info",
            pnl.payload()
            | {
                "pair": state.pair_id,
                "status": state.status,
                "venue_ms": self.venue_ms,
                "qty_a": str(self.legs["a"].qty),
                "qty_b": str(self.legs["b"].qty),
                "mark_a": str(self.legs["a"].mark),
                "mark_b": str(self.legs["b"].mark),
                "margin": str(state.margin),
            },
        )

    async def _check_exit(self) -> None:
        """An open pair against the liquidation buffer and the strategy's exit rules."""
        state = self.pair
        if state is None or state.status != OPEN:
            return
        pnl = pair_pnl(state, self._portfolios(), self._symbols(), self._marks())
        self._record_pnl(state, pnl)
        near = any(
            breaches(float(self.legs[leg].mark), s["stop"], s["side"])
            for leg, s in state.stops.items()
        )
        ret = pair_return(float(pnl.total), float(state.margin))
        hours = max(self.venue_ms - state.opened_ms, 0) / HOUR_MS
        held = state.direction * self.spread.spread_apr if self.spread is not None else 0.0
        if self.spread is None:
            held = float("inf")  # no funding read yet: the spread says nothing
        reason = self.spec.strategy.exit(held, hours, ret, near)
        if reason is not None:
            await self._close(reason)

    async def _retry_step(self) -> None:
        """A close that could not finish (a venue was down) is carried on once both venues
        take orders again."""
        state = self.pair
        if state is None or state.status not in WORKING:
            return
        if all(leg.breaker.allows_new_orders() for leg in self.legs.values()):
            self._alert("warning", f"arb: retrying the {state.status} of pair {state.pair_id}")
            await self._work()

    async def _check_imbalance(self) -> None:
        """Between steps the legs must mirror each other (and be flat without a pair)."""
        if self.pair is not None and self.pair.status in WORKING:
            return
        a, b = self.legs["a"], self.legs["b"]
        step = max(a.rules.amount_step, b.rules.amount_step)
        naked = self.pair is None and (a.qty or b.qty)
        if abs(self.executor.net) < step and not naked:
            return
        self._emit(
            "rebalanced",
            "pair",
            self.executor.net,
            f"legs a={a.qty} b={b.qty} out of balance: repairing",
        )
        await self.executor.square("rebalanced", "imbalance check")
        if self.pair is None and (a.qty or b.qty):
            for leg in LEGS:
                if self.legs[leg].qty:
                    await self.executor.send(
                        leg, -self.legs[leg].qty, "no pair: close", reduce_only=True
                    )

    async def _reconcile(self, leg: str, attempts: int) -> bool:
        """Orders in flight settled (looked up, never resent: the pair decides anew), then one
        reconciliation pass of the venue; every difference journaled and alerted."""
        om = self.legs[leg].om
        for attempt in range(1, attempts + 1):
            try:
                in_flight = [o for o in om.orders.values() if o.status is OrderStatus.SUBMITTED]
                if in_flight:
                    await om.recover(in_flight)
                report = await self.reconcilers[leg].run()
            except VenueError as exc:
                self.journal.record_risk_event(
                    "reconcile_failed",
                    f"{self.names[leg]}: {type(exc).__name__}",
                    self.clock(),
                    "warning",
                )
                if attempt < attempts:
                    await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
                continue
            for d in report.differences:
                self._alert(
                    "warning" if d.kind == "order" else "error",
                    f"arb reconcile {self.names[leg]}: {d.kind} {d.key}: journal {d.journal}, "
                    f"venue {d.venue} ({d.action})",
                    venue=self.names[leg],
                    kind=d.kind,
                )
            return True
        return False
