"""Entry sizing decided once: the largest entry the [risk] limits approve, unless told otherwise."""

from __future__ import annotations

import pytest

from quantdesk.errors import ConfigError
from quantdesk.risk.limits import RiskLimits
from quantdesk.risk.sizing import entry_size, limits_fraction
from quantdesk.strategy import Float, Int, SignalStrategy


class Plain(SignalStrategy):
    params = {"n": Int(1, 10, 2), "sl_stop": Float(0.0, 0.5, 0.0)}


class Declared(Plain):
    sizing = 0.3


def test_limits_fraction_is_the_tightest_size_rule() -> None:
    limits = RiskLimits()  # 2% per trade, 5% default stop, 15% per symbol, 3x leverage
    assert limits_fraction(limits) == 0.15  # 0.02 / 0.05 = 0.4, cut to the 15% exposure cap
    wide = RiskLimits(max_symbol_exposure=0.9)
    assert limits_fraction(wide) == pytest.approx(0.02 / 0.05)
    assert limits_fraction(wide, stop=0.1) == pytest.approx(0.02 / 0.1)  # the strategy's stop
    assert limits_fraction(RiskLimits(max_symbol_exposure=5.0, risk_per_trade=1.0)) == 1.0
    no_stop = RiskLimits(max_symbol_exposure=0.9, default_stop_loss=None)
    assert limits_fraction(no_stop) == pytest.approx(0.02)  # the whole notional is at risk


def test_entry_size_precedence() -> None:
    wide = RiskLimits(max_symbol_exposure=0.9)
    assert entry_size(Plain, wide).fraction == pytest.approx(0.4)
    assert entry_size(Plain(sl_stop=0.2), wide).fraction == pytest.approx(0.1)
    assert entry_size(Plain, wide, {"sl_stop": 0.1}).fraction == pytest.approx(0.2)
    assert entry_size(Declared, wide).source == "strategy"
    assert entry_size(Declared, wide).fraction == 0.3
    assert entry_size(Declared, wide, all_in=True).fraction is None
    assert entry_size(Declared, wide, size=0.05).describe() == "0.05 of equity per entry (--size)"
    with pytest.raises(ConfigError, match="not both"):
        entry_size(Plain, wide, size=0.5, all_in=True)
    with pytest.raises(ConfigError, match=r"fraction in \(0, 1\]"):
        entry_size(Plain, wide, size=1.5)
