"""The strategy explorer served by `quantdesk dashboard` (Voila), driven in headless Chromium."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHART_Y = """() => {
    const el = document.querySelector('.js-plotly-plot');
    return el && el.data && el.data[0].y ? Array.from(el.data[0].y) : null;
}"""

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dashboard exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


@pytest.fixture
def dashboard_url(browser_data_root, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "QUANTDESK_DATA": str(browser_data_root),
        "QUANTDESK_STRATEGIES": str(REPO / "strategies"),
        "QUANTDESK_DASHBOARD_TOKEN": "explorer-token",
    }
    command = [
        sys.executable, "-m", "quantdesk.cli", "dashboard", "strategy_explorer",
        "--port", str(port), "--notebooks", str(REPO / "notebooks"),
    ]  # fmt: skip
    with open(tmp_path / "voila.log", "w") as log:
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=env, start_new_session=True, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}/?token=explorer-token"
    finally:
        # The CLI and the Voila server it runs share one process group, started above.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def test_changing_a_parameter_updates_stats_and_chart(dashboard_url, tmp_path):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(dashboard_url, timeout=120_000)
            page.wait_for_selector(".qd-stats table", timeout=120_000)
            page.wait_for_function(
                f"({CHART_Y})() !== null && ({CHART_Y})().length > 0", timeout=60_000
            )
            stats_before = page.inner_text(".qd-stats")
            y_before = page.evaluate(CHART_Y)
            assert "Total return" in stats_before and "Trades" in stats_before

            box = page.locator(".qd-param-fast input")
            assert box.input_value() == "10"
            box.fill("5")
            box.press("Enter")
            page.wait_for_function(
                "before => document.querySelector('.qd-stats').innerText !== before",
                arg=stats_before,
                timeout=60_000,
            )
            page.wait_for_function(
                f"before => JSON.stringify(({CHART_Y})()) !== before",
                arg=str(y_before).replace(" ", ""),
                timeout=60_000,
            )
            stats_after = page.inner_text(".qd-stats")
            y_after = page.evaluate(CHART_Y)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        finally:
            browser.close()
    assert stats_after != stats_before
    assert len(y_after) == len(y_before) > 100
    assert y_after != y_before
    assert y_before[0] == pytest.approx(10_000.0) and y_after[0] == pytest.approx(10_000.0)
