"""Tick series in the store (trades, book), book replay and their quality checks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from quantdesk.data.quality import check_frame
from quantdesk.data.store import DataStore, SeriesKey, atomic_write_parquet
from quantdesk.data.ticks import BookEvent, book_rows, replay_book

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def _t(seconds: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


def _trades(ids: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ids,
            "price": [100.0] * len(ids),
            "amount": [1.0] * len(ids),
            "side": [1] * len(ids),
        },
        index=pd.DatetimeIndex([_t(i) for i in ids]),
    )


def _book(*events: BookEvent) -> pd.DataFrame:
    return pd.concat([book_rows(e) for e in events])


SNAP = BookEvent(_t(0), 0, 10, 10, [(99.0, 1.0), (98.0, 2.0)], [(101.0, 1.0), (102.0, 3.0)])
D11 = BookEvent(_t(1), 1, 11, 11, [(99.0, 0.0), (100.0, 0.5)], [])
D12 = BookEvent(_t(2), 1, 12, 13, [], [(101.0, 4.0)])
D14_EMPTY = BookEvent(_t(3), 1, 14, 14, [], [])


def test_trades_append_dedupes_by_id_and_lists(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    key = SeriesKey("binance", "spot", "BTC/USDT", "trades")
    assert store.append(key, _trades([1, 2, 3])) == 3
    assert store.append(key, _trades([3, 4])) == 1  # a re-run appends without duplicates
    frame = store.read(key)
    assert frame["id"].tolist() == [1, 2, 3, 4] and frame["id"].dtype == "int64"
    assert store.keys(timeframe="trades") == [key]
    assert store.resolve("BTC/USDT", "trades") == key
    assert check_frame(frame, "trades") == []


def test_book_replay_at_times_and_clean_check(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    key = SeriesKey("binance", "spot", "BTC/USDT", "book")
    store.append(key, _book(SNAP, D11))
    assert store.append(key, _book(D11, D12, D14_EMPTY)) == 2  # D11 was already stored
    frame = store.read(key)
    start = replay_book(frame, at=_t(0))
    assert start.bids == [(99.0, 1.0), (98.0, 2.0)] and start.last_id == 10
    end = replay_book(frame)
    assert end.last_id == 14
    assert end.bids == [(100.0, 0.5), (98.0, 2.0)]
    assert end.asks == [(101.0, 4.0), (102.0, 3.0)]
    assert replay_book(frame, depth=1).asks == [(101.0, 4.0)]
    assert check_frame(frame, "book") == []


def test_check_flags_hand_written_gaps_crossed_books_and_duplicates(tmp_path: Path) -> None:
    gap = BookEvent(_t(2), 1, 13, 13, [], [])  # update 12 never arrived
    cross = BookEvent(_t(3), 1, 14, 14, [(101.5, 1.0)], [])  # bid above the best ask
    path = tmp_path / "book.parquet"
    atomic_write_parquet(path, _book(SNAP, D11, gap, cross))
    frame = pd.read_parquet(path)
    rules = {f.rule: f for f in check_frame(frame, "book")}
    assert set(rules) == {"sequence_gap", "crossed_book"}
    assert rules["sequence_gap"].first == _t(2) and "1 update id" in rules["sequence_gap"].detail
    assert rules["crossed_book"].count == 1
    orphan = check_frame(_book(D11), "book")
    assert [f.rule for f in orphan] == ["diff_before_snapshot"]

    trades = _trades([1, 2, 2, 3])
    trades.index = pd.DatetimeIndex([_t(0), _t(2), _t(2), _t(1)])
    assert {f.rule for f in check_frame(trades, "trades")} == {"duplicate_ids", "non_monotonic"}
