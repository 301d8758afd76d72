"""`sandbox_client`: a real ccxt Binance client pointed at a sandbox exchange."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro

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


_SANDBOX_OPTIONS = (
    "fetchCurrencies",
    "fetchMargins",
    "fetchMarkets",
    "defaultType",
    "warnOnFetchOpenOrdersWithoutSymbol",
    "fetchOpenOrders",
)


def sandbox_pro_client(
    exchange: str,
    url: str,
    key: str = "sandbox-key",
    secret: str = "sandbox-secret",
    **config: Any,
) -> Any:
    """Return ccxt.pro binance / binanceusdm whose REST and stream URLs point at the sandbox
    (the ccxt.pro class does REST too, so one client serves orders and streams)."""
    options = config.pop("options", {})
    rest = sandbox_client(exchange, url, key, secret, async_=True, options=options, **config)
    pro = getattr(ccxt.pro, exchange)({"apiKey": key, "secret": secret, **config})
    # only what sandbox_client switches (the ccxt.pro class has its own stream options)
    pro.options.update({k: rest.options[k] for k in (*_SANDBOX_OPTIONS, *options)})
    ws_root = "ws://" + urlsplit(url).netloc
    api = dict(rest.urls["api"])
    api["ws"] = dict(pro.urls["api"]["ws"]) | {
        "spot": f"{ws_root}/ws",
        "margin": f"{ws_root}/ws",
        "linear": f"{ws_root}/fstream/ws",
        # spot user data (watch_orders, watch_my_trades) goes through the WebSocket API
        "ws-api": dict(pro.urls["api"]["ws"]["ws-api"]) | {"spot": f"{ws_root}/ws-api/v3"},
    }
    pro.urls["api"] = api
    pro.exceptions = rest.exceptions
    return pro
