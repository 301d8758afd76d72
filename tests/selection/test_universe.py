"""Point-in-time universes: eligibility only after listing + min history, using past bars only."""

from __future__ import annotations

import pandas as pd
import pytest

from quantdesk.errors import ConfigError
from quantdesk.selection.panel import Panel
from quantdesk.selection.screens import Screen
from quantdesk.selection.universe import eligible, first_eligible


def test_late_listing_becomes_eligible_after_min_history(two_coin_panel: Panel) -> None:
    mask = eligible(two_coin_panel, min_history=10)
    first = first_eligible(mask)
    assert first["AAA/USDT"] == pd.Timestamp("2024-01-10", tz="UTC")  # its 10th bar
    assert first["BBB/USDT"] == pd.Timestamp("2024-01-30", tz="UTC")  # listed 01-21
    assert not mask.loc[:"2024-01-29", "BBB/USDT"].any()
    assert mask.loc["2024-01-30":, "BBB/USDT"].all()


def test_eligibility_is_causal(two_coin_panel: Panel) -> None:
    """Eligibility at t computed on data up to t equals the full-history answer at t."""
    full = eligible(two_coin_panel, 10, Screen(min_volatility=0.01))
    for cut in ["2024-01-29", "2024-01-30", "2024-02-15", "2024-03-20"]:
        part = eligible(two_coin_panel.loc(end=cut), 10, Screen(min_volatility=0.01))
        pd.testing.assert_series_equal(part.iloc[-1], full.loc[cut], check_names=False)


def test_screens_narrow_the_universe(two_coin_panel: Panel) -> None:
    base = eligible(two_coin_panel, 5)
    excluded = eligible(two_coin_panel, 5, Screen(exclude=frozenset({"AAA/USDT"})))
    assert base["AAA/USDT"].any() and not excluded["AAA/USDT"].any()
    pd.testing.assert_series_equal(base["BBB/USDT"], excluded["BBB/USDT"])
    with pytest.raises(ConfigError, match="at least 1 bar"):
        eligible(two_coin_panel, 0)


def test_real_data_bnb_not_eligible_before_listing(real_panel: Panel) -> None:
    mask = eligible(real_panel, min_history=30)
    first = first_eligible(mask)
    assert first["BNB/USDT"] == pd.Timestamp("2020-02-10", tz="UTC") + pd.Timedelta(days=29)
    assert first["BTC/USDT"] == pd.Timestamp("2020-01-30", tz="UTC")
