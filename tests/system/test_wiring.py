"""What build_kernel wires for replay, paper and live: the venue's circuit breaker, order
timeouts, funding settlements and the QuoteStrategy hooks. Each test fails if its part is
unwired again."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from quantdesk.backtest.runner import to_bars
from quantdesk.engine.clock import SimClock
from quantdesk.engine.feeds import HistoricalFeed
from quantdesk.engine.order_manager import MemoryJournal
from quantdesk.engine.portfolio import Portfolio
from quantdesk.engine.runner import Intent, QuoteRunner
from quantdesk.model import (
    Costs,
    Instrument,
    Order,
    OrderStatus,
    OrderType,
    Reason,
    RetryPolicy,
    Side,
    VenueAmbiguous,
    client_order_id,
    dec,
)
from quantdesk.risk.breaker import BreakerState, CircuitOpen
from quantdesk.risk.checks import RiskEngine
from quantdesk.risk.limits import RiskConfig
from quantdesk.strategy import QuoteStrategy, Signals, SignalStrategy
from quantdesk.system.kernel import build_kernel, funding_schedule, timeout_ms, venue_breaker
from quantdesk.system.replay import replay
from quantdesk.venues.sim import SimVenue
from tests.conftest import make_bars

PERP = "BTC/USDT:USDT"
STEP = Decimal("1e-18")
HOUR = 3_600_000


class Recorder(QuoteStrategy):
    """Bids far under the market once; records the books and funding it is shown."""

    def __init__(self) -> None:
        super().__init__()
        self.books: list = []
        self.fundings: list = []

    def on_bar(self, bar, ctx):
        if bar.index != 0:
            return []
        price = (dec(bar.bar.close) * Decimal("0.5")).quantize(Decimal("0.01"))
        return [Intent(PERP, Side.BUY, OrderType.LIMIT, Decimal(1), bar.bar.time, 1, price=price)]

    def on_book(self, book, ctx):
        self.books.append(book)
        return []

    def on_funding(self, funding, ctx):
        self.fundings.append(funding)
        return []


def kernel_for(bars: pd.DataFrame, **kw):
    wide = to_bars({PERP: bars})
    feed = HistoricalFeed(wide, HOUR)
    clock = SimClock(int(feed.times[0]))
    venue = kw.pop("venue", None) or SimVenue([PERP], {"USDT": Decimal(100_000)}, clock=clock)
    kernel = build_kernel(
        venue,
        Portfolio(cash={"USDT": Decimal(100_000)}),
        MemoryJournal(),
        clock,
        breaker=kw.pop("breaker", None) or venue_breaker(venue.name, None),
        runners=kw.pop("runners", ()),
        risk=kw.pop("risk", None),
        amount_step=STEP,
        timeframe_ms=HOUR,
        **kw,
    )
    return kernel, feed


async def test_every_venue_request_goes_through_its_breaker() -> None:
    class Down(SimVenue):
        async def create_order(self, order):
            raise VenueAmbiguous("502 Bad Gateway")

        async def fetch_order_by_client_id(self, symbol, client_order_id):
            raise VenueAmbiguous("502 Bad Gateway")

    bars = make_bars(3, seed=1)
    config = RiskConfig(breaker_failures=2)
    clock = SimClock(0)
    venue = Down([PERP], {"USDT": Decimal(1000)}, clock=clock)
    breaker = venue_breaker(venue.name, config)
    rules = {PERP: Instrument(PERP, STEP, Decimal("1e-12"))}
    portfolio = Portfolio(cash={"USDT": Decimal(1000)})
    risk = RiskEngine(rules, config, portfolio, clock=clock, breakers={venue.name: breaker})
    kernel, _ = kernel_for(
        bars, venue=venue, breaker=breaker, risk=risk, retry=RetryPolicy(max_attempts=2)
    )
    order = Order(client_order_id("s", PERP, 0, 0), PERP, Side.BUY, OrderType.MARKET, Decimal(1), 0)
    await kernel.om.submit(order)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        await kernel.venue.create_order(order)
    denied = risk.check_order(order, reference_price=Decimal(100), position=Decimal(0), free={})
    assert denied.reason is Reason.CIRCUIT_OPEN


def test_build_kernel_refuses_a_risk_engine_blind_to_the_breaker() -> None:
    bars = make_bars(3, seed=1)
    config = RiskConfig()
    rules = {PERP: Instrument(PERP, STEP, Decimal("1e-12"))}
    risk = RiskEngine(rules, config, Portfolio(cash={"USDT": Decimal(1)}), clock=SimClock(0))
    with pytest.raises(ValueError, match="breaker"):
        kernel_for(bars, risk=risk)


async def test_order_timeout_cancels_a_resting_order() -> None:
    bars = make_bars(10, seed=2)
    kernel, feed = kernel_for(bars, runners=[QuoteRunner(Recorder(), [PERP], strategy_id="q")])
    await kernel.run(feed)
    (order,) = kernel.om.orders.values()
    assert order.status is OrderStatus.NEW  # no timeout: it rests

    kernel, feed = kernel_for(
        bars,
        runners=[QuoteRunner(Recorder(), [PERP], strategy_id="q")],
        order_timeout_ms=timeout_ms(RiskConfig(order_timeout_s=3 * 3600)),
    )
    await kernel.run(feed)
    (order,) = kernel.om.orders.values()
    assert order.status is OrderStatus.CANCELED
    assert order.updated_ms - order.created_ms >= 3 * HOUR


class Holder(Recorder):
    """Buys one unit at the first close and holds it."""

    def on_bar(self, bar, ctx):
        if bar.index != 0:
            return []
        return [Intent(PERP, Side.BUY, OrderType.MARKET, Decimal(1), bar.bar.time, 1)]


async def test_quote_strategy_sees_books_and_funding() -> None:
    bars = make_bars(6, seed=3)
    holder = Holder()
    rates = pd.DataFrame({"funding_rate": [0.001, -0.002, 0.0005]}, index=bars.index[2:5])
    kernel, feed = kernel_for(
        bars,
        runners=[QuoteRunner(holder, [PERP], strategy_id="q")],
        funding=funding_schedule({PERP: rates}),
    )
    await kernel.run(feed)
    assert len(holder.books) == len(bars)
    first = holder.books[0]
    assert first.symbol == PERP and first.bid == first.ask == dec(bars["open"].iloc[0])
    # the position (1 unit, bought at bar 1's open) pays/receives funding at the last close
    closes = bars["close"].map(dec)
    rows = zip(range(2, 5), rates["funding_rate"], strict=True)
    expected = [-closes.iloc[i - 1] * dec(r) for i, r in rows]
    assert [f.amount for f in holder.fundings] == expected
    assert holder.fundings == kernel.funding_events
    assert kernel.portfolio.funding == sum(expected)


class AlwaysLong(SignalStrategy):
    """Enters on the first bar and holds."""

    def signals(self, bars):
        close = bars["close"]
        entries = pd.DataFrame(False, index=close.index, columns=close.columns)
        entries.iloc[0] = True
        return Signals(entries=entries, exits=entries & False)


def test_replay_settles_funding_on_the_position_held() -> None:
    bars = make_bars(12, seed=4)
    times = bars.index[3:12:4]
    rates = pd.Series([0.001, -0.0005, 0.002], index=times)
    result = replay(AlwaysLong(), {PERP: bars}, Costs(fee=0.001), funding={PERP: rates})
    (entry,) = result.fills
    qty = entry.amount
    closes = bars["close"]
    # settled at each time's step open, at the last close before it
    expected = sum(
        -qty * dec(closes.iloc[closes.index.get_loc(t) - 1]) * dec(r) for t, r in rates.items()
    )
    assert result.portfolio.funding == expected != 0
    assert result.extra["funding"] == expected
    without = replay(AlwaysLong(), {PERP: bars}, Costs(fee=0.001))
    assert result.final_equity == without.final_equity + expected
