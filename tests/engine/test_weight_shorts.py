"""Negative target weights (shorts) in replay: WeightRunner sells below zero on perpetuals as
vectorbt's from_orders (targetpercent, direction both, cash sharing, call_seq auto) does: a
short sale needs no cash and its proceeds join the pool, a buy (a buy to cover too) is capped
by the cash, one order may cross zero. The replay's SimVenue and risk gate run the backtest's
cash model on perps (cash_margin), so the replay trades what the backtest trades."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest import Costs, run
from quantdesk.data.csv_import import ImportOptions, parse_csv
from quantdesk.data.store import OHLCV_COLUMNS, normalize
from quantdesk.model import Side
from quantdesk.strategy import StrategyError, load_strategy
from quantdesk.system.replay import replay
from tests.conftest import SAMPLE_DATA
from tests.engine.parity import assert_same_trades
from tests.engine.test_weight_runner import cash_path, frame, weights_strategy

REL = 1e-9
COSTS = Costs(fee=0.001, slippage=0.0005)


@pytest.fixture(scope="module")
def perps() -> dict[str, pd.DataFrame]:
    """The shipped BTC, ETH and LTC USD-M perpetuals, 300 daily bars of 2023."""
    out = {}
    for name in ("BTCUSDT", "ETHUSDT", "LTCUSDT"):
        parsed = parse_csv(SAMPLE_DATA / f"{name}-1d.csv", ImportOptions(market="usdm"))
        bars = normalize(parsed.frame, OHLCV_COLUMNS)
        out[parsed.key.symbol] = bars.loc["2023-01-01":"2023-10-27"]
    return out


def long_short_table(rows: int, gross: float, every: int = 7) -> list[list[float]]:
    """Every `every` bars the next of six books (NaN between: hold): long/short pairs, a flip of
    every symbol, flat, net short and all in one long; gross = the sum of |weights|."""
    g = gross
    books = [
        [g / 2, -g / 2, 0.0],
        [-g / 2, 0.0, g / 2],  # BTC crosses zero in one order, ETH covers, LTC is bought
        [0.0, 0.0, 0.0],
        [0.3 * g, 0.3 * g, -0.4 * g],
        [-g / 3, -g / 3, -g / 3],
        [g, 0.0, 0.0],  # three shorts covered (ETH, LTC first), BTC crossing into a long
    ]
    nan = [np.nan] * 3
    return [books[(i // every) % len(books)] if i % every == 0 else nan for i in range(rows)]


def assert_same_orders(bt, rp) -> None:
    """The backtest's orders, one engine fill each, in the same sequence and amounts."""
    orders = bt.portfolio.orders.records_readable
    assert len(orders) == len(rp.fills)
    assert rp.order_stats.by_status == {"filled": len(rp.fills)}  # nothing refused or clipped
    assert [str(c) for c in orders["Column"]] == [f.symbol for f in rp.fills]
    assert [str(s).lower() for s in orders["Side"]] == [f.side.value for f in rp.fills]
    for column, attr in (("Size", "amount"), ("Price", "price"), ("Fees", "fee")):
        np.testing.assert_allclose(
            [float(getattr(f, attr)) for f in rp.fills], orders[column], rtol=REL
        )


@pytest.mark.parametrize("gross", [0.9, 1.6], ids=["gross-0.9", "gross-1.6"])
@pytest.mark.parametrize("risk", [True, False], ids=["risk-gate", "no-gate"])
def test_long_short_weights_replay_matches_the_backtest(
    perps: dict, gross: float, risk: bool
) -> None:
    """Long, short and flat books on three perps: the same orders (side, size, price, fee) in
    the same sequence, the same trades (shorts among them), the same holdings and final value.
    Gross 1.6 needs the short's proceeds to pay for the longs (more than the equity long)."""
    strategy = weights_strategy(long_short_table(300, gross))
    bt = run(strategy, perps, COSTS)
    rp = replay(strategy, perps, COSTS, risk=risk)
    assert_same_orders(bt, rp)
    assert_same_trades(bt.trades, rp.trades, REL)
    directions = set(bt.trades["direction"].astype(str))
    assert directions == {"Long", "Short"}
    held = bt.portfolio.assets().iloc[-1]
    for symbol in perps:
        position = rp.portfolio.positions.get(symbol)
        quantity = float(position.quantity) if position else 0.0
        assert quantity == pytest.approx(held[symbol], rel=REL, abs=1e-12)
    assert float(rp.final_equity) == pytest.approx(float(bt.equity.iloc[-1, 0]), rel=REL)
    pd.testing.assert_series_equal(rp.stats["end_value"], bt.stats["end_value"], rtol=REL)
    # one order crossed zero (a long sold into a short): vectorbt's single order, not two
    signed: dict[str, Decimal] = {}
    crossed = 0
    for f in rp.fills:
        before = signed.get(f.symbol, Decimal(0))
        after = before + (f.amount if f.side is Side.BUY else -f.amount)
        crossed += before * after < 0
        signed[f.symbol] = after
    assert crossed > 0
    # the pool's cash never went below zero; a short's proceeds took it above the equity
    cash = cash_path(rp.fills, Decimal(COSTS.init_cash))
    assert min(cash) >= 0
    assert max(cash) > Decimal(COSTS.init_cash) * Decimal(gross / 2 + 1) * Decimal("0.9")


