"""Hot reload: a tightened limit denies the next order; an invalid edit is refused with an alert."""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal as D
from pathlib import Path

from quantdesk.config import load_config
from quantdesk.model import Decision, Reason
from quantdesk.risk.limits import RiskConfig
from quantdesk.risk.reload import RiskReloader
from tests.risk.helpers import engine, order


def write(path: Path, text: str, bump: int) -> None:
    """Write and move the mtime forward (filesystems with coarse mtimes see the change too)."""
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump * 1_000_000_000))


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def alert(self, severity: str, message: str, **_: object) -> None:
        self.sent.append((severity, message))


async def test_tighten_a_limit_mid_session(tmp_path: Path) -> None:
    toml = tmp_path / "quantdesk.toml"
    write(toml, "[risk]\nprice_band = 0.05\n", 0)
    risk = engine()
    risk.set_config(load_config(toml, env={}).risk)
    alerts = Alerts()
    ticks: list[float] = []
    reloader = RiskReloader(toml, risk.set_config, interval_s=0.5, alert=alerts.alert)

    async def fake_sleep(seconds: float) -> None:
        ticks.append(seconds)
        await asyncio.sleep(0)

    reloader.sleep = fake_sleep
    assert risk.check_order(order("1", price="103")).decision is Decision.APPROVED
    stop = asyncio.Event()
    task = asyncio.create_task(reloader.run(stop))
    await asyncio.sleep(0)
    write(toml, "[risk]\nprice_band = 0.02\n", 1)
    for _ in range(100):  # a few polls of the running task
        if reloader.applied:
            break
        await asyncio.sleep(0)
    stop.set()
    await task
    denied = risk.check_order(order("1", price="103"))
    assert (denied.decision, denied.reason) == (Decision.DENIED, Reason.PRICE_BAND)
    assert set(ticks) == {0.5}
    assert alerts.sent == [("info", "risk limits reloaded from quantdesk.toml")]


def test_invalid_edit_is_rejected_and_old_limits_stay(tmp_path: Path) -> None:
    toml = tmp_path / "quantdesk.toml"
    write(toml, "[risk]\nmax_symbol_exposure = 0.15\n", 0)
    risk = engine()
    alerts = Alerts()
    reloader = RiskReloader(toml, risk.set_config, alert=alerts.alert)
    assert reloader.check() is None  # unchanged
    write(toml, "[risk]\ndaily_loss_limit = -0.05\n", 1)
    assert reloader.check() is False
    assert reloader.last_error.endswith("risk.daily_loss_limit: Input should be greater than 0")
    assert alerts.sent[-1][0] == "error" and "risk.daily_loss_limit" in alerts.sent[-1][1]
    write(toml, "[risk\nbroken", 2)
    assert reloader.check() is False and "not readable TOML" in reloader.last_error
    # the limits in force did not move: 150 units at 100 is still the symbol cap
    assert risk.check_order(order("200")).amount == 150
    write(toml, "[risk]\nmax_symbol_exposure = 0.05\n[data]\nroot = 'x'\n", 3)
    assert reloader.check() is True
    assert risk.check_order(order("200")).reason is Reason.SYMBOL_EXPOSURE
    assert risk.check_order(order("200", symbol="ETH/USDT")).amount == 50


def test_reload_reaches_every_limit_the_check_caches(tmp_path: Path) -> None:
    # The engine resolves each strategy's limits (Decimal forms, message parts) once per config:
    # a reload after checks have run must still change the very next check.
    toml = tmp_path / "quantdesk.toml"
    write(toml, "[risk]\n[risk.strategies.s]\nmax_symbol_exposure = 0.5\n", 0)
    risk = engine()
    reloader = RiskReloader(toml, risk.set_config)
    risk.set_config(load_config(toml, env={}).risk)
    assert risk.check_order(order("100", strategy_id="s")).decision is Decision.APPROVED

    write(toml, "[risk]\n[risk.strategies.s]\nmax_symbol_exposure = 0.05\n", 1)
    assert reloader.check() is True
    exposure = risk.check_order(order("100", strategy_id="s"))
    assert (exposure.reason, exposure.amount) == (Reason.SYMBOL_EXPOSURE, D(50))
    assert exposure.message.endswith("(symbol_exposure)")

    # stop 50% away: 2% of 100000 at risk buys 40 units
    write(toml, "[risk]\nmax_symbol_exposure = 1.0\ndefault_stop_loss = 0.5\n", 2)
    assert reloader.check() is True
    per_trade = risk.check_order(order("100", strategy_id="s"))
    assert (per_trade.reason, per_trade.amount) == (Reason.RISK_PER_TRADE, D(40))

    write(toml, "[risk]\nprice_band = 0.01\n", 3)
    assert reloader.check() is True
    banded = risk.check_order(order("1", price="102", strategy_id="s"))
    assert (banded.decision, banded.reason) == (Decision.DENIED, Reason.PRICE_BAND)
    assert risk.limits("s").price_band == 0.01


def test_assigning_a_config_drops_the_cached_limits() -> None:
    risk = engine(max_symbol_exposure=0.5)
    assert risk.check_order(order("100")).decision is Decision.APPROVED
    risk.config = RiskConfig(max_symbol_exposure=0.05)
    assert risk.check_order(order("100")).reason is Reason.SYMBOL_EXPOSURE


def test_two_engines_keep_their_own_limits() -> None:
    loose, tight = engine(max_symbol_exposure=0.5), engine(max_symbol_exposure=0.05)
    for _ in range(2):  # interleaved, after each one's caches are warm
        assert loose.check_order(order("100")).decision is Decision.APPROVED
        assert tight.check_order(order("100")).reason is Reason.SYMBOL_EXPOSURE
