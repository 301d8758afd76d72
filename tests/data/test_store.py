import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantdesk.data.store import DataStore, SeriesKey, atomic_write_parquet, normalize
from quantdesk.errors import DataError, NoDataError
from tests.conftest import make_bars

KEY = SeriesKey("binance", "spot", "BTC/USDT", "1h")


def test_round_trip_keeps_values_index_and_dtypes(store, bars):
    path = store.write(KEY, bars)
    assert path == store.root / "binance" / "spot" / "BTC-USDT" / "1h.parquet"
    back = store.read(KEY)
    # The store keeps nanosecond timestamps whatever unit came in (vectorbt expects ns).
    pd.testing.assert_frame_equal(back, bars.set_axis(bars.index.as_unit("ns")), check_freq=False)
    assert back.index.dtype == "datetime64[ns, UTC]"
    assert str(back.index.tz) == "UTC" and back.index.name == "time"
    assert all(back[c].dtype == np.float64 for c in back.columns)


def test_perpetual_symbol_folder_round_trips_through_keys(store, bars):
    perp = SeriesKey("binance", "usdm", "BTC/USDT:USDT", "1h")
    store.write(perp, bars)
    assert store.path(perp).parent.name == "BTC-USDT_USDT"
    assert store.keys() == [perp]


def test_naive_index_is_taken_as_utc_and_other_zones_converted(store, bars):
    naive = bars.tz_localize(None)
    store.write(KEY, naive)
    assert store.read(KEY).index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    tokyo = bars.tz_convert("Asia/Tokyo")
    assert normalize(tokyo, bars.columns).index.equals(bars.index)


def test_normalize_rejects_missing_columns_and_non_time_index(bars):
    with pytest.raises(DataError, match="lacks column"):
        normalize(bars.drop(columns="volume"), ["open", "high", "low", "close", "volume"])
    with pytest.raises(DataError, match="indexed by time"):
        normalize(bars.reset_index(drop=True), bars.columns)


def test_append_deduplicates_with_new_rows_winning_and_keeps_order(store, bars):
    store.write(KEY, bars.iloc[:30])
    update = bars.iloc[25:].copy()
    update.loc[update.index[0], "close"] = 12345.0  # a re-downloaded, now finished bar
    added = store.append(KEY, update.iloc[::-1])  # out of order on purpose
    back = store.read(KEY)
    assert added == 18
    assert len(back) == 48 and back.index.is_monotonic_increasing and back.index.is_unique
    assert back.loc[bars.index[25], "close"] == 12345.0
    assert back.loc[bars.index[24], "close"] == bars.iloc[24]["close"]


def test_append_of_known_rows_adds_nothing_and_does_not_rewrite(store, bars):
    store.write(KEY, bars)
    before = store.path(KEY).stat().st_mtime_ns
    time.sleep(0.01)
    assert store.append(KEY, bars.iloc[10:20]) == 0
    assert store.path(KEY).stat().st_mtime_ns == before


def test_append_creates_missing_series(store, bars):
    assert store.append(KEY, bars) == 48
    assert len(store.read(KEY)) == 48


def test_read_range_is_inclusive_and_validated(store, bars):
    store.write(KEY, bars)
    part = store.read(KEY, "2024-01-01T05:00", "2024-01-01T07:00")
    assert list(part.index.hour) == [5, 6, 7]
    with pytest.raises(DataError, match="after end"):
        store.read(KEY, "2024-01-02", "2024-01-01")
    with pytest.raises(DataError, match="invalid time"):
        store.read(KEY, "yesterday-ish")


def test_load_resolves_symbol_across_exchanges_and_explains_failures(store, bars):
    store.write(KEY, bars)
    assert len(store.load("BTC/USDT", "1h")) == 48
    with pytest.raises(NoDataError, match=r"no 1d data for BTC/USDT.*it has: 1h"):
        store.load("BTC/USDT", "1d")
    with pytest.raises(NoDataError, match="between 2030-01-01"):
        store.load("BTC/USDT", "1h", start="2030-01-01")
    # Real data beats the synthetic stand-in; two real exchanges need a choice.
    store.write(SeriesKey("synthetic", "spot", "BTC/USDT", "1h"), bars.iloc[:10])
    assert len(store.load("BTC/USDT", "1h")) == 48
    assert len(store.load("BTC/USDT", "1h", exchange="synthetic")) == 10
    store.write(SeriesKey("kraken", "spot", "BTC/USDT", "1h"), bars)
    with pytest.raises(DataError, match=r"several places.*binance/spot, kraken/spot"):
        store.load("BTC/USDT", "1h")
    assert len(store.load("BTC/USDT", "1h", exchange="kraken")) == 48


def test_load_many_keeps_requested_order(store, bars):
    store.write(KEY, bars)
    store.write(SeriesKey("binance", "spot", "ETH/USDT", "1h"), make_bars(10, seed=1))
    loaded = store.load_many(["ETH/USDT", "BTC/USDT"], "1h")
    assert list(loaded) == ["ETH/USDT", "BTC/USDT"]
    assert len(loaded["ETH/USDT"]) == 10


def test_funding_series_round_trip(store):
    key = SeriesKey("binance", "usdm", "BTC/USDT:USDT", "funding")
    rates = pd.DataFrame(
        {"funding_rate": [1e-4, -2e-5, 3e-4]},
        index=pd.date_range("2024-01-01", periods=3, freq="8h", tz="UTC"),
    )
    store.write(key, rates)
    assert store.load("BTC/USDT:USDT", "funding")["funding_rate"].tolist() == [1e-4, -2e-5, 3e-4]


