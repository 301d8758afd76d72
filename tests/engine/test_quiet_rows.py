"""The kernel's bulk skip of quiet rows changes nothing: the same replay stepped row by row
(a feed without `rows`) gives the same fills, equity, order stats and journal rows."""

from __future__ import annotations

import sqlite3

import pytest

import quantdesk.system.replay as replay_module
from benchmarks.bench_replay import make_bars
from quantdesk.backtest import Costs
from quantdesk.engine.feeds import HistoricalFeed
from quantdesk.strategy import load_strategy, repo_strategies_dir


class SteppedFeed(HistoricalFeed):
    """A HistoricalFeed the kernel must step row by row (no row bookkeeping to skip with)."""

    @property
    def rows(self):  # type: ignore[override]
        raise AttributeError("rows")


def _run(journal=None):
    strategy = load_strategy("sma_cross", {"fast": 5, "slow": 20}, repo_strategies_dir())
    bars = make_bars(6_000, seed=7)
    return replay_module.replay(
        strategy, {"BTC/USDT": bars}, Costs(fee=0.001), timeframe="1m", journal=journal
    )


def _rows(path):
    with sqlite3.connect(path) as conn:
        return {
            t: conn.execute(f"select * from {t} order by rowid").fetchall()
            for t in ("orders", "order_events", "fills", "positions", "equity")
        }


@pytest.mark.parametrize("journaled", [False, True])
def test_skipping_equals_stepping(tmp_path, monkeypatch, journaled):
    fast = _run(tmp_path / "fast.sqlite" if journaled else None)
    monkeypatch.setattr(replay_module, "HistoricalFeed", SteppedFeed)
    slow = _run(tmp_path / "slow.sqlite" if journaled else None)
    assert len(fast.fills) > 20
    assert fast.fills == slow.fills
    assert fast.portfolio.equity_curve == slow.portfolio.equity_curve
    assert fast.final_equity == slow.final_equity
    assert fast.steps == slow.steps
    assert fast.order_stats == slow.order_stats
    if journaled:
        assert _rows(tmp_path / "fast.sqlite") == _rows(tmp_path / "slow.sqlite")
