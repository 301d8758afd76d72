"""Paper and live sessions: closed candles through ccxt, orders to CcxtVenue or SimVenue.

The kernel's `Feed` for live data is a `LiveBarFeed` (REST polling of closed candles,
system/bar_feeds.py) or, with the venue's `feed = "streams"`, a `StreamBarFeed` (ccxt.pro's
kline stream with reconnects and REST backfill, system/bar_streams.py).

Crash injection for the crash tests lives outside this path, in `quantdesk.testing.crash`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import re
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from quantdesk.alerts import Alerter, AlertsConfig
from quantdesk.config import VenueConfig
from quantdesk.data.store import DataStore, stored_funding
from quantdesk.data.timeframes import timeframe_ms
from quantdesk.engine.clock import WallClock
from quantdesk.engine.feeds import Step
from quantdesk.engine.journal import Journal
from quantdesk.engine.kernel import ExecutionMode, Kernel
from quantdesk.engine.portfolio import Portfolio
from quantdesk.engine.reconcile import Reconciler, ReconcileReport, UnknownOrders
from quantdesk.engine.runner import SignalRunner, WeightRunner
from quantdesk.errors import ConfigError, QuantdeskError
from quantdesk.model import (
    ZERO,
    Instrument,
    RetryPolicy,
    SimBar,
    TradingState,
    VenueError,
    VenueRefused,
    dec,
    is_flatten_order,
    split_symbol,
)
from quantdesk.risk.breaker import BreakerVenue
from quantdesk.risk.checks import RiskEngine
from quantdesk.risk.gate import PreTradeRisk
from quantdesk.risk.killswitch import journaled_state
from quantdesk.risk.limits import RiskConfig
from quantdesk.risk.sizing import Sizing, entry_size
from quantdesk.risk.var import daily_returns
from quantdesk.strategy import SignalStrategy
from quantdesk.system.bar_feeds import LiveBarFeed
from quantdesk.system.bar_streams import StreamBarFeed
from quantdesk.system.kernel import (
    build_kernel,
    funding_schedule,
    timeout_ms,
    venue_breaker,
)
from quantdesk.system.status import SessionFigures, StatusBoard, session_figures
from quantdesk.venues.ccxt_venue import CcxtVenue
from quantdesk.venues.sim import SimVenue

log = logging.getLogger(__name__)

# Start-up talks to the venue before anything is at stake: a transient fault (reset, 5xx, rate
# limit, latency) is retried with the trading backoff; a venue that stays down ends the command.
STARTUP_RETRY = RetryPolicy(base=0.5, factor=2.0, cap=8.0, max_attempts=6)


class VenueDown(QuantdeskError):
    """The venue did not answer at start-up (after retries), or refused the session."""


class RedactSignatures(logging.Filter):
    """Blanks request signatures in log records (ccxt error messages quote the signed URL)."""

    _PATTERN = re.compile(r"(signature=)[0-9A-Za-z%+/=_-]+")

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the message in place; never drops a record."""
        message = record.getMessage()
        redacted = self._PATTERN.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def session_logging() -> None:
    """Warnings and errors to stderr with times, request signatures blanked (every session CLI)."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactSignatures())


def install_signal_handlers(stop: asyncio.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM set `stop` (a graceful shutdown); returns a function that removes them."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)

    def remove() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return remove


# --- sessions ---------------------------------------------------------------------------------


class Mode(StrEnum):
    """Paper: live data, simulated fills. Live: live data, orders at the venue."""

    PAPER = "paper"
    LIVE = "live"


class LiveJournal(Journal):
    """A journal that commits every write at once.

    The kernel batches writes when the journal offers `batch` (fast replays); a live session must
    not: the order intent has to be durable before its request leaves, and a fill the moment it is
    known, or a crash loses them.
    """

    batch = None  # type: ignore[assignment]


@dataclass
class SessionSpec:
    """Everything `quantdesk run` decides."""

    strategy: SignalStrategy
    symbols: list[str]
    mode: Mode
    venue_name: str
    venue: VenueConfig
    journal: Path
    execution: ExecutionMode = ExecutionMode.AUTO
    timeframe: str | None = None
    until_ms: int | None = None
    capital: Decimal | None = None  # per symbol; default: free quote balance / symbols * 0.98
    poll_s: float = 5.0
    reconcile_every_s: float = 60.0
    unknown_orders: UnknownOrders = UnknownOrders.CANCEL
    cancel_on_exit: bool = False
    slippage: Decimal = ZERO  # paper fills
    retry: RetryPolicy | None = None  # backoff of ambiguous order failures (default: RetryPolicy())
    risk: RiskConfig | None = None  # [risk]: limits, monitors, kill switch (None: market checks)
    config_path: Path | None = None  # quantdesk.toml, re-read for [risk] changes (hot reload)
    store: DataStore | None = None  # funding rates of the perpetuals traded are settled from it
    alerts: AlertsConfig | None = None  # [alerts]: every configured channel gets the session's


@dataclass
class SessionResult:
    """What a session did, for the CLI summary and tests."""

    steps: int
    orders: int
    fills: int
    positions: dict[str, Decimal]
    equity: Decimal | None
    reconciliations: list[ReconcileReport] = field(default_factory=list)
    stopped_by_signal: bool = False
    capital: Decimal = ZERO  # the session's starting capital (all symbols)
    outside: dict[str, Decimal] = field(default_factory=dict)  # account holdings not the session's
    state: TradingState | None = None  # the trading state at the end (halted stays halted)
    figures: SessionFigures | None = None  # PnL split into price, fees and funding
    quote: str = ""


class Session:
    """One paper or live session: venue, journal, portfolio, kernel, feed and reconciliation."""

    def __init__(
        self,
        spec: SessionSpec,
        *,
        env: Mapping[str, str] | None = None,
        stop: asyncio.Event | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        """env: where credentials are read (default os.environ); stop: set it to stop gracefully;
        on_status: gets one status line per bar and each warning/critical risk event."""
        self.spec = spec
        self.on_status = on_status
        self.env = env
        self.stop = stop or asyncio.Event()
        self.clock = WallClock()
        self.reports: list[ReconcileReport] = []
        self.started = asyncio.Event()  # set once recovered, reconciled and warmed up
        self.alerter: Alerter | None = None

    async def run(self) -> SessionResult:
        """Start (recover, reconcile, warm up), trade until --until or a stop, shut down."""
        spec = self.spec
        data = CcxtVenue.from_config(spec.venue_name, spec.venue, self.env)
        fresh = not spec.journal.exists()
        journal = LiveJournal(spec.journal)
        self.alerter = (
            Alerter.from_config(spec.alerts, journal=journal, env=self.env)
            if spec.alerts is not None
            else None
        )
        try:
            return await self._run(data, journal)
        except VenueDown:
            if fresh and not self.started.is_set():
                journal.close()
                for leftover in (
                    spec.journal,
                    *(Path(f"{spec.journal}{x}") for x in ("-wal", "-shm")),
                ):
                    leftover.unlink(missing_ok=True)  # nothing happened: leave nothing behind
            raise
        finally:
            if self.alerter is not None:
                await asyncio.to_thread(self.alerter.close, 5.0)  # deliver what is queued
            journal.close()
            await data.close()

    async def _run(self, data: CcxtVenue, journal: LiveJournal) -> SessionResult:
        spec = self.spec
        rules = await self._starting("load its markets", data.load)
        symbols = [_venue_symbol(s, rules, spec.venue.market) for s in spec.symbols]
        quotes = {split_symbol(s)[1] for s in symbols}
        if len(quotes) != 1:
            raise ConfigError(f"symbols must share one quote currency, got {sorted(quotes)}")
        quote = quotes.pop()
        timeframe = spec.timeframe or spec.strategy.timeframe
        start = await self._starting(
            "read the account", lambda: self._session_start(data, journal, quote, len(symbols))
        )
        capital = Decimal(start["capital"])
        if spec.capital is not None and spec.capital != capital:
            raise ConfigError(
                f"journal {spec.journal} trades --capital {capital}: give the same value, or "
                "start another --journal for another capital"
            )
        # The session trades its capital, not the whole account: equity, limits and sizing
        # mean the same in paper and live. The account's other holdings are kept apart.
        session_cash = capital * len(symbols)
        outside = {k: Decimal(v) for k, v in start["balances"].items()}
        outside[quote] = outside.get(quote, ZERO) - session_cash
        fills = journal.load_fills()
        portfolio = Portfolio(cash={quote: session_cash}, currency=quote)
        for fill in fills:
            portfolio.apply_fill(fill)
        fee = rules[symbols[0]].taker_fee or ZERO
        sym_rules = {s: rules[s] for s in symbols}
        sizing = entry_size(
            spec.strategy,
            spec.risk.limits_for(spec.strategy.label()) if spec.risk is not None else None,
        )
        runner: SignalRunner | WeightRunner
        weights = spec.strategy.target_weights
        if weights:
            # one cash pool for the universe (the backtest's cash sharing): the session's cash;
            # the weights size every order, a [risk] entry size does not apply
            runner = WeightRunner(spec.strategy, symbols, capital=session_cash, fee=fee)
            sizing = Sizing(None, "target weights")
        else:
            runner = SignalRunner(
                spec.strategy,
                symbols,
                capital=capital,
                fee=fee,
                size=None if sizing.fraction is None else dec(sizing.fraction),
                min_amounts={s: max(r.min_amount, r.amount_step) for s, r in sym_rules.items()},
            )
        step = min(r.amount_step for r in sym_rules.values())
        # paper trades target weights on the backtest's cash model, as a replay does (a
        # short's proceeds are cash); live trades them against the venue's own margin
        cash_margin = weights and spec.mode is Mode.PAPER
        venue = (
            data
            if spec.mode is Mode.LIVE
            else self._paper_venue(portfolio, sym_rules, fee, cash_margin=cash_margin)
        )
        gate: PreTradeRisk | RiskEngine = PreTradeRisk(
            sym_rules, fee_rate=fee, cash_margin=cash_margin
        )
        # the breaker's open/closed transitions reach every alert channel too
        alert = self.alerter.alert if self.alerter is not None else None
        breaker = venue_breaker(venue.name, spec.risk, alert)
        restored = journaled_state(journal)
        if spec.risk is not None:
            gate = RiskEngine(
                sym_rules,
                spec.risk,
                portfolio,
                clock=self.clock,
                fee_rate=fee,
                journal=journal,
                state=restored[0] if restored else TradingState.ACTIVE,
                breakers={venue.name: breaker},
                alerter=self.alerter,
                cash_margin=cash_margin,
            )
        elif restored is not None:
            gate.state = restored[0]
        if restored is not None and restored[0] is not TradingState.ACTIVE:
            message = (
                f"trading stays {restored[0].value} after the restart ({restored[1]}): "
                f"only `quantdesk resume --journal {spec.journal}` re-arms it"
            )
            log.warning(message)
            journal.record_risk_event("state_restored", message, self.clock(), "critical")
        kernel = build_kernel(
            venue,
            portfolio,
            journal,
            self.clock,
            breaker=breaker,
            runners=[runner],
            risk=gate,
            mode=spec.execution,
            amount_step=step,
            timeframe_ms=timeframe_ms(timeframe),
            retry=spec.retry,
            order_timeout_ms=timeout_ms(spec.risk),
            # Only settlements still to come: past ones were paid on the positions held then
            # (the venue's balances carry them), never on the position restored now.
            funding=_upcoming(
                funding_schedule(
                    stored_funding(spec.store, symbols) if spec.store is not None else None
                ),
                self.clock(),
            ),
            # Every client id ever journaled stays known: the same decision is never sent twice.
            known_orders=[o for o in journal.load_orders(open_only=False) if o.status.is_terminal],
            config_path=spec.config_path,
            returns=(
                await self._starting(
                    "send daily bars",
                    lambda: venue_daily_returns(data, symbols, gate.config.var_window_days),
                )
                if isinstance(gate, RiskEngine)
                else None
            ),
        )
        await kernel.om.recover(journal.load_orders(open_only=True))
        reconciler = None
        if spec.mode is Mode.LIVE:
            reconciler = Reconciler(
                data, kernel.om, journal, portfolio, symbols, self.clock,
                unknown_orders=spec.unknown_orders, since_ms=int(start["since_ms"]),
                outside=outside,
            )  # fmt: skip
            await self._reconcile(reconciler, journal, attempts=30)
            # while trading, reconciliation's requests count for the breaker like orders do
            # (and wait while it is open); start-up and shutdown retry on their own
            reconciler.venue = BreakerVenue(data, breaker)
        if kernel.guard is not None:  # a kill queued while no session ran acts before any bar
            await kernel.guard.kill_switch.poll()
        _restore_sleeves(runner, journal, kernel)
        feed = self._feed(data, symbols, timeframe)
        history = await self._starting("send recent bars", lambda: feed.history(runner.window))
        _warm_up(history, runner, kernel)
        # the closed bars the session saw (its warm-up window included), so that the daily
        # report can replay its day offline: a sandbox's or venue's history is not in the store
        keep_bars = partial(_journal_bars, journal, timeframe)
        keep_bars(history)
        feed.on_step = lambda step: keep_bars([step])
        last = [self.clock()]

        async def idle() -> None:
            await kernel.idle()  # approvals, kill/resume commands and monitors between bars
            if reconciler is not None and self.clock() - last[0] >= spec.reconcile_every_s * 1000:
                last[0] = self.clock()
                await self._reconcile(reconciler, journal, attempts=1)

        feed.on_idle = idle
        if self.on_status is not None:
            feed.after_step = self._status_reporter(
                kernel, portfolio, gate, journal, symbols, session_cash
            )
        journal.record_risk_event(
            "session_resumed" if fills or start.get("resumed") else "session_started",
            f"{spec.mode} session on {spec.venue_name}: {spec.strategy!r} {', '.join(symbols)}",
            self.clock(),
            severity="info",
            payload=self._replay_record(symbols, timeframe, capital, fee, sizing.fraction, step,
                                        sym_rules, runner.window,
                                        history[-1][0].bar.time if history else None),
        )  # fmt: skip
        self.started.set()
        try:
            await kernel.run(feed)
        finally:
            await feed.close()
        if spec.cancel_on_exit:
            for order in [o for o in kernel.om.orders.values() if o.status.is_open]:
                await kernel.om.cancel(order.client_order_id, "shutdown")
        if reconciler is not None:
            reconciler.venue = data
            await self._reconcile(reconciler, journal, attempts=10)
        journal.record_risk_event(
            "session_stopped",
            "stopped by signal" if self.stop.is_set() else "reached --until",
            self.clock(),
            severity="info",
        )
        return SessionResult(
            steps=kernel.steps,
            orders=len([o for o in kernel.om.orders.values() if o.submit_attempts]),
            fills=journal.count("fills"),
            positions={s: p.quantity for s, p in portfolio.positions.items() if p.quantity},
            equity=kernel.equity() if kernel.closes else None,
            reconciliations=self.reports,
            stopped_by_signal=self.stop.is_set(),
            capital=session_cash,
            outside={a: v for a, v in outside.items() if v} if spec.mode is Mode.LIVE else {},
            state=gate.state,
            figures=session_figures(portfolio, session_cash, kernel.equity())
            if kernel.closes
            else None,
            quote=quote,
        )

    def _feed(self, data: CcxtVenue, symbols: list[str], timeframe: str) -> LiveBarFeed:
        """The venue's kline streams (feed = streams, when ccxt.pro has the exchange), else
        REST polling."""
        spec = self.spec
        if spec.venue.feed == "streams" and data.streams:
            return StreamBarFeed(
                data, symbols, timeframe, poll_s=spec.poll_s, stall_s=spec.venue.stream_stall_s,
                until_ms=spec.until_ms, stop=self.stop,
            )  # fmt: skip
        if spec.venue.feed == "streams":
            log.warning("venue %s has no ccxt.pro streams: polling candles", spec.venue_name)
        return LiveBarFeed(
            data, symbols, timeframe, poll_s=spec.poll_s, until_ms=spec.until_ms, stop=self.stop
        )

    def _status_reporter(
        self,
        kernel: Kernel,
        portfolio: Portfolio,
        gate: Any,
        journal: Journal,
        symbols: Sequence[str],
        capital: Decimal,
    ) -> Callable[[], None]:
        """A callback printing one line per bar, then any new warning or critical event."""
        assert self.on_status is not None
        say = self.on_status
        board = StatusBoard(symbols, capital)
        board.line(kernel, portfolio, gate)  # what came before this session's first bar
        board.alerts(journal.events())

        def report() -> None:
            say(board.line(kernel, portfolio, gate))
            for line in board.alerts(journal.events(after_id=board.last_event_id)):
                say(line)

        return report

    def _replay_record(
        self,
        symbols: Sequence[str],
        timeframe: str,
        capital: Decimal,
        fee: Decimal,
        size: float | None,
        amount_step: Decimal,
        rules: Mapping[str, Instrument],
        window: int,
        warmup_until_ms: int | None,
    ) -> dict[str, Any]:
        """What a replay of this session needs (the daily report's live-vs-backtest drift):
        the strategy and params, and the sizing and fill settings the session trades with."""
        strategy = self.spec.strategy
        return {
            "strategy": strategy.label(),
            "strategies_dir": str(Path(inspect.getfile(type(strategy))).parent),
            "params": dict(strategy.values),
            "symbols": list(symbols),
            "timeframe": timeframe,
            "capital": str(capital),
            "fee": str(fee),
            "slippage": str(self.spec.slippage),
            "size": None if size is None else str(size),
            "amount_step": str(amount_step),
            "rules": {
                s: {
                    "amount_step": str(r.amount_step),
                    "price_tick": str(r.price_tick),
                    "min_amount": str(r.min_amount),
                    "min_notional": str(r.min_notional),
                    "max_amount": None if r.max_amount is None else str(r.max_amount),
                }
                for s, r in rules.items()
            },
            "window": window,
            "warmup_until_ms": warmup_until_ms,
            # a WeightRunner on one pool of capital x symbols (else a sleeve per symbol)
            "target_weights": bool(strategy.target_weights),
            "execution": str(self.spec.execution),
        }

    def _paper_venue(
        self,
        portfolio: Portfolio,
        rules: Mapping[str, Instrument],
        fee: Decimal,
        cash_margin: bool = False,
    ) -> SimVenue:
        """In-process fills for paper mode, funded with what the portfolio holds
        (cash_margin: perps on the backtest's cash model, SimVenue's)."""
        held = dict(portfolio.cash)
        for symbol, pos in portfolio.positions.items():
            base = split_symbol(symbol)[0]
            held[base] = held.get(base, ZERO) + pos.quantity
        return SimVenue(
            list(rules),
            held,
            fee=fee,
            slippage=self.spec.slippage,
            name=f"{self.spec.venue_name}-paper",
            amount_step=min(r.amount_step for r in rules.values()),
            price_tick=min(r.price_tick for r in rules.values()),
            clock=self.clock,
            cash_margin=cash_margin,
        )

    async def _starting(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """A start-up venue call, retried on transient failures; VenueDown when it never works."""
        name = self.spec.venue_name
        rng = random.Random()
        for attempt in range(1, STARTUP_RETRY.max_attempts + 1):
            try:
                return await call()
            except VenueRefused as exc:
                raise VenueDown(f"venue {name} refused to {what}: {exc}") from None
            except VenueError as exc:
                if attempt == STARTUP_RETRY.max_attempts:
                    raise VenueDown(
                        f"venue {name} did not {what} after {attempt} attempts "
                        f"({type(exc).__name__}: {_short(exc)})"
                    ) from None
                delay = STARTUP_RETRY.delay(attempt, rng)
                log.warning("start-up: venue %s could not %s (%s); retrying in %.1f s",
                            name, what, type(exc).__name__, delay)  # fmt: skip
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _reconcile(self, reconciler: Reconciler, journal: Journal, attempts: int) -> bool:
        """One reconciliation pass, retried while the venue fails; False if it never got through
        (the next periodic pass tries again)."""
        for attempt in range(1, attempts + 1):
            try:
                self.reports.append(await reconciler.run())
                return True
            except VenueError as exc:
                log.warning("reconciliation failed (%s), attempt %d", type(exc).__name__, attempt)
                journal.record_risk_event(
                    "reconcile_failed", f"{type(exc).__name__}", self.clock(), "warning"
                )
                if attempt < attempts:
                    await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        return False

    async def _session_start(
        self, data: CcxtVenue, journal: Journal, quote: str, n_symbols: int
    ) -> dict[str, Any]:
        """The journal's session record (starting balances, capital, venue time), made once."""
        events = journal.events("session")
        if len(events):
            payload = dict(events["payload"].iloc[0])
            if (payload.get("mode"), payload.get("venue")) != (
                self.spec.mode,
                self.spec.venue_name,
            ):
                raise ConfigError(
                    f"journal {self.spec.journal} belongs to a {payload.get('mode')} session on "
                    f"{payload.get('venue')}: use another --journal"
                )
            return payload | {"resumed": True}
        symbol = _venue_symbol(self.spec.symbols[0], data.rules, self.spec.venue.market)
        venue_ms = await data.fetch_time_ms(symbol)
        if self.spec.mode is Mode.LIVE:
            venue_balances = await data.fetch_balances()
            balances = {a: b.total for a, b in venue_balances.items()}
            available = venue_balances[quote].free if quote in venue_balances else ZERO
        else:
            paper = (self.spec.capital or Decimal(10_000)) * n_symbols
            balances, available = {quote: paper}, paper
        capital = self.spec.capital or (available / n_symbols * Decimal("0.98"))
        if capital * n_symbols > available:
            raise ConfigError(
                f"--capital {capital} x {n_symbols} symbols is more than the free {available} "
                f"{quote} on {self.spec.venue_name}"
            )
        payload = {
            "mode": str(self.spec.mode),
            "venue": self.spec.venue_name,
            "balances": {a: str(v) for a, v in balances.items()},
            "capital": str(capital),
            "since_ms": venue_ms + 1,
        }
        journal.record_risk_event("session", "session record", self.clock(), "info", payload)
        return payload


def _venue_symbol(symbol: str, rules: Mapping[str, Any], market: str) -> str:
    """The venue's market for a user's symbol (BTC/USDT on a USD-M venue is BTC/USDT:USDT)."""
    if symbol in rules:
        return symbol
    if market == "usdm" and ":" not in symbol:
        perp = f"{symbol}:{split_symbol(symbol)[1]}"
        if perp in rules:
            return perp
    raise ConfigError(f"the venue has no market {symbol}")


async def venue_daily_returns(data: CcxtVenue, symbols: Sequence[str], days: int) -> pd.DataFrame:
    """Daily returns of each symbol over its last `days` closed daily candles (the VaR input)."""
    closes = {}
    for symbol in symbols:
        # One candle more than needed: the newest is usually still forming and is dropped.
        rows = (await data.fetch_closed_bars(symbol, "1d", None, limit=days + 2))[-(days + 1) :]
        index = pd.to_datetime([r[0] for r in rows], unit="ms", utc=True)
        closes[symbol] = pd.Series([float(r[4]) for r in rows], index=index, dtype=float)
    return daily_returns(pd.DataFrame(closes))


def _short(exc: BaseException) -> str:
    # ccxt messages carry the whole URL and body: the first line, capped, is enough for a person
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return RedactSignatures._PATTERN.sub(r"\1***", text)[:160]


def _upcoming(
    schedule: dict[str, list[tuple[int, Decimal]]], now_ms: int
) -> dict[str, list[tuple[int, Decimal]]]:
    """The funding settlements after now_ms, per symbol."""
    return {symbol: [(t, r) for t, r in rows if t > now_ms] for symbol, rows in schedule.items()}


def _warm_up(history: Sequence[Step], runner: SignalRunner | WeightRunner, kernel: Kernel) -> None:
    """Show the runner the last closed bars (its signal window) without acting on them: the
    strategy is not evaluated on them (seconds of a restart), their signals were history."""
    for past in history:
        for event in past:
            kernel.closes[event.symbol] = event.bar.close
            runner.remember(event)


def _journal_bars(journal: Journal, timeframe: str, steps: Sequence[Step]) -> None:
    """Journal the closed bars of these steps, per symbol."""
    per_symbol: dict[str, list[SimBar]] = {}
    for step in steps:
        for event in step:
            per_symbol.setdefault(event.symbol, []).append(event.bar)
    for symbol, bars in per_symbol.items():
        journal.record_bars(symbol, timeframe, bars)


def _restore_sleeves(runner: SignalRunner | WeightRunner, journal: Journal, kernel: Kernel) -> None:
    """Rebuild the runner's sleeves (cash, quantity; a WeightRunner's one pool) from the
    fills of its orders."""
    ours = {cid for cid, o in kernel.om.orders.items() if o.strategy_id == runner.strategy_id}
    flattens = {cid for cid, o in kernel.om.orders.items() if is_flatten_order(o)}
    for fill in journal.load_fills():
        if fill.symbol not in runner.symbols:
            continue
        if fill.client_order_id in ours:
            runner.on_fill(fill, "", 0)
        elif fill.client_order_id in flattens:  # the kill switch closed the sleeve's position
            runner.on_fill(fill, "flatten", 0)


async def run_session(
    spec: SessionSpec,
    *,
    env: Mapping[str, str] | None = None,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
    on_status: Callable[[str], None] | None = None,
) -> SessionResult:
    """Run one session to its end (`--until`, or `stop` being set); `started` is set once it
    trades; on_status gets a line per bar and each warning/critical risk event."""
    session = Session(spec, env=env, stop=stop, on_status=on_status)
    if started is not None:
        session.started = started
    return await session.run()
