"""Live sessions feed the risk monitor the venue's daily returns, so VaR/CVaR is computed live."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from quantdesk.data.synthetic import SynthSpec, generate_market
from quantdesk.risk.var import portfolio_var
from quantdesk.sandbox import AccountConfig, Sandbox, SandboxConfig, serve_in_thread
from quantdesk.system.live import venue_daily_returns
from quantdesk.venues import sandbox_client
from quantdesk.venues.ccxt_venue import CcxtVenue
from tests.sandbox.conftest import KEY, SECRET

BTC, ETH = "BTC/USDT", "ETH/USDT"


@pytest.fixture(scope="module")
def month_url() -> Iterator[str]:
    """A sandbox whose clock starts 30 days into a 40-day synthetic market."""
    config = SandboxConfig(
        symbols=[BTC, ETH], seed=5, days=40, speed=0, history_bars=30 * 1440,
        accounts=[AccountConfig(KEY, SECRET)], shift_to_now=False,  # compared with data time
    )  # fmt: skip
    with serve_in_thread(Sandbox(config)) as base:
        yield base


async def test_daily_returns_come_from_the_venues_closed_daily_candles(month_url: str) -> None:
    exchange = sandbox_client("binance", month_url, async_=True)
    venue = CcxtVenue(exchange, "sandbox", market="spot")
    try:
        await venue.load()
        returns = await venue_daily_returns(venue, [BTC, ETH], days=20)
    finally:
        await venue.close()
    daily = generate_market(SynthSpec(seed=5, days=40)).bars(BTC, "1d")["close"]
    daily = daily.round(2)  # the sandbox quotes BTC/USDT on a 0.01 tick
    expected = daily.pct_change().iloc[:30].tail(20)  # 30 closed days: 21 closes, 20 returns
    assert list(returns.columns) == [BTC, ETH]
    assert len(returns) == 20
    assert returns.index.equals(expected.index)
    assert np.allclose(returns[BTC].to_numpy(), expected.to_numpy(), rtol=1e-9)
    report = portfolio_var({BTC: 5000.0, ETH: -2000.0}, returns)
    assert report is not None and report.observations == 20
    assert report.historical_var[0.99] >= report.historical_var[0.95] > 0
