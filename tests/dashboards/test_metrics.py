"""`quantdesk run --metrics-port` serves Prometheus metrics during a sandbox session, and the
scraped values equal the journal's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from quantdesk.dashboards.metrics import histogram, order_latencies
from quantdesk.engine.journal import Journal
from tests.browser.test_session_dashboard import _free_port
from tests.conftest import REPO
from tests.sandbox.conftest import KEY, SECRET, Admin
from tests.sessions import starts, write_config

BTC = "BTC/USDT"


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_histogram_is_cumulative() -> None:
    assert histogram([0.02, 0.2, 3.0], (0.05, 1.0)) == [("0.05", 1.0), ("1.0", 2.0), ("+Inf", 3.0)]


def test_scraped_metrics_match_the_journal(
    crash_url: str,
    crash_admin: Admin,
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crash_url)
    journal = tmp_path / "live.sqlite"
    port = _free_port()
    env = {**os.environ, "QD_CRASH_KEY": KEY, "QD_CRASH_SECRET": SECRET}
    env["NUMBA_CACHE_DIR"] = str(REPO / ".cache" / "numba")
    env.pop("QUANTDESK_CRASH_AT", None)
    cmd = [
        sys.executable, "-m", "quantdesk.cli", "--config", str(config), "run",
        "--strategy", "sma_cross", "--param", "fast=2", "--param", "slow=3",
        "--symbols", BTC, "--mode", "live", "--venue", "sandbox", "--timeframe", "1m",
        "--capital", "2000", "--poll", "0.05", "--journal", str(journal),
        "--metrics-port", str(port), "--registry", str(tmp_path / "promoted.toml"),
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 90
        while starts(journal) == 0:
            assert proc.poll() is None and time.monotonic() < deadline, "no session started"
            time.sleep(0.05)
        for _ in range(120):  # bars until the session has traded
            crash_admin.advance(1)
            time.sleep(0.06)
            with Journal(journal) as j:
                if j.count("fills") >= 2:
                    break
        # the clock stands still now: wait until two scrapes agree, then compare
        before, after = scrape(port), {}
        while True:
            time.sleep(0.3)
            after = scrape(port)
            same = [k for k in before if k[0].startswith("quantdesk_") and "age" not in k[0]]
            same = [k for k in same if "lag" not in k[0]]
            if all(before[k] == after.get(k) for k in same):
                break
            before = after
            assert time.monotonic() < deadline + 120
        with Journal(journal) as j:
            orders = j.orders()
            fills = j.count("fills")
            positions = j.positions(include_flat=True)
            latencies = order_latencies(j)
            equity = float(j.equity_curve()["equity"].iloc[-1])
        m = after
        assert fills >= 2 and m[("quantdesk_fills_total", ())] == fills
        assert m[("quantdesk_orders_total", ())] == len(orders)
        for status, n in orders["status"].value_counts().items():
            assert m[("quantdesk_orders_by_status", (("status", status),))] == n
        for row in positions.to_dict("records"):
            assert m[("quantdesk_position", (("symbol", row["symbol"]),))] == pytest.approx(
                float(row["quantity"])
            )
        assert m[("quantdesk_equity", ())] == pytest.approx(equity)
        assert m[("quantdesk_order_latency_seconds_count", ())] == len(latencies) > 0
        assert m[("quantdesk_trading_state", (("state", "active"),))] == 1.0
        assert m[("process_resident_memory_bytes", ())] > 10_000_000
        assert 0 <= m[("quantdesk_risk_score", ())] <= 100
        names = {k[0] for k in m if k[0].startswith("quantdesk_")}
        assert len(names) >= 10, names
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_grafana_dashboard_uses_only_exposed_metrics(tmp_path: Path) -> None:
    import json
    import re

    from quantdesk.dashboards.metrics import metrics_registry
    from tests.dashboards.test_overview import make_journal

    make_journal(tmp_path / "j.sqlite", 5, BTC)
    with Journal(tmp_path / "j.sqlite") as j:
        families = list(metrics_registry(j).collect())
    # families without samples yet (no rejection so far) still count: Prometheus gets them later
    exposed = {s.name for f in families for s in f.samples} | {f.name for f in families}
    exposed |= {f"{f.name}_total" for f in families if f.type == "counter"}
    path = REPO / "platform" / "quantdesk" / "dashboards" / "grafana" / "quantdesk.json"
    board = json.loads(path.read_text())
    used = {
        name
        for panel in board["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(?:quantdesk|process)_\w+", target["expr"])
    }
    assert len(board["panels"]) >= 10 and used
    assert used <= exposed, used - exposed
