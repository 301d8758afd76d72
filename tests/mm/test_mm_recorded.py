"""Recorded trades and L2 book from the store as the mm backtest's Flow: the touch per event, the
queue a resting bid waits behind, and the errors for a store without trades or book."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantdesk.data.store import DataStore
from quantdesk.data.ticks import BookEvent, book_rows, replay_book
from quantdesk.errors import BacktestError
from quantdesk.mm.backtest import MMConfig, run_mm
from quantdesk.mm.fills import ProbQueue, RiskAverse
from quantdesk.mm.flow import BOOK, TRADE, FlowConfig, generate_flow
from quantdesk.mm.quotes import BID, Quote
from quantdesk.mm.recorded import flow_from_ticks, flow_to_recording, infer_tick, store_flow
from quantdesk.strategy import QuoteStrategy, repo_strategies_dir, strategy_class
from tests.conftest import run_cli
from tests.mm.helpers import (
    BOOK_KEY,
    EVENTS,
    SYMBOL,
    T0,
    TRADES_KEY,
    recorded_trades,
    stamp,
    write_recording,
)


class JoinBid(QuoteStrategy):
    """One bid of size 1 at a fixed price, placed again whenever it filled."""

    timeframe = "event"
    params: dict = {}

    def __init__(self, price: float) -> None:
        super().__init__()
        self.price = price

    def on_book(self, book, ctx):
        """The same bid whatever the book."""
        return [Quote(BID, self.price, 1.0)]

    def on_timer(self, now, ctx):
        """The same bid."""
        return self.on_book(ctx.book, ctx)


def test_the_flow_is_the_touch_after_each_trade_and_book_change(tmp_path: Path) -> None:
    flow = store_flow(write_recording(tmp_path), SYMBOL)
    assert flow.config.tick == 0.01 and flow.config.start_ns == T0.value
    # (s, kind, side, price tick, size, bid, ask, bid size, ask size)
    expected = [
        (0.0, BOOK, 0, 9999, 5.0, 9999, 10001, 5.0, 7.0),
        (1.0, TRADE, -1, 9999, 2.0, 9999, 10001, 3.0, 7.0),  # the diff at 1 s is dropped
        (2.0, TRADE, -1, 9999, 2.0, 9999, 10001, 1.0, 7.0),
        (2.5, BOOK, 1, 9999, 4.0, 9999, 10001, 4.0, 7.0),
        (3.0, TRADE, -1, 9999, 2.0, 9999, 10001, 2.0, 7.0),
        (4.0, BOOK, -1, 10002, 10.0, 9999, 10002, 2.0, 10.0),
        (5.0, TRADE, 1, 10002, 4.0, 9999, 10002, 2.0, 6.0),
        (6.0, TRADE, -1, 9998, 10.0, 9997, 10002, 8.0, 6.0),
    ]
    got = list(
        zip(
            (flow.time_ns / 1e9).tolist(),
            flow.kind.tolist(),
            flow.side.tolist(),
            flow.price_tick.tolist(),
            flow.size.tolist(),
            flow.bid_tick.tolist(),
            flow.ask_tick.tolist(),
            flow.bid_size.tolist(),
            flow.ask_size.tolist(),
            strict=True,
        )
    )
    assert got == expected
    # the deep queue: the median of levels 2-5 of the snapshot (10, 8 and 10, 9)
    assert flow.config.depth == 9.5
    assert flow.extra["trades"] == 5.0


@pytest.mark.parametrize("seconds", [0.0, 1.5, 2.7, 4.2, 6.5])
def test_touch_prices_equal_the_replayed_book(tmp_path: Path, seconds: float) -> None:
    store = write_recording(tmp_path)
    flow = store_flow(store, SYMBOL, end=stamp(4.5))
    at = int(np.searchsorted(flow.time_ns, round(seconds * 1e9), side="right") - 1)
    book = replay_book(store.read(BOOK_KEY), at=stamp(seconds))
    if seconds < 4.5:
        assert flow.bid[at] == pytest.approx(book.bids[0][0], abs=1e-9)
        assert flow.ask[at] == pytest.approx(book.asks[0][0], abs=1e-9)
        assert flow.mid[at] == pytest.approx((book.bids[0][0] + book.asks[0][0]) / 2, abs=1e-9)
    else:
        assert flow.time_ns[-1] == 4 * 10**9  # nothing after the end is replayed


@pytest.mark.parametrize("queue", [RiskAverse(), ProbQueue()])
def test_a_bid_behind_five_fills_after_five_traded(tmp_path: Path, queue) -> None:
    flow = store_flow(write_recording(tmp_path), SYMBOL)
    result = run_mm(JoinBid(99.99), flow, MMConfig(queue=queue))
    fills = result.fills
    # 5 ahead: trades of 2 and 2 leave 1 ahead, the third fills us by 1 at 3 s; the bid placed
    # again joins behind 2 and is filled whole by the sell through it at 6 s
    assert fills["time_ns"].tolist() == [3 * 10**9, 6 * 10**9]
    assert fills["price"].tolist() == pytest.approx([99.99, 99.99])
    assert fills["qty"].tolist() == pytest.approx([1.0, 1.0])
    assert fills["mid"].tolist() == pytest.approx([100.00, 100.005])
    assert result.stats["final_inventory"] == pytest.approx(2.0)


def test_start_after_the_snapshot_starts_from_the_book_then(tmp_path: Path) -> None:
    flow = store_flow(write_recording(tmp_path), SYMBOL, start=stamp(2.7))
    assert flow.config.start_ns == stamp(2.7).value
    assert (flow.bid_tick[0], flow.ask_tick[0], flow.bid_size[0]) == (9999, 10001, 4.0)
    assert flow.kind.tolist() == [BOOK, TRADE, BOOK, TRADE, TRADE]


def test_no_trades_or_no_book_is_a_backtest_error(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    with pytest.raises(BacktestError, match="no recorded trades"):
        store_flow(store, SYMBOL)
    store.append(TRADES_KEY, recorded_trades())
    with pytest.raises(BacktestError, match="no recorded book"):
        store_flow(store, SYMBOL)
    store.append(BOOK_KEY, pd.concat([book_rows(e) for e in EVENTS]))
    with pytest.raises(BacktestError, match=r"no recorded trades for .* between 2024-03-02"):
        store_flow(store, SYMBOL, start="2024-03-02")
    with pytest.raises(BacktestError, match="holds no snapshot"):
        flow_from_ticks(recorded_trades(), book_rows(EVENTS[0]))


def test_prices_off_the_tick_are_refused() -> None:
    book = pd.concat([book_rows(e) for e in EVENTS])
    with pytest.raises(BacktestError, match=r"not a multiple of the tick 0\.02"):
        flow_from_ticks(recorded_trades(), book, tick=0.02)
    assert infer_tick(np.array([100.0, 100.5, 101.25])) == 0.25  # not the smallest gap, 0.5
    assert infer_tick(np.array([43000.1, 43000.3, 43001.0, 43005.7])) == 0.1


def test_cli_backtest_on_thewrite_recording(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    write_recording(tmp_path / "data")
    argv = ["mm", "backtest", "--source", "store", "--symbol", SYMBOL, "--exchange", "binance"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "recorded BTC/USDT" in out and "on 8 events" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "store"], "--source store needs --symbol"),
        (["--source", "store", "--symbol", SYMBOL], "no recorded trades"),
        (["--symbol", SYMBOL], "--symbol needs --source store"),
        (["--source", "store", "--symbol", SYMBOL, "--tick", "-1"], "--tick must be a positive"),
        (["--source", "store", "--symbol", SYMBOL, "--start", "soon"], "invalid time"),
    ],
)
def test_cli_bad_store_input_is_one_line_exit_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["mm", "backtest", *args], capsys)
    assert code == 2, (out, err)
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_an_event_stamped_early_keeps_the_recorded_order() -> None:
    late = BookEvent(stamp(2.4), 1, 104, 104, [(99.99, 6.0)], [])  # recorded after the 2.5 s diff
    rows = pd.concat([book_rows(e) for e in [*EVENTS[:4], late]])
    flow = flow_from_ticks(recorded_trades(), rows)
    assert np.all(np.diff(flow.time_ns) >= 0)
    at = flow.time_ns.tolist().index(2_500_000_000)
    assert flow.bid_size[at : at + 2].tolist() == [4.0, 6.0]  # both at 2.5 s, in recorded order
    assert flow.time_ns[at + 1] == 2_500_000_000


def test_a_synthetic_flow_recorded_and_replayed_gives_its_touch_trades_and_fills(tmp_path):
    flow = generate_flow(FlowConfig(hours=0.1), seed=5)
    trades, book = flow_to_recording(flow)
    store = DataStore(tmp_path)
    store.write(TRADES_KEY, trades)
    store.write(BOOK_KEY, book)
    replayed = store_flow(store, SYMBOL)
    assert replayed.config.start_ns == flow.config.start_ns and replayed.config.tick == 0.01
    assert replayed.config.depth == flow.config.depth  # the snapshot's levels behind the touch
    # the touch after every timestamp of the flow
    last = np.append(flow.time_ns[1:] != flow.time_ns[:-1], True)
    at = np.searchsorted(replayed.time_ns, flow.time_ns[last], side="right") - 1
    for name in ("bid_tick", "ask_tick", "bid_size", "ask_size"):
        assert np.array_equal(getattr(replayed, name)[at], getattr(flow, name)[last]), name
    # every trade, one to one
    ours, theirs = flow.kind == TRADE, replayed.kind == TRADE
    for name in ("time_ns", "side", "price_tick", "size"):
        assert np.array_equal(getattr(replayed, name)[theirs], getattr(flow, name)[ours]), name
    strategy = strategy_class("basic_mm", str(repo_strategies_dir()))
    a, b = run_mm(strategy(), flow).fills, run_mm(strategy(), replayed).fills
    assert len(a) > 50
    for name in ("time_ns", "side", "price", "qty"):
        assert a[name].tolist() == b[name].tolist(), name


def test_a_trade_taking_the_whole_side_keeps_the_trade_and_an_empty_touch() -> None:
    snap = BookEvent(stamp(0), 0, 1, 1, [(99.99, 5.0)], [(100.01, 7.0)])
    refill = BookEvent(stamp(2), 1, 2, 2, [], [(100.01, 0.0), (100.02, 5.0)])
    trades = recorded_trades().iloc[[4]]  # the buy of 4 at 100.02 (5 s): through 100.01
    trades.index = pd.DatetimeIndex([stamp(1)])
    flow = flow_from_ticks(trades, pd.concat([book_rows(snap), book_rows(refill)]))
    assert flow.kind.tolist() == [BOOK, TRADE, BOOK]
    # the trade took 100.01 and printed at 100.02, where nothing was recorded: the ask stands
    # at the trade's price, empty, until the diff
    assert (flow.ask_tick[1], flow.ask_size[1]) == (10002, 0.0)
    assert (flow.ask_tick[2], flow.ask_size[2]) == (10002, 5.0)
    assert flow.extra["emptied"] == 1.0
