"""Crash safety: `quantdesk run --mode live` against the sandbox is SIGKILLed at a chosen point
of the order path (QUANTDESK_CRASH_AT), restarted with the same journal, and reconciled; then
the journal must equal the venue (orders, fills, balances, positions) and no order may have
been placed twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.engine.journal import Journal
from quantdesk.promotion import append_entry, code_version
from quantdesk.sandbox import Sandbox, serve_in_thread
from quantdesk.strategy import strategy_class
from quantdesk.venues import sandbox_client
from tests.conftest import REPO
from tests.sandbox.conftest import KEY, SECRET, Admin, make_config

BTC = "BTC/USDT"
MINUTE = 60_000


@pytest.fixture(scope="module")
def crash_url() -> Iterator[str]:
    with serve_in_thread(Sandbox(make_config())) as base:
        yield base


@pytest.fixture
def crash_admin(crash_url: str) -> Admin:
    api = Admin(crash_url)
    api("POST", "reset")
    api("POST", "limits", {"weight_limit": 1_000_000})
    return api


def write_config(tmp_path: Path, url: str) -> Path:
    """quantdesk.toml with the sandbox venue, and promoted.toml beside it (see write_registry)."""
    write_registry(tmp_path, {}, {"fast": 2, "slow": 3})
    path = tmp_path / "quantdesk.toml"
    path.write_text(
        "[venues.sandbox]\n"
        'exchange = "binance"\n'
        'market = "spot"\n'
        f'sandbox_url = "{url}"\n'
        'api_key_env = "QD_CRASH_KEY"\n'
        'api_secret_env = "QD_CRASH_SECRET"\n'
    )
    return path


def write_registry(tmp_path: Path, *param_sets: dict[str, int]) -> Path:
    """promoted.toml promoting sma_cross with these params at the current code, as promote does."""
    path = tmp_path / "promoted.toml"
    for params in param_sets:
        values = strategy_class("sma_cross").validate_params(params)
        append_entry(
            path, {"strategy": "sma_cross", "params": values, "code": code_version("sma_cross")}
        )
    return path


def start(
    config: Path, journal: Path, until_ms: int, crash: str | None, mode: str = "live"
) -> subprocess.Popen:
    env = {**os.environ, "QD_CRASH_KEY": KEY, "QD_CRASH_SECRET": SECRET}
    env["NUMBA_CACHE_DIR"] = str(REPO / ".cache" / "numba")
    env.pop("QUANTDESK_CRASH_AT", None)
    if crash:
        env["QUANTDESK_CRASH_AT"] = crash
    until = pd.Timestamp(until_ms, unit="ms", tz="UTC").isoformat()
    cmd = [
        sys.executable, "-m", "quantdesk.cli", "--config", str(config), "run",
        "--strategy", "sma_cross", "--param", "fast=2", "--param", "slow=3",
        "--symbols", BTC, "--mode", mode, "--venue", "sandbox", "--timeframe", "1m",
        "--capital", "2000", "--poll", "0.02", "--reconcile-every", "0.5",
        "--journal", str(journal), "--until", until,
        "--registry", str(config.parent / "promoted.toml"),
    ]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def starts(journal: Path) -> int:
    """How many sessions have recovered, reconciled, warmed up and begun polling bars."""
    if not journal.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
            kinds = [r[0] for r in db.execute("select kind from risk_events")]
    except sqlite3.Error:
        return 0
    return sum(k in ("session_started", "session_resumed") for k in kinds)


def equity_rows(journal: Path) -> int:
    """How many bars the session has finished: it journals one equity snapshot per step."""
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
            return db.execute("select count(*) from equity").fetchone()[0]
    except sqlite3.Error:
        return 0


def drive(
    proc: subprocess.Popen, journal: Path, admin: Admin, before: int, max_bars: int = 120
) -> str:
    """Once a session start beyond `before` is journaled, advance the sandbox one bar at a time,
    each once the session has journaled the previous one, while it trades; returns its output."""
    deadline = time.monotonic() + 90
    while starts(journal) == before and proc.poll() is None:
        assert time.monotonic() < deadline, "session never started"
        time.sleep(0.05)
    bars = 0
    while proc.poll() is None and bars < max_bars:
        done = equity_rows(journal)
        admin.advance(1)
        bars += 1
        # Waiting on the journal, not a fixed pause, keeps one bar per step on a loaded machine.
        step_deadline = time.monotonic() + 30
        while proc.poll() is None and equity_rows(journal) == done:
            assert time.monotonic() < step_deadline, f"bar {bars} never finished"
            time.sleep(0.01)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out


def journal_orders(journal: Path) -> pd.DataFrame:
    with Journal(journal) as j:
        return j.orders().set_index("client_order_id")


def test_killed_at_each_point_restarted_reconciled_journal_equals_venue(
    crash_url: str, crash_admin: Admin, tmp_path: Path
) -> None:
    config = write_config(tmp_path, crash_url)
    journal = tmp_path / "live.sqlite"
    until = crash_admin("GET", "clock")["time"] + 60 * MINUTE
    ex = sandbox_client("binance", crash_url, enableRateLimit=False)
    ex.load_markets()
    killed: dict[str, str] = {}
    # (before_fill_journal before after_send: a life's first fill must be of its own order,
    # not one it recovers from the previous life)
    for life, point in enumerate(["before_send", "before_fill_journal", "after_send"]):
        fills_before = len(crash_admin("GET", "fills"))
        proc = start(config, journal, until, f"{point}:1")
        out = drive(proc, journal, crash_admin, life)
        assert proc.returncode == -signal.SIGKILL, out
        # What the kill left behind: the intent is journaled, nothing after it.
        orders = journal_orders(journal)
        [cid] = orders.index[orders["status"] == "submitted"]
        killed[point] = cid
        at_venue = {o["clientOrderId"]: o for o in ex.fetch_orders(BTC)}
        with Journal(journal) as j:
            assert j.load_fills(cid) == []
        if point == "before_send":
            assert cid not in at_venue and len(crash_admin("GET", "fills")) == fills_before
        else:
            assert at_venue[cid]["status"] == "closed"  # executed; the engine never learnt it

    last = start(config, journal, until, None)
    out = drive(last, journal, crash_admin, 3)
    assert last.returncode == 0, out

    orders = journal_orders(journal)
    assert orders.loc[killed["before_send"], "status"] == "rejected"  # proven absent
    for point in ("after_send", "before_fill_journal"):
        assert orders.loc[killed[point], "status"] == "filled"  # found by client id
    venue_orders = ex.fetch_orders(BTC)
    ids = [o["clientOrderId"] for o in venue_orders]
    assert len(ids) == len(set(ids)), "an order was placed twice"
    sent = orders[orders["status"] != "rejected"]
    assert sorted(ids) == sorted(sent.index[sent["submit_attempts"] > 0])
    assert killed["before_send"] not in ids
    for o in venue_orders:
        assert o["status"] == "closed" and orders.loc[o["clientOrderId"], "status"] == "filled"
        assert orders.loc[o["clientOrderId"], "filled"] == D(str(o["filled"]))
    assert len(venue_orders) >= 4  # trading went on after the restarts

    report = crash_admin("GET", "fills")
    balance = ex.fetch_balance()["total"]
    with Journal(journal) as j:
        fills = j.fills()
        assert sorted(fills["trade_id"]) == sorted(str(f["tradeId"]) for f in report)
        for point in ("after_send", "before_fill_journal"):
            cid = killed[point]
            assert sum(f.amount for f in j.load_fills(cid)) == orders.loc[cid, "filled"] > 0
        balances = j.balances().set_index("asset")["total"].to_dict()
        assert balances["USDT"] == D(str(balance["USDT"]))
        assert balances["BTC"] == D(str(balance["BTC"]))
        position = j.positions(include_flat=True).set_index("symbol")["quantity"].to_dict()
        assert position[BTC] == balances["BTC"] - 1  # the account started with 1 BTC
        kinds = j.events()["kind"].tolist()
        assert kinds.count("session_resumed") == 3 and kinds[-1] == "session_stopped"
