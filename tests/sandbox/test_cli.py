"""`quantdesk sandbox` as a user runs it: starts, serves ccxt, stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from quantdesk.cli import main
from quantdesk.venues import sandbox_client

QUANTDESK = Path(sys.executable).with_name("quantdesk")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_serves_ccxt_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        '[[accounts]]\napi_key = "alice"\napi_secret = "s3"\nbalances = { ETH = "2" }\n'
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(QUANTDESK),
            "sandbox",
            "--port",
            str(port),
            "--symbols",
            "ETH/USDT",
            "--days",
            "2",
            "--speed",
            "0",
            "--balance",
            "USDT=500",
            "--accounts",
            str(accounts),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    try:
        banner = "".join(proc.stdout.readline() for _ in range(3))
        assert f"http://127.0.0.1:{port}" in banner and "alice" in banner
        assert "s3" not in banner  # secrets are never printed
        ex = sandbox_client("binance", f"http://127.0.0.1:{port}", enableRateLimit=False)
        assert ex.fetch_balance()["total"] == {"USDT": 500.0}
        alice = sandbox_client("binance", f"http://127.0.0.1:{port}", "alice", "s3")
        assert alice.fetch_balance()["total"] == {"ETH": 2.0}
        assert list(ex.load_markets()) == ["ETH/USDT"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "sandbox stopped" in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--balance", "USDT"], "--balance must look like"),
        (["--balance", "USDT=lots"], "is not a number"),
        (["--symbols", "BTC/USDT:USDT"], "spot symbols"),
        (["--symbols", "FOO/USDT"], "synthetic market has no FOO/USDT"),
        (["--accounts", "/nonexistent.toml"], "cannot read accounts file"),
        (["--data", "/nonexistent-root"], "no 1m data for BTC/USDT"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sandbox", "--days", "1", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


def test_admin_endpoints_only_on_loopback_by_default() -> None:
    import requests

    from quantdesk.cli.sandbox import _is_loopback
    from quantdesk.sandbox import Sandbox, serve_in_thread
    from tests.sandbox.conftest import make_config

    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("192.168.1.10")
    config = make_config()
    config.admin = False
    with serve_in_thread(Sandbox(config)) as base:
        assert requests.post(f"{base}/sandbox/faults", json={}, timeout=5).status_code == 404
        assert requests.get(f"{base}/api/v3/ping", timeout=5).json() == {}


def _start(port: int, env: dict[str, str]) -> subprocess.Popen:
    args = [str(QUANTDESK), "sandbox", "--port", str(port), "--days", "1", "--speed", "0"]
    return subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"} | env,
    )


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_cli_prints_a_fresh_admin_token_that_admin_calls_need() -> None:
    import requests

    port = _free_port()
    proc = _start(port, {})
    try:
        banner = [proc.stdout.readline() for _ in range(3)]
        token_line = next(line for line in banner if line.startswith("admin token: "))
        token = token_line.split()[2]
        assert len(token) >= 20
        base = f"http://127.0.0.1:{port}/sandbox/clock"
        assert requests.get(base, timeout=5).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.get(base, headers=auth, timeout=5).json()["speed"] == 0
    finally:
        _stop(proc)
    other = _start(_free_port(), {})
    try:
        assert token not in "".join(other.stdout.readline() for _ in range(3))
    finally:
        _stop(other)


def test_cli_takes_the_admin_token_from_the_environment_without_printing_it() -> None:
    import requests

    token = "env-admin-token-abcdef123456"
    port = _free_port()
    proc = _start(port, {"QUANTDESK_SANDBOX_ADMIN_TOKEN": token})
    try:
        banner = "".join(proc.stdout.readline() for _ in range(3))
        assert token not in banner and "$QUANTDESK_SANDBOX_ADMIN_TOKEN" in banner
        auth = {"Authorization": f"Bearer {token}"}
        url = f"http://127.0.0.1:{port}/sandbox/faults"
        assert requests.get(url, headers=auth, timeout=5).json()["latency_ms"] == 0
    finally:
        _stop(proc)


def test_short_admin_token_in_environment_is_refused(monkeypatch, capsys) -> None:
    monkeypatch.setenv("QUANTDESK_SANDBOX_ADMIN_TOKEN", "short")
    with pytest.raises(SystemExit) as exc:
        main(["sandbox", "--days", "1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "QUANTDESK_SANDBOX_ADMIN_TOKEN must hold at least 16 characters" in err
    assert "\n" not in err
