"""Book depth follows the liquidity model and `limit`; market orders are checked for funds."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from quantdesk.sandbox import Sandbox
from quantdesk.venues.book import BookConfig
from tests.sandbox.conftest import dec, make_config

BTC, PERP = "BTC/USDT", "BTC/USDT:USDT"


@pytest.mark.parametrize("limit", [5, 100, 1000])
def test_depth_honours_limit(client, limit: int) -> None:
    for ex, symbol in ((client(), BTC), (client("binanceusdm"), PERP)):
        book = ex.fetch_order_book(symbol, limit)
        assert len(book["bids"]) == len(book["asks"]) == limit
        assert book["bids"][0][0] < book["asks"][0][0]
        prices = [p for p, _ in book["asks"]]
        assert prices == sorted(prices)


def test_level_sizes_follow_mean_volume() -> None:
    config = make_config()
    config.book = BookConfig(levels=50, level_volume_fraction=Decimal("0.1"))
    sb = Sandbox(config)
    series = sb.series[BTC]
    mean = series.ohlcv[sb.index - 59 : sb.index + 1, 4].mean()
    book = sb.book(BTC)
    assert len(book.bids) == len(book.asks) == 50
    assert float(book.asks[0][1]) == pytest.approx(0.1 * mean, rel=1e-3)
    config.book = BookConfig(levels=50, level_volume_fraction=Decimal("0.2"))
    deeper = Sandbox(config).book(BTC)
    assert float(deeper.asks[0][1]) == pytest.approx(2 * float(book.asks[0][1]), rel=1e-3)


def test_one_btc_market_buy_fills_completely(client) -> None:
    ex = client()
    order = ex.create_order(BTC, "market", "buy", 1)
    assert order["status"] == "closed" and order["filled"] == 1.0
    assert ex.fetch_balance()["total"]["BTC"] == pytest.approx(2 - 0.001)


def test_market_orders_beyond_the_balance_are_refused_up_front(client, admin) -> None:
    ex = client()
    for amount, params in ((100, {}), (None, {"quoteOrderQty": "150000"})):
        with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):
            ex.create_order(BTC, "market", "buy", amount, params=params)
    with pytest.raises(ccxt.InsufficientFunds, match="insufficient balance"):
        ex.privatePostOrder(
            {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quoteOrderQty": "90000"}
        )
    assert ex.fetch_balance()["total"] == {"BTC": 1.0, "USDT": 100_000.0}
    assert admin("GET", "fills") == []
    # what the balance covers still goes through in full
    order = ex.create_order(BTC, "market", "buy", 2)
    assert order["filled"] == 2.0 and dec(ex.fetch_balance()["total"]["USDT"]) > 0


def test_admin_book_stands_until_the_next_bar(client, admin) -> None:
    ex = client()
    admin("POST", "book", {"symbol": BTC, "bids": [[39000, 2]], "asks": [[39010, 3]]})
    book = ex.fetch_order_book(BTC, 100)
    assert book["asks"] == [[39010.0, 3.0]] and book["bids"] == [[39000.0, 2.0]]
    admin.advance(1)
    assert len(ex.fetch_order_book(BTC, 100)["asks"]) == 100
