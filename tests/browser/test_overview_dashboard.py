"""The overview served by `quantdesk dashboard overview --journals DIR` lists the folder's
sessions, and a session's link opens its live dashboard (the token cookie carries over)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.test_session_dashboard import (
    CHROMIUM,
    CHROMIUM_ARGS,
    _free_port,
    _stop,
    _wait_http,
)
from tests.conftest import REPO
from tests.dashboards.test_overview import make_journal

pytestmark = pytest.mark.browser
TOKEN = "overview-token-77"


def test_overview_lists_sessions_and_links_to_them(tmp_path: Path) -> None:
    folder = tmp_path / "journals"
    folder.mkdir()
    make_journal(folder / "btc.sqlite", 30, "BTC/USDT")
    make_journal(folder / "eth.sqlite", 10, "ETH/USDT", mode="live")
    port = _free_port()
    env = {**os.environ, "QUANTDESK_DASHBOARD_TOKEN": TOKEN}
    command = [
        sys.executable, "-m", "quantdesk.cli", "dashboard", "overview", "--journals", str(folder),
        "--port", str(port), "--notebooks", str(REPO / "notebooks"),
    ]  # fmt: skip
    with (tmp_path / "voila.log").open("w") as log:
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/"
        _wait_http(base, proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(base + f"voila/render/overview.ipynb?token={TOKEN}", timeout=120_000)
                page.wait_for_selector(".qd-overview-table tbody tr", timeout=120_000)
                rows = page.locator(".qd-overview-table tbody tr").all_inner_texts()
                assert len(rows) == 2 and "btc.sqlite" in rows[0] and "eth.sqlite" in rows[1]
                assert "1,290.00" in rows[0] and "live" in rows[1]
                shots = Path(os.environ.get("QUANTDESK_SCREENSHOTS", tmp_path))
                shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shots / "overview.png"), full_page=True)
                page.locator(".qd-session-link", has_text="eth.sqlite").click()
                page.wait_for_selector(".qd-session .qd-header h2", timeout=120_000)
                assert "ETH/USDT" in page.inner_text(".qd-header")
                assert "1,090.00" in page.inner_text(".qd-pnl")
            finally:
                browser.close()
    finally:
        _stop(proc)
