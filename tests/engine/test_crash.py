"""Crash safety: `quantdesk run --mode live` against the sandbox is SIGKILLed at a chosen point
of the order path (QUANTDESK_CRASH_AT), restarted with the same journal, and reconciled; then
the journal must equal the venue (orders, fills, balances, positions) and no order may have
been placed twice."""

from __future__ import annotations

import signal
from decimal import Decimal as D
from pathlib import Path

from quantdesk.engine.journal import Journal
from quantdesk.venues import sandbox_client
from tests.sandbox.conftest import Admin
from tests.sessions import BTC, MINUTE, drive, journal_orders, start, write_config


def test_killed_at_each_point_restarted_reconciled_journal_equals_venue(
    crash_url: str, crash_admin: Admin, tmp_path: Path
) -> None:
    config = write_config(tmp_path, crash_url)
    journal = tmp_path / "live.sqlite"
    until = crash_admin("GET", "clock")["time"] + 60 * MINUTE
    ex = sandbox_client("binance", crash_url, enableRateLimit=False)
    ex.load_markets()
    killed: dict[str, str] = {}
    # (before_fill_journal before after_send: a life's first fill must be of its own order,
    # not one it recovers from the previous life)
    for life, point in enumerate(["before_send", "before_fill_journal", "after_send"]):
        fills_before = len(crash_admin("GET", "fills"))
        proc = start(config, journal, until, f"{point}:1")
        out = drive(proc, journal, crash_admin, life)
        assert proc.returncode == -signal.SIGKILL, out
        # What the kill left behind: the intent is journaled, nothing after it.
        orders = journal_orders(journal)
        [cid] = orders.index[orders["status"] == "submitted"]
        killed[point] = cid
        at_venue = {o["clientOrderId"]: o for o in ex.fetch_orders(BTC)}
        with Journal(journal) as j:
            assert j.load_fills(cid) == []
        if point == "before_send":
            assert cid not in at_venue and len(crash_admin("GET", "fills")) == fills_before
        else:
            assert at_venue[cid]["status"] == "closed"  # executed; the engine never learnt it

    last = start(config, journal, until, None)
    out = drive(last, journal, crash_admin, 3)
    assert last.returncode == 0, out

    orders = journal_orders(journal)
    assert orders.loc[killed["before_send"], "status"] == "rejected"  # proven absent
    for point in ("after_send", "before_fill_journal"):
        assert orders.loc[killed[point], "status"] == "filled"  # found by client id
    venue_orders = ex.fetch_orders(BTC)
    ids = [o["clientOrderId"] for o in venue_orders]
    assert len(ids) == len(set(ids)), "an order was placed twice"
    sent = orders[orders["status"] != "rejected"]
    assert sorted(ids) == sorted(sent.index[sent["submit_attempts"] > 0])
    assert killed["before_send"] not in ids
    for o in venue_orders:
        assert o["status"] == "closed" and orders.loc[o["clientOrderId"], "status"] == "filled"
        assert orders.loc[o["clientOrderId"], "filled"] == D(str(o["filled"]))
    assert len(venue_orders) >= 4  # trading went on after the restarts

    report = crash_admin("GET", "fills")
    balance = ex.fetch_balance()["total"]
    with Journal(journal) as j:
        fills = j.fills()
        assert sorted(fills["trade_id"]) == sorted(str(f["tradeId"]) for f in report)
        for point in ("after_send", "before_fill_journal"):
            cid = killed[point]
            assert sum(f.amount for f in j.load_fills(cid)) == orders.loc[cid, "filled"] > 0
        balances = j.balances().set_index("asset")["total"].to_dict()
        assert balances["USDT"] == D(str(balance["USDT"]))
        assert balances["BTC"] == D(str(balance["BTC"]))
        position = j.positions(include_flat=True).set_index("symbol")["quantity"].to_dict()
        assert position[BTC] == balances["BTC"] - 1  # the account started with 1 BTC
        kinds = j.events()["kind"].tolist()
        assert kinds.count("session_resumed") == 3 and kinds[-1] == "session_stopped"
