"""Market symbols: ccxt unified symbols, exchange ids like BTCUSDT, and store folder names."""

from __future__ import annotations

from quantdesk.errors import DataError

MARKETS = ("spot", "usdm")

# Longest first, so "FDUSD" wins over "USD" and "USDT" over "USD".
_QUOTES = sorted(
    ["USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USD", "BTC", "ETH", "BNB", "EUR", "TRY", "DAI"],
    key=len,
    reverse=True,
)


def validate_market(market: str) -> str:
    """Return the market type, or raise DataError for anything but spot / usdm."""
    if market not in MARKETS:
        raise DataError(f"unknown market {market!r}: use one of {', '.join(MARKETS)}")
    return market


def symbol_from_id(market_id: str, market: str = "spot") -> str:
    """Turn an exchange id like 'BTCUSDT' into a ccxt symbol ('BTC/USDT', or 'BTC/USDT:USDT')."""
    raw = market_id.upper().replace("-", "").replace("_", "").replace("/", "")
    for quote in _QUOTES:
        if raw.endswith(quote) and len(raw) > len(quote):
            base = raw[: -len(quote)]
            symbol = f"{base}/{quote}"
            return f"{symbol}:{quote}" if market == "usdm" else symbol
    raise DataError(f"cannot tell base and quote apart in {market_id!r}: pass --symbol BASE/QUOTE")


def validate_symbol(symbol: str) -> str:
    """Return a ccxt unified symbol ('BTC/USDT' or 'BTC/USDT:USDT'), or raise DataError."""
    # Imported here: the model pulls in pandas and ccxt, and the CLI imports this module to
    # parse options, so `--help` would pay seconds for them.
    from quantdesk.model import parse_symbol

    try:
        base, quote, settle = parse_symbol(symbol)
    except ValueError:
        base = quote = settle = ""
    if not base or not quote or not all(p.isalnum() for p in (base, quote)):
        raise DataError(f"invalid symbol {symbol!r}: use BASE/QUOTE, e.g. BTC/USDT")
    if settle and not settle.isalnum():
        raise DataError(f"invalid symbol {symbol!r}: use BASE/QUOTE:SETTLE, e.g. BTC/USDT:USDT")
    return symbol.upper()


def symbol_to_dir(symbol: str) -> str:
    """Folder name for a symbol: 'BTC/USDT' -> 'BTC-USDT', 'BTC/USDT:USDT' -> 'BTC-USDT_USDT'."""
    return validate_symbol(symbol).replace("/", "-").replace(":", "_")


def dir_to_symbol(name: str) -> str:
    """Inverse of symbol_to_dir."""
    return name.replace("_", ":").replace("-", "/", 1)


def parse_symbols(text: str) -> list[str]:
    """Split a comma-separated --symbols value into validated ccxt symbols, keeping order."""
    symbols = [validate_symbol(s.strip()) for s in text.split(",") if s.strip()]
    if not symbols:
        raise DataError("no symbols given: pass e.g. --symbols BTC/USDT,ETH/USDT")
    return list(dict.fromkeys(symbols))
