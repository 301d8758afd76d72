"""The kernel: order of work, execution modes, journal contents, several strategies, and the
live evaluation path (signals on the last closed bars) agreeing with the precomputed one."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.backtest import Costs
from quantdesk.backtest.runner import to_bars
from quantdesk.engine.clock import SimClock
from quantdesk.engine.feeds import HistoricalFeed
from quantdesk.engine.journal import Journal
from quantdesk.engine.kernel import ExecutionMode, Kernel
from quantdesk.engine.order_manager import MemoryJournal
from quantdesk.engine.portfolio import Portfolio
from quantdesk.engine.runner import Intent, QuoteRunner, SignalRunner
from quantdesk.model import Instrument, OrderStatus, OrderType, Side, TradingState, dec
from quantdesk.risk.gate import PreTradeRisk
from quantdesk.strategy import QuoteStrategy, load_strategy
from quantdesk.system.replay import replay
from quantdesk.venues.sim import SimVenue
from tests.backtest.conftest import scripted
from tests.conftest import make_bars

SYM = "BTC/USDT"
STEP = Decimal("1e-18")


def build(
    strategies: dict,
    bars: pd.DataFrame,
    journal=None,
    mode: ExecutionMode = ExecutionMode.AUTO,
    risk_state: TradingState | None = None,
    live: bool = False,
) -> tuple[Kernel, HistoricalFeed]:
    """A kernel over one SimVenue with one SignalRunner per strategy (10,000 each)."""
    wide = to_bars({SYM: bars})
    feed = HistoricalFeed(wide, 3_600_000)
    clock = SimClock(int(feed.times[0]))
    total = Decimal(10_000) * max(1, len(strategies))
    venue = SimVenue([SYM], {"USDT": total}, fee=Decimal("0.001"), clock=clock)
    runners = []
    for sid, strategy in strategies.items():
        runner = SignalRunner(
            strategy, [SYM], capital=Decimal(10_000), fee=Decimal("0.001"), strategy_id=sid
        )
        if not live:
            runner.prepare(wide)
        runners.append(runner)
    risk = None
    if risk_state is not None:
        risk = PreTradeRisk({SYM: Instrument(SYM, STEP, Decimal("1e-12"))}, state=risk_state)
    kernel = Kernel(
        venue,
        Portfolio(cash={"USDT": total}),
        journal if journal is not None else MemoryJournal(),
        clock,
        runners=runners,
        risk=risk,
        mode=mode,
        timeframe_ms=feed.timeframe_ms,
    )
    return kernel, feed


async def run_steps(kernel: Kernel, feed: HistoricalFeed, upto: int | None = None) -> None:
    i = 0
    async for step in feed:
        if upto is not None and i >= upto:
            break
        await kernel.step(step)
        i += 1


async def test_signal_at_close_fills_at_next_open() -> None:
    bars = make_bars(12)
    kernel, feed = build({"s": scripted(entries=[2], exits=[6])}, bars)
    await kernel.run(feed)
    buy, sell = kernel.fills
    assert buy.timestamp == int(bars.index[3].timestamp() * 1000)
    assert buy.price == dec(bars["open"].iloc[3])
    assert sell.timestamp == int(bars.index[7].timestamp() * 1000)
    assert sell.amount == buy.amount
    # the sleeve spent everything: cash left is below one amount step's worth
    spent = buy.amount * buy.price + buy.fee
    assert Decimal(10_000) - spent < Decimal("1e-12")
    assert kernel.portfolio.positions[SYM].quantity == 0


async def test_journal_records_orders_events_fills_positions_and_equity(tmp_path: Path) -> None:
    bars = make_bars(30)
    with Journal(tmp_path / "j.sqlite") as journal:
        kernel, feed = build({"s": scripted(entries=[2, 12], exits=[6])}, bars, journal=journal)
        await kernel.run(feed)
        orders = journal.orders()
        assert sorted(orders["status"]) == ["filled"] * 3
        events = journal.order_events()
        first = events[events["client_order_id"] == orders["client_order_id"].iloc[-1]]
        # journaled before it was sent: pending, then submitted, then filled
        assert list(first["new"]) == ["pending", "submitted", "filled"]
        assert len(journal.fills()) == 3
        pos = journal.positions()
        assert len(pos) == 1 and pos["quantity"].iloc[0] == kernel.fills[-1].amount
        curve = journal.equity_curve()
        assert len(curve) == 30  # equity_every=1
        assert curve["equity"].iloc[-1] == kernel.equity()


async def test_signals_only_journals_intents_and_sends_nothing() -> None:
    journal = MemoryJournal()
    kernel, feed = build(
        {"s": scripted(entries=[2, 8], exits=[5])},
        make_bars(12),
        journal=journal,
        mode=ExecutionMode.SIGNALS_ONLY,
    )
    await kernel.run(feed)
    assert kernel.fills == [] and kernel.venue.core.orders == {}
    statuses = [o.status.value for o in journal.orders.values()]
    assert statuses == ["canceled"] * 3  # entry, exit, entry: the intended orders
    sides = [o.side.value for o in journal.orders.values()]
    assert sides == ["buy", "sell", "buy"]
    assert all(o.reason == "signals-only: not sent" for o in journal.orders.values())


async def test_confirm_mode_waits_for_approve_and_reject(tmp_path: Path) -> None:
    bars = make_bars(14)
    with Journal(tmp_path / "j.sqlite") as journal:
        kernel, feed = build(
            {"s": scripted(entries=[2], exits=[8])},
            bars,
            journal=journal,
            mode=ExecutionMode.CONFIRM,
        )
        steps = [s async for s in feed]
        for step in steps[:5]:
            await kernel.step(step)
        assert kernel.fills == []
        (cid,) = kernel.held
        row = journal.orders().iloc[0]
        assert (row["status"], row["reason"]) == ("pending", "awaiting approval")
        journal.add_command("approve", 0, target=cid)
        await kernel.step(steps[5])
        assert [f.client_order_id for f in kernel.fills] == [cid]
        assert kernel.fills[0].timestamp == int(bars.index[5].timestamp() * 1000)
        assert journal.pending_commands() == []
        for step in steps[6:10]:
            await kernel.step(step)
        (exit_cid,) = kernel.held
        journal.add_command("reject", 0, target=exit_cid)
        for step in steps[10:]:
            await kernel.step(step)
        orders = journal.orders().set_index("client_order_id")
        assert orders.loc[exit_cid, "status"] == "canceled"
        assert orders.loc[exit_cid, "reason"] == "rejected by operator"
        assert len(kernel.fills) == 1


async def test_an_approval_after_a_halt_sends_nothing(tmp_path: Path) -> None:
    """The gate checked the order when it was held; a kill since then wins over the approval
    (a dashboard still showing the order must not release it into a halted session)."""
    bars = make_bars(8)
    with Journal(tmp_path / "j.sqlite") as journal:
        kernel, feed = build(
            {"s": scripted(entries=[2])},
            bars,
            journal=journal,
            mode=ExecutionMode.CONFIRM,
            risk_state=TradingState.ACTIVE,
        )
        steps = [s async for s in feed]
        for step in steps[:5]:
            await kernel.step(step)
        (cid,) = kernel.held
        kernel.risk.state = TradingState.HALTED  # the kill switch's first act
        journal.add_command("approve", 0, target=cid)
        for step in steps[5:]:
            await kernel.step(step)
        assert kernel.fills == [] and kernel.venue.core.orders == {}
        assert kernel.held == {} and journal.pending_commands() == []
        row = journal.orders().set_index("client_order_id").loc[cid]
        assert row["status"] == "rejected" and "halted" in row["reason"]


async def test_halted_risk_state_denies_orders_with_a_risk_event(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        kernel, feed = build(
            {"s": scripted(entries=[2])},
            make_bars(8),
            journal=journal,
            risk_state=TradingState.HALTED,
        )
        await kernel.run(feed)
        assert kernel.fills == []
        assert list(journal.orders()["status"]) == ["rejected"]
        assert list(journal.events()["kind"]) == ["order_denied"]


async def test_two_strategies_share_one_venue_and_portfolio() -> None:
    bars = make_bars(200, seed=4)
    sma = load_strategy("sma_cross", {"fast": 5, "slow": 20})
    rsi = load_strategy("rsi_reversion", {"rsi_window": 6, "oversold": 40.0})
    kernel, feed = build({"sma": sma, "rsi": rsi}, bars)
    await kernel.run(feed)
    owners = {kernel._owner[f.client_order_id][0].strategy_id for f in kernel.fills}
    assert owners == {"sma", "rsi"}
    # the shared portfolio is the sum of the two sleeves
    sleeves = [r.sleeves[SYM] for r in kernel.runners]
    assert kernel.portfolio.positions[SYM].quantity == sum(s.qty for s in sleeves)
    assert kernel.portfolio.cash["USDT"] == sum(s.cash for s in sleeves)
    # each sleeve alone gives the same fills as running its strategy alone
    for sid, strategy in (("sma", sma), ("rsi", rsi)):
        alone, feed = build({sid: strategy}, bars)
        await alone.run(feed)
        mine = [f for f in kernel.fills if kernel._owner[f.client_order_id][0].strategy_id == sid]
        assert [(f.timestamp, f.side, f.amount, f.price) for f in mine] == [
            (f.timestamp, f.side, f.amount, f.price) for f in alone.fills
        ]


@pytest.mark.parametrize(
    ("name", "params"),
    [("sma_cross", {"fast": 5, "slow": 20, "sl_stop": 0.01}), ("rsi_reversion", {})],
)
async def test_live_window_evaluation_matches_precomputed_signals(name: str, params: dict) -> None:
    """The paper/live path (signals on the last closed bars only) trades like the replay path."""
    bars = make_bars(300, seed=9)
    strategy = load_strategy(name, params)
    pre, feed = build({"s": strategy}, bars)
    await pre.run(feed)
    live, feed = build({"s": strategy}, bars, live=True)
    await live.run(feed)
    assert len(pre.fills) > 4
    assert [(f.timestamp, f.side, f.amount, f.price) for f in live.fills] == [
        (f.timestamp, f.side, f.amount, f.price) for f in pre.fills
    ]


def test_replay_is_deterministic_and_journals(tmp_path: Path) -> None:
    data = {SYM: make_bars(300, seed=2)}
    strategy = load_strategy("sma_cross", {"fast": 5, "slow": 20})
    a = replay(strategy, data, Costs(fee=0.001), journal=tmp_path / "a.sqlite")
    b = replay(strategy, data, Costs(fee=0.001), journal=tmp_path / "b.sqlite")
    assert [(f.client_order_id, f.price, f.amount) for f in a.fills] == [
        (f.client_order_id, f.price, f.amount) for f in b.fills
    ]
    with Journal(a.journal_path) as journal:
        assert len(journal.fills()) == len(a.fills) > 0
        assert journal.equity_curve()["equity"].iloc[-1] == a.final_equity


class Maker(QuoteStrategy):
    """Bids 1% under the first close; once bought, offers 1% over the fill."""

    def on_bar(self, bar, ctx):
        if bar.index != 0:
            return []
        price = (dec(bar.bar.close) * Decimal("0.99")).quantize(Decimal("0.01"))
        return [Intent(SYM, Side.BUY, OrderType.LIMIT, Decimal(1), bar.bar.time, 10, price=price)]

    def on_fill(self, fill, ctx):
        if fill.side is not Side.BUY:
            return []
        assert ctx.portfolio.positions[SYM].quantity == fill.amount  # booked before the hook
        price = (fill.price * Decimal("1.01")).quantize(Decimal("0.01"))
        return [Intent(SYM, Side.SELL, OrderType.LIMIT, fill.amount, ctx.bar_ms, 11, price=price)]


async def test_quote_strategy_hooks_rest_limits_in_the_matching_core() -> None:
    bars = make_bars(60, seed=1)
    first_close = dec(bars["close"].iloc[0])
    bid = (first_close * Decimal("0.99")).quantize(Decimal("0.01"))
    kernel, feed = build({}, bars)
    kernel.add_runner(QuoteRunner(Maker(), [SYM], strategy_id="mm"))
    await kernel.run(feed)
    buy, sell = kernel.fills
    assert (buy.side, sell.side) == (Side.BUY, Side.SELL)
    # the bid fills at its price on the first later bar whose low trades through it
    lows = bars["low"].iloc[1:]
    hit = lows[lows.map(dec) < bid].index[0]
    assert buy.price == bid and buy.timestamp == int(hit.timestamp() * 1000)
    assert sell.price == (bid * Decimal("1.01")).quantize(Decimal("0.01"))
    assert buy.fee == bid * Decimal("0.001")  # maker fee = taker fee here, in quote


async def test_replay_runs_from_inside_a_running_event_loop() -> None:
    """Notebooks call replay() from a kernel that already runs an event loop."""
    data = {SYM: make_bars(120, seed=2)}
    strategy = load_strategy("sma_cross", {"fast": 5, "slow": 20})
    inside = replay(strategy, data, Costs(fee=0.001))
    no_gate = replay(strategy, data, Costs(fee=0.001), risk=False)
    assert len(inside.fills) > 0
    assert inside.final_equity == no_gate.final_equity  # the gate approved every order as is


async def test_stop_loss_exit_cancels_take_profit_after_the_orders_at_the_open() -> None:
    from tests.backtest.conftest import make_bars as ohlc

    rows = [(100, 101, 99, 100)] * 3 + [
        (100, 101, 99.5, 100),  # 3: entry fills at the open (signal on bar 2); stop 99 not hit
        # 4: bar 3's entry signal, due at this open, meets a position (ignored); then the
        # range: low 97 <= stop 99, the stop-loss fills at 99
        (100, 100.5, 97, 98),
        (98, 99, 97, 98),
        (98, 99, 97, 98),
    ]
    bars = ohlc(rows)
    kernel, feed = build({"s": scripted(entries=[2, 3], sl_stop=0.01, tp_stop=0.5)}, bars)
    await kernel.run(feed)
    entry, stop = kernel.fills
    assert entry.price == Decimal(100) and stop.price == Decimal(99)
    assert stop.timestamp == int(bars.index[4].timestamp() * 1000)
    tags = {cid: tag for cid, (_, tag) in kernel._owner.items()}
    tp = next(o for cid, o in kernel.om.orders.items() if tags[cid] == "tp")
    assert tp.status is OrderStatus.CANCELED and tp.reason == "sl filled"
    assert kernel.portfolio.positions[SYM].quantity == 0
