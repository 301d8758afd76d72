"""The arb page served by `quantdesk dashboard arb --journal J` shows the live spread, green
above the entry threshold, and the pairs; it follows the journal as the session writes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from quantdesk.engine.journal import Journal
from tests.browser.test_session_dashboard import (
    CHROMIUM,
    CHROMIUM_ARGS,
    _free_port,
    _stop,
    _wait_http,
)
from tests.conftest import REPO
from tests.dashboards.test_arb_view import T0, make, spread

pytestmark = pytest.mark.browser
TOKEN = "arb-token-4242"


def test_arb_page_highlights_a_wide_spread_and_follows_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / "arb.sqlite"
    make(journal, "BTC/USDT:USDT", long_a=0.9, entry=0.15)
    port = _free_port()
    env = {**os.environ, "QUANTDESK_DASHBOARD_TOKEN": TOKEN}
    command = [
        sys.executable, "-m", "quantdesk.cli", "dashboard", "arb", "--journal", str(journal),
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
                page.goto(base + f"?token={TOKEN}", timeout=120_000)
                page.wait_for_selector(".qd-arb-spreads tr.qd-arb-hot", timeout=120_000)
                hot = page.inner_text(".qd-arb-spreads tr.qd-arb-hot")
                assert "BTC/USDT:USDT" in hot and "alpha / beta" in hot and "90.00%" in hot
                pairs = page.locator(".qd-arb-pairs tbody tr").all_inner_texts()
                assert len(pairs) == 2 and "open" in pairs[0] and "take_profit" in pairs[1]
                shots = Path(os.environ.get("QUANTDESK_SCREENSHOTS", tmp_path))
                shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shots / "arb.png"), full_page=True)
                with Journal(journal) as j:  # the spread narrows below the threshold
                    spread(j, T0 + 120_000, "BTC/USDT:USDT", 0.05, -0.05, 0.15)
                page.wait_for_selector(".qd-arb-spreads tr.qd-arb-hot", state="detached",
                                       timeout=60_000)  # fmt: skip
                assert "5.00%" in page.inner_text(".qd-arb-spreads tbody")
            finally:
                browser.close()
    finally:
        _stop(proc)
