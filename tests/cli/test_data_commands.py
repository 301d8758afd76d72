"""`quantdesk data import|download|check` end to end through main(): output, exit codes, store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest

from quantdesk.data.store import DataStore, SeriesKey
from tests.conftest import SAMPLE_DATA, make_bars, run_cli

DAY_MS = 86_400_000


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data root via QUANTDESK_DATA, run from an empty folder (no quantdesk.toml)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_cli(args, capsys)


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _files(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_import_folder_then_load_and_check(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "import", str(SAMPLE_DATA))
    assert code == 0
    assert "binance/spot/BTC/USDT 1d" in out and "2465" in out
    assert "binance/usdm/BTC/USDT:USDT funding" in out and "7395" in out
    assert "quality warnings" in out and "2022-02-26 .. 2022-02-28 (3)" in out
    store = DataStore(root)
    assert len(store.load("BTC/USDT", "1d")) == 2465
    assert len(store.load("XRP/USDT", "1d")) == 2455

    code, out, _ = run(capsys, "data", "import", str(SAMPLE_DATA))
    assert code == 0
    summary = out.split("quality warnings")[0]
    rows = [line.split("│")[4].strip() for line in summary.splitlines() if "binance/" in line]
    assert rows == ["0"] * 7  # the "rows added" column

    code, out, _ = run(capsys, "data", "check", "--symbols", "XRP/USDT", "--timeframe", "1d")
    assert code == 0
    assert "2022-02-26 .. 2022-02-28 (3), 2022-04-01 .. 2022-04-02 (2)" in out
    code, _, _ = run(
        capsys, "data", "check", "--symbols", "XRP/USDT", "--timeframe", "1d", "--strict"
    )
    assert code == 1
    args = ("data", "check", "--symbols", "BTC/USDT", "--timeframe", "1d", "--strict")
    code, out, _ = run(capsys, *args)
    assert code == 1 and "2020-03-12" in out  # the March 2020 crash is a 25-sigma day
    code, out, _ = run(capsys, *args, "--outlier-sigma", "30")
    assert code == 0 and out.strip() == "binance/spot/BTC/USDT 1d: ok"


def test_import_shipped_sample(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "import", "--sample", "binance-um", "--market", "usdm")
    assert code == 0 and "binance/usdm/BTC/USDT:USDT 1d" in out and "README.md" not in out
    store = DataStore(root)
    assert len(store.load("LTC/USDT:USDT", "1d", market="usdm")) == 2464
    assert store.load("BTC/USDT:USDT", "1d", market="usdm")["close"].iloc[0] == pytest.approx(
        float((SAMPLE_DATA / "BTCUSDT-1d.csv").read_text().splitlines()[1].split(",")[4])
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample", "nope"], "no sample named 'nope' (known: binance-um)"),
        ([], "give a PATH or --sample NAME"),
        (["x.csv", "--sample", "binance-um"], "give a PATH or --sample NAME"),
    ],
)
def test_import_sample_bad_input(
    root: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run(capsys, "data", "import", *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert not root.exists()


def test_import_usdm_market(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "data", "import", str(SAMPLE_DATA / "ETHUSDT-1d.csv"), "--market", "usdm"
    )
    assert code == 0 and "binance/usdm/ETH/USDT:USDT 1d" in out
    assert len(DataStore(root).load("ETH/USDT:USDT", "1d", market="usdm")) == 2465


def test_generic_csv_needs_symbol_then_imports_with_column_map(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "export.csv"
    csv.write_text("When,O,Hi,Lo,Px,Qty\n2024-03-01,1,2,0.5,1.5,10\n2024-03-02,1.5,2.5,1,2,11\n")
    code, _, err = run(capsys, "data", "import", str(csv))
    assert code == 2 and "--symbol" in _error_line(err)
    columns = "time=When,open=O,high=Hi,low=Lo,close=Px,volume=Qty"
    args = ("data", "import", str(csv), "--symbol", "SOL/USDT", "--timeframe", "1d")
    code, _, err = run(capsys, *args)
    assert code == 2 and "--columns" in _error_line(err)  # no recognizable high column
    assert not root.exists()
    code, out, _ = run(capsys, *args, "--columns", columns, "--exchange", "mybroker")
    assert code == 0 and "mybroker/spot/SOL/USDT 1d" in out
    frame = DataStore(root).load("SOL/USDT", "1d")
    assert frame["close"].tolist() == [1.5, 2.0] and frame["volume"].tolist() == [10.0, 11.0]


def test_bad_file_in_folder_exits_2_and_writes_nothing(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "BTCUSDT-1d.csv").write_bytes((SAMPLE_DATA / "BTCUSDT-1d.csv").read_bytes())
    (folder / "ETHUSDT-1h.csv").write_text(
        "open_time,open,high,low,close,volume\n1704067200000,1,2,1,2,5\n1704070800000,1,2,1,,5\n"
    )
    code, _, err = run(capsys, "data", "import", str(folder))
    assert code == 2
    assert _error_line(err) == "error: ETHUSDT-1h.csv line 3: close is empty"
    assert _files(root) == {}


def test_folder_skips_unnamed_csvs(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "XRPUSDT-1d.csv").write_bytes((SAMPLE_DATA / "XRPUSDT-1d.csv").read_bytes())
    (folder / "notes.csv").write_text("anything,at,all\n")
    code, out, _ = run(capsys, "data", "import", str(folder))
    assert code == 0
    assert "skipped (name is not SYMBOL-TIMEFRAME.csv): notes.csv" in out
    keys = DataStore(root).keys(exchange="binance")
    assert [str(k) for k in keys] == ["binance/spot/XRP/USDT 1d"]
    (folder / "XRPUSDT-1d.csv").unlink()
    code, _, err = run(capsys, "data", "import", str(folder))
    assert code == 2 and "pass --symbol and --timeframe" in _error_line(err)


def test_check_raw_file_reports_duplicates_and_order(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bars = make_bars(6, freq="1h")
    raw = pd.concat([bars.iloc[[0, 2, 1]], bars.iloc[2:]])
    raw.iloc[3, raw.columns.get_loc("volume")] = np.nan
    path = tmp_path / "BTCUSDT-1h.csv"
    raw.rename_axis("timestamp").to_csv(path, date_format="%Y-%m-%dT%H:%M:%SZ", na_rep="NaN")
    code, out, err = run(capsys, "data", "check", "--file", str(path))
    assert code == 0, err
    for rule in ("duplicates", "non_monotonic", "non_finite"):
        assert rule in out
    code, _, _ = run(capsys, "data", "check", "--file", str(path), "--strict")
    assert code == 1


def test_check_with_nothing_stored(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "data", "check")
    assert code == 2 and "nothing to check" in _error_line(err)


def test_bad_option_values_exit_2(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "data", "check", "--max-zero-volume-run", "0")
    assert code == 2
    code, _, err = run(capsys, "data", "download", "--symbols", "BTC/USDT", "--timeframe", "7x")
    assert code == 2 and "invalid timeframe" in _error_line(err)
    code, _, err = run(capsys, "data", "download", "--symbols", "BTC/USDT", "--venue", "nope")
    assert code == 2 and "unknown venue" in _error_line(err)


class _Sandbox:
    """A loopback HTTP server answering the two Binance spot endpoints a download needs."""

    def __init__(self, bars: pd.DataFrame) -> None:
        self.bars = bars
        self.paths: list[str] = []
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                sandbox.paths.append(parts.path)
                status, payload = sandbox.answer(parts.path, query)
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, object]:
        if path == "/api/v3/exchangeInfo":
            market = {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC"}
            market |= {"quoteAsset": "USDT", "isSpotTradingAllowed": True, "filters": []}
            return 200, {"timezone": "UTC", "serverTime": 0, "symbols": [market]}
        if path == "/api/v3/klines" and query.get("symbol") == "BTCUSDT":
            ms = self.bars.index.as_unit("ms").asi8
            keep = self.bars[ms >= int(query["startTime"])].iloc[: int(query["limit"])]
            return 200, [
                [int(t.value // 1_000_000), *(repr(v) for v in row), 0, "0", 1, "0", "0", "0"]
                for t, row in zip(keep.index, keep.to_numpy().tolist(), strict=True)
            ]
        return 400, {"code": -1121, "msg": "Invalid symbol."}


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Sandbox]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    # Daily bars up to and including today's, which is still forming.
    today = pd.Timestamp.now(tz="UTC").floor("1D")
    bars = make_bars(12, start=str(today - pd.Timedelta(days=11)), freq="1D", seed=5)
    server = _Sandbox(bars)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_download_through_a_sandbox_venue(
    root: Path, tmp_path: Path, sandbox: _Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "quantdesk.toml").write_text(
        f'[venues.local]\nexchange = "binance"\nmarket = "spot"\nsandbox_url = "{sandbox.url}"\n'
    )
    since = f"{sandbox.bars.index[0]:%Y-%m-%d}"
    args = ("data", "download", "--venue", "local", "--symbols", "BTC/USDT", "--timeframe", "1d")
    code, out, err = run(capsys, *args, "--since", since, "--limit", "5")
    assert code == 0, err
    assert "binance/spot/BTC/USDT 1d" in out
    stored = DataStore(root).read(SeriesKey("binance", "spot", "BTC/USDT", "1d"))
    # Everything but today's forming bar, bit for bit.
    expected = sandbox.bars.iloc[:-1]
    assert stored.index.equals(expected.index.as_unit("ns"))
    assert np.array_equal(stored.to_numpy(), expected.to_numpy())
    assert sandbox.paths.count("/api/v3/klines") == 3  # 11 bars at 5 per page
    assert sandbox.paths.count("/api/v3/exchangeInfo") == 1

    code, _, err = run(capsys, *args[:-4], "--symbols", "ETH/USDT", "--since", since)
    assert code == 2 and _error_line(err) == "error: binance has no market ETH/USDT"


def test_console_script_exits_2_on_bad_input(root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "BTCUSDT-1d.csv"
    bad.write_text("open_time,open,high,low,close\n1,2,3,4,5\n")
    script = Path(sys.executable).with_name("quantdesk")
    result = subprocess.run(
        [str(script), "data", "import", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: BTCUSDT-1d.csv: no volume column (has open_time, open, high, low, close): "
        "map it with --columns volume=<Column>"
    )
    assert not root.exists()


@pytest.mark.parametrize(
    ("rows", "args", "message"),
    [
        ("1e20,1,2,1,2,5", (), "error: BTCUSDT-1d.csv line 3: time '1e20' is out of range"),
        ("inf,1,2,1,2,5", (), "error: BTCUSDT-1d.csv line 3: time 'inf' is out of range"),
        ("1704153600000,1,2,1,nan,5", (), "error: BTCUSDT-1d.csv line 3: close is nan"),
        ("", ("--timeframe", "9999999999w"), "error: invalid timeframe '9999999999w': bars are"),
    ],
)
def test_bad_import_in_a_folder_exits_2_in_one_line_and_leaves_the_store(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str, args, message: str
) -> None:
    """Issue 19: these crashed with a traceback after writing 1-2 files."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "BTCUSDT-1d.csv").write_text(
        f"open_time,open,high,low,close,volume\n1704067200000,1,2,1,2,5\n{rows}\n"
    )
    (folder / "ETHUSDT-1d.csv").write_text(
        "open_time,open,high,low,close,volume\n1704067200000,1,2,1,2,5\n"
    )
    code, _, err = run(capsys, "data", "import", str(folder), *args)
    assert code == 2
    assert _error_line(err).startswith(message)
    assert _files(root) == {}


def test_import_reports_and_removes_stale_temp_files(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "BTCUSDT-1d.csv"
    path.write_text("open_time,open,high,low,close,volume\n1704067200000,1,2,1,2,5\n")
    assert run(capsys, "data", "import", str(path))[0] == 0
    folder = DataStore(root).path(SeriesKey("binance", "spot", "BTC/USDT", "1d")).parent
    orphan = folder / ".1d.parquet.k1ll3d.tmp"  # what a SIGKILL mid-write leaves
    orphan.write_bytes(b"PAR1")
    os.utime(orphan, (1_700_000_000, 1_700_000_000))
    code, out, _ = run(capsys, "data", "import", str(path))
    assert code == 0
    assert f"removed 1 stale temp file(s) left by interrupted writes under {root}" in out
    assert not orphan.exists()
    code, out, _ = run(capsys, "data", "import", str(path))
    assert code == 0 and "stale temp" not in out
