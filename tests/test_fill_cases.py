"""One table of fill cases (hand-written OHLC bars, expected fills) run against the vectorbt
backtest, the engine's replay and the matching core alike, in the spirit of freqtrade's
tests/optimize/test_backtest_detail.py. A case the backtest cannot express (resting limit
orders) runs against the matching core only."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pandas as pd
import pytest

from quantdesk.backtest.runner import run
from quantdesk.model import Costs, Side
from quantdesk.system.replay import replay
from quantdesk.venues.book import BookConfig
from quantdesk.venues.matching import MatchingCore
from quantdesk.venues.models import Bar, MarketSpec, OrderRequest, OrderStatus, OrderType
from tests.backtest.conftest import make_bars, scripted

D = Decimal
SYM = "BTC/USDT"
HOUR = 3_600_000
SPEC = MarketSpec(
    SYM, "BTCUSDT", "BTC", "USDT", False, D("0.01"), D("0.001"), D("0.001"), D("1e6"), D(0)
)
FLAT = (100.0, 101.0, 99.0, 100.0)


@dataclass(frozen=True)
class Case:
    """Bars, signals (decided on the closes of these bar numbers) and the expected round trip
    (entry bar, entry price, exit bar, exit price); exit None = still open at the end."""

    name: str
    bars: list[tuple[float, float, float, float]]
    entries: tuple[int, ...]
    trade: tuple[int, float, int | None, float | None]
    exits: tuple[int, ...] = ()
    sl: float = 0.0
    tp: float = 0.0


CASES = [
    Case("entry at next open", [FLAT, (102, 103, 101, 102), FLAT], (0,), (1, 102, None, None)),
    Case(
        "exit signal at next open",
        [FLAT, (102, 103, 101, 102), (103, 104, 102, 103), FLAT],
        (0,),
        (1, 102, 3, 100),
        exits=(2,),
    ),
    Case(
        "stop inside the bar",
        [FLAT, FLAT, (99, 100, 94, 96), FLAT],
        (0,),
        (1, 100, 2, 95),
        sl=0.05,
    ),
    Case(
        "gap through the stop", [FLAT, FLAT, (90, 92, 88, 91), FLAT], (0,), (1, 100, 2, 90), sl=0.05
    ),
    Case(
        "the stop is live on the entry bar (after the entry at its open)",
        [FLAT, (100, 101, 90, 100), (99, 100, 94, 96), FLAT],
        (0,),
        (1, 100, 1, 95),
        sl=0.05,
    ),
    Case(
        "the take-profit is live on the entry bar",
        [FLAT, (100, 112, 99, 108), FLAT],
        (0,),
        (1, 100, 1, 110),
        tp=0.1,
    ),
    Case(
        "stop and take-profit on the entry bar: the stop wins",
        [FLAT, (100, 112, 94, 100), FLAT],
        (0,),
        (1, 100, 1, 95),
        sl=0.05,
        tp=0.1,
    ),
    Case(
        "take-profit inside the bar",
        [FLAT, FLAT, (101, 112, 100, 108), FLAT],
        (0,),
        (1, 100, 2, 110),
        tp=0.1,
    ),
    Case(
        "gap above the take-profit fills at the open",
        [FLAT, FLAT, (115, 116, 113, 114), FLAT],
        (0,),
        (1, 100, 2, 115),
        tp=0.1,
    ),
    Case(
        "stop and take-profit in one bar: the stop wins",
        [FLAT, FLAT, (100, 112, 94, 100), FLAT],
        (0,),
        (1, 100, 2, 95),
        sl=0.05,
        tp=0.1,
    ),
    Case(
        "exit signal and stop in the same bar: the exit at the open comes first",
        [FLAT, FLAT, FLAT, (99, 100, 94, 96), FLAT],
        (0,),
        (1, 100, 3, 99),
        exits=(2,),
        sl=0.05,
    ),
    Case(
        "exit signal and take-profit in the same bar: the exit at the open comes first",
        [FLAT, FLAT, FLAT, (101, 112, 100, 108), FLAT],
        (0,),
        (1, 100, 3, 101),
        exits=(2,),
        tp=0.1,
    ),
    Case(
        "exit signal into a gap through the stop: both are the open",
        [FLAT, FLAT, FLAT, (90, 92, 88, 91), FLAT],
        (0,),
        (1, 100, 3, 90),
        exits=(2,),
        sl=0.05,
    ),
]


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-12)


def ms(bars: pd.DataFrame, i: int) -> int:
    return int(bars.index[i].timestamp() * 1000)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_backtest_and_replay(case: Case) -> None:
    bars = make_bars(case.bars)
    strategy = scripted(case.entries, case.exits, sl_stop=case.sl, tp_stop=case.tp)
    entry_bar, entry_price, exit_bar, exit_price = case.trade
    (bt,) = run(strategy, {SYM: bars}, Costs()).trades.itertuples()
    # vectorbt works in floats: prices agree to the last few ulps
    assert (bt.entry_time, bt.entry_price) == (bars.index[entry_bar], approx(entry_price))
    if exit_bar is None:
        assert bt.status == "Open"
    else:
        assert (bt.exit_time, bt.exit_price) == (bars.index[exit_bar], approx(exit_price))
    fills = replay(strategy, {SYM: bars}, Costs()).fills
    expected = [(ms(bars, entry_bar), Side.BUY, D(str(entry_price)))]
    if exit_bar is not None:
        expected.append((ms(bars, exit_bar), Side.SELL, D(str(exit_price))))
    assert [(f.timestamp, f.side, f.price) for f in fills] == expected
    assert float(fills[0].amount) == approx(bt.size)


def core_with(bars: list[tuple[float, float, float, float]], upto: int) -> MatchingCore:
    """A core whose book was last seeded from bar `upto`."""
    core = MatchingCore([SPEC], BookConfig(spread_bps=D(0)))
    core.add_account("a", {"USDT": D(1_000_000), "BTC": D(10)})
    for i in range(upto + 1):
        core.on_bar(SYM, dec_bar(i, bars[i]), (i + 1) * HOUR)
    return core


def dec_bar(i: int, row: tuple[float, float, float, float]) -> Bar:
    o, h, low, c = (D(str(v)) for v in row)
    return Bar(i * HOUR, o, h, low, c, D(1))


def first_fill(core: MatchingCore, order, bars, start: int) -> tuple[int, Decimal] | None:
    for i in range(start, len(bars)):
        core.on_bar(SYM, dec_bar(i, bars[i]), (i + 1) * HOUR)
        if order.fills:
            return i, order.fills[0].price
    return None


@pytest.mark.parametrize(
    "case", [c for c in CASES if (c.sl or c.tp) and not c.exits], ids=lambda c: c.name
)
def test_matching_core_protective_orders(case: Case) -> None:
    entry_bar, entry_price, exit_bar, exit_price = case.trade
    # placed at the entry bar's open: the core matches them against that bar when it closes
    core = core_with(case.bars, entry_bar - 1)
    orders = []
    entry = D(str(entry_price))
    if case.sl:
        stop = entry * (1 - D(str(case.sl)))
        orders.append(OrderRequest(SYM, Side.SELL, OrderType.STOP_LOSS, qty=D(1), stop_price=stop))
    if case.tp:
        target = entry * (1 + D(str(case.tp)))
        orders.append(
            OrderRequest(SYM, Side.SELL, OrderType.TAKE_PROFIT, qty=D(1), stop_price=target)
        )
    placed = [core.submit(core.accounts["a"], r) for r in orders]
    fills = {}
    for i in range(entry_bar, len(case.bars)):
        core.on_bar(SYM, dec_bar(i, case.bars[i]), (i + 1) * HOUR)
        for order in placed:
            if order.fills and order.id not in fills:
                fills[order.id] = (i, order.fills[0].price)
        if fills:
            break
    assert list(fills.values())[:1] == [(exit_bar, D(str(exit_price)))]


LIMIT_CASES = [
    ("touching the limit does not fill", (100, 101, 99, 100), None),
    ("trading through the limit fills at it", (100, 101, 98.5, 99.5), 99),
    ("opening below a buy limit fills at the open", (98, 99, 97, 98.5), 98),
]


@pytest.mark.parametrize(("name", "row", "price"), LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES])
def test_matching_core_limit_through_and_touch(name: str, row, price) -> None:
    bars = [FLAT, row]
    core = core_with(bars, 0)
    order = core.submit(
        core.accounts["a"], OrderRequest(SYM, Side.BUY, OrderType.LIMIT, qty=D(1), price=D(99))
    )
    assert order.status is OrderStatus.NEW
    got = first_fill(core, order, bars, 1)
    assert got == (None if price is None else (1, D(str(price))))
