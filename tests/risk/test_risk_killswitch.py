"""Kill switch end to end against the sandbox: real ccxt, CcxtVenue, OrderManager, journal, CLI."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from quantdesk.alerts import Alerter, AlertsConfig, EmailConfig, WebhookConfig
from quantdesk.cli import main
from quantdesk.engine.journal import Journal
from quantdesk.engine.order_manager import OrderManager
from quantdesk.engine.portfolio import Portfolio
from quantdesk.model import (
    Decision,
    Order,
    OrderStatus,
    OrderType,
    Reason,
    Side,
    TradingState,
    client_order_id,
)
from quantdesk.risk.checks import RiskEngine
from quantdesk.risk.killswitch import KillSwitch
from quantdesk.risk.limits import RiskConfig
from quantdesk.risk.monitors import RiskMonitor
from quantdesk.venues import sandbox_client
from quantdesk.venues.ccxt_venue import CcxtVenue
from tests.risk.receivers import http_receiver, smtp_server
from tests.sandbox.conftest import Admin

BTC = "BTC/USDT"
S = OrderStatus


@pytest.fixture
async def venue(url: str, admin: Admin) -> AsyncIterator[CcxtVenue]:
    ex = sandbox_client("binance", url, async_=True, enableRateLimit=False, timeout=5000)
    v = CcxtVenue(ex, "sandbox")
    await v.load()
    yield v
    await v.close()


@pytest.fixture
async def usdm_venue(url: str) -> AsyncIterator[CcxtVenue]:
    ex = sandbox_client("binanceusdm", url, async_=True, enableRateLimit=False, timeout=5000)
    v = CcxtVenue(ex, "sandbox-usdm", market="usdm")
    await v.load()
    yield v
    await v.close()


async def no_sleep(_: float) -> None:
    return None


def set_price(admin: Admin, price: D) -> None:
    """A deep book around `price`, so market orders fill there."""
    bid, ask = price * D("0.9995"), price * D("1.0005")
    admin("POST", "book", {"symbol": BTC, "bids": [[str(bid), 100]], "asks": [[str(ask), 100]]})


class Desk:
    """The engine's risk-relevant wiring: risk engine, order manager, monitor, kill switch."""

    def __init__(self, venue: CcxtVenue, journal: Journal, alerter=None, **limits) -> None:
        self.clock = lambda: int(time.time() * 1000)
        self.portfolio = Portfolio(cash={"USDT": D(100000)})
        config = RiskConfig(max_orders_per_second=100, max_orders_per_minute=1000, **limits)
        self.risk = RiskEngine(
            venue.rules, config, self.portfolio, clock=self.clock, journal=journal, alerter=alerter
        )
        self.manager = OrderManager(
            venue,
            journal,
            self.clock,
            rng=random.Random(1),
            sleep=no_sleep,
            on_fill=self.portfolio.apply_fill,
        )
        self.monitor = RiskMonitor(self.risk)
        self.kill = KillSwitch(
            self.risk, [self.manager], journal=journal, on_resume=[self.monitor.rearm]
        )
        self.monitor.on_halt = self.kill.trigger
        self.seq = 0

    async def send(self, side: Side, amount: str, price: D | None = None) -> tuple:
        """Risk check, then the order manager: (decision, order or None)."""
        self.seq += 1
        order = Order(
            client_order_id(f"test{id(self)}", BTC, 0, self.seq),
            BTC,
            side,
            OrderType.LIMIT if price else OrderType.MARKET,
            D(amount),
            self.clock(),
            price=price,
        )
        decision = self.risk.check_order(order)
        if not decision.approved:
            return decision, None
        return decision, await self.manager.submit(decision.applied_to(order))


async def test_kill_and_resume_commands_from_the_cli(
    venue: CcxtVenue, admin: Admin, tmp_path: Path, capsys
) -> None:
    journal_path = tmp_path / "journal.sqlite"
    config = tmp_path / "quantdesk.toml"
    config.write_text("[risk]\nmax_symbol_exposure = 0.5\n")
    journal = Journal(journal_path)
    desk = Desk(venue, journal)
    set_price(admin, D(40000))
    desk.risk.update_price(BTC, D(40000))
    _, bought = await desk.send(Side.BUY, "0.5")
    assert bought.status is S.FILLED
    _, resting = await desk.send(Side.SELL, "0.2", price=D(41000))
    assert resting.status is S.NEW
    held = desk.portfolio.positions[BTC].quantity  # 0.5 less the fee paid in BTC

    with pytest.raises(SystemExit) as done:
        main(["--config", str(config), "kill", "--flatten", "--journal", str(journal_path)])
    assert (
        done.value.code == 0 and "kill command #1 queued (flatten: yes)" in capsys.readouterr().out
    )
    assert desk.risk.state is TradingState.ACTIVE  # nothing happens until the engine polls

    assert await desk.kill.poll() == ["kill"]
    assert journal.pending_commands() == []
    assert resting.status is S.CANCELED
    assert await venue.fetch_open_orders(BTC) == []
    report = desk.kill.reports[-1]
    assert report.cancelled == (resting.client_order_id,) and len(report.flatten_orders) == 1
    flat = desk.manager.orders[report.flatten_orders[0]]
    step = venue.rules[BTC].amount_step
    assert flat.status is S.FILLED and flat.side is Side.SELL
    assert flat.amount == venue.rules[BTC].round_amount(held)
    assert abs(desk.portfolio.positions[BTC].quantity) < step
    assert desk.risk.state is TradingState.HALTED
    denied, _ = await desk.send(Side.BUY, "0.01")
    assert (denied.decision, denied.reason) == (Decision.DENIED, Reason.HALTED)
    assert desk.risk.allows_cancel()
    assert "kill" in set(journal.events()["kind"])

    with pytest.raises(SystemExit) as done:
        main(["--config", str(config), "resume", "--journal", str(journal_path)])
    assert done.value.code == 0
    assert await desk.kill.poll() == ["resume"]
    assert desk.risk.state is TradingState.ACTIVE
    again, order = await desk.send(Side.BUY, "0.01")
    assert again.decision is Decision.APPROVED and order.status is S.FILLED
    journal.close()


