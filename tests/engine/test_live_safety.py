"""What a user trusts with money: a kill survives every restart (SIGTERM and SIGKILL) until a
person resumes, and paper and live size the same command alike (the session's capital, not the
whole venue account)."""

from __future__ import annotations

import signal
from decimal import Decimal as D
from pathlib import Path

import pytest

from quantdesk.engine.journal import Journal
from tests.sandbox.conftest import Admin
from tests.sessions import (
    MINUTE,
    bars,
    cli,
    rows,
    start,
    starts,
    steps,
    wait,
    write_config,
)


def _strategy_orders(journal: Path) -> int:
    """Orders the strategy itself sent (the kill switch's own flatten orders excluded)."""
    sent = rows(journal, "select strategy_id from orders where submit_attempts > 0")
    return sum(r[0] != "killswitch" for r in sent)


SENT = (
    "select side, amount, created_ms from orders where submit_attempts > 0 "
    "order by created_ms, client_order_id"
)


def test_a_kill_survives_sigterm_and_sigkill_until_resume(
    crash_url: str,
    crash_admin: Admin,
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crash_url)
    journal = tmp_path / "live.sqlite"
    until = crash_admin("GET", "clock")["time"] + 600 * MINUTE

    proc = start(config, journal, until, None)
    try:
        wait(lambda: starts(journal) == 1, proc, "the first start")
        # trade until the strategy holds a position (fast=2/slow=3 crosses within a few bars)
        for _ in range(80):
            bars(proc, journal, crash_admin, 1)
            held = rows(journal, "select quantity from positions where symbol = 'BTC/USDT'")
            if held and D(str(held[-1][0])) > 0:
                break
        else:
            pytest.fail("the strategy never bought")
        cli("kill", "--flatten", "--journal", str(journal))
        wait(
            lambda: (
                any(r[0] == "halted" for r in rows(journal, "select kind from risk_events"))
                or bool(rows(journal, "select id from risk_events where kind = 'kill'"))
            ),
            proc,
            "the kill",
        )
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    sent_before = _strategy_orders(journal)
    assert sent_before >= 1

    # Restart the same command twice: once after SIGTERM, once after a SIGKILL.
    for life, how in ((1, signal.SIGKILL), (2, signal.SIGTERM)):
        proc = start(config, journal, until, None)
        try:
            wait(lambda life=life: starts(journal) == life + 1, proc, f"restart {life}")
            bars(proc, journal, crash_admin, 25)
            proc.send_signal(how)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert _strategy_orders(journal) == sent_before, f"traded after restart {life}: {out}"
        if how is signal.SIGTERM:
            assert "trading is halted" in out, out
    with Journal(journal) as j:
        restored = j.events("state_restored")
        assert len(restored) == 2
        assert "halted" in restored["message"].iloc[0]
        # flattened: what is left is fee dust below the venue's amount step (0.00001 BTC)
        assert all(abs(q) < D("0.00001") for q in j.positions(include_flat=True)["quantity"])

    # Only a person's resume re-arms it: then the strategy trades again.
    cli("resume", "--journal", str(journal))
    proc = start(config, journal, until, None)
    try:
        wait(lambda: starts(journal) == 4, proc, "the resumed start")
        for _ in range(80):
            bars(proc, journal, crash_admin, 1)
            if _strategy_orders(journal) > sent_before:
                break
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _strategy_orders(journal) > sent_before, out


def test_paper_and_live_size_the_same_command_alike(
    crash_url: str,
    crash_admin: Admin,
    tmp_path: Path,
) -> None:
    """Both sessions watch the same sandbox bars with --capital 2000; the live account holds far
    more (USDT and 1 BTC), which must neither size orders nor count as the session's equity."""
    config = write_config(tmp_path, crash_url)
    until = crash_admin("GET", "clock")["time"] + 600 * MINUTE
    journals = {mode: tmp_path / f"{mode}.sqlite" for mode in ("paper", "live")}
    procs = {mode: start(config, journals[mode], until, None, mode=mode) for mode in journals}
    try:
        for mode, proc in procs.items():
            wait(lambda mode=mode: starts(journals[mode]) == 1, proc, f"{mode} start")
        for _ in range(60):
            seen = {m: steps(j) for m, j in journals.items()}
            crash_admin.advance(1)
            for mode, proc in procs.items():
                wait(
                    lambda mode=mode, seen=seen: steps(journals[mode]) > seen[mode],
                    proc,
                    f"{mode} bar",
                )
            buys = {m: rows(j, SENT) for m, j in journals.items()}
            if all(len(b) >= 3 for b in buys.values()):
                break
        outs = {}
        for mode, proc in procs.items():
            proc.send_signal(signal.SIGTERM)
            outs[mode] = proc.communicate(timeout=60)[0]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    orders = {m: rows(j, SENT) for m, j in journals.items()}
    assert len(orders["live"]) >= 2, outs
    n = min(len(orders["live"]), len(orders["paper"]))
    for (p_side, p_amount, _), (l_side, l_amount, _) in zip(
        orders["paper"][:n], orders["live"][:n], strict=True
    ):
        assert p_side == l_side
        # fills differ by the paper model's prices only: sizes agree within 1%
        assert abs(D(str(p_amount)) / D(str(l_amount)) - 1) < D("0.01"), orders
    first_buy = D(str(orders["live"][0][1]))
    with Journal(journals["live"]) as j:
        equity = j.equity_curve()
        # the live session's equity is its capital plus its own PnL, not the venue account
        assert abs(D(str(equity["equity"].iloc[-1])) - 2000) < 200
    assert first_buy > 0
    assert "other holdings" in outs["live"] and "capital 2000" in outs["live"]