def test_short_and_cover_by_hand() -> None:
    """Cash 1,000, no costs. Close 0: X 0.5, Y -0.5. Open 1 (both at 10): the call sequence
    sells Y first (order value -500 < +500): 50 Y short, cash 1,500; then X buys 50, cash
    1,000. Close 1: X -1, Y 0. Open 2 (X 20, Y 5): value = 1,000 + 50 x 20 - 50 x 5 = 1,750;
    X's order -1,750 - 1,000 sells first, crossing zero: 50 + 87.5 = 137.5 in one order;
    then Y covers its 50 at 5. Final: cash 1,000 + 2,750 - 250 = 3,500, X -87.5."""
    data = {
        "X/USDT:USDT": frame([10, 10, 20], [10, 20, 20]),
        "Y/USDT:USDT": frame([10, 10, 5], [10, 5, 5]),
    }
    table = [[0.5, -0.5], [-1.0, 0.0], [np.nan, np.nan]]
    strategy = weights_strategy(table)
    costs = Costs(init_cash=1_000, fee=0.0, slippage=0.0)
    rp = replay(strategy, data, costs)
    got = [(f.symbol, f.side, f.amount, f.price) for f in rp.fills]
    assert got == [
        ("Y/USDT:USDT", Side.SELL, 50, 10),
        ("X/USDT:USDT", Side.BUY, 50, 10),
        ("X/USDT:USDT", Side.SELL, Decimal("137.5"), 20),
        ("Y/USDT:USDT", Side.BUY, 50, 5),
    ]
    assert cash_path(rp.fills, Decimal(1_000)) == [1_500, 1_000, 3_750, 3_500]
    assert rp.portfolio.positions["X/USDT:USDT"].quantity == Decimal("-87.5")
    assert rp.final_equity == 3_500 - Decimal("87.5") * 20
    bt = run(strategy, data, costs)
    assert float(rp.final_equity) == pytest.approx(float(bt.equity.iloc[-1, 0]), rel=1e-12)
    assert_same_trades(bt.trades, rp.trades, REL)


@pytest.fixture(scope="module")
def five_perps() -> dict[str, pd.DataFrame]:
    """The five shipped coins as USD-M perpetuals (~2,450 daily bars each; BNB lists later)."""
    out = {}
    for name in ("BTCUSDT", "ETHUSDT", "BNBUSDT", "LTCUSDT", "XRPUSDT"):
        parsed = parse_csv(SAMPLE_DATA / f"{name}-1d.csv", ImportOptions(market="usdm"))
        out[parsed.key.symbol] = normalize(parsed.frame, OHLCV_COLUMNS)
    return out


@pytest.mark.parametrize(
    "params", [{"top": 2, "short": 2}, {"top": 1, "short": 1, "every": 3}], ids=["2x2", "1x1"]
)
def test_momentum_rotation_long_short_matches_the_backtest(five_perps: dict, params) -> None:
    """The bundled momentum_rotation with its short side (the worst coins short) on the five
    shipped perpetuals: the backtest's orders, trades and final value."""
    strategy = load_strategy("momentum_rotation", params)
    bt = run(strategy, five_perps, COSTS)
    rp = replay(strategy, five_perps, COSTS)
    assert_same_orders(bt, rp)
    assert len(rp.fills) > 300
    assert_same_trades(bt.trades, rp.trades, REL)
    assert set(bt.trades["direction"].astype(str)) == {"Long", "Short"}
    assert float(rp.final_equity) == pytest.approx(float(bt.equity.iloc[-1, 0]), rel=REL)


def test_a_short_weight_on_spot_is_refused_in_the_engine(five_perps: dict) -> None:
    """The same strategy on spot symbols: the engine names the perpetual to use."""
    spot = {s.split(":")[0]: bars for s, bars in five_perps.items()}
    strategy = load_strategy("momentum_rotation", {"top": 1, "short": 1})
    with pytest.raises(StrategyError, match=r"spot market: shorts need a perpetual"):
        replay(strategy, spot, COSTS)
