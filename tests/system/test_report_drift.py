"""A paper session journals the price each order was decided on and the bars it saw; the daily
report's slippage is the formula over those, and its live-vs-backtest drift (the session's bars
replayed through the engine) is zero for a paper session and exactly a known edit of a fill."""

from __future__ import annotations

import sqlite3
from decimal import Decimal as D
from pathlib import Path

import pytest

from quantdesk.engine.journal import Journal
from quantdesk.model import dec
from quantdesk.reports import repo_notebooks_dir
from quantdesk.reports_daily import daily_report
from tests.conftest import run_cli
from tests.sandbox.conftest import ADMIN_TOKEN, Admin
from tests.sessions import MINUTE, drive, start, write_config

BPS = D(10_000)
SLIP = D("0.001")  # paper fills 10 bps off the open, against the trader


@pytest.fixture(scope="module")
def session(crash_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One paper session over 40 sandbox minutes (trades entries and exits), 10 bps slippage."""
    admin = Admin(crash_url, ADMIN_TOKEN)
    admin("POST", "reset")
    admin("POST", "limits", {"weight_limit": 1_000_000})
    tmp = tmp_path_factory.mktemp("drift")
    config = write_config(tmp, crash_url)
    # the test drives bars as fast as the session takes them: orders come closer together in
    # wall time than the default 5 a second allows, which a replay (bar time) never sees
    config.write_text(config.read_text() + "\n[risk]\nmax_orders_per_second = 1000\n")
    journal = tmp / "paper.sqlite"
    until = admin("GET", "clock")["time"] + 40 * MINUTE
    proc = start(config, journal, until, None, mode="paper", extra=("--slippage", str(SLIP)))
    out = drive(proc, journal, admin, 0, max_bars=60)
    assert proc.returncode == 0, out
    return journal


def test_decision_prices_are_the_signal_closes_and_slippage_their_formula(session: Path) -> None:
    with Journal(session) as j:
        fills, orders, bars = j.fills(), j.orders(), j.bars("BTC/USDT")
    assert len(fills) >= 2
    closes = dict(zip(bars["ts"], bars["close"], strict=True))
    opens = dict(zip(bars["ts"], bars["open"], strict=True))
    decided = dict(zip(orders["client_order_id"], orders["decision_price"], strict=True))
    for f in fills.itertuples():
        # acted on at the signal bar's close, filled at the next bar's open, slipped
        assert decided[f.client_order_id] == dec(closes[f.ts - MINUTE])
        sign = 1 if f.side == "buy" else -1
        assert abs(f.price - dec(opens[f.ts]) * (1 + sign * SLIP)) <= D("0.01")
    report = daily_report(session)
    table = report.slippage()
    day = fills[(fills["ts"] >= report.start_ms) & (fills["ts"] < report.end_ms)]
    assert len(table) == len(day) > 0
    expected = []
    for f in day.itertuples():
        d = decided[f.client_order_id]
        sign = 1 if f.side == "buy" else -1
        expected.append(sign * (f.price - d) / d * BPS)
    assert list(table["slippage_bps"]) == expected
    # the sandbox opens at the last close: what is left is the paper slippage (and the tick)
    assert all(abs(b - SLIP * BPS) < D("0.01") for b in expected)
    summary = report.slippage_summary()
    cost = sum(
        ((1 if f.side == "buy" else -1) * (f.price - decided[f.client_order_id]) * f.amount
         for f in day.itertuples()),
        D(0),
    )  # fmt: skip
    assert summary["slippage_cost"] == cost and summary["fees"] == sum(day["fee"], D(0))
    assert summary["with_decision_price"] == len(day)


def test_a_paper_session_replays_with_zero_drift(session: Path) -> None:
    report = daily_report(session)
    drift = report.drift
    assert drift.note == ""
    t = drift.trades
    with Journal(session) as j:
        fills = j.fills()
    day = fills[(fills["ts"] >= report.start_ms) & (fills["ts"] < report.end_ms)]
    assert set(t["client_order_id"]) == set(day["client_order_id"])  # same trades, same ids
    assert list(t["live_price"]) == list(t["replay_price"])
    assert list(t["live_amount"]) == list(t["replay_amount"])
    assert list(t["live_ts"]) == list(t["replay_ts"])
    assert drift.pnl == 0 and all(b == 0 for b in t["drift_bps"])


def test_a_fill_off_by_a_known_amount_is_exactly_the_drift(session: Path, tmp_path: Path) -> None:
    edited = tmp_path / "edited.sqlite"
    with sqlite3.connect(session) as src, sqlite3.connect(edited) as dst:
        src.backup(dst)  # a consistent copy of the WAL journal
    with Journal(edited) as j:
        fills = j.fills()
    report = daily_report(edited)
    day = fills[(fills["ts"] >= report.start_ms) & (fills["ts"] < report.end_ms)]
    target = day.iloc[-1]
    delta = D("3.25")
    with sqlite3.connect(edited) as db:
        db.execute(
            "update fills set price = ? where id = ?",
            (str(target["price"] + delta), int(target["id"])),
        )
    drift = daily_report(edited).drift
    t = drift.trades.set_index("client_order_id")
    sign = 1 if target["side"] == "buy" else -1
    row = t.loc[target["client_order_id"]]
    # live paid delta more on a buy (received delta more on a sell) for the same amount
    assert row["drift_pnl"] == -sign * target["amount"] * delta
    assert row["drift_bps"] == sign * delta / target["price"] * BPS
    assert drift.pnl == row["drift_pnl"]
    others = t.drop(index=target["client_order_id"])
    assert all(p == 0 for p in others["drift_pnl"])


def test_the_rendered_report_shows_slippage_and_drift(session: Path, tmp_path, capsys) -> None:
    notebooks = str(repo_notebooks_dir())
    code, out, _ = run_cli(
        ["report", "daily", "--notebooks", notebooks, "--out", str(tmp_path / "out"),
         "--journal", str(session)],
        capsys,
    )  # fmt: skip
    assert code == 0, out
    html = Path(out.split("report: ")[1].split()[0]).read_text()
    assert "Slippage against the decision price" in html and "decision price" in html
    assert "Live minus replay PnL: 0.00" in html and "only live" in html


def test_a_trade_missing_live_costs_what_the_replay_made(session: Path, tmp_path: Path) -> None:
    """A fill the live session never got (deleted from a copy): the trade shows only in the
    replay, and the drift is minus what it added there, valued at the day's last close."""
    missing = tmp_path / "missing.sqlite"
    with sqlite3.connect(session) as src, sqlite3.connect(missing) as dst:
        src.backup(dst)
    report = daily_report(missing)
    with Journal(missing) as j:
        fills, bars = j.fills(), j.bars("BTC/USDT")
    day = fills[(fills["ts"] >= report.start_ms) & (fills["ts"] < report.end_ms)]
    gone = day.iloc[-1]
    with sqlite3.connect(missing) as db:
        db.execute("delete from fills where id = ?", (int(gone["id"]),))
    drift = daily_report(missing).drift
    mark = dec(bars[bars["ts"] + MINUTE <= report.end_ms]["close"].iloc[-1])
    assert drift.mark == mark
    sign = 1 if gone["side"] == "buy" else -1
    made = sign * gone["amount"] * (mark - gone["price"]) - gone["fee"]
    row = drift.trades.set_index("client_order_id").loc[gone["client_order_id"]]
    assert row["live_amount"] is None and row["replay_amount"] == gone["amount"]
    assert drift.pnl == row["drift_pnl"] == -made
    assert "1 only in the replay" in daily_report(missing).drift_note()
