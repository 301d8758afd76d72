"""The Voila screener in headless Chromium: it shows the ranking, and widgets re-rank it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.selection.factors import compute_factors
from quantdesk.selection.panel import Panel
from quantdesk.selection.ranking import rank
from quantdesk.selection.screener import factor_config
from quantdesk.selection.screens import Screen
from tests.conftest import SAMPLE_DATA

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
REAL_DATA = SAMPLE_DATA
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AS_OF = "2025-06-01"


def real_bars() -> dict[str, pd.DataFrame]:
    bars = {}
    for path in sorted(REAL_DATA.glob("*USDT-1d.csv")):
        raw = pd.read_csv(path)
        index = pd.DatetimeIndex(pd.to_datetime(raw["open_time"], unit="ms", utc=True), name="time")
        bars[f"{path.name.split('USDT')[0]}/USDT"] = raw[
            ["open", "high", "low", "close", "volume"]
        ].set_index(index)
    return bars


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def voila_url(tmp_path_factory) -> Iterator[str]:
    """Voila serving the screener over a store holding the five real daily series."""
    root = tmp_path_factory.mktemp("screener")
    store = DataStore(root / "md")
    for symbol, frame in real_bars().items():
        store.write(SeriesKey("binance", "usdm", symbol, "1d"), frame)
    port = free_port()
    env = {
        **os.environ,
        "QUANTDESK_DATA": str(store.root),
        "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(REPO / ".cache" / "numba")),
    }
    log = (root / "voila.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voila",
            str(REPO / "notebooks" / "dashboards" / "screener.ipynb"),
            f"--port={port}",
            "--no-browser",
            "--Voila.ip=127.0.0.1",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                # any HTTP answer means the server is up; "/" would already start a kernel
                urllib.request.urlopen(url + "static/", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "voila.log").read_text()[-3000:]) from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def expected_order(weights: dict[str, float], exclude: frozenset[str] = frozenset()) -> list[str]:
    panel = Panel.from_bars(real_bars())
    factors = compute_factors(panel, [*weights, "listing_age"], factor_config("1d"))
    # bars closed by AS_OF: the last is the day before's (the bar opening at AS_OF is unknown)
    bar = pd.Timestamp(AS_OF, tz="UTC") - pd.Timedelta(days=1)
    table, _ = rank(factors.as_of(bar), weights, Screen(min_history=30, exclude=exclude))
    return list(table.index)


def shown_symbols(page) -> list[str]:
    return page.locator(".qd-ranking table tbody th").all_inner_texts()


def test_screener_ranks_and_reacts_to_widgets(voila_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(voila_url, timeout=120_000)
            page.wait_for_selector(".qd-ranking table", timeout=120_000)
            # the default as-of is the last bar every coin has: LTC's extra week (to 2026-10-07)
            # must not leave the other four out with unknown factors
            common = Panel.from_bars(real_bars()).common_end
            assert f"{common:%Y-%m-%d}" == "2026-09-30"
            expect(page.locator(".qd-status")).to_contain_text(
                "bars closed by 2026-10-01 UTC (the last opened 2026-09-30)", timeout=30_000
            )
            expect(page.locator(".qd-status")).to_contain_text("Left out: none")
            assert len(shown_symbols(page)) == 5

            as_of = page.locator(".qd-as-of input")
            as_of.fill(AS_OF)
            as_of.press("Enter")
            expect(page.locator(".qd-status")).to_contain_text(
                f"closed by {AS_OF} UTC (the last opened 2025-05-31)", timeout=30_000
            )
            default = {"momentum_30": 1.0, "trend": 0.5, "volatility": -0.5}
            expect(page.locator(".qd-ranking table tbody th").first).to_have_text(
                expected_order(default)[0], timeout=30_000
            )
            assert shown_symbols(page) == expected_order(default)

            weight = page.locator(".qd-w-momentum_30 input")
            weight.fill("-2")
            weight.press("Enter")
            flipped = expected_order({**default, "momentum_30": -2.0})
            assert flipped != expected_order(default)
            expect(page.locator(".qd-ranking table tbody th").first).to_have_text(
                flipped[0], timeout=30_000
            )
            assert shown_symbols(page) == flipped

            top = page.locator(".qd-top input")
            top.fill("2")
            top.press("Enter")
            expect(page.locator(".qd-ranking table tbody tr")).to_have_count(2, timeout=30_000)
            assert shown_symbols(page) == flipped[:2]

            as_of.fill("2019-01-01")
            as_of.press("Enter")
            expect(page.locator(".qd-status .qd-error")).to_contain_text(
                "before the data", timeout=30_000
            )
        finally:
            browser.close()
