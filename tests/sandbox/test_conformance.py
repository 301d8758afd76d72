"""ccxt's own unified-API validators (shipped in ccxt/test/exchange) against the sandbox.

Not run: load_markets / fetch_markets (they expect every market type ccxt's binance knows,
the sandbox serves spot and USD-M linear only), spot fetch_trading_fee(s) and fetch_status
(SAPI endpoints the sandbox does not serve), spot fetch_margin_mode (ccxt: linear only).
"""

from __future__ import annotations

import importlib
import inspect

import pytest

BTC, PERP = "BTC/USDT", "BTC/USDT:USDT"
COMMON = [
    "fetch_ticker",
    "fetch_tickers",
    "fetch_ohlcv",
    "fetch_order_book",
    "fetch_l2_order_book",
    "fetch_trades",
    "fetch_balance",
    "fetch_my_trades",
    "fetch_open_orders",
    "fetch_closed_orders",
    "fetch_orders",
    "fetch_last_prices",
    "fetch_positions",
    "fetch_funding_rate_history",
    "fetch_leverage_tiers",
]
CASES = [("binance", BTC, name) for name in COMMON] + [
    ("binanceusdm", PERP, name)
    for name in [*COMMON, "fetch_trading_fee", "fetch_trading_fees", "fetch_margin_mode"]
]
# Binance's spot /depth carries no time, so ccxt's order book has none either (on Binance too).
NO_TIME = {"timestamp": True, "datetime": True}
SKIPPED = {("binance", "fetch_order_book"): NO_TIME, ("binance", "fetch_l2_order_book"): NO_TIME}


@pytest.mark.parametrize(("exchange", "symbol", "name"), CASES)
def test_ccxt_validator(client, exchange: str, symbol: str, name: str) -> None:
    ex = client(exchange)
    ex.create_order(symbol, "market", "buy", 0.01)  # something to list in trades and orders
    ex.create_order(symbol, "limit", "buy", 0.01, round(ex.fetch_ticker(symbol)["last"] * 0.9, 1))
    module = importlib.import_module(f"ccxt.test.exchange.sync.test_{name}")
    validator = getattr(module, f"test_{name}")
    args = [ex, SKIPPED.get((exchange, name), {})]
    if len(inspect.signature(validator).parameters) > 2:
        args.append(symbol)
    validator(*args)  # raises AssertionError on any non-conforming field
