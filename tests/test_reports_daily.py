"""The daily report over a hand-made journal: the day's PnL splits into realized, unrealized,
fees and funding exactly; `quantdesk report daily` renders it; bad input exits 2."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.engine.journal import Journal
from quantdesk.model import Fill, Side
from quantdesk.reports import repo_notebooks_dir
from quantdesk.reports_daily import daily_report
from tests.conftest import run_cli

BTC = "BTC/USDT"


def ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").timestamp() * 1000)


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "j.sqlite"
    with Journal(path) as j:
        j.record_risk_event(
            "session", "session record", ms("2024-03-01 20:00"), "info",
            {"mode": "paper", "venue": "sandbox", "capital": "10000", "balances": {}},
        )  # fmt: skip
        j.record_risk_event(
            "session_started", "paper session on sandbox: sma_cross(fast=2, slow=3) BTC/USDT",
            ms("2024-03-01 20:00"), "info",
        )  # fmt: skip
        fills = [
            ("t1", Side.BUY, "1", "100", "0.1", "2024-03-01 22:00"),
            ("t2", Side.SELL, "0.5", "110", "0.05", "2024-03-02 06:00"),
        ]
        for trade, side, amount, price, fee, when in fills:
            j.record_fill(
                Fill(trade, f"o-{trade}", BTC, side, D(amount), D(price), D(fee), "USDT", ms(when))
            )
        curve = [("2024-03-01 23:00", "10000"), ("2024-03-02 01:00", "10050")]
        curve += [("2024-03-02 12:00", "10100"), ("2024-03-02 18:00", "10020")]
        for when, equity in curve:
            j.record_equity(ms(when), D(equity))
        j.record_risk_event("order_denied", "risk: too big", ms("2024-03-02 07:00"), "warning")
        j.record_risk_event("order_denied", "risk: next day", ms("2024-03-03 07:00"), "warning")
    return path


def test_the_day_pnl_splits_exactly(journal: Path) -> None:
    report = daily_report(journal, "2024-03-02")
    split = report.pnl_split()
    assert split["total"] == D(20)  # 10020 at the day's end - 10000 at its open
    assert split["realized"] == D(5)  # 0.5 sold 10 above the 100 paid
    assert split["fees"] == D("0.05") and split["funding"] == 0
    assert split["unrealized"] == D(20) - D(5) + D("0.05")
    assert len(report.fills) == 1 and report.fills.loc[0, "trade_id"] == "t2"
    assert list(report.events_table()["message"]) == ["risk: too big"]
    summary = report.summary()["value"]
    assert summary["Day PnL"] == "20.00" and summary["Day return"] == "0.20%"
    assert summary["Max drawdown in the day"] == "-0.79%"  # 10100 -> 10020
    var = report.var_table()
    assert var.loc["95%", "VaR"] != "n/a"
    assert daily_report(journal).day.isoformat() == "2024-03-02"  # default: the newest day


def test_report_daily_cli_renders_and_refuses_bad_input(journal, tmp_path, capsys) -> None:
    notebooks = str(repo_notebooks_dir())
    base = ["report", "daily", "--notebooks", notebooks, "--out", str(tmp_path / "out")]
    code, out, _ = run_cli([*base, "--journal", str(journal), "--date", "2024-03-02"], capsys)
    assert code == 0, out
    html = Path(out.split("report: ")[1].split()[0]).read_text()
    assert "Day PnL" in html and "20.00" in html and "risk: too big" in html
    assert "risk: next day" not in html and "day pnl:" not in html  # hidden check cell
    for args, message in [
        (["--journal", str(tmp_path / "none.sqlite")], "no journal at"),
        (["--journal", str(journal), "--date", "2024-13-01"], "is not a YYYY-MM-DD day"),
    ]:
        code, _, err = run_cli([*base, *args], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "none.sqlite").exists()


def test_buy_and_hold_needs_bars_covering_the_day(journal: Path, tmp_path: Path) -> None:
    from quantdesk.data.store import DataStore, SeriesKey
    from tests.conftest import make_bars

    store = DataStore(tmp_path / "md")
    store.write(SeriesKey("binance", "spot", BTC, "1h"), make_bars(24, start="2023-01-01"))
    assert daily_report(journal, "2024-03-02", str(store.root)).benchmark() is None
    bars = make_bars(72, start="2024-03-01")
    store.write(SeriesKey("binance", "spot", BTC, "1h"), bars)
    bench = daily_report(journal, "2024-03-02", str(store.root)).benchmark()
    first = bars["close"].asof(pd.Timestamp("2024-03-01 23:00", tz="UTC"))
    last = bars["close"].asof(pd.Timestamp("2024-03-02 18:00", tz="UTC"))
    assert bench.iloc[0] == pytest.approx(10_000) and bench.iloc[-1] == pytest.approx(
        10_000 * last / first
    )
