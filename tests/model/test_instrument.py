"""Symbol parsing of the model: the one place ccxt unified symbols are split."""

from __future__ import annotations

import pytest

from quantdesk.data.symbols import validate_symbol
from quantdesk.errors import DataError
from quantdesk.model import parse_symbol, perpetual_of


def test_parse_symbol_splits_spot_and_contract_symbols() -> None:
    assert parse_symbol("BTC/USDT") == ("BTC", "USDT", "")
    perp = parse_symbol("ETH/USDC:USDC")
    assert (perp.base, perp.quote, perp.settle, perp.cash) == ("ETH", "USDC", "USDC", "USDC")
    assert perp.is_derivative and not parse_symbol("BTC/USDT").is_derivative


def test_perpetual_of_a_spot_symbol_settles_in_its_quote() -> None:
    assert perpetual_of("BTC/USDT") == "BTC/USDT:USDT"
    assert perpetual_of("ETH/BTC") == "ETH/BTC:BTC"
    assert perpetual_of("BTC/USDT:USDT") == "BTC/USDT:USDT"  # already a contract


@pytest.mark.parametrize("bad", ["BTCUSDT", "/USDT", "BTC/", ""])
def test_symbols_without_base_or_quote_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        perpetual_of(bad)
    with pytest.raises(DataError, match="invalid symbol"):
        validate_symbol(bad)
