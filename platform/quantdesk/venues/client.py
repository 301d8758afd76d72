"""`sandbox_client`: a real ccxt Binance client pointed at a sandbox exchange."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from quantdesk.errors import ConfigError

_MARKET_TYPES = {"binance": ["spot"], "binanceusdm": ["linear"]}


def sandbox_client(
    exchange: str,
    url: str,
    key: str = "sandbox-key",
    secret: str = "sandbox-secret",
    async_: bool = False,
    **config: Any,
) -> Any:
    """Return ccxt.binance / binanceusdm (sync or async) whose API URLs point at the sandbox.

    Only scheme and host of each `urls['api']` entry change, so paths stay Binance's; currency,
    margin and SAPI look-ups are switched off because the sandbox does not serve them.
    """
    if exchange not in _MARKET_TYPES:
        raise ConfigError(f"sandbox_client supports binance and binanceusdm, not {exchange!r}")
    target = urlsplit(url)
    if target.scheme not in ("http", "https") or not target.netloc:
        raise ConfigError(f"sandbox url must look like http://127.0.0.1:8800, got {url!r}")
    module = ccxt_async if async_ else ccxt
    options = {
        "fetchCurrencies": False,
        "fetchMargins": False,
        "fetchMarkets": {"types": _MARKET_TYPES[exchange]},
        "defaultType": "spot" if exchange == "binance" else "swap",
        "warnOnFetchOpenOrdersWithoutSymbol": False,
        "fetchOpenOrders": {"warnWithoutSymbol": False},
    }
    options.update(config.pop("options", {}))
    client = getattr(module, exchange)(
        {"apiKey": key, "secret": secret, "options": options, **config}
    )
    api = {}
    for name, value in client.urls["api"].items():
        if isinstance(value, str):
            parts = urlsplit(value)
            value = parts._replace(scheme=target.scheme, netloc=target.netloc).geturl()
        api[name] = value
    client.urls["api"] = api
    # ccxt picks its per-market error tables by Binance hostname; merge them in so errors from
    # the sandbox raise the classes they raise against Binance (e.g. -2019, -4164, -5021).
    tables = client.exceptions.get("spot" if exchange == "binance" else "linear", {})
    for kind in ("exact", "broad"):
        client.exceptions[kind] = {**client.exceptions[kind], **tables.get(kind, {})}
    return client
