"""Target weights (shorts included) in a paper session: against the sandbox's USD-M perps, a
WeightRunner keeps a window of closed bars per symbol, evaluates the universe's weights once a
step's closes are in and rebalances at the next open on the paper venue, so the session's
orders are the replay's: the session's own bars replayed (replay_session, what the daily
report's drift runs) give the same orders and fills, and the historical replay of the same
bars gives the same orders up to the venue's amount step."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest import Costs
from quantdesk.config import VenueConfig
from quantdesk.engine.journal import Journal
from quantdesk.strategy import Signals, SignalStrategy
from quantdesk.system.live import Mode, SessionSpec, run_session
from quantdesk.system.replay import replay, replay_session
from tests.sandbox.conftest import KEY, SECRET, Admin, admin, sandbox, url  # noqa: F401

MINUTE = 60_000
ENV = {"QD_TEST_KEY": KEY, "QD_TEST_SECRET": SECRET}
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
# every 3rd minute (from the epoch) the next book: long/short, flat, a flip of both, all in one
BOOKS = np.array([[0.5, -0.4], [0.0, 0.0], [-0.6, 0.3], [0.9, 0.0], [-0.3, -0.3]])


class CycleWeights(SignalStrategy):
    """Target weights as a function of the bar's time alone (causal, any window)."""

    params: dict = {}
    timeframe = "1m"
    target_weights = True
    scale = 1.0  # of every book

    def signals(self, bars: pd.DataFrame) -> Signals:
        """Every 3rd bar the next of BOOKS; NaN (hold) between them."""
        close = bars["close"]
        minute = close.index.as_unit("ms").asi8 // MINUTE
        rows = BOOKS[(minute // 3) % len(BOOKS)] * self.scale
        rows[minute % 3 != 0] = np.nan
        return Signals(weights=pd.DataFrame(rows, index=close.index, columns=close.columns))


class SmallCycleWeights(CycleWeights):
    """BOOKS at a third: at most 30% gross, inside a real venue's initial margin."""

    scale = 1 / 3


def spec(
    url: str,  # noqa: F811
    journal: Path,
    until_ms: int,
    mode: Mode = Mode.PAPER,
    strategy: SignalStrategy | None = None,
) -> SessionSpec:
    """A paper session on the sandbox's USD-M market, 2,000 USDT per symbol, 5 bps slippage."""
    venue = VenueConfig(
        exchange="binanceusdm",
        market="usdm",
        sandbox_url=url,
        api_key_env="QD_TEST_KEY",
        api_secret_env="QD_TEST_SECRET",
    )
    return SessionSpec(
        strategy=strategy or CycleWeights(),
        symbols=["BTC/USDT", "ETH/USDT"],
        mode=mode,
        venue_name="sandbox",
        venue=venue,
        journal=journal,
        timeframe="1m",
        until_ms=until_ms,
        capital=D("2000"),
        poll_s=0.01,
        slippage=D("0.0005"),
    )


async def run(spec_: SessionSpec, admin: Admin) -> Any:  # noqa: F811
    """Run the session, advancing the sandbox clock one bar at a time once it trades."""
    started = asyncio.Event()
    task = asyncio.create_task(run_session(spec_, env=ENV, started=started))

    async def drive() -> None:
        await asyncio.wait(
            [asyncio.ensure_future(started.wait()), task], return_when="FIRST_COMPLETED"
        )
        while not task.done():
            await asyncio.to_thread(admin.advance, 1)
            await asyncio.sleep(0.03)

    await asyncio.wait_for(asyncio.gather(task, drive()), 120)
    return task.result()


async def test_paper_target_weights_trade_as_the_replay(
    url: str,  # noqa: F811
    admin: Admin,  # noqa: F811
    tmp_path: Path,
) -> None:
    start = admin("GET", "clock")["time"]
    path = tmp_path / "paper.sqlite"
    result = await run(spec(url, path, start + 30 * MINUTE), admin)
    with Journal(path) as journal:
        fills = journal.load_fills()
        orders = journal.orders()
        record = journal.events("session_started")["payload"].iloc[0]
        bars = {s: journal.bars(s)[["open", "high", "low", "close", "volume"]] for s in (BTC, ETH)}
    assert record["target_weights"] is True
    assert result.fills == len(fills) > 10
    assert set(orders["status"]) == {"filled"}  # nothing refused: shorts need no margin here
    sides = {(f.symbol, f.side.value) for f in fills}
    assert sides == {(BTC, "buy"), (BTC, "sell"), (ETH, "buy"), (ETH, "sell")}
    held = dict.fromkeys((BTC, ETH), D(0))
    lowest = dict(held)
    for f in fills:
        held[f.symbol] += f.amount if f.side.value == "buy" else -f.amount
        lowest[f.symbol] = min(lowest[f.symbol], held[f.symbol])
    assert all(q < 0 for q in lowest.values())  # both went short
    # the session's bars replayed as the daily report's drift does: the same orders and fills
    again = replay_session(CycleWeights(), record, bars)
    assert [(f.client_order_id, f.side, f.amount, f.price, f.fee) for f in again.fills] == [
        (f.client_order_id, f.side, f.amount, f.price, f.fee) for f in fills
    ]
    # the historical replay of the bars after the warm-up: the same orders (symbol, side,
    # bar) in the same sequence, amounts equal up to the venue's amount step (the replay
    # trades fractions of 1e-18), prices equal
    warm = int(record["warmup_until_ms"])
    after = {s: b[b.index.as_unit("ms").asi8 > warm] for s, b in bars.items()}
    costs = Costs(
        init_cash=float(D(record["capital"]) * 2),
        fee=float(record["fee"]),
        slippage=float(record["slippage"]),
    )
    rp = replay(CycleWeights(), after, costs)
    assert [(f.symbol, f.side, f.timestamp) for f in rp.fills] == [
        (f.symbol, f.side, f.timestamp) for f in fills
    ]
    step = max(D(r["amount_step"]) for r in record["rules"].values())
    for ours, theirs in zip(fills, rp.fills, strict=True):
        assert abs(ours.amount - theirs.amount) <= 2 * step
        assert ours.price == pytest.approx(theirs.price, rel=D("1e-12"))
    assert float(result.equity) == pytest.approx(float(rp.final_equity), rel=1e-5)


async def test_live_target_weights_rebalance_at_the_close_on_the_venue(
    url: str,  # noqa: F811
    admin: Admin,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Live on the sandbox's USD-M market (its own margin, fills reported by the venue): the
    weights of each close go out at once, valued at the close; every order is
    journaled before it is sent and filled at the venue; both symbols went short there."""
    start = admin("GET", "clock")["time"]
    path = tmp_path / "live.sqlite"
    strategy = SmallCycleWeights()
    result = await run(spec(url, path, start + 30 * MINUTE, Mode.LIVE, strategy), admin)
    with Journal(path) as journal:
        fills = journal.load_fills()
        orders = journal.orders()
        events = journal.order_events()
        bars = {s: journal.bars(s) for s in (BTC, ETH)}
    assert len(fills) > 10 and set(orders["status"]) == {"filled"}
    assert {f.venue for f in fills} == {"sandbox"}
    # journaled (pending) before it was submitted to the venue, for every order
    for cid in orders["client_order_id"]:
        states = list(events[events["client_order_id"] == cid]["new"])
        assert states[:2] == ["pending", "submitted"], (cid, states)
    # each rebalance was decided on a close of the book schedule (every 3rd minute), valued
    # there: its decision price is that close
    by_id = orders.set_index("client_order_id")
    for f in fills:
        order = by_id.loc[f.client_order_id]
        b = bars[f.symbol]
        at = b[(b["close"] == float(order["decision_price"])) & (b["ts"] // MINUTE % 3 == 0)]
        assert len(at), (f.symbol, order["decision_price"])
    held = dict.fromkeys((BTC, ETH), D(0))
    lowest = dict(held)
    for f in fills:
        held[f.symbol] += f.amount if f.side.value == "buy" else -f.amount
        lowest[f.symbol] = min(lowest[f.symbol], held[f.symbol])
    assert all(q < 0 for q in lowest.values())  # shorts at the venue
    assert {s: q for s, q in held.items() if q} == result.positions
