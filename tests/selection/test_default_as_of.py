"""The end-to-end ranking: its default as-of time is one every symbol has data for."""

from __future__ import annotations

import pandas as pd

from quantdesk.selection.panel import Panel
from quantdesk.selection.screener import rank_universe
from quantdesk.selection.screens import Screen


def test_default_as_of_is_the_last_bar_every_symbol_has(random_walk) -> None:
    """One coin's extra week must not make the others rank on stale or missing factors."""
    bars = {
        "AAA/USDT": random_walk(120, seed=1),
        "BBB/USDT": random_walk(120, seed=2),
        "CCC/USDT": random_walk(127, seed=3),  # a week more than the others
    }
    panel = Panel.from_bars(bars)
    assert panel.index[-1] == pd.Timestamp("2024-05-06", tz="UTC")
    assert panel.common_end == pd.Timestamp("2024-04-29", tz="UTC")

    ranking = rank_universe(panel, {"momentum_30": 1.0}, screen=Screen(min_history=30))
    assert ranking.bar == panel.common_end
    assert ranking.time == panel.common_end + pd.Timedelta(days=1)  # when that bar closed
    assert sorted(ranking.table.index) == sorted(bars)
    assert ranking.dropped.empty
    # an explicit as-of still wins, and then the short coins are left out with a reason
    late = rank_universe(panel, {"momentum_30": 1.0}, as_of="2024-05-06")
    assert list(late.table.index) == ["CCC/USDT"]
    assert set(late.dropped.index) == {"AAA/USDT", "BBB/USDT"}
