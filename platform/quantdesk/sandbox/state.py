"""The sandbox's state: configuration, replayed market, matching core, accounts, faults."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal

import numpy as np

from quantdesk.errors import ConfigError
from quantdesk.model import dec
from quantdesk.sandbox.auth import OrderCounter, WeightLimiter
from quantdesk.sandbox.faults import Faults
from quantdesk.sandbox.market import (
    MINUTE_MS,
    MarketClock,
    Series,
    regrid_funding,
    synthetic_series,
)
from quantdesk.sandbox.userstream import ListenKeys, UserEvents
from quantdesk.venues.book import Book, BookConfig, book_from_bar
from quantdesk.venues.matching import PERP_FEES, SPOT_FEES, FeeSchedule, MatchingCore

THIN_BOOK = BookConfig(levels=1)
DEFAULT_BALANCES = {"USDT": Decimal("100000"), "BTC": Decimal("1")}


@dataclass(frozen=True)
class AccountConfig:
    """One API key: its secret and starting balances (spot and the USD-M wallet alike)."""

    key: str
    secret: str
    balances: dict[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_BALANCES))


@dataclass
class SandboxConfig:
    """Everything `quantdesk sandbox` can set."""

    symbols: list[str] = field(default_factory=lambda: ["BTC/USDT", "ETH/USDT"])
    seed: int = 7
    days: int = 30
    speed: float = 60.0
    history_bars: int = 1440  # bars visible when the clock starts
    accounts: list[AccountConfig] = field(
        default_factory=lambda: [AccountConfig("sandbox-key", "sandbox-secret")]
    )
    # The liquidity model: books around the current close, each level sized as a fraction of
    # the mean 1-minute volume over `volume_window` bars (deep enough for /depth?limit=1000).
    book: BookConfig = field(default_factory=lambda: BookConfig(levels=1000))
    volume_window: int = 60
    spot_fees: FeeSchedule = SPOT_FEES
    perp_fees: FeeSchedule = PERP_FEES
    # Perpetuals settle funding every funding_hours (None: as the source does; else the source's
    # rates spread per hour and summed), plus funding_offset per hour: two sandboxes then
    # differ like two venues do.
    funding_hours: int | None = None
    funding_offset: float = 0.0
    weight_limit: int = 6000  # spot request weight per IP per minute (Binance: 6000)
    futures_weight_limit: int = 2400  # USD-M (Binance: 2400)
    # ORDERS limits per account, (seconds, orders): Binance spot and USD-M defaults
    spot_order_limits: tuple[tuple[int, int], ...] = ((10, 100), (86_400, 200_000))
    futures_order_limits: tuple[tuple[int, int], ...] = ((10, 300), (60, 1200))
    rate_window_s: float = 60.0
    ban_s: float = 120.0
    hang_s: float = 30.0  # how long a "hang" fault keeps the response back
    admin: bool = True
    # Relabel the replayed market so the bar at the clock closes at wall-clock "now" (on every
    # reset): orders, trades, klines, funding and /time then share one clock. False keeps the
    # data's own timestamps (research replays comparing against the store).
    shift_to_now: bool = True
    # Bearer token the /sandbox/ admin endpoints require; a fresh random one unless given.
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))


class Sandbox:
    """One sandbox venue: replays `series` through a MatchingCore for the configured accounts."""

    def __init__(
        self,
        config: SandboxConfig,
        series: dict[str, Series] | None = None,
        wall: Callable[[], float] = time.monotonic,
        epoch: Callable[[], float] = time.time,
    ) -> None:
        if not config.accounts:
            raise ConfigError("the sandbox needs at least one account")
        self.config = config
        self._wall = wall
        self._epoch = epoch
        self._source = series or synthetic_series(config.symbols, config.seed, config.days)
        if config.funding_hours is not None or config.funding_offset:
            self._source = {
                sym: regrid_funding(s, config.funding_hours, config.funding_offset)
                if s.spec.perp
                else s
                for sym, s in self._source.items()
            }
        lengths = {len(s.times) for s in self._source.values()}
        if len(lengths) != 1:
            raise ConfigError("all replayed markets must share one 1-minute timeline")
        self.n_bars = lengths.pop()
        # listenKeys outlive a reset (like the API keys they belong to); events follow the core
        self.listen_keys = ListenKeys()
        self.user_events = UserEvents(self)
        self.resets = 0  # how many resets so far: the stream pump restarts from each one
        self.reset()

    def reset(self) -> None:
        """Back to the initial state: fresh accounts, no orders, clock at the start, no faults."""
        cfg = self.config
        start = min(cfg.history_bars, self.n_bars - 1)
        first = next(iter(self._source.values())).times
        self.offset_ms = 0
        if cfg.shift_to_now:
            now_minute = int(self._epoch() * 1000) // MINUTE_MS * MINUTE_MS
            self.offset_ms = now_minute - (int(first[start]) + MINUTE_MS)
        self.series = {sym: s.shifted(self.offset_ms) for sym, s in self._source.items()}
        self.times = next(iter(self.series.values())).times
        # Resting orders match against bars, never books, so the core's per-bar book can be
        # one level; the deep model book is built only for the bar a request trades at.
        self.core = MatchingCore(
            [s.spec for s in self.series.values()], THIN_BOOK, cfg.spot_fees, cfg.perp_fees
        )
        self._book_index: dict[str, int] = {}
        # prices each served book had, by bar index (recent ones): depth streams remove them
        self.book_prices: dict[str, dict[int, tuple[set[Decimal], set[Decimal]]]] = {}
        self.secrets = {}
        for acct in cfg.accounts:
            self.core.add_account(acct.key, dict(acct.balances))
            self.secrets[acct.key] = acct.secret
        self.user_events.install()
        self.clock = MarketClock(self.n_bars, start, cfg.speed, self._wall)
        self.index = self.start_index = start
        self.resets += 1
        now = self.now_ms()
        for symbol, series in self.series.items():
            self.core.on_bar(symbol, series.bar(start), now)
        self.funding_next = {
            sym: int(np.searchsorted(s.funding_times, now, side="right"))
            for sym, s in self.series.items()
            if s.spec.perp
        }
        self.faults = Faults()
        self.margin_types: dict[tuple[str, str], str] = {}  # (account, perp) -> cross|isolated
        self.limiter = WeightLimiter(cfg.weight_limit, cfg.rate_window_s, ban_s=cfg.ban_s)
        self.futures_limiter = WeightLimiter(
            cfg.futures_weight_limit, cfg.rate_window_s, ban_s=cfg.ban_s
        )
        self.orders = {
            False: OrderCounter(cfg.spot_order_limits),
            True: OrderCounter(cfg.futures_order_limits),
        }

    def now_ms(self) -> int:
        """Market time: the close of the latest bar."""
        return int(self.times[self.index]) + MINUTE_MS

    def server_ms(self) -> int:
        """Server time (what /time answers and recvWindow checks): the wall clock plus skew.

        With `shift_to_now` the market starts at this clock and, at speed 1, stays on it.
        """
        return int(time.time() * 1000) + self.faults.skew_ms

    def sync(self) -> None:
        """Replay every bar up to the clock: match resting orders, rebuild books, pay funding."""
        target = self.clock.index()
        while self.index < target:
            self.index += 1
            now = self.now_ms()
            for symbol, series in self.series.items():
                self.core.on_bar(symbol, series.bar(self.index), now)
            for symbol, ptr in self.funding_next.items():
                series = self.series[symbol]
                while ptr < len(series.funding_times) and series.funding_times[ptr] <= now:
                    rate = series.funding_rate(ptr)
                    self.core.settle_funding(symbol, rate, int(series.funding_times[ptr]))
                    ptr += 1
                self.funding_next[symbol] = ptr

    def book(self, symbol: str) -> Book:
        """The book at the clock: the liquidity model's, or an admin snapshot for this bar."""
        if self._book_index.get(symbol) != self.index:
            series = self.series[symbol]
            lo = max(self.index - self.config.volume_window + 1, 0)
            mean = float(series.ohlcv[lo : self.index + 1, 4].mean())
            bar = self.core.bars[symbol]
            basis = replace(bar, volume=dec(mean).quantize(series.spec.step_size))
            book = book_from_bar(basis, series.spec, self.config.book)
            self.core.books[symbol] = book
            self._book_index[symbol] = self.index
            self._record_prices(symbol)
        return self.core.books[symbol]

    def set_book(self, symbol: str, bids: list[list[Decimal]], asks: list[list[Decimal]]) -> None:
        """Replace the book of symbol with a snapshot until the next bar."""
        self.core.set_book(symbol, bids, asks)
        self._book_index[symbol] = self.index
        self._record_prices(symbol)

    def _record_prices(self, symbol: str) -> None:
        book = self.core.books[symbol]
        seen = self.book_prices.setdefault(symbol, {})
        bids, asks = seen.setdefault(self.index, (set(), set()))
        bids.update(p for p, _ in book.bids)
        asks.update(p for p, _ in book.asks)
        for old in [i for i in seen if i < self.index - 10]:
            del seen[old]

    def advance(self, bars: int) -> None:
        """Move the clock forward by hand and replay."""
        self.clock.advance(bars)
        self.sync()
