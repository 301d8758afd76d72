"""Replay: a SignalStrategy through the engine (kernel, risk, order manager, SimVenue,
portfolio, journal) over stored history, deterministic and as fast as the CPU allows.

The result carries the engine's own records (Decimal fills, portfolio, order stats) and a
`BacktestResult` rebuilt from the engine's fills (vectorbt `Portfolio.from_orders` with each
fill's exact size, price and fee), so the replay's stats table comes from the very functions the
backtest uses and the two can be compared at a glance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import vectorbt as vbt

from quantdesk.backtest.results import BacktestResult
from quantdesk.backtest.runner import on_bars, to_bars
from quantdesk.data.store import DataStore
from quantdesk.data.timeframes import timeframe_ms
from quantdesk.engine.clock import SimClock
from quantdesk.engine.feeds import BarEvent, HistoricalFeed
from quantdesk.engine.journal import Journal
from quantdesk.engine.kernel import ExecutionMode
from quantdesk.engine.order_manager import MemoryJournal, OrderStats
from quantdesk.engine.portfolio import Portfolio
from quantdesk.engine.runner import SignalRunner, WeightRunner
from quantdesk.model import (
    Costs,
    Fill,
    FundingEvent,
    Instrument,
    Side,
    SimBar,
    dec,
    money_math,
    split_symbol,
)
from quantdesk.risk.checks import RiskEngine
from quantdesk.risk.gate import PreTradeRisk
from quantdesk.risk.limits import RiskConfig
from quantdesk.strategy import SignalStrategy, Strategy, StrategyError, naive_utc
from quantdesk.system.kernel import build_kernel, funding_schedule, timeout_ms, venue_breaker
from quantdesk.venues.sim import SimVenue

T = TypeVar("T")
AMOUNT_STEP = Decimal("1e-18")
PRICE_TICK = Decimal("1e-12")
EQUITY_SNAPSHOTS = 1_000  # journaled equity points per replay (sampled, plus the last bar)


@dataclass
class ReplayResult:
    """What a replay produced: engine records and the backtest-shaped view of them."""

    backtest: BacktestResult
    fills: list[Fill]
    portfolio: Portfolio
    order_stats: OrderStats
    final_equity: Decimal
    journal_path: Path | None = None
    steps: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def stats(self) -> pd.DataFrame:
        """The backtest stats table, computed from the replay's fills."""
        return self.backtest.stats

    @property
    def trades(self) -> pd.DataFrame:
        """Round trips as the backtest reports them."""
        return self.backtest.trades


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also from code already inside an event loop (a Jupyter
    kernel): there it gets its own loop on a worker thread, still one loop, one thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def default_journal_path(out_dir: str | Path, strategy: str) -> Path:
    """reports/journals/replay-NAME-STAMP.sqlite: one fresh journal per replay."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return Path(out_dir) / "journals" / f"replay-{strategy}-{stamp}.sqlite"


@money_math
def replay(
    strategy: Strategy,
    data: pd.DataFrame | Mapping[str, pd.DataFrame],
    costs: Costs | None = None,
    *,
    timeframe: str | None = None,
    journal: str | Path | None = None,
    mode: ExecutionMode | str = ExecutionMode.AUTO,
    progress: bool = False,
    risk: bool = True,
    risk_config: RiskConfig | None = None,
    funding: Mapping[str, pd.DataFrame | pd.Series] | None = None,
) -> ReplayResult:
    """Replay a SignalStrategy bar by bar through the engine; journal to `journal` if given.

    Entries/exits run one SignalRunner sleeve of costs.init_cash per symbol; target weights
    run one WeightRunner on a single pool of costs.init_cash for the universe (the backtest's
    cash sharing), and the result's portfolio is that one group.

    risk_config: apply these [risk] limits with the live RiskEngine, monitors and automatic
    halts (`quantdesk backtest --risk`); its decision counts land in `extra["risk"]`.
    funding: stored funding rates per perpetual (column funding_rate), settled on the positions
    held at each settlement (`extra["funding"]` is the total received).
    """
    if not isinstance(strategy, SignalStrategy):
        raise StrategyError(f"{strategy.label()} is not a SignalStrategy")
    if strategy.combos is not None:
        raise StrategyError("replay runs one parameter set, not a sweep")
    costs = costs or Costs()
    tf = timeframe or strategy.timeframe
    bars = to_bars(data)
    symbols = [str(s) for s in bars["close"].columns]
    if symbols == ["asset"]:
        raise StrategyError("replay needs symbol names: pass {symbol: bars}")
    capital = dec(costs.init_cash)
    quotes = {split_symbol(s)[1] for s in symbols}
    if len(quotes) != 1:
        raise StrategyError(f"replay symbols must share one quote currency, got {sorted(quotes)}")
    quote = quotes.pop()
    signals = strategy.signals(bars)
    weights = signals.weights is not None
    # entries/exits: one sleeve of init_cash per symbol (a vectorbt column each); target
    # weights: one cash pool of init_cash for the whole universe (vectorbt's cash sharing)
    total = capital if weights else capital * len(symbols)
    fee, slippage = dec(costs.fee), dec(costs.slippage)

    feed = HistoricalFeed(bars, timeframe_ms(tf))
    clock = SimClock(int(feed.times[0]))
    venue = SimVenue(
        symbols,
        {quote: total},
        fee=fee,
        slippage=slippage,
        amount_step=AMOUNT_STEP,
        price_tick=PRICE_TICK,
        clock=clock,
        # target weights: the backtest's cash model on perps (a short's proceeds are cash,
        # nothing is liquidated), so its sells-first call sequence trades here too
        cash_margin=weights,
    )
    breaker = venue_breaker(venue.name, risk_config)
    store = Journal(journal) if journal is not None else MemoryJournal()
    portfolio = Portfolio(cash={quote: total}, currency=quote)
    gate: PreTradeRisk | RiskEngine | None = None
    if risk or risk_config is not None:
        rules = {s: Instrument(s, AMOUNT_STEP, PRICE_TICK) for s in symbols}
        gate = PreTradeRisk(rules, fee_rate=fee, cash_margin=weights)
        if risk_config is not None:
            gate = RiskEngine(
                rules,
                risk_config,
                portfolio,
                clock=clock,
                fee_rate=fee,
                cash_margin=weights,
                journal=store,
                breakers={venue.name: breaker},
            )
    size = None if costs.size is None else dec(costs.size)
    runner: SignalRunner | WeightRunner
    if weights:
        runner = WeightRunner(strategy, symbols, capital=capital, fee=fee)
    else:
        runner = SignalRunner(strategy, symbols, capital=capital, fee=fee, size=size)
    runner.prepare(bars, signals)
    kernel = build_kernel(
        venue,
        portfolio,
        store,
        clock,
        breaker=breaker,
        runners=[runner],
        risk=gate,
        mode=mode,
        amount_step=AMOUNT_STEP,
        timeframe_ms=feed.timeframe_ms,
        equity_every=max(1, len(feed) // EQUITY_SNAPSHOTS),
        order_timeout_ms=timeout_ms(risk_config),
        funding=funding_schedule(funding),
    )
    try:
        run_coroutine(kernel.run(feed, progress=progress, total=len(feed)))
        fills = sorted(kernel.fills, key=lambda f: f.timestamp)
    finally:
        if isinstance(store, Journal):
            store.close()
    result = BacktestResult(
        strategy=strategy.label(),
        params=dict(strategy.values),
        symbols=symbols,
        timeframe=tf,
        costs=costs,
        bars=bars,
        portfolio=portfolio_from_fills(bars, fills, costs.init_cash, grouped=weights),
        funding=funding_from_events(bars, kernel.funding_events),
    )
    return ReplayResult(
        backtest=result,
        fills=fills,
        portfolio=portfolio,
        order_stats=kernel.om.stats(),
        final_equity=kernel.equity(),
        journal_path=Path(journal) if journal is not None else None,
        steps=kernel.steps,
        extra={
            "awaiting_approval": len(kernel.held),
            "funding": portfolio.funding,
            **({"risk": dict(gate.decisions)} if isinstance(gate, RiskEngine) else {}),
        },
    )


def portfolio_from_fills(
    bars: pd.DataFrame, fills: list[Fill], init_cash: float, grouped: bool = False
) -> vbt.Portfolio:
    """A vectorbt portfolio of exactly these fills (size, price, fee), one order each, so the
    backtest's stats functions describe the engine's run. A trade that opens and stops out in
    one bar is two orders in that bar, as in the backtest (`runner.on_bars`). grouped: one
    cash-sharing group of init_cash (a target-weight run), else init_cash per symbol. Built
    on naive UTC (vectorbt's shape check would turn a tz-aware index into one Timestamp per
    bar: ~2.7 s of a 1M-bar replay); BacktestResult gives its outputs the bars' index back."""
    close = naive_utc(bars["close"])
    cols = {str(c): j for j, c in enumerate(close.columns)}
    times = close.index.as_unit("ms").asi8
    records = np.zeros(len(fills), dtype=vbt.portfolio.enums.order_dt)
    for k, f in enumerate(fills):
        records[k] = (
            k,
            cols[f.symbol],
            int(np.searchsorted(times, f.timestamp, side="right")) - 1,
            float(f.amount),
            float(f.price),
            float(f.fee),
            0 if f.side is Side.BUY else 1,
        )
    return on_bars(close, records, init_cash, grouped=grouped)


