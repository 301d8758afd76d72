"""Helpers for tests that run `quantdesk run` sessions as real processes against a sandbox:
the sandbox fixtures, the config and registry a session reads, starting one, and waiting on its
journal (never on the clock, so a loaded machine only slows them down)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.cli import main
from quantdesk.engine.journal import Journal
from quantdesk.promotion import append_entry, code_version
from quantdesk.sandbox import Sandbox, serve_in_thread
from quantdesk.strategy import strategy_class
from tests.sandbox.conftest import ADMIN_TOKEN, KEY, SECRET, Admin, make_config

BTC = "BTC/USDT"
MINUTE = 60_000
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def crash_url() -> Iterator[str]:
    """One sandbox server per test module (sessions run against it as real processes)."""
    with serve_in_thread(Sandbox(make_config())) as base:
        yield base


@pytest.fixture
def crash_admin(crash_url: str) -> Admin:
    """The sandbox, reset, with a weight limit no session reaches."""
    api = Admin(crash_url, ADMIN_TOKEN)
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
        # the sandbox's weight limit is lifted (crash_admin): ccxt may pace for it, not Binance's
        "rate_limit_ms = 1\n"
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
    config: Path,
    journal: Path,
    until_ms: int,
    crash: str | None,
    mode: str = "live",
    extra: Sequence[str] = (),
) -> subprocess.Popen:
    """`quantdesk run` of sma_cross(2, 3) on BTC/USDT 1m against the sandbox, as a process
    (output piped); crash: QUANTDESK_CRASH_AT (quantdesk.testing.crash); extra: more options."""
    env = {**os.environ, "QD_CRASH_KEY": KEY, "QD_CRASH_SECRET": SECRET}
    env["NUMBA_CACHE_DIR"] = str(REPO / ".cache" / "numba")
    env.pop("QUANTDESK_CRASH_AT", None)
    if crash:
        env["QUANTDESK_CRASH_AT"] = crash
    until = pd.Timestamp(until_ms, unit="ms", tz="UTC").isoformat()
    cmd = [
        sys.executable, "-m", "quantdesk.testing.crash", "--config", str(config), "run",
        "--strategy", "sma_cross", "--param", "fast=2", "--param", "slow=3",
        "--symbols", BTC, "--mode", mode, "--venue", "sandbox", "--timeframe", "1m",
        "--capital", "2000", "--poll", "0.02", "--reconcile-every", "0.5",
        "--journal", str(journal), "--until", until,
        "--registry", str(config.parent / "promoted.toml"), *extra,
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


def steps(journal: Path) -> int:
    """Equity snapshots the session journaled: one per bar it processed."""
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
            return db.execute("select count(*) from equity").fetchone()[0]
    except sqlite3.Error:
        return 0


def drive(
    proc: subprocess.Popen, journal: Path, admin: Admin, before: int, max_bars: int = 120
) -> str:
    """Once a session start beyond `before` is journaled, advance the sandbox one bar at a time,
    each time waiting until the session has processed the bar (its equity row), while it runs;
    returns its output. Waits on the journal, not the clock, so a loaded machine only slows it."""
    deadline = time.monotonic() + 300
    while starts(journal) == before and proc.poll() is None:
        assert time.monotonic() < deadline, "session never started"
        time.sleep(0.05)
    bars = 0
    while proc.poll() is None and bars < max_bars:
        seen = steps(journal)
        admin.advance(1)
        bars += 1
        deadline = time.monotonic() + 120
        while steps(journal) == seen and proc.poll() is None:
            assert time.monotonic() < deadline, f"the session never took bar {bars}"
            time.sleep(0.02)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out


def journal_orders(journal: Path) -> pd.DataFrame:
    with Journal(journal) as j:
        return j.orders().set_index("client_order_id")


def rows(journal: Path, sql: str) -> list[tuple]:
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
            return list(db.execute(sql))
    except sqlite3.Error:
        return []


def wait(
    condition: Callable[[], bool], proc: subprocess.Popen, what: str, limit: float = 120
) -> None:
    """Poll until condition() holds; fail with the session's output if it ends first."""
    deadline = time.monotonic() + limit
    while not condition():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"session ended before {what}: {out}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def bars(proc: subprocess.Popen, journal: Path, admin: Admin, n: int) -> None:
    """Advance the sandbox n bars, each only after the session processed the previous one."""
    for _ in range(n):
        seen = steps(journal)
        admin.advance(1)
        wait(lambda seen=seen: steps(journal) > seen, proc, "the session to take the bar")


def cli(*args: str) -> None:
    """Run `quantdesk ARGS` in-process and require exit 0."""
    with pytest.raises(SystemExit) as done:
        main(list(args))
    assert done.value.code == 0


def read_until(proc: subprocess.Popen, text: str) -> list[str]:
    """Read the process's output until a line containing text; the lines read."""
    lines = []
    while True:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line, f"ended before {text!r}: {''.join(lines)}"
        lines.append(line)
        if text in line:
            return lines
