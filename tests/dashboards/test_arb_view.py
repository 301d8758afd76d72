"""The funding-arbitrage view's data: spreads per pair (hot above the entry threshold), pairs
and their PnL, read from arb journals as `quantdesk arb run` writes them."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from quantdesk.arbitrage.pair import CLOSED, OPEN, PairState, record_pair
from quantdesk.dashboards.arb_view import ArbDashboard, arb_view, pairs_html, spreads_html
from quantdesk.engine.journal import Journal
from quantdesk.system.arb_live import PNL_EVENT, SPREAD_EVENT

T0 = 1_796_000_000_000


def spread(j: Journal, ts: int, symbol: str, long_a: float, short_a: float, entry: float) -> None:
    payload = {
        "symbol": symbol, "venue_a": "alpha", "venue_b": "beta", "apr_a": 0.1, "apr_b": 0.4,
        "spread_apr": 0.3, "net_long_a": long_a, "net_short_a": short_a, "entry_apr": entry,
        "interval_a": 8, "interval_b": 1, "venue_ms": ts,
    }  # fmt: skip
    j.record_risk_event(SPREAD_EVENT, "spread", ts, "info", payload)


def pnl(j: Journal, pair: int, total: str, price_a: str, funding_b: str, fees: str) -> None:
    payload = {"pair": pair, "total": total, "price_a": price_a, "price_b": "0",
               "funding_a": "0", "funding_b": funding_b, "fees": fees}  # fmt: skip
    j.record_risk_event(PNL_EVENT, "pnl", T0, "info", payload)


def make(path: Path, symbol: str, long_a: float, entry: float) -> None:
    with Journal(path) as j:
        spread(j, T0, symbol, long_a - 1.0, -long_a, entry)  # an older read: not shown
        spread(j, T0 + 60_000, symbol, long_a, -long_a, entry)
        one = PairState(1, OPEN, 1, D("0.03"), T0, 4, 4, "entry", margin=D("400"))
        record_pair(j, one, T0, "open")
        pnl(j, 1, "1.0", "-0.5", "2.0", "0.5")
        pnl(j, 1, "2.0", "-0.5", "3.0", "0.5")  # the last split counts
        one.status, one.reason = CLOSED, "take_profit"
        record_pair(j, one, T0 + 1, "closed")
        two = PairState(2, OPEN, -1, D("0.02"), T0 + 2, 4, 4, "manual", margin=D("200"))
        record_pair(j, two, T0 + 2, "open")
        pnl(j, 2, "-1.5", "1.0", "-2.0", "0.5")


def test_spreads_are_hot_above_entry_and_pairs_carry_their_last_pnl(tmp_path: Path) -> None:
    make(tmp_path / "btc.sqlite", "BTC/USDT:USDT", long_a=0.9, entry=0.15)
    make(tmp_path / "eth.sqlite", "ETH/USDT:USDT", long_a=0.05, entry=0.15)
    (tmp_path / "bad.sqlite").write_text("not a database")
    view = arb_view([tmp_path / n for n in ("btc.sqlite", "eth.sqlite", "bad.sqlite")])
    by_symbol = {r.symbol: r for r in view.spreads}
    btc, eth = by_symbol["BTC/USDT:USDT"], by_symbol["ETH/USDT:USDT"]
    assert btc.above and not eth.above
    assert btc.best_net_apr == 0.9 and btc.best_direction == "long A / short B"
    assert eth.best_net_apr == 0.05  # long A at 0.05 beats short A at -0.05
    assert btc.read_ms == T0 + 60_000
    assert len(view.errors) == 1 and view.errors[0].startswith("bad.sqlite")
    # open pairs first, then closed ones, each with the last journaled split
    assert [(p.session, p.pair_id, p.status) for p in view.pairs][:2] == [
        ("btc.sqlite", 2, "open"),
        ("eth.sqlite", 2, "open"),
    ]
    closed = next(p for p in view.pairs if p.status == CLOSED and p.session == "btc.sqlite")
    assert (closed.total, closed.price, closed.funding, closed.fees) == (
        D("2.0"), D("-0.5"), D("3.0"), D("0.5"),
    )  # fmt: skip
    assert closed.ret == 2.0 / 400 and closed.reason == "take_profit"
    table = spreads_html(view.spreads, now=T0 + 120_000)
    assert table.count('class="qd-arb-hot"') == 1
    hot_row = table.split('class="qd-arb-hot"')[1].split("</tr>")[0]
    assert "BTC/USDT:USDT" in hot_row and "90.00%" in hot_row and "1 s ago" not in hot_row
    pairs = pairs_html(view.pairs)
    assert pairs.count('class="qd-arb-open"') == 2 and "take_profit" in pairs


def test_the_widget_refreshes_from_the_journals(tmp_path: Path) -> None:
    path = tmp_path / "arb.sqlite"
    page = ArbDashboard([path], clock=lambda: T0 + 60_000)
    with Journal(path) as j:
        spread(j, T0, "BTC/USDT:USDT", 0.9, -0.9, 0.15)
    view = page.refresh()
    assert len(view.spreads) == 1 and not view.pairs
    assert "1 pair(s), 1 above entry" in page.status.value
    assert "qd-arb-hot" in page.spreads.value and "no pair yet" in page.pairs.value
