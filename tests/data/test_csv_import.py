"""CSV import: the real Binance files, the official archive layout, generic files, bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from quantdesk.data.csv_import import (
    ImportOptions,
    epoch_to_times,
    import_csv,
    name_info,
    parse_column_map,
    parse_csv,
)
from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.errors import DataError
from tests.conftest import SAMPLE_DATA

BTC_1D = SAMPLE_DATA / "BTCUSDT-1d.csv"
XRP_1D = SAMPLE_DATA / "XRPUSDT-1d.csv"
BTC_FUNDING = SAMPLE_DATA / "BTCUSDT-funding.csv"


def _csv_rows(path: Path) -> list[list[str]]:
    lines = path.read_bytes().decode().split("\r\n")
    return [line.split(",") for line in lines[1:] if line]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[DataStore, list]:
    """The whole sample folder imported once (it is small) for the read-only tests below."""
    store = DataStore(tmp_path_factory.mktemp("imported"))
    return store, import_csv(store, SAMPLE_DATA)


@pytest.mark.parametrize(("path", "rows"), [(BTC_1D, 2465), (XRP_1D, 2455)])
def test_real_klines_match_the_csv_text(imported, path: Path, rows: int) -> None:
    store, _ = imported
    symbol = f"{path.name[:3]}/USDT"
    frame = store.load(symbol, "1d")
    assert len(frame) == rows
    text = _csv_rows(path)
    assert len(text) == rows
    for row, (ts, bar) in (
        (text[0], next(frame.iterrows())),
        (text[-1], list(frame.iterrows())[-1]),
    ):
        assert ts == pd.Timestamp(int(row[0]), unit="ms", tz="UTC")
        assert list(bar) == [float(v) for v in row[1:6]]
    assert frame.index.tz is not None and str(frame.index.tz) == "UTC"
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]


def test_real_funding_rounded_to_the_settlement_hour(imported) -> None:
    store, _ = imported
    funding = store.load("BTC/USDT:USDT", "funding", market="usdm")
    assert len(funding) == 7395
    assert funding["funding_rate"].iloc[0] == -0.00012359
    text = _csv_rows(BTC_FUNDING)
    assert funding["funding_rate"].iloc[-1] == float(text[-1][2])
    # Raw times are 0-47 ms late; stored times sit exactly on 00/08/16 h.
    assert int(text[-1][0]) % 1000 == 2
    assert funding.index[-1] == pd.Timestamp("2026-09-30 16:00", tz="UTC")
    assert set(funding.index.hour) == {0, 8, 16}
    assert (funding.index.minute == 0).all() and (funding.index.second == 0).all()
    assert (funding.index.microsecond == 0).all()
    # Scientific notation in the source (8.4E-7 on 2020-01-04 08:00).
    assert funding.loc["2020-01-04 08:00", "funding_rate"] == 8.4e-7


def test_folder_import_summary_and_quality(imported) -> None:
    _, results = imported
    by_key = {str(r.key): r for r in results}
    assert set(by_key) == {
        "binance/spot/BNB/USDT 1d",
        "binance/spot/BTC/USDT 1d",
        "binance/spot/ETH/USDT 1d",
        "binance/spot/LTC/USDT 1d",
        "binance/spot/XRP/USDT 1d",
        "binance/usdm/BTC/USDT:USDT funding",
        "binance/usdm/ETH/USDT:USDT funding",
    }
    xrp = by_key["binance/spot/XRP/USDT 1d"]
    assert (xrp.rows_read, xrp.rows_added) == (2455, 2455)
    assert xrp.first == pd.Timestamp("2020-01-06", tz="UTC")
    assert xrp.last == pd.Timestamp("2026-09-30", tz="UTC")
    assert [(f.rule, f.count) for f in xrp.findings if f.rule == "gaps"] == [("gaps", 5)]
    btc = by_key["binance/spot/BTC/USDT 1d"]
    assert not [f for f in btc.findings if f.rule == "gaps"]


def test_reimport_adds_nothing(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    assert import_csv(store, BTC_1D)[0].rows_added == 2465
    before = _snapshot(tmp_path)
    again = import_csv(store, BTC_1D)
    assert [(r.rows_read, r.rows_added) for r in again] == [(2465, 0)]
    assert _snapshot(tmp_path) == before


def test_usdm_market_gives_perp_symbols(tmp_path: Path) -> None:
    store = DataStore(tmp_path)
    (result,) = import_csv(store, BTC_1D, ImportOptions(market="usdm"))
    assert result.key == SeriesKey("binance", "usdm", "BTC/USDT:USDT", "1d")
    assert len(store.load("BTC/USDT:USDT", "1d")) == 2465


def test_official_headerless_archive_with_microseconds(tmp_path: Path) -> None:
    # Binance's spot archive switched to microsecond timestamps in 2025.
    t0 = 1_735_689_600_000_000  # 2025-01-01 00:00 UTC in µs
    hour = 3_600_000_000
    lines = [
        f"{t0 + i * hour},{100 + i}.5,{102 + i}.25,{99 + i}.0,{101 + i}.75,{10 + i}.125,"
        f"{t0 + (i + 1) * hour - 1},1234.5,42,5.0,600.0,0"
        for i in range(3)
    ]
    path = tmp_path / "ETHBTC-1h-2025-01-01.csv"
    path.write_text("\n".join(lines) + "\n")
    store = DataStore(tmp_path / "store")
    (result,) = import_csv(store, path)
    assert result.key == SeriesKey("binance", "spot", "ETH/BTC", "1h")
    frame = store.read(result.key)
    assert list(frame.index) == list(pd.date_range("2025-01-01", periods=3, freq="1h", tz="UTC"))
    assert frame.iloc[1].tolist() == [101.5, 103.25, 100.0, 102.75, 11.125]


def test_official_header_variant_in_milliseconds(tmp_path: Path) -> None:
    header = (
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore"
    )
    path = tmp_path / "SOLUSDT-4h-2024-03.csv"
    path.write_text(
        f"{header}\n1709251200000,1,2,0.5,1.5,7,1709265599999,10,3,1,1,0\n"
        "1709265600000,1.5,2.5,1.25,2,8,1709279999999,10,3,1,1,0\n"
    )
    parsed = parse_csv(path)
    assert parsed.key == SeriesKey("binance", "spot", "SOL/USDT", "4h")
    assert parsed.frame.index[1] == pd.Timestamp("2024-03-01 04:00", tz="UTC")
    assert parsed.frame["close"].tolist() == [1.5, 2.0]


def test_epoch_units_by_magnitude() -> None:
    when = pd.Timestamp("2024-05-06 07:08:09", tz="UTC")
    seconds = when.value // 10**9
    times = epoch_to_times(
        pd.Series([seconds, seconds * 10**3, seconds * 10**6, seconds * 10**9]).to_numpy(
            dtype="float64"
        )
    )
    assert list(times) == [when] * 4


def test_generic_csv_with_column_map(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2024-01-02,10,12,9,11,11,100\n"
        "2024-01-01T00:00:00Z,9,10.5,8.5,10,10,90\n"
    )
    columns = parse_column_map("time=Date,open=Open,high=High,low=Low,close=Close,volume=Volume")
    store = DataStore(tmp_path / "store")
    options = ImportOptions(exchange="yahoo", symbol="btc/usd", timeframe="1d", columns=columns)
    (result,) = import_csv(store, path, options)
    assert result.key == SeriesKey("yahoo", "spot", "BTC/USD", "1d")
    frame = store.read(result.key)
    assert frame.index.tolist() == list(pd.date_range("2024-01-01", periods=2, tz="UTC"))
    assert frame["close"].tolist() == [10.0, 11.0]
    # The file was out of order: the raw check says so, the store sorted it.
    assert "non_monotonic" in [f.rule for f in result.findings]


def test_generic_csv_autodetects_short_names(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("Timestamp,O,H,L,C,V\n2024-01-01 00:00,1,2,0.5,1.5,3\n")
    parsed = parse_csv(path, ImportOptions(symbol="BTC/USDT", timeframe="1h"))
    assert parsed.frame.iloc[0].tolist() == [1.0, 2.0, 0.5, 1.5, 3.0]


def test_name_info() -> None:
    assert name_info(Path("BTCUSDT-1d.csv")) == ("BTCUSDT", "1d")
    assert name_info(Path("BTCUSDT-funding.csv")) == ("BTCUSDT", "funding")
    assert name_info(Path("BTCUSDT-fundingRate-2024-01.csv")) == ("BTCUSDT", "funding")
    assert name_info(Path("BTCUSDT-15m-2024-01-31.csv")) == ("BTCUSDT", "15m")
    assert name_info(Path("prices.csv")) is None


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "text", "options", "message"),
    [
        ("prices.csv", "time,open,high,low,close,volume\n1,1,1,1,1,1\n", {}, "--symbol"),
        (
            "prices.csv",
            "time,open,high,low,close,volume\n1,1,1,1,1,1\n",
            {"symbol": "BTC/USDT"},
            "--timeframe",
        ),
        ("BTCUSDT-1d.csv", "time,open,high,low,close\n1,1,1,1,1\n", {}, "no volume column"),
        ("BTCUSDT-1d.csv", "time,open,high,low,close,volume\n", {}, "no data rows"),
        ("BTCUSDT-1d.csv", "", {}, "empty file"),
        (
            "BTCUSDT-1d.csv",
            "time,open,high,low,close,volume\n2024-01-01,1,1,1,1,1\n2024-01-02,1,x1,1,1,1\n",
            {},
            "line 3: high value 'x1' is not a number",
        ),
        (
            "BTCUSDT-1d.csv",
            "time,open,high,low,close,volume\nyesterday,1,1,1,1,1\n",
            {},
            "line 2: time 'yesterday'",
        ),
        ("XYZ-1d.csv", "time,open,high,low,close,volume\n1,1,1,1,1,1\n", {}, "base and quote"),
        ("BTCUSDT-1M.csv", "time,open,high,low,close,volume\n1,1,1,1,1,1\n", {}, "timeframe"),
        ("BTCUSDT-1d.csv", "1,2,3\n", {}, "headerless"),
    ],
)
def test_bad_files_are_one_line_errors(
    tmp_path: Path, name: str, text: str, options: dict, message: str
) -> None:
    path = _write(tmp_path / name, text)
    store = DataStore(tmp_path / "store")
    with pytest.raises(DataError) as info:
        import_csv(store, path, ImportOptions(**options))
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "store").exists()


def test_one_bad_file_in_a_folder_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    good = BTC_1D.read_bytes()
    (folder / "BTCUSDT-1d.csv").write_bytes(good)
    (folder / "ZZZUSDT-1d.csv").write_text("open_time,open,high,low,close,volume\n1,2,3,4,5,oops\n")
    store = DataStore(tmp_path / "store")
    import_csv(store, SAMPLE_DATA / "ETHUSDT-1d.csv")
    before = _snapshot(store.root)
    with pytest.raises(DataError, match=r"ZZZUSDT-1d\.csv line 2: volume"):
        import_csv(store, folder)
    assert _snapshot(store.root) == before


def test_unreadable_and_missing_paths(tmp_path: Path) -> None:
    store = DataStore(tmp_path / "store")
    with pytest.raises(DataError, match="no such file or folder"):
        import_csv(store, tmp_path / "nope.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.csv files"):
        import_csv(store, tmp_path / "empty")
    binary = tmp_path / "BTCUSDT-1d.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\x00\xff")
    with pytest.raises(DataError):
        import_csv(store, binary)
    assert not store.root.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [("time=Date,open", "bad --columns entry 'open'"), ("price=Close", "unknown field 'price'")],
)
def test_bad_column_maps(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_column_map(text)


def test_column_map_naming_absent_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "BTCUSDT-1d.csv", "Date,Open,High,Low,Close,Volume\n2024-01-01,1,1,1,1,1\n"
    )
    with pytest.raises(DataError, match="no column"):
        parse_csv(path, ImportOptions(columns={"time": "When"}))


HEADER = "open_time,open,high,low,close,volume\n"
GOOD_ROW = "1704067200000,1,2,0.5,1.5,10\n"  # 2024-01-01


@pytest.mark.parametrize(
    ("time", "message"),
    [
        ("1e20", "line 3: time '1e20' is out of range: use 1970-01-01 .. 2099-12-31"),
        ("inf", "line 3: time 'inf' is out of range"),
        ("-inf", "line 3: time '-inf' is out of range"),
        ("1e300", "line 3: time '1e300' is out of range"),
        ("-1704067200000", "line 3: time '-1704067200000' is out of range"),
        ("1000-01-01", "line 3: time '1000-01-01' is out of range"),
        ("3000-01-01", "line 3: time '3000-01-01' is out of range"),
        ("9999-12-31T23:59:59", "line 3: time '9999-12-31T23:59:59' is out of range"),
        ("nan", "line 3: time 'nan' is neither an ISO date nor an epoch number"),
    ],
)
def test_times_out_of_range_are_refused_in_a_folder_before_any_write(
    tmp_path: Path, time: str, message: str
) -> None:
    """Issue 19: these crashed after writing; now the whole folder is refused up front."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "AAAUSDT-1d.csv").write_text(HEADER + GOOD_ROW)  # sorts first: would be written
    # Each bad time follows a good one of its own kind (ISO after ISO, epoch after epoch).
    good = GOOD_ROW if "-" not in time.lstrip("-") else "2024-01-01,1,2,0.5,1.5,10\n"
    (folder / "BTCUSDT-1d.csv").write_text(HEADER + good + f"{time},1,2,0.5,1.5,10\n")
    store = DataStore(tmp_path / "store")
    with pytest.raises(DataError) as info:
        import_csv(store, folder)
    assert str(info.value).startswith(f"BTCUSDT-1d.csv {message}")
    assert not store.root.exists()


