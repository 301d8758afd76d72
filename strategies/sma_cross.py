"""SMA crossover, trend following: long when the fast SMA of the close crosses above the slow
one, flat when it crosses back below; optional stop-loss and take-profit (fractions, 0 = off)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import vectorbt as vbt

from quantdesk.strategy import Below, Float, Int, Signals, SignalStrategy, naive_utc, on_index


class SmaCross(SignalStrategy):
    """Fast/slow simple moving average crossover, long only."""

    params = {
        "fast": Int(2, 200, 10),
        "slow": Int(3, 500, 30),
        "sl_stop": Float(0.0, 0.5, 0.0),
        "tp_stop": Float(0.0, 2.0, 0.0),
    }
    constraints = (Below("fast", "slow"),)
    timeframe = "1h"

    @property
    def warmup(self) -> int:
        """The slow SMA needs `slow` bars, plus one to see a cross."""
        return int(np.max(self.slow)) + 1

    def signals(self, bars: pd.DataFrame) -> Signals:
        """Entries on fast crossing above slow, exits on crossing below."""
        close = naive_utc(bars["close"])  # vectorbt is slow on a tz-aware index
        fast = vbt.MA.run(close, self.fast, short_name="fast")
        slow = vbt.MA.run(close, self.slow, short_name="slow")
        return Signals(
            entries=on_index(fast.ma_crossed_above(slow), bars.index),
            exits=on_index(fast.ma_crossed_below(slow), bars.index),
            sl_stop=self.per_column(self.sl_stop, fast.ma),
            tp_stop=self.per_column(self.tp_stop, fast.ma),
        )
