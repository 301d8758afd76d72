"""The overview lists every journal in the folder with its figures and a link, fast enough
for ten live sessions (each journaling as the page reads)."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal as D
from pathlib import Path

from quantdesk.dashboards.overview import SessionsOverview, overview_rows
from quantdesk.engine.journal import Journal
from quantdesk.model import Fill, Side

DAY0 = 1_709_251_200_000  # 2024-03-01 00:00 UTC
HOUR = 3_600_000


def make_journal(path: Path, n: int, symbol: str, mode: str = "paper") -> None:
    with Journal(path) as j, j.batch():
        payload = {"mode": mode, "venue": "sandbox", "capital": "1000", "balances": {}}
        j.record_risk_event("session", "session record", DAY0, "info", payload)
        text = f"{mode} session on sandbox: sma_cross(fast=2, slow=3) {symbol}"
        j.record_risk_event("session_started", text, DAY0, "info")
        j.record_fill(
            Fill("t1", "qd-1", symbol, Side.BUY, D("1"), D("100"), D("0.1"), "USDT", DAY0)
        )
        for i in range(n):  # hourly equity, 10 up per hour
            j.record_equity(DAY0 + i * HOUR, D(1000 + 10 * i))


def test_rows_and_links(tmp_path: Path) -> None:
    make_journal(tmp_path / "a.sqlite", 30, "BTC/USDT")
    make_journal(tmp_path / "b.sqlite", 5, "ETH/USDT", mode="live")
    (tmp_path / "readme.txt").write_text("not a journal")
    rows = overview_rows(tmp_path, now=DAY0 + 30 * HOUR)
    assert [r["session"] for r in rows] == ["a.sqlite", "b.sqlite"]
    a, b = rows
    assert (a["mode"], b["mode"], a["venue"]) == ("paper", "live", "sandbox")
    assert a["equity"] == "1,290.00" and a["day PnL"] == "60.00"  # 1290 - 1230 at the day's end
    assert b["equity"] == "1,040.00" and b["heartbeat"] == "26 h ago"
    assert a["strategy"] == "sma_cross" and a["risk"].startswith("normal")
    overview = SessionsOverview(tmp_path)
    overview.refresh(rows)
    assert 'href="session.ipynb?journal=a.sqlite"' in overview.table.value
    assert "readme" not in overview.table.value


async def test_ten_sessions_keep_the_page_responsive(tmp_path: Path) -> None:
    for i in range(10):
        make_journal(tmp_path / f"s{i}.sqlite", 2_000, "BTC/USDT")
    stop = threading.Event()

    def sessions_at_work() -> None:  # ten live sessions: each journals a new equity row
        journals = [Journal(tmp_path / f"s{i}.sqlite") for i in range(10)]
        hour = 2_000
        while not stop.is_set():
            for j in journals:
                j.record_equity(DAY0 + hour * HOUR, D(1000 + 10 * hour))
            hour += 1
            time.sleep(0.05)
        for j in journals:
            j.close()

    writer = threading.Thread(target=sessions_at_work, daemon=True)
    overview = SessionsOverview(tmp_path, interval_s=0.2)
    lags: list[float] = []

    async def ticker() -> None:  # what widget messages need: a free event loop
        while True:
            before = asyncio.get_running_loop().time()
            await asyncio.sleep(0.02)
            lags.append(asyncio.get_running_loop().time() - before - 0.02)

    tick = asyncio.create_task(ticker())
    ticking = asyncio.get_running_loop().time()
    task = overview.start()
    writer.start()
    started = time.monotonic()
    try:
        while "10 session(s)" not in overview.status.value or len(lags) < 200:
            assert time.monotonic() - started < 60, "the overview never refreshed"
            await asyncio.sleep(0.05)
        while "20,990.00" in overview.table.value:  # every session's new equity reaches the page
            assert time.monotonic() - started < 60, "the overview stopped following the sessions"
            await asyncio.sleep(0.05)
    finally:
        ticked = asyncio.get_running_loop().time() - ticking
        stop.set()
        task.cancel()
        tick.cancel()
        writer.join(10)
    rows = overview_rows(tmp_path, 0, overview._journals)
    assert len(rows) == 10
    equities = {float(r["equity"].replace(",", "")) for r in rows}
    assert min(equities) > 20_990  # every session moved on since it was made
    # A read of the ten journals on the loop blocks it ~0.3-0.4 s at every 0.2 s refresh: over
    # half the time stalled. Off the loop, only a loaded machine's scheduling hiccups remain
    # (one of 0.54 s was seen beside a full test run), so the share of time stalled decides.
    stalled = sum(lag for lag in lags if lag > 0.05)
    assert stalled < 0.3 * ticked, f"the event loop stalled {stalled:.2f} s of {ticked:.2f} s"
    assert max(lags) < 2.0, f"the event loop stalled {max(lags):.2f} s while journals were read"