def test_epoch_to_times_refuses_non_finite_and_far_values() -> None:
    with pytest.raises(DataError, match=r"epoch time inf is out of range"):
        epoch_to_times(pd.Series([1.7e12, float("inf")]).to_numpy())
    with pytest.raises(DataError, match=r"epoch time 1e\+20 is out of range"):
        epoch_to_times(pd.Series([1e20]).to_numpy())
    # The edges: the epoch itself is in range, 2100 is not.
    assert str(epoch_to_times(pd.Series([0.0]).to_numpy())[0]) == "1970-01-01 00:00:00+00:00"
    with pytest.raises(DataError):
        epoch_to_times(pd.Series([4102444800.0]).to_numpy())


@pytest.mark.parametrize("timeframe", ["99999999999999w", "9999999999m", "367d", "53w"])
def test_huge_timeframe_is_refused(tmp_path: Path, timeframe: str) -> None:
    path = _write(tmp_path / "prices.csv", HEADER + GOOD_ROW)
    store = DataStore(tmp_path / "store")
    options = ImportOptions(symbol="BTC/USDT", timeframe=timeframe)
    with pytest.raises(DataError, match=rf"invalid timeframe '{timeframe}': bars are at most 366d"):
        import_csv(store, path, options)
    assert not store.root.exists()
    # The longest allowed bar still imports.
    assert import_csv(store, path, ImportOptions(symbol="BTC/USDT", timeframe="366d"))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("1704153600000,NaN,2,0.5,1.5,10", "line 3: open is nan"),
        ("1704153600000,1,inf,0.5,1.5,10", "line 3: high is inf"),
        ("1704153600000,1,2,0.5,nan,10", "line 3: close is nan"),
        ("1704153600000,1,2,0,1.5,10", "line 3: low is 0"),
        ("1704153600000,1,2,-0.5,1.5,10", "line 3: low is -0.5"),
        ("1704153600000,1,2,0.5,1.5,-1", "line 3: volume is -1"),
    ],
)
def test_invalid_rows_are_refused_before_any_write(tmp_path: Path, row: str, message: str) -> None:
    store = DataStore(tmp_path / "store")
    path = _write(tmp_path / "BTCUSDT-1d.csv", HEADER + GOOD_ROW)
    import_csv(store, path)
    before = _snapshot(store.root)
    _write(path, HEADER + GOOD_ROW + row + "\n")
    with pytest.raises(DataError) as info:
        import_csv(store, path)
    assert str(info.value).startswith(f"BTCUSDT-1d.csv {message}: refusing 1 invalid row(s)")
    assert _snapshot(store.root) == before


