"""The RiskEngine and RiskGuard plugged into the engine kernel (replay over SimVenue)."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.backtest.runner import to_bars
from quantdesk.data.synthetic import SynthSpec, generate_market
from quantdesk.engine.clock import SimClock
from quantdesk.engine.feeds import HistoricalFeed
from quantdesk.engine.journal import Journal
from quantdesk.engine.kernel import Kernel
from quantdesk.engine.portfolio import Portfolio
from quantdesk.engine.runner import SignalRunner
from quantdesk.model import Instrument, Side, TradingState
from quantdesk.risk.checks import RiskEngine
from quantdesk.risk.guard import RiskGuard
from quantdesk.risk.killswitch import queue_command
from quantdesk.risk.limits import RiskConfig
from quantdesk.strategy import load_strategy
from quantdesk.venues.sim import SimVenue

BTC = "BTC/USDT"
STEP, TICK, FEE = D("1e-8"), D("1e-8"), D("0.001")


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return to_bars({BTC: generate_market(SynthSpec(seed=11, days=25)).bars(BTC, "1h").iloc[:400]})


def build(bars: pd.DataFrame, journal: Journal, **limits) -> tuple[Kernel, HistoricalFeed]:
    feed = HistoricalFeed(bars, 3_600_000)
    clock = SimClock(int(feed.times[0]))
    venue = SimVenue(
        [BTC], {"USDT": D(10000)}, fee=FEE, amount_step=STEP, price_tick=TICK, clock=clock
    )
    portfolio = Portfolio(cash={"USDT": D(10000)})
    risk = RiskEngine(
        {BTC: Instrument(BTC, STEP, TICK)},
        RiskConfig(**limits),
        portfolio,
        clock=clock,
        fee_rate=FEE,
        journal=journal,
    )
    runner = SignalRunner(
        load_strategy("sma_cross", {"fast": 5, "slow": 20}), [BTC], capital=D(10000), fee=FEE
    )
    runner.prepare(bars)
    kernel = Kernel(
        venue,
        portfolio,
        journal,
        clock,
        runners=[runner],
        risk=risk,
        amount_step=STEP,
        timeframe_ms=feed.timeframe_ms,
        guard=lambda om: RiskGuard(risk, [om], journal=journal),
    )
    return kernel, feed


def test_entries_are_cut_to_the_symbol_exposure_limit(bars, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    kernel, feed = build(bars, journal, max_orders_per_second=100)
    asyncio.run(kernel.run(feed))
    buys = [f for f in kernel.fills if f.side is Side.BUY]
    assert len(buys) >= 3  # the unrisked strategy would put all 10000 in on each entry
    for fill in buys:
        assert fill.amount * fill.price <= D("0.15") * D(10500)
    reduced = journal.events("order_reduced")
    assert len(reduced) == len(buys)
    assert {p["reason"] for p in reduced["payload"]} == {"symbol_exposure"}
    snap = kernel.guard.monitor.last
    assert snap is not None and snap.state is TradingState.ACTIVE
    journal.close()


def test_kill_command_halts_the_replay(bars, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    kernel, feed = build(bars, journal)
    queue_command(journal, "kill", 0, reason="operator", flatten=True)
    asyncio.run(kernel.run(feed))
    assert kernel.guard.risk.state is TradingState.HALTED
    assert kernel.fills == []
    orders = journal.orders()
    assert len(orders) > 0 and set(orders["status"]) == {"rejected"}
    assert all(r.startswith("risk: halted") for r in orders["reason"])
    assert len(journal.events("order_denied")) == len(orders)  # journaled once, by the risk engine
    journal.close()


def test_daily_loss_halts_flattens_and_stops_new_entries(bars, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    kernel, feed = build(
        bars,
        journal,
        max_symbol_exposure=1.0,
        risk_per_trade=1.0,
        daily_loss_limit=0.004,
        flatten_on_halt=True,
    )
    asyncio.run(kernel.run(feed))
    guard = kernel.guard
    assert guard.risk.state is TradingState.HALTED
    (report,) = guard.kill_switch.reports
    assert report.reason.startswith("daily loss") and len(report.flatten_orders) == 1
    kill_ms = int(journal.events("kill")["ts"].iloc[0])
    after = [f for f in kernel.fills if f.timestamp >= kill_ms]
    assert [f.client_order_id for f in after] == list(report.flatten_orders)
    assert after[0].side is Side.SELL
    assert kernel.portfolio.positions[BTC].quantity == 0
    journal.close()
