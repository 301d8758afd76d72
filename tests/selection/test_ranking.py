"""Ranking: a crafted universe with a known order, sign-aware weights, contributions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.errors import ConfigError
from quantdesk.selection.ranking import composite_panel, explain, parse_weights, rank, top_n, zscore
from quantdesk.selection.screens import Screen

SNAP = pd.DataFrame(
    {
        "momentum_30": [0.3, 0.2, 0.1, 0.0, 0.5],
        "volatility": [0.2, 0.5, 0.3, 0.8, 0.1],
        "quote_volume": [1e9, 1e9, 1e9, 1e9, 1e3],  # E is illiquid
        "close": [1.0] * 5,
    },
    index=["A/USDT", "B/USDT", "C/USDT", "D/USDT", "E/USDT"],
)
LIQUID = Screen(min_quote_volume=1e6)


def test_crafted_universe_order_and_contributions() -> None:
    table, dropped = rank(SNAP, {"momentum_30": 1.0, "volatility": -1.0}, LIQUID)
    # z(mom) = [1.342, .447, -.447, -1.342], z(vol) = [-1.091, .218, -.655, 1.528]
    assert list(table.index) == ["A/USDT", "B/USDT", "C/USDT", "D/USDT"]
    assert table["rank"].tolist() == [1, 2, 3, 4]
    assert table.loc["A/USDT", "score"] == pytest.approx(1.3416 + 1.0911, abs=1e-3)
    contributions = table[["w:momentum_30", "w:volatility"]].sum(axis=1)
    np.testing.assert_allclose(contributions, table["score"])
    assert dropped.to_dict() == {"E/USDT": "quote_volume 1000 < 1e+06"}
    assert explain(table.loc["A/USDT"]) == "momentum_30 +1.34, volatility +1.09"


def test_weight_signs_change_the_order() -> None:
    table, _ = rank(SNAP, {"momentum_30": 1.0, "volatility": 1.0}, LIQUID)
    assert list(table.index) == ["B/USDT", "A/USDT", "D/USDT", "C/USDT"]
    assert list(top_n(table, 2).index) == ["B/USDT", "A/USDT"]


def test_missing_weighted_factor_drops_symbol_with_reason() -> None:
    snap = SNAP.copy()
    snap.loc["C/USDT", "momentum_30"] = np.nan
    table, dropped = rank(snap, {"momentum_30": 1.0}, LIQUID)
    assert "C/USDT" not in table.index
    assert dropped["C/USDT"].startswith("momentum_30 unknown")


def test_zscore_panel_row_wise_and_constant_rows() -> None:
    index = pd.date_range("2024-01-01", periods=2, tz="UTC")
    panel = pd.DataFrame({"A": [1.0, 5.0], "B": [3.0, 5.0], "C": [np.nan, 5.0]}, index=index)
    z = zscore(panel)
    assert z.iloc[0].tolist()[:2] == [-1.0, 1.0] and np.isnan(z.iloc[0, 2])
    assert z.iloc[1].tolist() == [0.0, 0.0, 0.0]


def test_composite_panel_only_scores_eligible() -> None:
    index = pd.date_range("2024-01-01", periods=2, tz="UTC")
    mom = pd.DataFrame({"A": [0.1, 0.3], "B": [0.2, 0.1], "C": [0.9, 0.0]}, index=index)
    eligible = pd.DataFrame({"A": [True, True], "B": [True, True], "C": [False, True]}, index=index)
    scores = composite_panel({"momentum_30": mom}, {"momentum_30": 2.0}, eligible)
    assert np.isnan(scores.loc[index[0], "C"])
    # C's 0.9 must not shift the mean
    np.testing.assert_allclose(scores.loc[index[0]].tolist()[:2], [-2.0, 2.0])
    with pytest.raises(ConfigError, match="unknown factor 'rsi'"):
        composite_panel({"momentum_30": mom}, {"rsi": 1.0}, eligible)


@pytest.mark.parametrize(
    ("text", "message"),
    [("momentum_30", "factor=number"), ("rsi=abc", "factor=number"), ("rsi=0", "all zero")],
)
def test_parse_weights_rejects_bad_text(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_weights(text)
    assert parse_weights("momentum_30=1, volatility=-0.5") == {
        "momentum_30": 1.0,
        "volatility": -0.5,
    }