def test_a_nan_bar_never_replaces_a_stored_good_one(tmp_path: Path) -> None:
    """Issue 21: re-importing a file whose bar is NaN replaced the stored values with NaN."""
    store = DataStore(tmp_path / "store")
    good = _write(tmp_path / "BTCUSDT-1d.csv", HEADER + GOOD_ROW)
    import_csv(store, good)
    (tmp_path / "in").mkdir()
    nan = _write(tmp_path / "in" / "BTCUSDT-1d.csv", HEADER + "1704067200000,NaN,NaN,NaN,NaN,NaN\n")
    with pytest.raises(DataError, match="refusing 1 invalid row"):
        import_csv(store, nan)
    stored = store.read(SeriesKey("binance", "spot", "BTC/USDT", "1d"))
    assert stored.iloc[0].tolist() == [1.0, 2.0, 0.5, 1.5, 10.0]


def test_funding_rates_may_be_negative_but_not_nan(tmp_path: Path) -> None:
    header = "funding_time,funding_interval_hours,funding_rate\n"
    store = DataStore(tmp_path / "store")
    path = _write(tmp_path / "BTCUSDT-funding.csv", header + "1704067200000,8,-0.0002\n")
    (result,) = import_csv(store, path)
    assert result.rows_added == 1
    _write(path, header + "1704096000000,8,nan\n")
    with pytest.raises(DataError, match="line 2: funding_rate is nan"):
        import_csv(store, path)
