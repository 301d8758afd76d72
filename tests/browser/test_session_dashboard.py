"""The live session dashboard in headless Chromium against a confirm-mode sandbox session:
an approved order's fill shows within seconds, the kill button cancels the working order at
the venue, Cancel in the confirmation box does nothing, kill-and-flatten closes the position at
the venue, resume trades again, a rejected order never reaches the venue, and a wrong token
sees nothing.

The tests share one session and run in file order, each leaving the state the next one wants
(halted and long, then halted and flat, then active); each also sets up what it needs through
the journal when it runs alone or on another xdist worker. They wait on the journal and the
venue with deadlines, never on fixed sleeps."""

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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from quantdesk.dashboards.session_view import SessionView, read_session
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
                "--reconcile-every",
                "1",  # an order placed at the venue during a test is adopted within a second
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
    before = _commands(live["journal"])
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
    assert _commands(live["journal"]) == before  # nothing was queued


# --- helpers for the tests below: state read from the journal and the venue, polled -----------

OPERATOR = "alice-ops"
STEP = 0.00001  # BTC/USDT's amount step: a buy's fee (in BTC) leaves dust below it, unsellable


def _until(what: str, check, timeout: float = 30.0):
    """check()'s first truthy value, polled until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _view(journal: Path) -> SessionView:
    with Journal(journal) as j:
        return read_session(j)


def _commands(journal: Path) -> list[tuple]:
    with Journal(journal) as j, j.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "select id, kind, target, payload, consumed from commands order by id"
        ).fetchall()
    return [tuple(r) for r in rows]


def _position(journal: Path) -> float:
    positions = _view(journal).positions
    rows = positions[positions["symbol"] == BTC]
    return float(rows["quantity"].iloc[0]) if len(rows) else 0.0


def _kills(journal: Path) -> int:
    with Journal(journal) as j:
        return len(j.events("kill"))


def _state(journal: Path, state: str) -> Callable[[], bool]:
    return lambda: _view(journal).state == state


def _queue(journal: Path, kind: str, target: str = "", **payload) -> None:
    """Set-up through the journal (not what a test checks): as `quantdesk kill/resume` does."""
    with Journal(journal) as j:
        j.add_command(
            kind, int(time.time() * 1000), target=target, payload={"by": "setup", **payload}
        )


def _held_after_bars(live: dict, bars: int = 80) -> dict:
    """Close bars one at a time until the strategy's order waits for approval."""
    journal, admin = live["journal"], live["admin"]
    held = _view(journal).held
    for _ in range(bars):
        if len(held):
            return held.iloc[0].to_dict()
        admin.advance(1)
        deadline = time.monotonic() + 3
        while not len(held := _view(journal).held) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(held), f"no order awaited approval after {bars} bars"
    return held.iloc[0].to_dict()


def _venue_ids(ex) -> set[str]:
    return {o["clientOrderId"] for o in ex.fetch_orders(BTC)}


def _ensure_active(journal: Path) -> None:
    if _view(journal).state != "active":
        _queue(journal, "resume", reason="test setup")
        _until("active", _state(journal, "active"))


def _ensure_halted(journal: Path) -> None:
    if _view(journal).state != "halted":
        _queue(journal, "kill", reason="test setup", flatten=False)
        _until("halted", _state(journal, "halted"))


def _ensure_long(live: dict) -> None:
    """A long BTC position in the session (an approved buy), whatever the state was."""
    journal = live["journal"]
    if _position(journal) >= STEP:
        return
    _ensure_active(journal)
    while True:
        held = _held_after_bars(live)
        _queue(journal, "approve" if held["side"] == "buy" else "reject", held["client_order_id"])
        _until("the command consumed", lambda: _commands(journal)[-1][4])
        if held["side"] == "buy":
            break
    _until("a long position", lambda: _position(journal) >= STEP)


@pytest.fixture(scope="module")
def page(live) -> Iterator[Page]:
    """One page (one kernel) for the tests below, the operator field filled in."""
    with sync_playwright() as pw:
        browser = _browser(pw)
        try:
            page = browser.new_page()
            _open(page, live["url"] + f"?token={TOKEN}")
            page.locator(".qd-operator input").fill(OPERATOR)
            yield page
        finally:
            browser.close()


def _ask(page: Page, button: str) -> str:
    """Click an action button; the confirmation box's question."""
    page.locator(f"{button} button, button{button}").first.click()
    question = page.locator(".qd-confirm .qd-question b")
    question.wait_for(state="visible", timeout=10_000)
    return question.inner_text()


def _status(page: Page, text: str) -> None:
    page.wait_for_function(
        "t => document.querySelector('.qd-action-status').innerText.includes(t)",
        arg=text,
        timeout=10_000,
    )


def test_cancel_in_the_confirmation_box_does_nothing(live, page) -> None:
    journal = live["journal"]
    state = _view(journal).state
    before = _commands(journal)
    for button in (".qd-kill", ".qd-kill-flatten", ".qd-resume"):
        _ask(page, button)
        page.locator(".qd-confirm-no").first.click()
        page.wait_for_selector(".qd-confirm .qd-question b", state="hidden", timeout=10_000)
        _status(page, "cancelled")  # the kernel ran the Cancel handler
        # a later Confirm has nothing left to confirm: the cancelled action is gone
        assert page.locator(".qd-confirm-yes").first.is_hidden()
    assert _commands(journal) == before
    assert _view(journal).state == state


