"""Cross-sectional ranking: z-scores per factor, a weighted composite score, and the top N with
each pick's reasons (per-factor contributions that add up to its score).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from quantdesk.errors import ConfigError
from quantdesk.selection.screens import Screen

Z_CLIP = 3.0  # one outlier coin should not own the whole composite


def parse_weights(text: str) -> dict[str, float]:
    """'momentum_30=1,volatility=-0.5' -> {'momentum_30': 1.0, 'volatility': -0.5}."""
    weights: dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not name.strip() or not np.isfinite(weight):
            raise ConfigError(f"weight {item!r} must look like factor=number, e.g. momentum_30=1")
        weights[name.strip()] = weight
    if not weights:
        raise ConfigError("no factor weights given")
    if all(w == 0 for w in weights.values()):
        raise ConfigError("factor weights are all zero")
    return weights


def zscore(values: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """Cross-sectional z-score (population std), clipped to +-3; a constant cross-section gives 0.

    For a panel (time x symbol) each row is scored across symbols; for a Series across its index.
    """
    if isinstance(values, pd.Series):
        std = values.std(ddof=0)
        z = (values - values.mean()) / std if std > 0 else values * 0.0
        return z.clip(-Z_CLIP, Z_CLIP)
    std = values.std(axis=1, ddof=0)
    z = values.sub(values.mean(axis=1), axis=0).div(std.where(std > 0), axis=0)
    constant = std.eq(0)
    z.loc[constant] = values.loc[constant] * 0.0
    return z.clip(-Z_CLIP, Z_CLIP)


def composite_panel(
    factors: Mapping[str, pd.DataFrame], weights: Mapping[str, float], eligible: pd.DataFrame
) -> pd.DataFrame:
    """Score panel: sum of weight x cross-sectional z-score over eligible symbols, else NaN."""
    _check(factors, weights)
    total = None
    ok = eligible.copy()
    for name in weights:
        ok &= factors[name].notna()
    for name, weight in weights.items():
        z = zscore(factors[name].where(ok))
        total = weight * z if total is None else total + weight * z
    assert total is not None
    return total.where(ok)


def _check(factors: Mapping[str, object], weights: Mapping[str, float]) -> None:
    unknown = [n for n in weights if n not in factors]
    if unknown:
        known = ", ".join(factors)
        raise ConfigError(f"unknown factor {unknown[0]!r} in weights (computed: {known})")


def rank(
    snapshot: pd.DataFrame, weights: Mapping[str, float], screen: Screen = Screen()
) -> tuple[pd.DataFrame, pd.Series]:
    """Rank a cross-section (symbol x factor): the ranked table and why the others were left out.

    The table is sorted by score (best first) with columns rank, score and one `w:<factor>`
    contribution column per weighted factor (they sum to the score), then the raw factor values.
    Symbols missing a weighted factor are left out with that reason.
    """
    _check(snapshot, weights)
    reasons = screen.reasons(snapshot)
    for name in weights:
        lacking = snapshot[name].isna() & (reasons == "")
        reasons[lacking] = f"{name} unknown (not enough history)"
    kept = snapshot[reasons == ""]
    contrib = pd.DataFrame(
        {f"w:{n}": w * zscore(kept[n]) for n, w in weights.items()}, index=kept.index
    )
    table = pd.DataFrame({"score": contrib.sum(axis=1)}, index=kept.index)
    table = pd.concat([table, contrib, kept[list(weights)]], axis=1)
    table = table.sort_values("score", ascending=False, kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table, reasons[reasons != ""]


def top_n(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """The n best rows of a ranked table."""
    if n < 1:
        raise ConfigError(f"--top must be at least 1, got {n}")
    return table.head(n)


def explain(row: pd.Series) -> str:
    """One line: a pick's factor contributions, largest first, e.g. 'momentum_30 +1.20, ...'."""
    parts = sorted(
        ((k[2:], v) for k, v in row.items() if str(k).startswith("w:")), key=lambda kv: -abs(kv[1])
    )
    return ", ".join(f"{name} {value:+.2f}" for name, value in parts)
