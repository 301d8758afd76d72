"""The daily report over a hand-made journal: the day's PnL splits into realized, unrealized,
fees and funding exactly; `quantdesk report daily` renders it; bad input exits 2."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pandas as pd
import pytest

from quantdesk.engine.journal import Journal
from quantdesk.model import Fill, Order, OrderType, Side
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


def test_an_old_journal_without_decision_prices_still_reports(journal: Path) -> None:
    """A journal made before orders carried a decision price: the column is added on open,
    the report's slippage is left empty and says so, and there is no drift to show."""
    import sqlite3

    with Journal(journal) as j:
        j.record_order(
            Order("o-t2", BTC, Side.SELL, OrderType.MARKET, D("0.5"), ms("2024-03-02 06:00"))
        )
    with sqlite3.connect(journal) as db:
        db.execute("alter table orders drop column decision_price")  # the old schema
        assert "decision_price" not in {r[1] for r in db.execute("pragma table_info(orders)")}
    report = daily_report(journal, "2024-03-02")
    table = report.slippage()
    assert len(table) == 1 and table.loc[0, "decision_price"] is None
    assert table.loc[0, "slippage_bps"] is None
    assert report.slippage_summary()["with_decision_price"] == 0
    assert "1 fill(s) have no decision price" in report.slippage_note()
    assert list(report.slippage_table()["slippage bps"]) == [""]
    assert report.drift.trades.empty and "does not say how to replay" in report.drift_note()


def test_replayed_orders_carry_the_signal_close_as_decision_price(tmp_path: Path) -> None:
    """Over the shipped BTCUSDT daily bars: every strategy order's decision price is the close of
    the bar its signal came from (the one before its fill's bar), and the report's slippage is
    the fill's distance from it, signed against the trader."""
    from quantdesk.data.csv_import import ImportOptions, parse_csv
    from quantdesk.data.samples import sample_path
    from quantdesk.data.store import OHLCV_COLUMNS, normalize
    from quantdesk.model import Costs, dec
    from quantdesk.strategy import load_strategy
    from quantdesk.system.replay import replay

    parsed = parse_csv(sample_path("binance-um") / "BTCUSDT-1d.csv", ImportOptions(market="usdm"))
    bars = normalize(parsed.frame, OHLCV_COLUMNS)
    symbol = parsed.key.symbol
    path = tmp_path / "replay.sqlite"
    strategy = load_strategy("sma_cross", {"fast": 10, "slow": 30})
    replay(strategy, {symbol: bars}, Costs(fee=0.001, slippage=0.0005), journal=path)
    with Journal(path) as j:
        fills, orders = j.fills(), j.orders().set_index("client_order_id")
    assert len(fills) > 20
    day = 86_400_000
    closes = dict(zip(bars.index.as_unit("ms").asi8, bars["close"], strict=True))
    for f in fills.itertuples():
        assert orders.loc[f.client_order_id, "decision_price"] == dec(closes[f.ts - day])
    last = pd.Timestamp(int(fills["ts"].iloc[-1]), unit="ms", tz="UTC").date().isoformat()
    report = daily_report(path, last)
    row = report.slippage().iloc[-1]
    decided = dec(closes[int(row["ts"]) - day])
    sign = 1 if row["side"] == "buy" else -1
    assert row["slippage_bps"] == sign * (row["price"] - decided) / decided * 10_000


def test_a_limit_order_is_decided_at_its_limit_price(tmp_path: Path) -> None:
    """A quote strategy's limit order: its decision price is the limit, and the fill's
    slippage against it is what the matching core gave (at or better than the limit)."""
    from quantdesk.backtest.runner import to_bars
    from quantdesk.engine.clock import SimClock
    from quantdesk.engine.feeds import HistoricalFeed
    from quantdesk.engine.kernel import Kernel
    from quantdesk.engine.portfolio import Portfolio
    from quantdesk.engine.runner import Intent, QuoteRunner
    from quantdesk.model import dec
    from quantdesk.strategy import QuoteStrategy
    from quantdesk.system.replay import run_coroutine
    from quantdesk.venues.sim import SimVenue
    from tests.conftest import make_bars

    class Bid(QuoteStrategy):
        """Bids 1% under the first close, once."""

        def on_bar(self, bar, ctx):
            if bar.index != 0:
                return []
            price = (dec(bar.bar.close) * D("0.99")).quantize(D("0.01"))
            return [Intent(BTC, Side.BUY, OrderType.LIMIT, D(1), bar.bar.time, 10, price=price)]

    bars = make_bars(60, seed=1)
    feed = HistoricalFeed(to_bars({BTC: bars}), 3_600_000)
    clock = SimClock(int(feed.times[0]))
    venue = SimVenue([BTC], {"USDT": D(10**6)}, fee=D("0.001"), clock=clock)
    path = tmp_path / "limit.sqlite"
    with Journal(path) as j:
        kernel = Kernel(venue, Portfolio(cash={"USDT": D(10**6)}, currency="USDT"), j, clock)
        kernel.add_runner(QuoteRunner(Bid(), [BTC], strategy_id="bid"))
        run_coroutine(kernel.run(feed))
        [order] = [o for o in j.load_orders(open_only=False)]
    limit = (dec(bars["close"].iloc[0]) * D("0.99")).quantize(D("0.01"))
    assert order.decision_price == order.price == limit
    [fill] = kernel.fills
    day = pd.Timestamp(fill.timestamp, unit="ms", tz="UTC").date().isoformat()
    row = daily_report(path, day).slippage().iloc[0]
    assert row["decision_price"] == limit
    assert row["slippage_bps"] == (fill.price - limit) / limit * 10_000 <= 0
