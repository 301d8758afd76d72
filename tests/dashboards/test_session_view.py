"""The session view reads a PostgreSQL journal as it reads a SQLite one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from quantdesk.dashboards.session_view import read_session
from quantdesk.engine.journal import Journal
from quantdesk.model import Costs
from quantdesk.strategy import strategy_class
from quantdesk.system.replay import replay
from tests.conftest import make_bars


def test_a_postgresql_journal_shows_what_the_sqlite_one_shows(tmp_path: Path, pg_url: str) -> None:
    bars = make_bars(300, seed=4)
    strategy = strategy_class("sma_cross")(fast=5, slow=20)
    views = {}
    for name, target in (("sqlite", str(tmp_path / "j.sqlite")), ("postgresql", pg_url)):
        replay(strategy, {"BTC/USDT": bars}, Costs(fee=0.001), timeframe="1h", journal=target)
        with Journal(target) as journal:
            views[name] = read_session(journal)
    lite, pg = views["sqlite"], views["postgresql"]
    assert len(lite.fills) > 4 and len(lite.equity) >= 250  # a session that traded
    pd.testing.assert_series_equal(lite.equity, pg.equity)
    assert lite.pnl == pg.pnl and lite.pnl["fees"] != 0
    cols = ["symbol", "quantity"]
    pd.testing.assert_frame_equal(
        lite.positions[cols].reset_index(drop=True), pg.positions[cols].reset_index(drop=True)
    )
    assert list(lite.fills["trade_id"]) == list(pg.fills["trade_id"])
    assert (lite.state, lite.usage, lite.last_bar_ms) == (pg.state, pg.usage, pg.last_bar_ms)
