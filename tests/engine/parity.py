"""Trade-by-trade comparison of a replay against the vectorbt backtest (shared by parity tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd

REL = 1e-9


def assert_same_trades(backtest: pd.DataFrame, replayed: pd.DataFrame, rel: float = REL) -> None:
    """Same trades in the same order: times, sides and status exactly, money within rel."""
    assert len(backtest) == len(replayed) > 0
    for col in ("column", "direction", "status", "entry_time", "exit_time"):
        assert list(backtest[col].astype(str)) == list(replayed[col].astype(str)), col
    for col in ("size", "entry_price", "exit_price", "entry_fees", "exit_fees", "pnl"):
        np.testing.assert_allclose(
            replayed[col].to_numpy(), backtest[col].to_numpy(), rtol=rel, atol=1e-9
        )