def funding_from_events(bars: pd.DataFrame, events: Sequence[FundingEvent]) -> pd.DataFrame | None:
    """The engine's funding settlements as cash received per bar and symbol: each on the bar
    whose open booked it (the first opening at or after the settlement), as the backtest's
    quantdesk.backtest.funding lays them out. None when nothing was settled."""
    if not events:
        return None
    close = bars["close"]
    out = np.zeros(close.shape)
    cols = {str(c): j for j, c in enumerate(close.columns)}
    times = close.index.as_unit("ms").asi8
    for ev in events:
        i = min(int(np.searchsorted(times, ev.time, side="left")), len(times) - 1)
        out[i, cols[ev.symbol]] += float(ev.amount)
    return pd.DataFrame(out, index=close.index, columns=close.columns)


def feed_from_store(
    store: DataStore,
    symbols: Iterable[str],
    timeframe: str,
    start: str | None = None,
    end: str | None = None,
    exchange: str | None = None,
    market: str | None = None,
) -> HistoricalFeed:
    """A feed of stored bars of several symbols, aligned as the backtest aligns them."""
    data = store.load_many(symbols, timeframe, start, end, exchange, market)
    return HistoricalFeed(to_bars(data), timeframe_ms(timeframe))


class _ActOnCloseFeed(HistoricalFeed):
    """Stored bars stepped as a live feed steps them: the kernel acts on each close at once
    (sized at the close, filled at the next open), as a paper or live session does."""

    historical = False


