"""Download bars and funding rates with ccxt into the store: paginated, resumable, rate-limited.

Each page goes into the store as soon as it arrives (the store writes atomically), so an
interrupted download resumes from the last stored bar. That last bar is fetched again because
it may have been stored while still forming; the store's append lets the new copy win.
Only closed bars are stored: a bar whose close (open + timeframe) is after the exchange's clock
is still forming and is left for the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import ccxt
import pandas as pd
from tqdm.auto import tqdm

from quantdesk.data.store import FUNDING, OHLCV_COLUMNS, DataStore, SeriesKey
from quantdesk.data.timeframes import timeframe_ms
from quantdesk.data.times import parse_time, to_ms
from quantdesk.errors import DataError

DEFAULT_LIMIT = 1000
FUNDING_ROUND = "h"
# ccxt classes for USD-M perpetuals where the exchange keeps them in a separate class.
_USDM_CLASSES = {"binance": "binanceusdm"}


def _quiet(progress: bool) -> bool | None:
    # None lets tqdm decide: bars on a terminal, silence in logs and pipes.
    return None if progress else True


@dataclass(frozen=True)
class DownloadResult:
    """What one series received from a download."""

    key: SeriesKey
    rows_added: int
    requests: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None


def make_exchange(
    exchange_id: str = "binance", market: str = "spot", url: str | None = None
) -> ccxt.Exchange:
    """A sync ccxt client with rate limiting on; url points every API at a local sandbox."""
    class_name = _USDM_CLASSES.get(exchange_id, exchange_id) if market == "usdm" else exchange_id
    factory = getattr(ccxt, class_name, None)
    if class_name not in ccxt.exchanges or factory is None:
        raise DataError(f"unknown exchange {exchange_id!r}: use a ccxt id such as binance")
    config: dict = {"enableRateLimit": True, "options": {}}
    if market == "usdm":
        config["options"]["defaultType"] = "swap"
    if exchange_id == "binance" and market == "spot":
        # Only spot markets are needed; skip the futures and margin catalogue requests.
        config["options"]["fetchMarkets"] = {"types": ["spot"]}
        config["options"]["fetchMargins"] = False
    exchange = factory(config)
    if url is not None:
        base = url.rstrip("/")
        exchange.urls["api"] = {
            name: base + urlsplit(value).path if isinstance(value, str) else value
            for name, value in exchange.urls["api"].items()
        }
    return exchange


def _fail(exchange: ccxt.Exchange, what: str, exc: ccxt.BaseError) -> DataError:
    lines = str(exc).strip().splitlines() or [""]
    message = lines[0][:300]
    return DataError(f"{exchange.id}: {what}: {type(exc).__name__}: {message}".rstrip(": "))


def _start(store: DataStore, key: SeriesKey, since: str | pd.Timestamp | None) -> int:
    last = store.last_timestamp(key)
    if since is None and last is None:
        raise DataError(f"no {key} in the store yet: pass --since, e.g. --since 2024-01-01")
    if last is None:
        return to_ms(parse_time(since))
    if since is None:
        return to_ms(last)
    # Resume: never re-download what is stored, except the last (maybe unfinished) bar.
    return max(to_ms(parse_time(since)), to_ms(last))


def download_ohlcv(
    exchange: ccxt.Exchange,
    store: DataStore,
    key: SeriesKey,
    since: str | pd.Timestamp | None = None,
    until: str | pd.Timestamp | None = None,
    limit: int = DEFAULT_LIMIT,
    progress: bool = True,
) -> DownloadResult:
    """Fetch closed bars of key from since (or the last stored bar) to until (exclusive)."""
    if key.is_funding:
        raise DataError("use download_funding for funding series")
    step = timeframe_ms(key.timeframe)
    start = -(-_start(store, key, since) // step) * step  # first bar open on or after start
    now = int(exchange.milliseconds())
    last_open = now - step  # the newest bar whose close is not after now
    if until is not None:
        last_open = min(last_open, to_ms(parse_time(until)) - 1)
    last_open -= last_open % step
    if start > last_open:
        return DownloadResult(key, 0, 0, None, None)
    total = (last_open - start) // step + 1
    cursor, added, requests = start, 0, 0
    first = last = None
    with tqdm(
        total=total, desc=f"{key.symbol} {key.timeframe}", unit="bar", disable=_quiet(progress)
    ) as bar:
        while cursor <= last_open:
            try:
                rows = exchange.fetch_ohlcv(key.symbol, key.timeframe, since=cursor, limit=limit)
            except ccxt.BaseError as exc:
                raise _fail(exchange, f"fetch_ohlcv {key.symbol} {key.timeframe}", exc) from None
            requests += 1
            page = [row for row in rows if cursor <= row[0] <= last_open]
            if page:
                frame = _ohlcv_frame(page)
                added += store.append(key, frame)
                first = frame.index[0] if first is None else first
                last = frame.index[-1]
                bar.update(min(len(page), bar.total - bar.n))
            newest = max((row[0] for row in rows), default=None)
            if newest is None or newest < cursor or len(rows) < limit:
                break  # the exchange has nothing newer
            cursor = newest + step
    return DownloadResult(key, added, requests, first, last)


def _ohlcv_frame(rows: list[list]) -> pd.DataFrame:
    frame = pd.DataFrame([row[1:6] for row in rows], columns=OHLCV_COLUMNS, dtype="float64")
    frame.index = pd.to_datetime([int(row[0]) for row in rows], unit="ms", utc=True).rename("time")
    return frame


def download_funding(
    exchange: ccxt.Exchange,
    store: DataStore,
    key: SeriesKey,
    since: str | pd.Timestamp | None = None,
    until: str | pd.Timestamp | None = None,
    limit: int = DEFAULT_LIMIT,
    progress: bool = True,
) -> DownloadResult:
    """Fetch the funding-rate history of a perpetual from since (or the last stored) to until."""
    if not key.is_funding:
        raise DataError(f"{key} is not a funding series")
    cursor = _start(store, key, since)
    end = int(exchange.milliseconds())
    if until is not None:
        end = min(end, to_ms(parse_time(until)) - 1)
    added, requests = 0, 0
    first = last = None
    with tqdm(desc=f"{key.symbol} funding", unit="rate", disable=_quiet(progress)) as bar:
        while cursor <= end:
            try:
                rows = exchange.fetch_funding_rate_history(key.symbol, since=cursor, limit=limit)
            except ccxt.BaseError as exc:
                raise _fail(exchange, f"fetch_funding_rate_history {key.symbol}", exc) from None
            requests += 1
            page = [
                r
                for r in rows
                if r.get("timestamp") is not None and cursor <= r["timestamp"] <= end
            ]
            if page:
                frame = pd.DataFrame(
                    {"funding_rate": [float(r["fundingRate"]) for r in page]},
                    # Settlements are on the hour; exchanges stamp them a few ms late.
                    index=pd.to_datetime([r["timestamp"] for r in page], unit="ms", utc=True)
                    .round(FUNDING_ROUND)
                    .rename("time"),
                )
                added += store.append(key, frame)
                first = frame.index[0] if first is None else first
                last = frame.index[-1]
                bar.update(len(page))
            newest = max(
                (r["timestamp"] for r in rows if r.get("timestamp") is not None), default=None
            )
            if newest is None or newest < cursor or len(rows) < limit:
                break
            cursor = newest + 1
    return DownloadResult(key, added, requests, first, last)


def download(
    exchange: ccxt.Exchange,
    store: DataStore,
    keys: list[SeriesKey],
    since: str | pd.Timestamp | None = None,
    until: str | pd.Timestamp | None = None,
    limit: int = DEFAULT_LIMIT,
    progress: bool = True,
) -> list[DownloadResult]:
    """Download every key (bars or funding) with one exchange client, after loading markets."""
    for key in keys:
        _start(store, key, since)  # fail on a missing --since before touching the network
    try:
        exchange.load_markets()
    except ccxt.BaseError as exc:
        raise _fail(exchange, "load_markets", exc) from None
    unknown = [key.symbol for key in keys if key.symbol not in exchange.markets]
    if unknown:
        raise DataError(f"{exchange.id} has no market {', '.join(dict.fromkeys(unknown))}")
    results = []
    for key in keys:
        fetch = download_funding if key.timeframe == FUNDING else download_ohlcv
        results.append(fetch(exchange, store, key, since, until, limit, progress))
    return results
