"""`quantdesk run`: bad input exits 2 in one line; SIGTERM stops a live session gracefully,
cancelling open orders with --cancel-on-exit (an adopted venue order here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quantdesk.engine.journal import Journal
from quantdesk.promotion import NotPromotedError, append_entry, code_version, require_promoted
from quantdesk.strategy import strategy_class
from quantdesk.venues import sandbox_client
from tests.conftest import REPO, run_cli
from tests.sandbox.conftest import KEY, SECRET, Admin
from tests.sessions import starts, write_config

BTC = "BTC/USDT"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--venue", "nowhere"], "unknown venue 'nowhere'"),
        (["--venue", "sandbox", "--capital", "-5"], "--capital must be a positive number"),
        (["--venue", "sandbox", "--slippage", "abc"], "--slippage must be a number"),
        (["--venue", "sandbox", "--until", "someday"], "someday"),
        (["--venue", "sandbox", "--param", "fast=2:5:1"], "one parameter set"),
        (["--venue", "sandbox", "--timeframe", "7x"], "timeframe"),
        (["--venue", "sandbox", "--strategy", "nope"], "unknown strategy 'nope'"),
    ],
)
def test_bad_input_exits_2_in_one_line(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    args = ["--config", str(config), "run", "--strategy", "sma_cross", "--symbols", BTC]
    args += ["--mode", "live", "--journal", str(tmp_path / "j.sqlite"), *extra]
    args += ["--registry", str(tmp_path / "promoted.toml")]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "j.sqlite").exists()


def test_missing_credentials_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QD_CRASH_KEY", raising=False)
    config = write_config(tmp_path, "http://127.0.0.1:9")
    args = ["--config", str(config), "run", "--strategy", "sma_cross", "--symbols", BTC]
    args += ["--mode", "live", "--venue", "sandbox", "--journal", str(tmp_path / "j.sqlite")]
    args += ["--registry", str(tmp_path / "promoted.toml")]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "QD_CRASH_KEY" in err
    assert KEY not in err and SECRET not in err


def test_sigterm_stops_gracefully_and_cancels_open_orders(
    crash_url: str,
    crash_admin: Admin,
    tmp_path: Path,
) -> None:
    ex = sandbox_client("binance", crash_url, enableRateLimit=False)
    ex.load_markets()
    last = ex.fetch_ticker(BTC)["last"]
    ex.create_order(BTC, "limit", "buy", 0.01, round(last * 0.9, 2), {"newClientOrderId": "manual"})
    config = write_config(tmp_path, crash_url)
    journal = tmp_path / "live.sqlite"
    env = {**os.environ, "QD_CRASH_KEY": KEY, "QD_CRASH_SECRET": SECRET}
    env["NUMBA_CACHE_DIR"] = str(REPO / ".cache" / "numba")
    env.pop("QUANTDESK_CRASH_AT", None)
    cmd = [
        sys.executable, "-m", "quantdesk.cli", "--config", str(config), "run",
        "--strategy", "sma_cross", "--symbols", BTC, "--mode", "live", "--venue", "sandbox",
        "--timeframe", "1m", "--poll", "0.05", "--journal", str(journal),
        "--unknown-orders", "adopt", "--cancel-on-exit",
        "--allow-unpromoted",  # a rehearsal against the sandbox venue needs no promotion
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 90
        while starts(journal) == 0 and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert ex.fetch_open_orders(BTC)[0]["clientOrderId"] == "manual"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "stopped by signal" in out
    assert ex.fetch_open_orders(BTC) == []
    assert ex.fetch_order(None, BTC, {"origClientOrderId": "manual"})["status"] == "canceled"
    with Journal(journal) as j:
        orders = j.orders().set_index("client_order_id")
        assert orders.loc["manual", "status"] == "canceled"
        adopted = ["submitted", "new", "canceling", "canceled"]
        assert j.order_events("manual")["new"].tolist() == adopted
        events = j.events()
        assert list(events["kind"])[-1] == "session_stopped"
        assert events["message"].iloc[-1] == "stopped by signal"
        assert len(j.events("reconcile_unknown_order")) == 1


@pytest.mark.parametrize(
    ("mode", "extra", "message"),
    [
        ("live", [], "has never been promoted"),
        ("paper", [], "has never been promoted"),
        ("live", ["--allow-unpromoted", "--venue", "real"], "real trades real money"),
        (
            "live",
            ["--param", "fast=7"],
            "fast=7, slow=30, sl_stop=0.0, tp_stop=0.0 is not a promoted",
        ),
    ],
)
def test_only_promoted_versions_trade(
    mode: str, extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    with config.open("a") as toml:  # a real-money venue: no sandbox_url
        toml.write('[venues.real]\nexchange = "binance"\napi_key_env = "QD_CRASH_KEY"\n')
        toml.write('api_secret_env = "QD_CRASH_SECRET"\n')
    registry = tmp_path / ("promoted.toml" if extra else "empty.toml")
    args = ["--config", str(config), "run", "--strategy", "sma_cross", "--symbols", BTC]
    args += ["--mode", mode, "--venue", "sandbox", "--journal", str(tmp_path / "j.sqlite")]
    args += ["--registry", str(registry), *extra]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "j.sqlite").exists()


def test_a_changed_strategy_file_is_no_longer_promoted(tmp_path: Path) -> None:
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    source = (REPO / "strategies" / "sma_cross.py").read_text()
    (strategies / "sma_cross.py").write_text(source)
    registry = tmp_path / "promoted.toml"
    values = strategy_class("sma_cross", strategies).validate_params({})
    entry = {"params": values, "code": code_version("sma_cross", strategies)}
    append_entry(registry, {"strategy": "sma_cross", **entry})
    assert require_promoted("sma_cross", {}, registry, strategies)["params"] == values
    (strategies / "sma_cross.py").write_text(source + "\n# tweaked\n")
    with pytest.raises(NotPromotedError, match="code changed since it was promoted"):
        require_promoted("sma_cross", {}, registry, strategies)