def test_kill_and_flatten_cancels_orders_and_closes_the_position_at_the_venue(live, page) -> None:
    journal, ex, admin = live["journal"], live["ex"], live["admin"]
    _ensure_long(live)
    last = ex.fetch_ticker(BTC)["last"]
    ex.create_order(
        BTC, "limit", "buy", 0.01, round(last * 0.8, 2), {"newClientOrderId": "resting2"}
    )
    _until(
        "the venue order adopted",
        lambda: "resting2" in set(_view(journal).working["client_order_id"]),
    )
    page.wait_for_selector(".qd-working-table td:has-text('resting2')", timeout=30_000)
    quantity = _position(journal)
    btc_before = float(ex.fetch_balance()["BTC"]["total"])
    fills_before = len(admin("GET", "fills"))
    kills_before = _kills(journal)

    assert "close every position" in _ask(page, ".qd-kill-flatten")
    page.locator(".qd-confirm-yes").first.click()
    _status(page, "flatten: yes")
    _until("the kill journaled", lambda: _kills(journal) > kills_before)
    _until("flat in the journal", lambda: abs(_position(journal)) < STEP)
    # the venue: the working order cancelled, the position sold, nothing left open
    assert ex.fetch_order(None, BTC, {"origClientOrderId": "resting2"})["status"] == "canceled"
    assert ex.fetch_open_orders(BTC) == []
    new_fills = admin("GET", "fills")[fills_before:]
    sold = sum(float(f["qty"]) for f in new_fills if f["side"].upper() == "SELL")
    fee_btc = sum(float(f["commission"]) for f in new_fills if f["commissionAsset"] == "BTC")
    assert 0 <= quantity - sold < STEP  # all of it but the fee dust
    assert float(ex.fetch_balance()["BTC"]["total"]) == pytest.approx(
        btc_before - sold - fee_btc, abs=1e-12
    )
    with Journal(journal) as j:
        event = j.events("kill").iloc[-1]
    assert event["message"].startswith(f"kill switch: dashboard kill by {OPERATOR}")
    assert "resting2" in event["payload"]["cancelled"] and event["payload"]["flatten_orders"]
    (command,) = [c for c in _commands(journal) if c[1] == "kill"][-1:]
    assert command[4]  # consumed
    assert f'"by": "{OPERATOR}"' in command[3] and '"flatten": true' in command[3]
    assert '"via": "dashboard"' in command[3]
    page.wait_for_function(
        "() => document.querySelector('.qd-state').innerText === 'halted'", timeout=30_000
    )
    page.wait_for_selector(".qd-positions i:has-text('flat'), .qd-positions-table", timeout=10_000)


def test_resume_after_a_kill_trades_again(live, page) -> None:
    journal, ex = live["journal"], live["ex"]
    _ensure_halted(journal)
    assert _ask(page, ".qd-resume") == "Resume trading?"
    page.locator(".qd-confirm-yes").first.click()
    _until("active again", _state(journal, "active"))
    with Journal(journal) as j:
        change = j.events("state_change").iloc[-1]
    assert change["payload"]["new"] == "active"
    assert change["payload"]["reason"] == f"dashboard resume by {OPERATOR}"
    command = [c for c in _commands(journal) if c[1] == "resume"][-1]
    assert command[4] and f'"by": "{OPERATOR}"' in command[3]
    page.wait_for_function(
        "() => document.querySelector('.qd-state').innerText === 'active'", timeout=30_000
    )

    # trading again: the next signal waits for approval, and once approved reaches the venue
    held = _held_after_bars(live)["client_order_id"]
    row = page.locator(f".qd-held-order:has(code:text-is('{held}'))")
    row.wait_for(timeout=30_000)
    row.locator(".qd-approve").first.click()
    page.wait_for_selector(".qd-confirm .qd-question b", state="visible", timeout=10_000)
    page.locator(".qd-confirm-yes").first.click()
    _until("the order at the venue", lambda: held in _venue_ids(ex))


def test_a_rejected_order_never_reaches_the_venue(live, page) -> None:
    journal, ex = live["journal"], live["ex"]
    _ensure_active(journal)
    held = _held_after_bars(live)["client_order_id"]
    row = page.locator(f".qd-held-order:has(code:text-is('{held}'))")
    row.wait_for(timeout=30_000)
    assert held not in _venue_ids(ex)
    row.locator(".qd-reject").first.click()
    question = page.locator(".qd-confirm .qd-question b")
    question.wait_for(state="visible", timeout=10_000)
    assert question.inner_text().startswith(f"Reject order {held}")
    page.locator(".qd-confirm-yes").first.click()

    def withdrawn() -> bool:
        with Journal(journal) as j:
            orders = j.orders()
        order = orders[orders["client_order_id"] == held]
        return len(order) == 1 and order["status"].iloc[0] == "canceled"

    _until("the order withdrawn", withdrawn)
    with Journal(journal) as j:
        orders = j.orders()
    reason = orders.loc[orders["client_order_id"] == held, "reason"].iloc[0]
    assert reason == f"rejected by {OPERATOR}"
    (command,) = [c for c in _commands(journal) if c[1] == "reject" and c[2] == held]
    assert command[4] and f'"by": "{OPERATOR}"' in command[3] and '"via": "dashboard"' in command[3]
    # withdrawn orders are terminal: the engine can never send this one
    assert held not in _venue_ids(ex)
    page.wait_for_selector(
        f".qd-held-order:has(code:text-is('{held}'))", state="detached", timeout=30_000
    )
