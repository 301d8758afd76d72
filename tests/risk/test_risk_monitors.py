"""Monitors: equity, drawdown, daily P&L, exposure, VaR, liquidation, score and state moves."""

from __future__ import annotations

from decimal import Decimal as D

import numpy as np
import pandas as pd
import pytest

from quantdesk.model import TradingState
from quantdesk.risk.monitors import RiskLevel, RiskMonitor, level_for
from tests.risk.helpers import Clock, engine, fill

DAY = 86_400_000


class Alerts:
    """Records alerts as (severity, message)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def alert(self, severity: str, message: str, **_: object) -> bool:
        self.sent.append((severity, message))
        return True


def setup(**limits):
    clock = Clock(1_700_006_400_000)  # 2023-11-15 00:00 UTC
    risk = engine(clock=clock, **limits)
    risk.alerter = Alerts()
    return risk, RiskMonitor(risk), clock


async def test_equity_drawdown_daily_pnl_and_exposure() -> None:
    risk, monitor, clock = setup()
    fill(risk.portfolio, "BTC/USDT", "100")  # 10000 at 100: cash 90000
    fill(risk.portfolio, "ETH/USDT", "20")  # 2000: cash 88000
    first = await monitor.update()
    assert first.equity == D(100000) and first.drawdown == 0 and first.daily_pnl == 0
    assert first.gross_exposure == D(12000) and first.open_positions == 2
    assert first.concentration == D(10000) / D(12000)
    risk.update_price("BTC/USDT", D(110))  # +1000
    up = await monitor.update()
    assert (up.equity, up.peak_equity, up.daily_pnl) == (D(101000), D(101000), D(1000))
    risk.update_price("BTC/USDT", D(95))  # 99500
    down = await monitor.update()
    assert down.drawdown == D(1500) / D(101000)
    assert down.daily_pnl == D(-500) and down.daily_loss == D("0.005")
    assert down.utilization["daily_loss"] == pytest.approx(0.1)
    assert down.state is TradingState.ACTIVE and down.level is RiskLevel.ELEVATED  # BTC 9500/98500
    clock.now += DAY  # a new UTC day starts from the equity seen first that day
    assert (await monitor.update()).daily_pnl == 0


@pytest.mark.parametrize(
    ("price", "state"),
    [
        ("96.01", TradingState.ACTIVE),  # loss 3.99% < 80% of 5%
        ("96", TradingState.REDUCING),  # loss 4.00% = 80% of the limit
        ("95.01", TradingState.REDUCING),  # 4.99%
        ("95", TradingState.HALTED),  # 5.00%: the limit
    ],
)
async def test_daily_loss_thresholds(price: str, state: TradingState) -> None:
    risk, monitor, _ = setup(max_symbol_exposure=2.0, max_drawdown=0.5)
    fill(risk.portfolio, "BTC/USDT:USDT", "1000")  # 100000 notional: 1% move = 1% of equity
    await monitor.update()
    risk.update_price("BTC/USDT:USDT", D(price))
    snap = await monitor.update()
    assert snap.state is state and risk.state is state
    if state is TradingState.HALTED:
        assert snap.level is RiskLevel.CRITICAL and snap.actions[0].startswith("halt: daily loss")
        severities = [s for s, m in risk.alerter.sent if "-> halted" in m]
        assert severities == ["critical"]


async def test_drawdown_from_peak_halts_and_calls_the_kill_switch() -> None:
    risk, _, clock = setup(max_symbol_exposure=2.0, max_drawdown=0.10, daily_loss_limit=0.5)
    halts: list[str] = []

    async def on_halt(reason: str) -> None:
        halts.append(reason)
        risk.set_state(TradingState.HALTED, reason)

    monitor = RiskMonitor(risk, on_halt=on_halt)
    fill(risk.portfolio, "BTC/USDT:USDT", "1000")
    risk.update_price("BTC/USDT:USDT", D(120))  # peak 120000
    await monitor.update()
    clock.now += DAY
    risk.update_price("BTC/USDT:USDT", D("108.01"))  # 9.99% below the peak
    assert (await monitor.update()).state is TradingState.REDUCING
    risk.update_price("BTC/USDT:USDT", D(108))  # 10%
    await monitor.update()
    assert risk.state is TradingState.HALTED and len(halts) == 1 and "drawdown" in halts[0]
    await monitor.update()
    assert len(halts) == 1  # halted already: not triggered again


async def test_var_in_the_snapshot_and_score() -> None:
    risk, _, _ = setup(var_window_days=250)
    rng = np.random.default_rng(5)
    returns = pd.DataFrame({"BTC/USDT": rng.normal(0, 0.04, 300)})
    monitor = RiskMonitor(risk, returns=returns)
    fill(risk.portfolio, "BTC/USDT", "100")
    snap = await monitor.update()
    pnl = returns["BTC/USDT"].to_numpy()[-250:] * 10000  # the last var_window_days only
    assert snap.var is not None and snap.var.observations == 250
    assert snap.var.historical_var[0.95] == pytest.approx(-np.quantile(pnl, 0.05))
    var99 = max(snap.var.historical_var[0.99], snap.var.parametric_var[0.99])
    assert snap.utilization["var99"] == pytest.approx(var99 / 5000)
    assert snap.score == pytest.approx(min(100, 100 * max(snap.utilization.values())))


async def test_liquidation_distance_moves_to_reducing() -> None:
    risk, monitor, _ = setup(
        max_symbol_exposure=100.0, max_leverage=100.0, max_drawdown=0.9, daily_loss_limit=0.9
    )
    fill(risk.portfolio, "BTC/USDT:USDT", "10000")  # 1,000,000 notional on 100,000 equity
    snap = await monitor.update()
    # liquidation when 100000 + 10000 (P - 100) = 0.004 * 10000 P  ->  P = 90.3614...
    liq = D(900000) / D(9960)
    assert snap.liquidation_distances["BTC/USDT:USDT"] == pytest.approx((100 - liq) / 100)
    assert snap.state is TradingState.ACTIVE  # 9.6% away, buffer 5%
    risk.update_price("BTC/USDT:USDT", D(95))  # equity 50000: liquidation at ~95.38
    snap = await monitor.update()
    assert snap.state is TradingState.REDUCING
    assert snap.utilization["liquidation"] > 1 and snap.level is RiskLevel.CRITICAL


def test_levels() -> None:
    assert [level_for(s) for s in (0, 49.9, 50, 79.9, 80, 99.9, 100)] == [
        RiskLevel.NORMAL,
        RiskLevel.NORMAL,
        RiskLevel.ELEVATED,
        RiskLevel.ELEVATED,
        RiskLevel.HIGH,
        RiskLevel.HIGH,
        RiskLevel.CRITICAL,
    ]


async def test_tick_runs_every_interval_and_rearm_restarts_the_day() -> None:
    risk, monitor, clock = setup(monitor_interval_s=10)
    assert await monitor.tick() is not None
    clock.now += 9_999
    assert await monitor.tick() is None
    clock.now += 1
    assert await monitor.tick() is not None
    fill(risk.portfolio, "BTC/USDT:USDT", "100")
    risk.update_price("BTC/USDT:USDT", D(50))  # -5000: 5% of the day
    await monitor.update()
    assert risk.state is TradingState.HALTED
    monitor.rearm()
    risk.set_state(TradingState.ACTIVE, "resume", force=True)
    assert (await monitor.update()).daily_pnl == 0 and risk.state is TradingState.ACTIVE
