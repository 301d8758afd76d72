"""Market-making sessions under control: paper mode never reaches the venue, strategy params
reload while quoting (an invalid change is refused, the old params stay), and the behaviour and
PnL monitors act (reduce or halt) on a running session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from quantdesk.config import MMLiveConfig
from quantdesk.engine.journal import Journal
from quantdesk.sandbox import Sandbox, serve_in_thread
from quantdesk.system.mm_live import MMSession
from tests.mm.session_helpers import (
    MM_RISK,
    PERP,
    SPOT,
    drive,
    mm_spec,
    result_of,
    running,
    venue_open,
    venue_orders,
    wait_for,
)
from tests.sandbox.conftest import ADMIN_TOKEN, Admin, make_config


@pytest.fixture(scope="module")
def ctl_sandbox() -> Sandbox:
    return Sandbox(make_config())


@pytest.fixture(scope="module")
def ctl_url(ctl_sandbox: Sandbox) -> Iterator[str]:
    with serve_in_thread(ctl_sandbox) as base:
        yield base


@pytest.fixture
def ctl_admin(ctl_url: str) -> Admin:
    api = Admin(ctl_url, ADMIN_TOKEN)
    api("POST", "reset")
    api("POST", "limits", {"weight_limit": 1_000_000})
    return api


def write(path: Path, body: str) -> None:
    """Rewrite a file with a later mtime (the reloader polls mtime and size)."""
    path.write_text(body)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def events(path: Path, kind: str) -> list[dict]:
    with Journal(path) as journal:
        frame = journal.events(kind)
    return list(frame["payload"]) if len(frame) else []


def open_paper(session: MMSession) -> list:
    return [o for o in session.om.orders.values() if o.status.is_open]


@pytest.mark.parametrize(("market", "symbol"), [("spot", SPOT), ("usdm", PERP)])
async def test_paper_quotes_never_reach_the_venue_and_params_reload_while_quoting(
    tmp_path: Path, ctl_url: str, ctl_admin: Admin, ctl_sandbox: Sandbox, market: str, symbol: str
) -> None:
    config = tmp_path / "quantdesk.toml"
    write(config, "[mm.params.basic_mm]\nsize = 0.001\n")
    journal = tmp_path / "paper.sqlite"
    spec = mm_spec(ctl_url, journal, "paper", market, config_path=config)
    async with running(spec) as session:
        await wait_for(lambda: len(open_paper(session)) >= 2, "a two-sided paper quote")
        await drive(session, ctl_admin, ctl_sandbox, bars=5)
        write(config, "[mm.params.basic_mm]\nsize = 0.002\n")
        await wait_for(lambda: events(journal, "params_reloaded"), "the reload")

        def sized(amount: str) -> bool:
            return any(o.amount == Decimal(amount) for o in open_paper(session))

        await drive(session, ctl_admin, ctl_sandbox, bars=2)
        await wait_for(lambda: sized("0.002"), "quotes of the new size")
        write(config, "[mm.params.basic_mm]\nsize = -1\n")
        await wait_for(lambda: events(journal, "params_rejected"), "the refusal")
        assert spec.strategy.size == 0.002  # the old params stay
        await drive(session, ctl_admin, ctl_sandbox, bars=2)
        assert not sized("-1")
    assert venue_orders(ctl_sandbox, symbol) == {}  # paper: nothing was sent to the venue
    with Journal(journal) as j:
        orders = j.orders()
        alerts = j.events("params_rejected")
    assert len(orders) >= 4 and set(orders["venue"]) == {"sandbox-paper"}
    assert alerts["severity"].iloc[0] == "error" and "size" in alerts["message"].iloc[0]
    assert not open_paper(session)  # stopping cancels every quote
    assert result_of(session).state == "active"


async def test_a_quote_older_than_the_order_timeout_is_replaced_on_a_still_market(
    tmp_path: Path, ctl_url: str, ctl_admin: Admin
) -> None:
    settings = MMLiveConfig(max_inventory=0.005, order_timeout_s=0.5, timer_s=0.1)
    spec = mm_spec(ctl_url, tmp_path / "timeout.sqlite", "paper", settings=settings)
    async with running(spec) as session:
        await wait_for(lambda: len(open_paper(session)) >= 2, "a two-sided paper quote")
        first = {o.client_order_id: o for o in open_paper(session)}
        # the clock stands still: only the timeout can retire these quotes
        await wait_for(lambda: all(o.status.is_terminal for o in first.values()), "timeouts")
        await wait_for(lambda: len(open_paper(session)) >= 2, "the quotes re-placed")
        ages = [o.updated_ms - o.created_ms for o in first.values()]
        again = [o for o in open_paper(session) if o.client_order_id not in first]
    assert all(o.status == "canceled" for o in first.values())
    assert min(ages) >= 500  # not before the timeout
    assert len(again) >= 2 and {o.price for o in again} == {o.price for o in first.values()}


@pytest.mark.parametrize(("action", "state"), [("halt", "halted"), ("reduce", "reducing")])
async def test_the_behaviour_monitor_acts_on_a_fill_rate_below_its_minimum(
    tmp_path: Path, ctl_url: str, ctl_admin: Admin, ctl_sandbox: Sandbox, action: str, state: str
) -> None:
    settings = MMLiveConfig(
        max_inventory=0.005,
        order_timeout_s=0.2,  # quotes re-placed often: orders pile up, fills do not
        monitor_min_orders=4,
        monitor_min_fill_rate=0.9,
        monitor_action=action,
    )
    journal = tmp_path / "behaviour.sqlite"
    spec = mm_spec(ctl_url, journal, "paper", settings=settings)
    async with running(spec) as session:
        await wait_for(lambda: session.risk.state == state, f"the monitor to {action}", 30)
        await wait_for(lambda: not open_paper(session), "the quotes cancelled")
        placed = len(session.om.orders)
        await drive(session, ctl_admin, ctl_sandbox, bars=3)
        # flat: nothing reduces the inventory, so neither state quotes again
        assert len(session.om.orders) == placed
    with Journal(journal) as j:
        changes = j.events("state_change")
    assert "fill rate" in changes["message"].iloc[-1]


async def test_the_drawdown_monitor_halts_a_live_session_and_cancels_its_quotes(
    tmp_path: Path, ctl_url: str, ctl_admin: Admin, ctl_sandbox: Sandbox
) -> None:
    risk = MM_RISK.model_copy(
        update={"max_drawdown": 1e-7, "daily_loss_limit": 1e-7, "monitor_interval_s": 0.2}
    )
    journal = tmp_path / "drawdown.sqlite"
    spec = mm_spec(ctl_url, journal, "live", risk=risk)
    async with running(spec) as session:
        for _ in range(40):
            if session.risk.state == "halted":
                break
            await drive(session, ctl_admin, ctl_sandbox, bars=1)
        await wait_for(lambda: session.risk.state == "halted", "the monitor to halt")
        await wait_for(lambda: venue_open(ctl_sandbox, SPOT) == 0, "the quotes cancelled")
    kills = events(journal, "kill")
    assert len(kills) == 1
    assert "drawdown" in kills[0]["reason"] or "daily loss" in kills[0]["reason"]
    assert result_of(session).state == "halted"
