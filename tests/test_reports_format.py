"""One number format: drawdowns read as losses whatever their sign, no 'inf' ratios."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import vectorbt as vbt

from quantdesk.backtest.metrics import compute_stats, format_stats
from quantdesk.reports_format import drawdown, duration, money, pct, ratio


def test_formats() -> None:
    assert pct(0.12345) == "12.35%" and pct(None) == "n/a" and pct(float("nan")) == "n/a"
    assert drawdown(0.1234) == drawdown(-0.1234) == "-12.34%"  # optimizer and vectorbt signs
    assert drawdown(0) == "0.00%"
    assert ratio(float("inf")) == ratio(float("-inf")) == "n/a" and ratio(1.23456) == "1.235"
    assert money(Decimal("10234.5")) == "10,234.50"
    hours = [duration(timedelta(hours=h)) for h in (0.75, 18, 3 + 5 / 60, 27, 48)]
    assert hours == ["45m", "18h", "3h 05m", "1d 03h", "2d 00h"]
    assert duration(None) == duration(pd.NaT) == "n/a"


def test_a_zero_trade_backtest_has_no_infinite_ratios() -> None:
    index = pd.date_range("2024-01-01", periods=50, freq="1h", tz="UTC")
    close = pd.Series(np.linspace(100, 120, 50), index=index)
    never = pd.Series(False, index=index)
    pf = vbt.Portfolio.from_signals(close, never, never, init_cash=10_000, freq="1h")
    stats = compute_stats(pf)
    assert int(stats["trades"].iloc[0]) == 0
    shown = dict(format_stats(stats.iloc[0]))
    assert shown["Sharpe"] == shown["Sortino"] == shown["Calmar"] == "n/a"
    assert "inf" not in " ".join(shown.values())
    assert shown["Max drawdown"] == "0.00%" and shown["Total return"] == "0.00%"
