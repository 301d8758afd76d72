"""Restart-to-trading: how long a SIGKILLed `quantdesk run --mode live` takes to trade again.

A session runs against the sandbox on loopback; it is SIGKILLed and restarted on the same
journal. Measured per restart: process start -> session resumed (journal event: recovered,
reconciled, warmed up, polling), and -> the first new bar processed (its equity row). Next to
it, the parts a restart cannot skip: the interpreter with quantdesk's CLI and session imports,
and the strategy's own module (vectorbt).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from quantdesk.sandbox import Sandbox, serve_in_thread
from tests.sandbox.conftest import ADMIN_TOKEN, Admin, make_config
from tests.sessions import MINUTE, REPO, read_until, start, starts, steps, write_config

RESTARTS = int(os.environ.get("BENCH_RESTARTS", "5"))


def _import_s(code: str) -> float:
    """Wall time of a fresh interpreter running `code` (best of 3)."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
        times.append(time.perf_counter() - t0)
    return min(times)


def _wait(condition, what: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.005)


def main() -> None:
    """Run the measurement and print a table."""
    base = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    started, traded = [], []
    takeover, takeover_traded = [], []
    try:
        with serve_in_thread(Sandbox(make_config())) as url:
            admin = Admin(url, ADMIN_TOKEN)
            admin("POST", "limits", {"weight_limit": 1_000_000})
            config = write_config(base, url)
            journal = base / "live.sqlite"
            until = admin("GET", "clock")["time"] + 100_000 * MINUTE
            for life in range(RESTARTS + 1):
                t0 = time.perf_counter()
                proc = start(config, journal, until, None)
                _wait(lambda life=life: starts(journal) > life, "the session to start")
                t1 = time.perf_counter()
                seen = steps(journal)
                admin.advance(1)
                _wait(lambda seen=seen: steps(journal) > seen, "the first bar")
                t2 = time.perf_counter()
                if life:  # life 0 is the first start, not a restart
                    started.append(t1 - t0)
                    traded.append(t2 - t0)
                proc.kill()
                proc.communicate(timeout=60)
            # the same with a standby (`run --standby`) waiting beside the session
            proc = start(config, journal, until, None)
            _wait(lambda: starts(journal) > RESTARTS + 1, "the session before the standbys")
            for _ in range(RESTARTS):
                standby = start(config, journal, until, None, extra=["--standby"])
                read_until(standby, "standby: waiting")
                before = starts(journal)
                t0 = time.perf_counter()
                proc.kill()
                proc.communicate(timeout=60)
                _wait(lambda before=before: starts(journal) > before, "the takeover")
                t1 = time.perf_counter()
                seen = steps(journal)
                admin.advance(1)
                _wait(lambda seen=seen: steps(journal) > seen, "the first bar")
                takeover.append(t1 - t0)
                takeover_traded.append(time.perf_counter() - t0)
                proc = standby
            proc.kill()
            proc.communicate(timeout=60)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    python = _import_s("pass")
    cli = _import_s("import quantdesk.cli.run, quantdesk.system.live")
    strategy = _import_s("import vectorbt")
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{RESTARTS} SIGKILLs of a live session (sandbox, sma_cross 1m): cold and to a standby")
    print(f"{'':40} {'median':>8} {'max':>8}")
    for name, values in (
        ("restart -> session resumed (s)", started),
        ("restart -> first bar processed (s)", traded),
        ("kill -> standby resumed (s)", takeover),
        ("kill -> standby took a bar (s)", takeover_traded),
    ):
        print(f"{name:40} {np.median(values):8.2f} {np.max(values):8.2f}")
    print("fresh interpreter, best of 3 (s):")
    print(
        f"  python alone {python:.2f}, quantdesk CLI + session {cli:.2f}, vectorbt {strategy:.2f}"
    )
