"""ccxt download against real ccxt clients whose HTTP layer answers like Binance, offline."""

from __future__ import annotations

import json
import math
from urllib.parse import parse_qs, urlsplit

import ccxt
import numpy as np
import pandas as pd
import pytest

from quantdesk.data.download import download, download_funding, download_ohlcv, make_exchange
from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.errors import DataError
from tests.conftest import make_bars

HOUR_MS = 3_600_000


class FakeBinance:
    """Answers ccxt's requests like Binance's REST API, from frames it holds; counts requests."""

    def __init__(self, exchange: ccxt.Exchange, now: pd.Timestamp) -> None:
        self.exchange = exchange
        self.now_ms = int(now.value // 1_000_000)
        self.bars: dict[str, pd.DataFrame] = {}  # market id -> OHLCV frame
        self.funding: dict[str, pd.DataFrame] = {}  # market id -> funding_rate frame
        self.requests: list[tuple[str, dict[str, str]]] = []
        exchange.fetch = self.fetch
        exchange.milliseconds = lambda: self.now_ms
        exchange.rateLimit = 0  # keep throttling on but never sleep in tests

    def _error(self, url: str, code: int, msg: str) -> None:
        body = json.dumps({"code": code, "msg": msg})
        self.exchange.handle_errors(
            400, "Bad Request", url, "GET", {}, body, json.loads(body), {}, None
        )
        raise ccxt.ExchangeError(body)

    def fetch(self, url: str, method: str = "GET", headers=None, body=None):
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.requests.append((parts.path, query))
        if parts.path.endswith("/exchangeInfo"):
            return self._exchange_info(futures=parts.path.startswith("/fapi"))
        if parts.path in ("/api/v3/klines", "/fapi/v1/klines"):
            return self._klines(url, query)
        if parts.path == "/fapi/v1/fundingRate":
            return self._funding(url, query)
        self._error(url, -1000, f"unexpected request {parts.path}")

    def _exchange_info(self, futures: bool) -> dict:
        symbols = []
        for market_id in sorted(set(self.bars) | set(self.funding)):
            base, quote = market_id[:-4], market_id[-4:]
            item = {
                "symbol": market_id,
                "status": "TRADING",
                "baseAsset": base,
                "quoteAsset": quote,
                "baseAssetPrecision": 8,
                "quoteAssetPrecision": 8,
                "isSpotTradingAllowed": True,
                "permissions": ["SPOT"],
                "filters": [],
            }
            if futures:
                item.update(
                    contractType="PERPETUAL",
                    marginAsset=quote,
                    pricePrecision=2,
                    quantityPrecision=3,
                    deliveryDate=4133404800000,
                    onboardDate=1569398400000,
                )
            symbols.append(item)
        return {"timezone": "UTC", "serverTime": self.now_ms, "rateLimits": [], "symbols": symbols}

    def _window(
        self, frame: pd.DataFrame, query: dict[str, str], default_limit: int
    ) -> pd.DataFrame:
        ms = frame.index.as_unit("ms").asi8
        keep = np.ones(len(frame), dtype=bool)
        if "startTime" in query:
            keep &= ms >= int(query["startTime"])
        if "endTime" in query:
            keep &= ms <= int(query["endTime"])
        keep &= ms <= self.now_ms  # nothing from the future, but the forming bar is served
        return frame[keep].iloc[: int(query.get("limit", default_limit))]

    def _klines(self, url: str, query: dict[str, str]) -> list[list]:
        if query.get("symbol") not in self.bars:
            self._error(url, -1121, "Invalid symbol.")
        frame = self._window(self.bars[query["symbol"]], query, 500)
        step = {"1h": HOUR_MS, "1d": 24 * HOUR_MS}[query["interval"]]
        return [
            [
                t,
                f"{o!r}",
                f"{h!r}",
                f"{lo!r}",
                f"{c!r}",
                f"{v!r}",
                t + step - 1,
                "0",
                1,
                "0",
                "0",
                "0",
            ]
            for t, (o, h, lo, c, v) in zip(
                frame.index.as_unit("ms").asi8.tolist(), frame.to_numpy().tolist(), strict=True
            )
        ]

    def _funding(self, url: str, query: dict[str, str]) -> list[dict]:
        if query.get("symbol") not in self.funding:
            self._error(url, -1121, "Invalid symbol.")
        frame = self._window(self.funding[query["symbol"]], query, 100)
        return [
            {"symbol": query["symbol"], "fundingTime": t, "fundingRate": f"{r!r}", "markPrice": "1"}
            for t, r in zip(
                frame.index.as_unit("ms").asi8.tolist(), frame["funding_rate"], strict=True
            )
        ]

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


def _assert_same(stored: pd.DataFrame, source: pd.DataFrame) -> None:
    """Bit-identical values on the same timestamps."""
    expected = source.set_axis(source.index.as_unit("ns"))
    pd.testing.assert_frame_equal(stored, expected, check_exact=True, check_freq=False)


NOW = pd.Timestamp("2024-01-03 10:30", tz="UTC")


@pytest.fixture
def spot() -> FakeBinance:
    fake = FakeBinance(
        ccxt.binance({"options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False}}), NOW
    )
    # At NOW: 58 closed hourly bars from 2024-01-01 00:00 to 2024-01-03 09:00, the forming
    # 10:00 bar, and later bars the fake serves only once its clock has passed them.
    fake.bars["BTCUSDT"] = make_bars(70, start="2024-01-01", freq="1h", seed=11)
    return fake


KEY = SeriesKey("binance", "spot", "BTC/USDT", "1h")


def test_paginates_and_stores_exactly_the_closed_bars(spot: FakeBinance, store: DataStore) -> None:
    (result,) = download(spot.exchange, store, [KEY], since="2024-01-01", limit=25, progress=False)
    source = spot.bars["BTCUSDT"]
    stored = store.read(KEY)
    assert len(stored) == 58
    assert result.rows_added == 58 and result.requests == math.ceil(58 / 25)
    assert spot.count("/api/v3/klines") == math.ceil(58 / 25)
    _assert_same(stored, source.iloc[:58])
    assert stored.index[-1] == pd.Timestamp("2024-01-03 09:00", tz="UTC")  # 10:00 still forming
    starts = [int(q["startTime"]) for p, q in spot.requests if p == "/api/v3/klines"]
    first_ms = int(source.index[0].value // 1_000_000)
    assert starts == [first_ms + i * 25 * HOUR_MS for i in range(3)]
    assert all(
        q["limit"] == "25" and q["interval"] == "1h"
        for p, q in spot.requests
        if p.endswith("klines")
    )


def test_resume_fetches_from_the_last_stored_bar(spot: FakeBinance, store: DataStore) -> None:
    download(spot.exchange, store, [KEY], since="2024-01-01", limit=25, progress=False)
    # Three hours later three more bars have closed, and the exchange revised the last stored one.
    more = spot.bars["BTCUSDT"]
    more.iloc[57, more.columns.get_loc("volume")] += 1.0
    spot.now_ms += 3 * HOUR_MS
    spot.requests.clear()
    result = download_ohlcv(spot.exchange, store, KEY, since="2024-01-01", limit=25, progress=False)
    assert result.rows_added == 3
    (start,) = [int(q["startTime"]) for p, q in spot.requests if p == "/api/v3/klines"]
    assert start == int(pd.Timestamp("2024-01-03 09:00", tz="UTC").value // 1_000_000)
    _assert_same(store.read(KEY), more.iloc[:61])


def test_until_is_exclusive_and_nothing_new_means_no_request(
    spot: FakeBinance, store: DataStore
) -> None:
    result = download_ohlcv(
        spot.exchange,
        store,
        KEY,
        since="2024-01-01 05:00",
        until="2024-01-01 12:00",
        progress=False,
    )
    stored = store.read(KEY)
    assert (result.rows_added, stored.index[0], stored.index[-1]) == (
        7,
        pd.Timestamp("2024-01-01 05:00", tz="UTC"),
        pd.Timestamp("2024-01-01 11:00", tz="UTC"),
    )
    spot.requests.clear()
    again = download_ohlcv(
        spot.exchange, store, KEY, since="2024-01-01", until="2024-01-01 12:00", progress=False
    )
    assert again.rows_added == 0
    assert spot.count("/api/v3/klines") == 1  # only the last stored bar, re-checked


def test_exchange_errors_become_one_line_data_errors(spot: FakeBinance, store: DataStore) -> None:
    spot.exchange.load_markets()
    eth = SeriesKey("binance", "spot", "ETH/USDT", "1h")
    with pytest.raises(DataError) as info:
        download(spot.exchange, store, [eth], since="2024-01-01", progress=False)
    assert "no market ETH/USDT" in str(info.value)
    # The market is listed but the endpoint rejects it: ccxt raises BadSymbol from Binance's code.
    spot.exchange.markets["BTC/USDT"]["id"] = "NOPEUSDT"
    with pytest.raises(DataError) as info:
        download_ohlcv(spot.exchange, store, KEY, since="2024-01-01", progress=False)
    message = str(info.value)
    assert message.startswith("binance: fetch_ohlcv BTC/USDT 1h: BadSymbol")
    assert "\n" not in message
    assert not store.exists(KEY)


def test_network_error_is_a_data_error(spot: FakeBinance, store: DataStore) -> None:
    def down(url, method="GET", headers=None, body=None):
        raise ccxt.NetworkError("binance GET https://api.binance.com/api/v3/exchangeInfo\nreset")

    spot.exchange.fetch = down
    with pytest.raises(DataError, match=r"^binance: load_markets: NetworkError: binance GET \S+$"):
        download(spot.exchange, store, [KEY], since="2024-01-01", progress=False)


def test_no_since_and_nothing_stored(spot: FakeBinance, store: DataStore) -> None:
    with pytest.raises(DataError, match="--since"):
        download_ohlcv(spot.exchange, store, KEY, progress=False)


def test_funding_history_round_trip(store: DataStore) -> None:
    fake = FakeBinance(ccxt.binanceusdm(), pd.Timestamp("2024-01-20 09:00", tz="UTC"))
    marks = pd.date_range("2024-01-01", "2024-01-20 08:00", freq="8h", tz="UTC", name="time")
    # Binance stamps settlements a few ms late.
    late = marks + pd.to_timedelta(np.arange(len(marks)) % 5, unit="ms")
    rates = np.round(np.sin(np.arange(len(marks))) * 1e-4, 8)
    fake.funding["BTCUSDT"] = pd.DataFrame({"funding_rate": rates}, index=late)
    fake.bars["BTCUSDT"] = make_bars(24, start="2024-01-19", freq="1h")
    key = SeriesKey("binance", "usdm", "BTC/USDT:USDT", "funding")
    bars_key = SeriesKey("binance", "usdm", "BTC/USDT:USDT", "1h")
    results = download(
        fake.exchange, store, [bars_key, key], since="2024-01-01", limit=20, progress=False
    )
    assert [r.rows_added for r in results] == [24, len(marks)]
    assert fake.count("/fapi/v1/fundingRate") == math.ceil(len(marks) / 20)
    stored = store.read(key)
    assert stored.index.equals(marks.as_unit("ns"))
    assert stored["funding_rate"].tolist() == rates.tolist()
    assert store.read(bars_key).index[-1] == pd.Timestamp("2024-01-19 23:00", tz="UTC")
    # Resume: only the newest settlement is asked for again, nothing is added.
    fake.requests.clear()
    assert download_funding(fake.exchange, store, key, progress=False).rows_added == 0
    (query,) = [q for p, q in fake.requests if p == "/fapi/v1/fundingRate"]
    assert int(query["startTime"]) == int(marks[-1].value // 1_000_000)


def test_make_exchange_rate_limited_and_sandbox_urls() -> None:
    spot = make_exchange("binance", "spot")
    assert isinstance(spot, ccxt.binance) and spot.enableRateLimit and spot.rateLimit > 0
    usdm = make_exchange("binance", "usdm", url="http://127.0.0.1:8765/")
    assert isinstance(usdm, ccxt.binanceusdm) and usdm.enableRateLimit
    assert usdm.urls["api"]["fapiPublic"] == "http://127.0.0.1:8765/fapi/v1"
    assert usdm.urls["api"]["public"] == "http://127.0.0.1:8765/api/v3"
    assert all(v.startswith("http://127.0.0.1:8765/") for v in usdm.urls["api"].values())
    with pytest.raises(DataError, match="unknown exchange"):
        make_exchange("nosuchexchange")


def test_make_exchange_spot_loads_only_spot_markets(store: DataStore) -> None:
    exchange = make_exchange("binance", "spot", url="http://sandbox.invalid")
    fake = FakeBinance(exchange, NOW)
    fake.bars["BTCUSDT"] = make_bars(5, start="2024-01-03")
    exchange.load_markets()
    assert [p for p, _ in fake.requests] == ["/api/v3/exchangeInfo"]
    assert "BTC/USDT" in exchange.markets