@dataclass
class SessionReplay:
    """What the replay of a session's bars did: its fills and orders (client id -> order)."""

    fills: list[Fill]
    orders: dict[str, Any]
    steps: int


@money_math
def replay_session(
    strategy: SignalStrategy, record: Mapping[str, Any], bars: Mapping[str, pd.DataFrame]
) -> SessionReplay:
    """Re-run a paper or live session over the closed bars it saw: same strategy, capital,
    sizing, fee, slippage, market rules and order of work (warm-up bars only fill the signal
    window, later closes are acted on at once), fills by SimVenue at the next bar's open.

    record: the session's `session_started` payload (quantdesk.system.live journals it);
    bars: per symbol, OHLCV on a UTC index (Journal.bars). A target-weight session (record
    "target_weights") runs one WeightRunner on capital x symbols, on the cash model its paper
    venue used, rebalancing at the open after each close as the paper session did."""
    frame = to_bars(dict(bars))
    symbols = [str(s) for s in frame["close"].columns]
    quote = split_symbol(symbols[0])[1]
    capital = Decimal(record["capital"])
    fee, slippage = Decimal(record["fee"]), Decimal(record.get("slippage") or 0)
    rules = {
        s: Instrument(
            s,
            Decimal(r["amount_step"]),
            Decimal(r["price_tick"]),
            min_amount=Decimal(r["min_amount"]),
            max_amount=None if r.get("max_amount") is None else Decimal(r["max_amount"]),
            min_notional=Decimal(r["min_notional"]),
        )
        for s, r in record["rules"].items()
        if s in symbols
    }
    step = Decimal(record["amount_step"])
    warm = frame.index.as_unit("ms").asi8 <= int(record.get("warmup_until_ms") or -1)
    tf_ms = timeframe_ms(record["timeframe"])
    feed = _ActOnCloseFeed(frame[~warm], tf_ms)
    clock = SimClock(int(feed.times[0]) if len(feed) else 0)
    total = capital * len(symbols)
    weights = bool(record.get("target_weights"))
    venue = SimVenue(
        symbols,
        {quote: total},
        fee=fee,
        slippage=slippage,
        name="session-replay",
        amount_step=min(r.amount_step for r in rules.values()),
        price_tick=min(r.price_tick for r in rules.values()),
        clock=clock,
        cash_margin=weights,
    )
    size = record.get("size")
    runner: SignalRunner | WeightRunner
    if weights:
        runner = WeightRunner(
            strategy, symbols, capital=total, fee=fee, window=int(record["window"])
        )
    else:
        runner = SignalRunner(
            strategy,
            symbols,
            capital=capital,
            fee=fee,
            size=None if size is None else Decimal(size),
            window=int(record["window"]),
            min_amounts={s: max(r.min_amount, r.amount_step) for s, r in rules.items()},
        )
    store = MemoryJournal()
    kernel = build_kernel(
        venue,
        Portfolio(cash={quote: total}, currency=quote),
        store,
        clock,
        breaker=venue_breaker(venue.name, None),
        runners=[runner],
        risk=PreTradeRisk(rules, fee_rate=fee, cash_margin=weights),
        amount_step=step,
        timeframe_ms=tf_ms,
    )
    warm_frame = frame[warm]
    for symbol in symbols:  # the session's warm-up: remembered, never acted on
        rows = pd.concat(
            [warm_frame[f][symbol] for f in ("open", "high", "low", "close", "volume")], axis=1
        ).dropna()
        times = rows.index.as_unit("ms").asi8
        for t, values in zip(times, rows.to_numpy(dtype=float).tolist(), strict=True):
            kernel.closes[symbol] = values[3]
            runner.remember(BarEvent(symbol, SimBar(int(t), *values), -1))
    if len(feed):
        run_coroutine(kernel.run(feed))
    return SessionReplay(list(kernel.fills), dict(kernel.om.orders), kernel.steps)
