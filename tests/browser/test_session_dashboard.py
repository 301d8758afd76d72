"""The live session dashboard in headless Chromium against a confirm-mode sandbox session:
an approved order's fill shows within seconds, the kill button cancels the working order at
the venue, and a wrong token sees nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from quantdesk.engine.journal import Journal
from quantdesk.sandbox import Sandbox, serve_in_thread
from quantdesk.venues import sandbox_client
from tests.conftest import REPO
from tests.sandbox.conftest import ADMIN_TOKEN, KEY, SECRET, Admin, make_config
from tests.sessions import starts, write_config

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "session-token-4c1f"
BTC = "BTC/USDT"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "static/", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer: the server is up
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dashboard did not start") from None
            time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[dict]:
    """A sandbox, a confirm-mode live session on it (with one adopted resting order), and the
    session dashboard served over its journal."""
    tmp = tmp_path_factory.mktemp("session-dash")
    with serve_in_thread(Sandbox(make_config())) as url:
        admin = Admin(url, ADMIN_TOKEN)
        admin("POST", "reset")
        admin("POST", "limits", {"weight_limit": 1_000_000})
        ex = sandbox_client("binance", url, KEY, SECRET, enableRateLimit=False)
        ex.load_markets()
        last = ex.fetch_ticker(BTC)["last"]
        ex.create_order(
            BTC, "limit", "buy", 0.01, round(last * 0.8, 2), {"newClientOrderId": "resting"}
        )
        config = write_config(tmp, url)
        journal = tmp / "live.sqlite"
        env = {**os.environ, "QD_CRASH_KEY": KEY, "QD_CRASH_SECRET": SECRET}
        env["NUMBA_CACHE_DIR"] = str(REPO / ".cache" / "numba")
        env.pop("QUANTDESK_CRASH_AT", None)
        engine = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "quantdesk.cli",
                "--config",
                str(config),
                "run",
                "--strategy",
                "sma_cross",
                "--param",
                "fast=2",
                "--param",
                "slow=3",
                "--symbols",
                BTC,
                "--mode",
                "live",
                "--venue",
                "sandbox",
                "--timeframe",
                "1m",
                "--capital",
                "2000",
                "--poll",
                "0.05",
                "--journal",
                str(journal),
                "--execution",
                "confirm",
                "--unknown-orders",
                "adopt",
                "--registry",
                str(tmp / "promoted.toml"),
            ],
            cwd=tmp,
            env=env,
            stdout=(tmp / "engine.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        dash = None
        try:
            deadline = time.monotonic() + 90
            while starts(journal) == 0:
                assert engine.poll() is None, (tmp / "engine.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the session never started"
                time.sleep(0.05)
            port = _free_port()
            dash_env = {**os.environ, "QUANTDESK_DASHBOARD_TOKEN": TOKEN}
            dash = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "quantdesk.cli",
                    "dashboard",
                    "session",
                    "--journal",
                    str(journal),
                    "--port",
                    str(port),
                    "--notebooks",
                    str(REPO / "notebooks"),
                ],
                cwd=tmp,
                env=dash_env,
                stdout=(tmp / "voila.log").open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            base = f"http://127.0.0.1:{port}/"
            _wait_http(base, dash)
            yield {"url": base, "admin": admin, "ex": ex, "journal": journal, "tmp": tmp}
        finally:
            if dash is not None:
                _stop(dash)
            _stop(engine)


def _browser(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def _open(page: Page, url: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(url, timeout=120_000)
    page.wait_for_selector(".qd-session .qd-header h2", timeout=120_000)


def _confirm(page: Page, button: str) -> None:
    page.locator(f"{button} button, button{button}").first.click()
    page.wait_for_selector(".qd-confirm .qd-question b", state="visible", timeout=10_000)
    page.locator(".qd-confirm-yes").first.click()


def test_a_fill_shows_the_approve_button_releases_and_kill_cancels(live) -> None:
    admin, ex, journal = live["admin"], live["ex"], live["journal"]
    with sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page()
        try:
            _open(page, live["url"] + f"?token={TOKEN}")
            assert "live session on sandbox" in page.inner_text(".qd-header")
            page.wait_for_selector(".qd-working-table td:has-text('resting')", timeout=30_000)
            shots = Path(os.environ.get("QUANTDESK_SCREENSHOTS", live["tmp"]))
            shots.mkdir(parents=True, exist_ok=True)

            # bars close until the strategy wants an order; confirm mode holds it
            for _ in range(80):
                admin.advance(1)
                try:
                    page.wait_for_selector(".qd-held-order", timeout=1_500)
                    break
                except PlaywrightTimeout:
                    continue
            held = page.inner_text(".qd-held-order code")
            sent = [o["clientOrderId"] for o in ex.fetch_orders(BTC)]
            assert held not in sent  # nothing goes out before approval
            page.screenshot(path=str(shots / "session.png"), full_page=True)

            page.locator(".qd-held-order .qd-approve").first.click()
            page.wait_for_selector(".qd-confirm .qd-question b", state="visible", timeout=10_000)
            assert held in page.inner_text(".qd-question")
            page.locator(".qd-confirm-yes").first.click()
            deadline = time.monotonic() + 30
            while not admin("GET", "fills"):
                assert time.monotonic() < deadline, "the approved order never filled"
            filled_at = time.monotonic()  # the venue has the fill: the page must show it soon
            page.wait_for_selector(f".qd-fills-table td:has-text('{held}')", timeout=5_000)
            shown_after = time.monotonic() - filled_at
            with Journal(journal) as j:
                assert j.pending_commands() == []  # the approval was consumed by the engine
                command = (
                    j.engine.connect()
                    .exec_driver_sql("select target, payload from commands where kind='approve'")
                    .fetchall()
                )
            assert command and command[0][0] == held and '"via": "dashboard"' in command[0][1]
            assert any(o["clientOrderId"] == held for o in ex.fetch_orders(BTC))
            print(f"fill shown {shown_after:.2f} s after the venue had it")

            _confirm(page, ".qd-kill")
            page.wait_for_function(
                "() => document.querySelector('.qd-state').innerText === 'halted'", timeout=30_000
            )
            page.wait_for_selector(".qd-working-table, .qd-working i", timeout=10_000)
            page.wait_for_function(
                "() => !document.querySelector('.qd-working').innerText.includes('resting')",
                timeout=30_000,
            )
            venue = ex.fetch_order(None, BTC, {"origClientOrderId": "resting"})
            assert venue["status"] == "canceled"
            assert ex.fetch_open_orders(BTC) == []
            with Journal(journal) as j:
                kill = j.events("kill")
                assert "dashboard kill by" in kill["message"].iloc[-1]
            page.screenshot(path=str(shots / "session-halted.png"), full_page=True)
        finally:
            browser.close()


def test_a_wrong_token_sees_nothing_and_can_do_nothing(live) -> None:
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            page = browser.new_page()
            for suffix in ("", "?token=wrong"):
                page.goto(live["url"] + suffix, timeout=60_000)
                page.wait_for_load_state("load")
                assert "/login" in page.url
                assert page.locator(".qd-session").count() == 0
                assert "live session" not in page.content()
            # no kernel may be started, so no widget (and no button) can run
            request = urllib.request.Request(live["url"] + "api/kernels", method="POST", data=b"{}")
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(request, timeout=10)
            assert denied.value.code in (403, 405)
        finally:
            browser.close()
    with Journal(live["journal"]) as j:
        kinds = [c[0] for c in j.engine.connect().exec_driver_sql("select kind from commands")]
    assert "resume" not in kinds
