"""A searched range of a quoting param: what a strategy's `search_space` declares.

Kept apart from mm.optimize (optuna, the backtest, numba) so that loading a strategy stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """A searched interval of one param (log: sampled on a log scale, for spans of decades)."""

    low: float
    high: float
    log: bool = False
