import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantdesk.data.store import SeriesKey, atomic_write_parquet, normalize
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
    with pytest.raises(OSError, match="disk full"):
        store.write(KEY, bars)
    monkeypatch.undo()
    assert len(store.read(KEY)) == 10
    assert sorted(p.name for p in store.path(KEY).parent.iterdir()) == ["1h.parquet"]


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