async def test_losing_strategy_hits_the_daily_loss_limit(
    venue: CcxtVenue, admin: Admin, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    with http_receiver() as http, smtp_server() as (port, mails):
        alerts = AlertsConfig(
            webhook=WebhookConfig(url=f"{http.url}/hook", min_severity="warning"),
            email=EmailConfig(
                host="127.0.0.1",
                port=port,
                sender="qd@localhost",
                to=["risk@localhost"],
                starttls=False,
                min_severity="critical",
            ),
        )
        alerter = Alerter.from_config(alerts, journal=journal, env={})
        desk = Desk(venue, journal, alerter, max_symbol_exposure=0.5, flatten_on_halt=True)
        price = D(40000)
        states = []
        for _ in range(12):  # buy the dip, again and again, with a take-profit that never fills
            set_price(admin, price)
            desk.risk.update_price(BTC, price)
            await desk.monitor.update()
            states.append(desk.risk.state)
            if desk.risk.state is TradingState.HALTED:
                break
            _, order = await desk.send(Side.BUY, "0.4")
            if order is not None and desk.portfolio.positions[BTC].quantity > D("0.2"):
                await desk.send(Side.SELL, "0.1", price=price * D("1.04"))
            price *= D("0.97")
        assert states[-1] is TradingState.HALTED
        assert TradingState.REDUCING in states  # 80% of the limit came first
        snap = desk.monitor.last
        assert snap.daily_loss >= D("0.05") and snap.actions[0].startswith("halt: daily loss")
        report = desk.kill.reports[-1]
        assert report.cancelled and report.flatten_orders  # take-profits cancelled, flattened
        assert await venue.fetch_open_orders(BTC) == []
        assert abs(desk.portfolio.positions[BTC].quantity) < venue.rules[BTC].amount_step
        refused, _ = await desk.send(Side.BUY, "0.01")
        assert refused.reason is Reason.HALTED
        assert alerter.wait_idle(10)
        alerter.close()
        hooks = [h["message"] for h in http.bodies("/hook")]
        assert any("-> reducing" in m for m in hooks)
        assert any("-> halted: daily loss" in m for m in hooks)
        assert any(m.startswith("kill switch: daily loss") for m in hooks)
        subjects = [m["Subject"] for m in mails]
        assert any("kill switch" in s for s in subjects)
        assert all("[CRITICAL]" in s for s in subjects)
    levels = set(journal.alerts()["level"])
    assert "critical" in levels
    journal.close()


def test_cli_refuses_invalid_limits_and_missing_journal(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\ndaily_loss_limit = -0.05\n")
    with pytest.raises(SystemExit) as done:
        main(["--config", str(bad), "kill", "--journal", str(tmp_path / "j.sqlite")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "risk.daily_loss_limit" in err and len(err.splitlines()) == 1
    good = tmp_path / "good.toml"
    good.write_text("")
    with pytest.raises(SystemExit) as done:
        main(["--config", str(good), "resume", "--journal", str(tmp_path / "none.sqlite")])
    assert done.value.code == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["--config", str(good), "kill"])
    assert done.value.code == 2 and "--journal" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite").exists()


async def test_flatten_closes_a_perpetual_short_reduce_only(
    usdm_venue: CcxtVenue, tmp_path: Path
) -> None:
    venue, ex = usdm_venue, usdm_venue.exchange
    journal = Journal(tmp_path / "journal.sqlite")
    desk = Desk(venue, journal, max_symbol_exposure=0.5)
    perp = "BTC/USDT:USDT"
    ticker = await ex.fetch_ticker(perp)
    desk.risk.update_price(perp, D(str(ticker["last"])))
    seq = iter(range(100, 200))

    async def send(side: Side, amount: str, price: D | None = None) -> Order:
        order = Order(
            client_order_id("perp", perp, 0, next(seq)),
            perp,
            side,
            OrderType.LIMIT if price else OrderType.MARKET,
            D(amount),
            desk.clock(),
            price=price,
        )
        decision = desk.risk.check_order(order)
        assert decision.approved, decision
        return await desk.manager.submit(decision.applied_to(order))

    short = await send(Side.SELL, "0.3")
    assert short.status is S.FILLED
    rules = venue.rules[perp]
    resting = await send(
        Side.BUY, "0.1", price=rules.round_price(D(str(ticker["last"])) * D("0.97"))
    )
    assert resting.status is S.NEW
    report = await desk.kill.kill("test", flatten=True)
    assert report.cancelled == (resting.client_order_id,)
    (flat_id,) = report.flatten_orders
    flat = desk.manager.orders[flat_id]
    assert (flat.side, flat.amount, flat.reduce_only) == (Side.BUY, D("0.3"), True)
    assert flat.status is S.FILLED
    positions = await venue.fetch_positions()
    assert perp not in positions or positions[perp].quantity == 0
    assert desk.portfolio.positions[perp].quantity == 0
    journal.close()


async def test_flatten_reports_refusals_and_dust_instead_of_claiming_it_flattened(
    venue: CcxtVenue, admin: Admin, tmp_path: Path
) -> None:
    """A flatten order the venue refuses leaves the position open, and an amount under the
    venue's minimum cannot be sold at all: the kill says so rather than 'flattened'."""
    from quantdesk.model import Fill

    journal = Journal(tmp_path / "journal.sqlite")
    desk = Desk(venue, journal)
    set_price(admin, D(40000))
    desk.risk.update_price(BTC, D(40000))
    desk.risk.update_price("ETH/USDT", D(2000))
    rules = venue.rules[BTC]
    assert rules.min_notional == 5  # the sandbox's, as Binance's spot filter

    def holding(symbol: str, amount: D, price: D) -> None:
        fill = Fill(f"t-{symbol}", f"c-{symbol}", symbol, Side.BUY, amount, price, D(0), "USDT", 0)
        desk.portfolio.apply_fill(fill)

    holding(BTC, D("1000"), D(40000))  # far more than the sandbox account holds: refused
    holding("ETH/USDT", D("0.001"), D(2000))  # 2 USDT, under the 5 USDT minimum notional
    report = await desk.kill.kill("test", flatten=True)
    assert report.flatten_orders == ()
    assert len(report.rejected) == 1 and report.rejected[0].startswith("BTC/USDT: ")
    assert report.dust == ("ETH/USDT 0.001",)
    text = report.describe()
    assert "REFUSED, position still open: BTC/USDT" in text
    assert "dust below the venue minimum left: ETH/USDT 0.001" in text
    assert "flatten orders sent" not in text
    events = journal.events("kill")
    assert events["message"].iloc[-1] == text
    assert events["payload"].iloc[-1]["dust"] == ["ETH/USDT 0.001"]
    journal.close()


async def test_flatten_sweeps_perpetual_dust_reduce_only(
    usdm_venue: CcxtVenue, tmp_path: Path
) -> None:
    """A perp position under the minimum notional is still closed: reduce-only orders are
    exempt from it on Binance USD-M (-4164 says so), so only spot dust is left and reported."""
    venue, ex = usdm_venue, usdm_venue.exchange
    journal = Journal(tmp_path / "journal.sqlite")
    desk = Desk(venue, journal, max_symbol_exposure=0.5)
    perp = "ETH/USDT:USDT"
    rules = venue.rules[perp]
    last = D(str((await ex.fetch_ticker(perp))["last"]))
    desk.risk.update_price(perp, last)
    dust = rules.round_amount(rules.min_notional / last / 2)  # half the minimum notional
    assert dust >= rules.min_amount and dust * last < rules.min_notional
    seq = iter(range(100, 200))

    async def send(side: Side, amount: D, reduce_only: bool = False) -> Order:
        order = Order(
            client_order_id("perp", perp, 0, next(seq)),
            perp,
            side,
            OrderType.MARKET,
            amount,
            desk.clock(),
            reduce_only=reduce_only,
        )
        return await desk.manager.submit(order)

    opened = await send(Side.SELL, dust * 10)
    assert opened.status is S.FILLED
    assert (await send(Side.BUY, dust * 9, reduce_only=True)).status is S.FILLED
    assert desk.portfolio.positions[perp].quantity == -dust
    report = await desk.kill.kill("test", flatten=True)
    assert report.dust == () and report.rejected == ()
    (flat_id,) = report.flatten_orders
    flat = desk.manager.orders[flat_id]
    assert (flat.side, flat.amount, flat.reduce_only, flat.status) == (
        Side.BUY, dust, True, S.FILLED
    )  # fmt: skip
    positions = await venue.fetch_positions()
    assert perp not in positions or positions[perp].quantity == 0
    journal.close()
