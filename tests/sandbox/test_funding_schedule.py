"""The sandbox's funding schedule option: another settlement interval, and a per-hour offset."""

from __future__ import annotations

import numpy as np
import pytest

from quantdesk.errors import ConfigError
from quantdesk.sandbox import Sandbox
from quantdesk.sandbox.market import regrid_funding, synthetic_series
from tests.sandbox.conftest import make_config

HOUR = 3_600_000
PERP = "BTC/USDT:USDT"


def test_hourly_settlements_carry_the_same_funding_per_hour() -> None:
    source = synthetic_series(["BTC/USDT"], seed=7, days=2)[PERP]
    hourly = regrid_funding(source, 1, 0.0)
    assert set(np.diff(hourly.funding_times)) == {HOUR}
    assert len(hourly.funding_times) == 8 * len(source.funding_times)
    # the 8 hourly settlements ending at an 8-hour settlement sum to its rate
    end = int(np.searchsorted(hourly.funding_times, source.funding_times[1]))
    assert hourly.funding_times[end] == source.funding_times[1]
    assert hourly.funding_rates[end - 7 : end + 1].sum() == pytest.approx(source.funding_rates[1])
    assert hourly.funding_rates[end] == pytest.approx(source.funding_rates[1] / 8)


def test_an_offset_is_added_per_hour_and_the_interval_can_grow() -> None:
    source = synthetic_series(["BTC/USDT"], seed=7, days=2)[PERP]
    four = regrid_funding(source, 4, 0.0001)
    assert set(np.diff(four.funding_times)) == {4 * HOUR}
    assert four.funding_rates[1] == pytest.approx(source.funding_rates[0] / 2 + 0.0004)
    unchanged = regrid_funding(source, None, 0.0)
    assert np.array_equal(unchanged.funding_rates, source.funding_rates)
    with pytest.raises(ConfigError):
        regrid_funding(source, 0, 0.0)


def test_a_sandbox_configured_hourly_settles_every_hour() -> None:
    config = make_config()
    config.funding_hours, config.funding_offset = 1, 0.0002
    hourly, eight = Sandbox(config), Sandbox(make_config())
    times = hourly.series[PERP].funding_times
    assert set(np.diff(times)) == {HOUR}
    # the same prices: only funding differs between the two venues
    assert np.array_equal(hourly.series[PERP].ohlcv, eight.series[PERP].ohlcv)
    per_hour = float(eight.series[PERP].funding_rate(1)) / 8 + 0.0002
    assert float(hourly.series[PERP].funding_rate(8)) == pytest.approx(per_hour, abs=1e-8)


def test_the_cli_refuses_a_zero_funding_interval(capsys: pytest.CaptureFixture[str]) -> None:
    from quantdesk.cli import main

    with pytest.raises(SystemExit) as done:
        main(["sandbox", "--funding-hours", "0"])
    assert done.value.code == 2
    assert "--funding-hours" in capsys.readouterr().err
