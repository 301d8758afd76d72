"""`quantdesk mm run` as a real process against the sandbox, and its refusals of bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.engine.journal import Journal
from quantdesk.sandbox import Sandbox, serve_in_thread
from tests.sandbox.conftest import ADMIN_TOKEN, KEY, SECRET, Admin, make_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cli_sandbox() -> Sandbox:
    return Sandbox(make_config())


@pytest.fixture(scope="module")
def cli_url(cli_sandbox: Sandbox) -> Iterator[str]:
    with serve_in_thread(cli_sandbox) as base:
        yield base


def config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "quantdesk.toml"
    path.write_text(
        "[venues.sandbox]\n"
        'exchange = "binance"\nmarket = "spot"\n'
        f'sandbox_url = "{url}"\n'
        'api_key_env = "QD_MM_KEY"\napi_secret_env = "QD_MM_SECRET"\n'
        "rate_limit_ms = 1\n"
        "[risk]\n"
        "max_orders_per_second = 20\nmax_orders_per_minute = 2000\n"
        "max_cancel_ratio = 5.0\nmax_symbol_exposure = 1.0\n"
        "[mm]\nmax_inventory = 0.005\nreconcile_every_s = 1.0\nstatus_every_s = 1.0\n"
        "[mm.params.basic_mm]\nsize = 0.001\n"
    )
    return path


def quantdesk(cfg: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "QD_MM_KEY": KEY, "QD_MM_SECRET": SECRET}
    env["NUMBA_CACHE_DIR"] = str(REPO / ".cache" / "numba")
    cmd = [sys.executable, "-m", "quantdesk.cli", "--config", str(cfg), "mm", "run", *args]
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def started(journal: Path) -> bool:
    if not journal.exists():
        return False
    try:
        with Journal(journal) as j:
            return bool(len(j.events("session_started")))
    except Exception:  # the session may be creating the file right now
        return False


def test_mm_run_quotes_live_until_the_venue_clock_reaches_until(
    tmp_path: Path, cli_url: str, cli_sandbox: Sandbox
) -> None:
    admin = Admin(cli_url, ADMIN_TOKEN)
    admin("POST", "reset")
    admin("POST", "limits", {"weight_limit": 1_000_000})
    journal = tmp_path / "mm.sqlite"
    until = pd.Timestamp(cli_sandbox.now_ms() + 25 * 60_000, unit="ms", tz="UTC").isoformat()
    proc = quantdesk(
        config(tmp_path, cli_url), "--strategy", "basic_mm", "--symbol", "BTC/USDT",
        "--mode", "live", "--venue", "sandbox", "--journal", str(journal), "--until", until,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not started(journal) and proc.poll() is None:
            assert time.monotonic() < deadline, "the session never started"
            time.sleep(0.05)
        while proc.poll() is None:  # one bar at a time until the session reaches --until
            assert time.monotonic() < deadline + 120, "the session never reached --until"
            admin.advance(1)
            time.sleep(0.1)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "orders " in out and "fills " in out
    assert "status: BTC/USDT bid " in out and "| active" in out  # the periodic status line
    with Journal(journal) as j:
        stopped = j.events("session_stopped")
        orders = j.orders()
    assert stopped["message"].iloc[-1] == "reached --until"
    assert len(orders) >= 2 and set(orders["amount"].astype(str)) >= {"0.001"}
    open_at_venue = [o for o in cli_sandbox.core.open_orders.values() if o.account == KEY]
    assert open_at_venue == []  # stopping cancelled every quote


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "sma_cross"], "is not a QuoteStrategy"),
        (["--strategy", "basic_mm", "--max-inventory", "-1"], "--max-inventory"),
        (["--strategy", "basic_mm", "--param", "size=-1"], "size"),
        (["--strategy", "basic_mm", "--symbol", "BTC/USDT,ETH/USDT"], "one --symbol"),
    ],
)
def test_mm_run_refuses_bad_input_in_one_line(
    tmp_path: Path, cli_url: str, args: list[str], message: str
) -> None:
    base = {"--symbol": "BTC/USDT", "--mode": "live", "--venue": "sandbox"}
    given = dict(zip(args[::2], args[1::2], strict=True))
    argv = [x for k, v in {**base, **given}.items() for x in (k, v)]
    journal = tmp_path / "never.sqlite"
    proc = quantdesk(config(tmp_path, cli_url), *argv, "--journal", str(journal))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    lines = [line for line in out.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in out
    assert not journal.exists()


def test_after_a_crash_the_restart_cancels_the_quotes_left_resting_and_resumes(
    tmp_path: Path, cli_url: str, cli_sandbox: Sandbox
) -> None:
    admin = Admin(cli_url, ADMIN_TOKEN)
    admin("POST", "reset")
    admin("POST", "limits", {"weight_limit": 1_000_000})
    journal = tmp_path / "crash.sqlite"
    cfg = config(tmp_path, cli_url)
    args = ["--strategy", "basic_mm", "--symbol", "BTC/USDT", "--mode", "live",
            "--venue", "sandbox", "--journal", str(journal)]  # fmt: skip

    def resting() -> list:
        return [o for o in cli_sandbox.core.open_orders.values() if o.account == KEY]

    first = quantdesk(cfg, *args)
    try:
        deadline = time.monotonic() + 120
        while len(resting()) < 2:
            assert first.poll() is None and time.monotonic() < deadline, "no quote"
            time.sleep(0.05)
    finally:
        first.kill()  # SIGKILL: no shutdown, the quotes stay at the venue
        first.communicate(timeout=60)
    left = {o.client_id for o in resting()}
    assert len(left) >= 2
    until = pd.Timestamp(cli_sandbox.now_ms() + 3 * 60_000, unit="ms", tz="UTC").isoformat()
    second = quantdesk(cfg, *args, "--until", until)
    try:
        deadline = time.monotonic() + 120
        while left & {o.client_id for o in resting()}:
            assert second.poll() is None and time.monotonic() < deadline, "stale quotes stayed"
            time.sleep(0.05)
        while second.poll() is None:
            assert time.monotonic() < deadline + 120, "the session never reached --until"
            admin.advance(1)
            time.sleep(0.1)
        out, _ = second.communicate(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, out
    with Journal(journal) as j:
        kinds = list(j.events()["kind"])
        orders = j.orders().set_index("client_order_id")
    assert kinds.count("session_started") == 1 and kinds.count("session_resumed") == 1
    assert all(orders.loc[cid, "status"] in ("canceled", "filled") for cid in left)
    assert resting() == []
