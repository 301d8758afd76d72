"""RSI + Bollinger mean reversion: buy an oversold dip below the lower band, sell once the RSI
is overbought or the close is back above the middle band."""

from __future__ import annotations

import numpy as np
import pandas as pd
import vectorbt as vbt

from quantdesk.strategy import Float, Int, Signals, SignalStrategy, naive_utc


class RsiReversion(SignalStrategy):
    """Long when RSI < oversold and close < lower Bollinger band; flat on the way back."""

    params = {
        "rsi_window": Int(2, 50, 14),
        "oversold": Float(5.0, 50.0, 30.0),
        "overbought": Float(50.0, 95.0, 70.0),
        "bb_window": Int(5, 100, 20),
        "bb_alpha": Float(0.5, 4.0, 2.0),
        "sl_stop": Float(0.0, 0.5, 0.0),
    }
    timeframe = "1h"

    @property
    def warmup(self) -> int:
        """Both indicators need their window of closes (RSI one more for the first change)."""
        return int(max(np.max(self.bb_window), np.max(self.rsi_window) + 1))

    def signals(self, bars: pd.DataFrame) -> Signals:
        """Entries on oversold closes below the lower band; exits on overbought or mean reached."""
        close = naive_utc(bars["close"])  # vectorbt is slow on a tz-aware index
        rsi = vbt.RSI.run(close, self.rsi_window).rsi
        bands = vbt.BBANDS.run(close, self.bb_window, alpha=self.bb_alpha)
        # Indicators with different params carry different column labels: compare positionally.
        price = np.tile(close.to_numpy(), rsi.shape[1] // close.shape[1])
        r = rsi.to_numpy()
        oversold = self.per_column(self.oversold, rsi)
        overbought = self.per_column(self.overbought, rsi)
        entries = (r < oversold) & (price < bands.lower.to_numpy())
        exits = (r > overbought) | (price > bands.middle.to_numpy())
        return Signals(
            entries=pd.DataFrame(entries, index=bars.index, columns=rsi.columns),
            exits=pd.DataFrame(exits, index=bars.index, columns=rsi.columns),
            sl_stop=self.per_column(self.sl_stop, rsi),
        )
