"""`quantdesk data record` end to end against a sandbox venue; bad input exits 2, writes nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.sandbox import Sandbox
from tests.conftest import run_cli
from tests.sandbox.conftest import Admin, admin, sandbox, url  # noqa: F401


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> Path:  # noqa: F811
    """A data root via QUANTDESK_DATA and a quantdesk.toml naming the sandbox as venue 'local'."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "data"))
    (tmp_path / "quantdesk.toml").write_text(
        f'[venues.local]\nexchange = "binance"\nmarket = "spot"\nsandbox_url = "{url}"\n'
    )
    return tmp_path / "data"


def _files(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_record_lists_and_checks_clean(
    root: Path,
    admin: Admin,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    def drive() -> None:
        admin.wait_listening("aggtrade", "@depth")
        for _ in range(4):
            admin.advance(1)
            time.sleep(0.1)

    start = sandbox.index
    driver = threading.Thread(target=drive)
    driver.start()
    args = ("data", "record", "--venue", "local", "--symbols", "BTC/USDT", "--depth", "100")
    # long enough for a loaded machine: the bars go out once the subscriptions land
    code, out, err = run_cli([*args, "--duration", "6"], capsys)
    driver.join()
    assert code == 0, err
    assert "binance/spot/BTC/USDT trades" in out and "binance/spot/BTC/USDT book" in out
    ids = DataStore(root).read(SeriesKey("binance", "spot", "BTC/USDT", "trades"))["id"]
    assert ids.tolist() == list(range(start + 1, sandbox.index + 1))

    code, out, _ = run_cli(["data", "list"], capsys)
    assert code == 0 and "trades" in out and "book" in out
    for kind in ("trades", "book"):
        code, out, err = run_cli(["data", "check", "--timeframe", kind, "--strict"], capsys)
        assert code == 0, out + err
        assert f"binance/spot/BTC/USDT {kind}: ok" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--venue", "nowhere"), "unknown venue 'nowhere'"),
        (("--streams", "trades,candles"), "unknown stream(s) candles"),
        (("--symbols", "DOGE/USDT"), "binance does not list DOGE/USDT"),
        (("--symbols", "BTCUSDT"), "BTCUSDT"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    root: Path,
    admin: Admin,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    message: str,
) -> None:
    before = _files(root)
    base = {"--venue": "local", "--symbols": "BTC/USDT", "--streams": "trades,book"}
    base[extra[0]] = extra[1]
    argv = ["data", "record", *(x for kv in base.items() for x in kv), "--duration", "1"]
    code, _, err = run_cli(argv, capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    assert _files(root) == before


def test_sigint_flushes_what_was_recorded(
    root: Path,
    admin: Admin,  # noqa: F811
    sandbox: Sandbox,  # noqa: F811
) -> None:
    script = Path(sys.executable).with_name("quantdesk")
    args = ["data", "record", "--venue", "local", "--symbols", "BTC/USDT", "--streams", "trades"]
    # flush only at stop: everything stored was written by the SIGINT handler's final flush
    proc = subprocess.Popen(
        [str(script), *args, "--flush-seconds", "3600", "--flush-events", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        start = sandbox.index
        assert proc.stderr is not None
        assert proc.stderr.readline().startswith("recording")  # the first status line
        admin.wait_listening("aggtrade")
        for _ in range(3):
            admin.advance(1)
            time.sleep(0.2)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert "recorded into" in out
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    ids = DataStore(root).read(SeriesKey("binance", "spot", "BTC/USDT", "trades"))["id"]
    assert ids.tolist() == list(range(start + 1, sandbox.index + 1))
