"""Entry and exit rules of strategies/funding_arb.py, loaded as the platform loads it."""

from __future__ import annotations

import pytest

from quantdesk.strategy import ParamError, QuoteStrategy, load_strategy, repo_strategies_dir


def arb(**params):
    return load_strategy("funding_arb", params, repo_strategies_dir())


def entries(strategy, longs, shorts):
    """Feed net APRs of both directions; the index and direction of each entry signal."""
    s_long = s_short = 0
    out = []
    for i, (lo, sh) in enumerate(zip(longs, shorts, strict=True)):
        s_long, s_short = strategy.streak(s_long, lo), strategy.streak(s_short, sh)
        d = strategy.entry(s_long, s_short)
        if d:
            out.append((i, d))
            s_long = s_short = 0  # the backtest resets both after an entry
    return out


def test_loads_as_a_quote_strategy_with_typed_params():
    s = arb()
    assert isinstance(s, QuoteStrategy)
    assert s.values["direction"] == "both" and s.values["slices"] == 4
    with pytest.raises(ParamError):
        arb(direction="sideways")
    with pytest.raises(ParamError):
        arb(leverage=50.0)


def test_entry_after_k_observations_above_the_threshold():
    s = arb(entry_apr=0.10, confirm=3)
    longs = [0.05, 0.12, 0.15, 0.09, 0.11, 0.12, 0.13, 0.2]
    shorts = [-0.3] * len(longs)
    # 0.12, 0.15 then a dip resets the streak; 0.11, 0.12, 0.13 confirm on index 6
    assert entries(s, longs, shorts) == [(6, 1)]


def test_both_directions_and_each_alone():
    longs = [-0.3] * 4 + [0.3] * 4
    shorts = [0.3] * 4 + [-0.3] * 4
    assert entries(arb(confirm=2), longs, shorts) == [(1, -1), (3, -1), (5, 1), (7, 1)]
    assert entries(arb(confirm=2, direction="positive"), longs, shorts) == [(5, 1), (7, 1)]
    assert entries(arb(confirm=2, direction="negative"), longs, shorts) == [(1, -1), (3, -1)]


def test_exit_reasons_in_priority_order():
    s = arb(exit_apr=0.0, max_hold_hours=100, stop_loss=0.2, take_profit=0.2)
    assert s.exit(0.1, 10, 0.0, False) is None
    assert s.exit(-0.01, 10, 0.0, False) == "spread_exit"
    assert s.exit(0.1, 100, 0.0, False) == "max_hold"
    assert s.exit(0.1, 10, -0.2, False) == "stop_loss"
    assert s.exit(0.1, 10, 0.2, False) == "take_profit"
    assert s.exit(-1.0, 500, -0.5, True) == "liquidation_buffer"
