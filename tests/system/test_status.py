"""A running session shows what it does: a status line per bar, and on stop its PnL split into
price, fees and funding."""

from __future__ import annotations

import re
from decimal import Decimal as D
from pathlib import Path

from quantdesk.engine.journal import Journal
from tests.sandbox.conftest import Admin
from tests.sessions import MINUTE, drive, start, write_config

LINE = re.compile(
    r"^bar (\d{4}-\d\d-\d\d \d\d:\d\d) \| equity ([\d,.]+) \(([+-][\d.]+)%\) \| BTC/USDT (\S+) \| "
    r"signal (\S+) \| orders \+(\d+)(?:, denied [^|]+)?(?:, reduced [^|]+)? \| fills \+(\d+) \| "
    r"risk (\w+)$"
)


def test_paper_session_prints_a_line_per_bar_and_a_money_summary(
    crash_url: str,
    crash_admin: Admin,
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, crash_url)
    journal = tmp_path / "paper.sqlite"
    until = crash_admin("GET", "clock")["time"] + 40 * MINUTE
    proc = start(config, journal, until, None, mode="paper")
    out = drive(proc, journal, crash_admin, 0, max_bars=60)
    assert proc.returncode == 0, out
    lines = [m for m in (LINE.match(x) for x in out.splitlines()) if m]
    with Journal(journal) as j:
        equity = j.equity_curve()
        fills = j.fills()
        orders = j.orders()
    # one line per bar the session took after its warm-up, in bar order
    assert len(lines) >= 30, out
    times = [m.group(1) for m in lines]
    assert times == sorted(times) and len(set(times)) == len(times)
    # the per-bar deltas add up to what the journal holds
    assert sum(int(m.group(7)) for m in lines) == len(fills) > 0
    sent = orders[orders["submit_attempts"] > 0]
    assert sum(int(m.group(6)) for m in lines) == len(sent)
    signals = {m.group(5) for m in lines}
    assert "entry" in signals and "exit" in signals
    assert {m.group(8) for m in lines} == {"active"}
    last = lines[-1]
    assert D(last.group(2).replace(",", "")) == D(str(equity["equity"].iloc[-1])).quantize(
        D("0.01")
    )
    # the summary: PnL = price + fees + funding, and equal to equity minus capital
    summary = next(x for x in out.splitlines() if x.startswith("PnL "))
    pnl, price, fees, funding = (
        D(v.replace(",", ""))
        for v in re.match(
            r"PnL ([+-][\d,.]+) USDT \([+-][\d.]+%\): price ([+-][\d,.]+), "
            r"fees ([+-][\d,.]+), funding ([+-][\d,.]+)$",
            summary,
        ).groups()
    )
    assert abs(pnl - (price + fees + funding)) <= D("0.02")
    paid = sum(D(str(f)) for f in fills["fee"])
    assert abs(-fees - paid) <= D("0.01") and paid > 0
    assert abs(pnl - (D(str(equity["equity"].iloc[-1])) - 2000)) <= D("0.01")
