"""Screens: every filter at, just below and just above its threshold; exclusions; reasons."""

from __future__ import annotations

import pandas as pd
import pytest

from quantdesk.errors import ConfigError
from quantdesk.selection.screens import Screen

# (screen field, factor column it reads, threshold, True if the bound is a minimum)
RULES = [
    ("min_quote_volume", "quote_volume", 1_000_000.0, True),
    ("min_history", "listing_age", 60, True),
    ("min_price", "close", 0.5, True),
    ("max_price", "close", 50_000.0, False),
    ("min_volatility", "volatility", 0.3, True),
    ("max_volatility", "volatility", 1.5, False),
    ("max_spread", "spread", 0.002, False),
]


def snapshot(column: str, values: dict[str, float]) -> pd.DataFrame:
    frame = pd.DataFrame({column: values})
    if column != "close":
        frame["close"] = 1.0
    return frame


@pytest.mark.parametrize(("field", "column", "threshold", "is_min"), RULES)
def test_each_filter_at_and_around_its_threshold(
    field: str, column: str, threshold: float, is_min: bool
) -> None:
    step = 1 if isinstance(threshold, int) else threshold * 1e-6
    snap = snapshot(
        column,
        {"AT/USDT": threshold, "BELOW/USDT": threshold - step, "ABOVE/USDT": threshold + step},
    )
    screen = Screen(**{field: threshold})
    passed = screen.passes({c: snap[c] for c in snap.columns})
    assert passed["AT/USDT"]  # bounds are inclusive
    assert bool(passed["BELOW/USDT"]) == (not is_min)
    assert bool(passed["ABOVE/USDT"]) == is_min
    reasons = screen.reasons(snap)
    failing = "BELOW/USDT" if is_min else "ABOVE/USDT"
    assert reasons["AT/USDT"] == ""
    assert reasons[failing].startswith(column)


def test_unknown_values_fail_and_exclusions_apply() -> None:
    snap = pd.DataFrame(
        {"quote_volume": [5e6, float("nan"), 5e6], "close": [1.0, 1.0, 1.0]},
        index=["BTC/USDT", "NEW/USDT", "LUNA/USDT"],
    )
    screen = Screen(min_quote_volume=1e6, exclude=frozenset({"LUNA/USDT"}))
    passed = screen.passes({c: snap[c] for c in snap.columns})
    assert passed.to_dict() == {"BTC/USDT": True, "NEW/USDT": False, "LUNA/USDT": False}
    reasons = screen.reasons(snap)
    assert reasons["NEW/USDT"] == "quote_volume unknown"
    assert reasons["LUNA/USDT"] == "excluded"


def test_screen_works_on_panels() -> None:
    index = pd.date_range("2024-01-01", periods=3, tz="UTC")
    vol = pd.DataFrame({"A/USDT": [0.2, 0.4, 0.6], "B/USDT": [0.5, 0.5, 2.0]}, index=index)
    mask = Screen(min_volatility=0.3, max_volatility=1.0).passes({"volatility": vol})
    assert mask.to_numpy().tolist() == [[False, True], [True, True], [True, False]]


def test_contradictory_bounds_and_missing_factor_are_errors() -> None:
    with pytest.raises(ConfigError, match="min price 10 is above max price 1"):
        Screen(min_price=10, max_price=1)
    with pytest.raises(ConfigError, match="needs factor"):
        Screen(max_spread=0.01).passes({"close": pd.Series([1.0])})