def test_invalid_keys_are_refused():
    with pytest.raises(DataError, match="unknown market"):
        SeriesKey("binance", "margin", "BTC/USDT", "1h")
    with pytest.raises(DataError, match="invalid symbol"):
        SeriesKey("binance", "spot", "BTCUSDT", "1h")
    with pytest.raises(DataError, match="invalid timeframe"):
        SeriesKey("binance", "spot", "BTC/USDT", "1hour")
    with pytest.raises(DataError, match="invalid exchange"):
        SeriesKey("../etc", "spot", "BTC/USDT", "1h")


def test_failed_write_leaves_previous_file_intact_and_no_temp_files(store, bars, monkeypatch):
    store.write(KEY, bars.iloc[:10])
    import quantdesk.data.store as store_module

    def crash(table, handle, **kwargs):
        handle.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(store_module.pq, "write_table", crash)
    with pytest.raises(DataError, match=r"cannot write binance/spot/BTC/USDT 1h .*: disk full$"):
        store.write(KEY, bars)
    monkeypatch.undo()
    assert len(store.read(KEY)) == 10
    # The lock file stays (deleting it would race another writer); no temp file does.
    names = sorted(p.name for p in store.path(KEY).parent.iterdir())
    assert names == [".1h.parquet.lock", "1h.parquet"]


def test_process_killed_mid_write_never_leaves_a_torn_file(store):
    """SIGKILL a process that rewrites a large series in a loop; the file is always whole."""
    path = store.path(KEY)
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np, pandas as pd
        from pathlib import Path
        from quantdesk.data.store import atomic_write_parquet
        n = 400_000
        idx = pd.date_range("2020-01-01", periods=n, freq="1min", tz="UTC", name="time")
        i = 0
        while True:
            frame = pd.DataFrame({{"close": np.full(n, float(i))}}, index=idx)
            atomic_write_parquet(Path({str(path)!r}), frame)
            i += 1
            print(i, flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "1"  # one whole file exists
        time.sleep(0.15)  # now it is somewhere inside a later write
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    frame = store.read(KEY)
    assert len(frame) == 400_000
    assert frame["close"].nunique() == 1  # one complete generation, not a mix
    assert store.keys() == [KEY]  # a temp file the kill left behind is not a series


def test_keys_ignore_stray_files(store, bars):
    store.write(KEY, bars)
    (store.root / "binance" / "spot" / "BTC-USDT" / "notes.txt").write_text("hi")
    stray = store.root / "x" / "spot" / "not a symbol" / "1h.parquet"
    stray.parent.mkdir(parents=True)
    atomic_write_parquet(stray, bars)
    assert store.keys() == [KEY]
    assert store.last_timestamp(KEY) == bars.index[-1]
    assert store.last_timestamp(SeriesKey("binance", "spot", "ETH/USDT", "1h")) is None


def test_unreadable_file_is_a_data_error(store, bars):
    store.write(KEY, bars)
    Path(store.path(KEY)).write_bytes(b"not parquet")
    with pytest.raises(DataError, match="cannot read"):
        store.read(KEY)


def test_concurrent_appends_to_one_series_lose_no_rows(store, bars, monkeypatch):
    """Issue 21: two imports of one series at once; both read the old file, one write won.

    The barrier lets both appends read before either writes, which is exactly the lost-update
    race; with the series lock the second append cannot read until the first has written, so
    its barrier wait times out and it reads the merged file.
    """
    store.write(KEY, bars.iloc[:10])
    barrier = threading.Barrier(2)
    real_read = DataStore.read

    def read_after_both_arrive(self, key, start=None, end=None):
        frame = real_read(self, key, start, end)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=1.0)
        return frame

    monkeypatch.setattr(DataStore, "read", read_after_both_arrive)
    added: list[int] = []
    chunks = [bars.iloc[10:20], bars.iloc[20:30]]
    threads = [
        threading.Thread(target=lambda c=c: added.append(DataStore(store.root).append(KEY, c)))
        for c in chunks
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    monkeypatch.undo()
    assert sorted(added) == [10, 10]
    assert len(store.read(KEY)) == 30  # what the summaries claim is what is stored


def test_series_lock_is_released_when_its_holder_is_killed(store, bars):
    store.write(KEY, bars.iloc[:10])
    script = textwrap.dedent(
        f"""
        import time
        from quantdesk.data.store import DataStore, SeriesKey
        store = DataStore({str(store.root)!r})
        with store.locked(SeriesKey("binance", "spot", "BTC/USDT", "1h")):
            print("locked", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(DataError, match=r"still being written by another process after 0.2 s"):
            with store.locked(KEY, wait_s=0.2):
                pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    started = time.monotonic()
    assert store.append(KEY, bars.iloc[10:12]) == 2
    assert time.monotonic() - started < 5


def test_stale_temp_files_are_removed_and_live_ones_kept(store, bars):
    """Issue 21: a kill mid-write leaves `.NAME.parquet.XXXX.tmp`; only stale ones go."""
    store.write(KEY, bars)
    folder = store.path(KEY).parent
    old = folder / ".1h.parquet.abc123.tmp"
    fresh = folder / ".1h.parquet.def456.tmp"
    other = SeriesKey("binance", "spot", "ETH/USDT", "1h")
    store.write(other, bars)
    busy = store.path(other).parent / ".1h.parquet.zzz999.tmp"
    for tmp in (old, fresh, busy):
        tmp.write_bytes(b"PAR1 half a file")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(busy, (an_hour_ago, an_hour_ago))
    with store.locked(other):  # a writer is busy with ETH: its temp file is not stale
        assert store.remove_stale_temp_files() == [old]
    assert not old.exists() and fresh.exists() and busy.exists()
    assert store.remove_stale_temp_files() == [busy]
    assert store.remove_stale_temp_files(min_age_s=0) == [fresh]
    assert len(store.read(KEY)) == len(bars) and store.keys() == [KEY, other]
