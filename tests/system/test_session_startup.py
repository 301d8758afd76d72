"""Start-up against a venue: transient faults are retried; a venue that stays down ends the
command with one line and exit 2, never a ccxt traceback."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.sandbox.conftest import KEY, SECRET, Admin
from tests.sessions import MINUTE, drive, journal_orders, start, write_config


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_venue_that_stays_down_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("QD_CRASH_KEY", KEY)
    monkeypatch.setenv("QD_CRASH_SECRET", SECRET)
    journal = tmp_path / "down.sqlite"
    began = time.monotonic()
    argv = [
        "--config", str(config), "run", "--strategy", "sma_cross",
        "--param", "fast=2", "--param", "slow=3", "--symbols", "BTC/USDT",
        "--mode", "live", "--venue", "sandbox", "--timeframe", "1m", "--capital", "100",
        "--journal", str(journal), "--registry", str(tmp_path / "promoted.toml"),
    ]  # fmt: skip
    code, out, err = run_cli(argv, capsys)
    took = time.monotonic() - began
    lines = [x for x in err.strip().splitlines() if not x.startswith("20")]  # log lines
    assert code == 2, out + err
    assert lines == [lines[0]] and lines[0].startswith(
        "error: venue sandbox did not load its markets after 6 attempts (VenueAmbiguous"
    ), err
    assert "Traceback" not in out + err
    assert list(tmp_path.glob("down.sqlite*")) == []  # nothing happened, nothing left behind
    assert 5 < took < 60  # it retried with backoff, then gave up


@pytest.mark.parametrize(
    "faults",
    [
        {"reset_requests": 3},  # load_markets and the next calls: connection reset
        {"skew_ms": 120_000},  # the venue's clock two minutes ahead of ours
        {"server_errors": 3},  # 503s
        {"rate_limit_burst": 3},  # 429s
        {"slow_requests": 1, "slow_ms": 12_000},  # one answer after 12 s: past ccxt's timeout
        {"error_rate": 0.3, "seed": 3},  # 30% of calls 503, daily bars among them: all steps retry
    ],
    ids=["resets", "clock-skew", "5xx", "429", "latency-12s", "random-5xx"],
)
def test_transient_faults_before_start_are_retried(
    crash_url: str,
    crash_admin: Admin,
    tmp_path: Path,
    faults: dict,
) -> None:
    config = write_config(tmp_path, crash_url)
    journal = tmp_path / "flaky.sqlite"
    crash_admin.faults(**faults)
    until = crash_admin("GET", "clock")["time"] + 15 * MINUTE
    proc = start(config, journal, until, None)
    out = drive(proc, journal, crash_admin, 0, max_bars=20)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    if "skew_ms" not in faults:
        assert "retrying in" in out  # the fault was met at start-up and retried
    assert "bars " in out  # the stop summary: it ran to --until
    orders = journal_orders(journal)
    assert (orders["status"] == "filled").any(), orders  # signed requests got through
