"""`quantdesk run --standby`: a second process, fully started, waits on the journal's run lock
and takes over the moment the session dies; after a clean stop it takes nothing over."""

from __future__ import annotations

import signal
from pathlib import Path

from quantdesk.engine.journal import Journal
from quantdesk.venues import sandbox_client
from tests.sandbox.conftest import Admin
from tests.sessions import (
    BTC,
    MINUTE,
    bars,
    read_until,
    start,
    starts,
    steps,
    wait,
    write_config,
)


def test_a_standby_takes_over_a_killed_session_and_not_a_stopped_one(
    crash_url: str, crash_admin: Admin, tmp_path: Path
) -> None:
    config = write_config(tmp_path, crash_url)
    journal = tmp_path / "live.sqlite"
    until = crash_admin("GET", "clock")["time"] + 600 * MINUTE
    active = start(config, journal, until, None)
    wait(lambda: starts(journal) == 1, active, "the first start")
    standby = start(config, journal, until, None, extra=["--standby"])
    try:
        read_until(standby, "standby: waiting for the session")
        bars(active, journal, crash_admin, 3)
        assert starts(journal) == 1 and standby.poll() is None  # it waits, it does not trade

        active.kill()
        active.communicate(timeout=60)
        wait(lambda: starts(journal) == 2, standby, "the standby to take over")
        assert any("standby: taking over" in line for line in read_until(standby, "taking over"))
        before = steps(journal)
        bars(standby, journal, crash_admin, 5)  # it trades the bars from here on
        assert steps(journal) == before + 5

        # a second standby behind it: a clean stop (SIGTERM) is not a crash to take over
        spare = start(config, journal, until, None, extra=["--standby"])
        read_until(spare, "standby: waiting for the session")
        standby.send_signal(signal.SIGTERM)
        assert standby.wait(timeout=60) == 0
        out = spare.communicate(timeout=120)[0]
        assert spare.returncode == 0, out
        assert "the session stopped cleanly, not a crash: nothing to take over" in out
    finally:
        for proc in (active, standby):
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=60)
    with Journal(journal) as j:
        kinds = j.events()["kind"].tolist()
        orders = j.orders()
    lifecycle = [k for k in kinds if k.startswith("session_")]
    assert lifecycle == ["session_started", "session_resumed", "session_stopped"]
    ex = sandbox_client("binance", crash_url, enableRateLimit=False)
    ex.load_markets()
    ids = [o["clientOrderId"] for o in ex.fetch_orders(BTC)]
    assert len(ids) == len(set(ids))  # the takeover doubled nothing
    assert set(ids) <= set(orders["client_order_id"])
