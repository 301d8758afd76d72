"""Parity: replaying a SignalStrategy through the engine gives the vectorbt backtest's trades
(times, sides, sizes, prices) and final equity within 1e-9 relative. Guards every later change."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest import Costs, run
from quantdesk.data.csv_import import ImportOptions, parse_csv
from quantdesk.data.store import OHLCV_COLUMNS, normalize
from quantdesk.data.synthetic import SynthSpec, generate_market
from quantdesk.strategy import load_strategy
from quantdesk.system.replay import replay
from tests.conftest import SAMPLE_DATA
from tests.engine.parity import assert_same_trades

REL = 1e-9
COLUMNS = ["column", "direction", "status", "size", "entry_time", "entry_price", "exit_time"]


@pytest.fixture(scope="module")
def synthetic() -> dict[str, pd.DataFrame]:
    """Two synthetic hourly spot markets, a few hundred bars each."""
    market = generate_market(SynthSpec(seed=11, days=25))
    return {s: market.bars(s, "1h").iloc[:600] for s in ("BTC/USDT", "ETH/USDT")}


@pytest.fixture(scope="module")
def binance_daily() -> dict[str, pd.DataFrame]:
    """Real Binance USD-M daily bars (~2,400 per symbol) shipped as a package sample."""
    out = {}
    for name in ("BTCUSDT", "ETHUSDT"):
        parsed = parse_csv(SAMPLE_DATA / f"{name}-1d.csv", ImportOptions(market="usdm"))
        out[parsed.key.symbol] = normalize(parsed.frame, OHLCV_COLUMNS)
    return out


def assert_parity(
    strategy_name: str, params: dict, data: dict, costs: Costs, funding: dict | None = None
) -> int:
    """Backtest and replay the same strategy; compare trade by trade and final equity (and
    the funding paid, when perpetuals settle funding)."""
    strategy = load_strategy(strategy_name, params)
    bt = run(strategy, data, costs, funding=funding)
    rp = replay(strategy, data, costs, funding=funding)
    a, b = bt.trades, rp.trades
    assert_same_trades(a, b, REL)
    # Sides: every engine fill alternates buy (entry) / sell (exit) per symbol as vectorbt's orders.
    orders = bt.portfolio.orders.records_readable
    assert len(orders) == len(rp.fills)
    for symbol in data:
        vb = orders[orders["Column"] == symbol]
        en = [f for f in rp.fills if f.symbol == symbol]
        assert [str(s).lower() for s in vb["Side"]] == [f.side.value for f in en]
        np.testing.assert_allclose([float(f.price) for f in en], vb["Price"], rtol=REL)
        np.testing.assert_allclose([float(f.amount) for f in en], vb["Size"], rtol=REL)
    backtest_equity = float(bt.equity.iloc[-1].sum())
    assert float(rp.final_equity) == pytest.approx(backtest_equity, rel=REL)
    # The stats table of the replay is the backtest's, computed from the engine's fills.
    pd.testing.assert_series_equal(
        rp.stats["end_value"], bt.stats["end_value"], rtol=REL, check_names=False
    )
    assert list(rp.stats["trades"]) == list(bt.stats["trades"])
    for col in ("funding", "price_pnl", "fees_paid"):
        pd.testing.assert_series_equal(
            rp.stats[col], bt.stats[col], rtol=REL, atol=1e-6, check_names=False
        )
    assert float(rp.extra["funding"]) == pytest.approx(bt.stats["funding"].sum(), rel=REL)
    return len(a)


COSTS = Costs(fee=0.001, slippage=0.0005)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("sma_cross", {"fast": 5, "slow": 20}),
        ("sma_cross", {"fast": 5, "slow": 20, "sl_stop": 0.01, "tp_stop": 0.015}),
        ("rsi_reversion", {}),
        ("rsi_reversion", {"sl_stop": 0.01}),
    ],
)
def test_parity_synthetic(name: str, params: dict, synthetic: dict) -> None:
    assert_parity(name, params, synthetic, COSTS)


@pytest.mark.parametrize(
    ("name", "params", "symbol"),
    [
        ("sma_cross", {"fast": 10, "slow": 30}, "BTC/USDT:USDT"),
        ("sma_cross", {"fast": 10, "slow": 30}, "ETH/USDT:USDT"),
        ("sma_cross", {"fast": 10, "slow": 30, "sl_stop": 0.05, "tp_stop": 0.1}, "BTC/USDT:USDT"),
        ("rsi_reversion", {}, "BTC/USDT:USDT"),
        ("rsi_reversion", {"sl_stop": 0.08}, "ETH/USDT:USDT"),
    ],
)
def test_parity_binance_daily(name: str, params: dict, symbol: str, binance_daily: dict) -> None:
    # One perpetual per replay: on a USD-M account several positions share one margin wallet,
    # so one sleeve's open loss can refuse another's entry, which vectorbt's independent
    # columns never do.
    data = {symbol: binance_daily[symbol]}
    assert len(data[symbol]) > 2_000
    assert_parity(name, params, data, COSTS)


@pytest.fixture(scope="module")
def binance_funding() -> dict[str, pd.DataFrame]:
    """The shipped BTC and ETH USD-M funding rates, 2020-2026, every 8 hours."""
    out = {}
    for name in ("BTCUSDT", "ETHUSDT"):
        parsed = parse_csv(SAMPLE_DATA / f"{name}-funding.csv", ImportOptions(market="usdm"))
        out[parsed.key.symbol] = parsed.frame
    return out


@pytest.mark.parametrize(
    ("params", "symbol", "size"),
    [
        ({"fast": 10, "slow": 30}, "BTC/USDT:USDT", None),
        ({"fast": 10, "slow": 30, "sl_stop": 0.05, "tp_stop": 0.1}, "ETH/USDT:USDT", 0.5),
    ],
)
def test_parity_with_funding(
    params: dict, symbol: str, size: float | None, binance_daily: dict, binance_funding: dict
) -> None:
    """Funding paid at each settlement moves both equities alike and, through the cash left,
    the later entries' sizes: trades, funding, price PnL and final equity still agree."""
    costs = Costs(fee=0.001, slippage=0.0005, size=size)
    data = {symbol: binance_daily[symbol]}
    assert assert_parity("sma_cross", params, data, costs, funding=binance_funding) > 20
    bt = run(load_strategy("sma_cross", params), data, costs, funding=binance_funding)
    assert bt.stats.loc[symbol, "funding"] < -100  # longs in 2020-2026 paid


def test_parity_with_a_fraction_per_entry(synthetic: dict) -> None:
    """Sized like live (15% of the sleeve per entry): backtest and replay still agree."""
    costs = Costs(fee=0.001, slippage=0.0005, size=0.15)
    data = {"BTC/USDT": synthetic["BTC/USDT"]}
    assert assert_parity("sma_cross", {"fast": 5, "slow": 20, "sl_stop": 0.01}, data, costs) > 3
    rp = replay(load_strategy("sma_cross", {"fast": 5, "slow": 20}), data, costs)
    first = rp.fills[0]
    # 15% of 10,000, the fee on top: amount x price x (1 + fee) = 1,500 (to the amount step)
    spent = first.amount * first.price * (1 + Decimal("0.001"))
    assert spent == pytest.approx(Decimal(1_500), abs=Decimal("0.01"))


def test_parity_without_costs_keeps_whole_cash_invested(synthetic: dict) -> None:
    data = {"BTC/USDT": synthetic["BTC/USDT"]}
    assert_parity("sma_cross", {"fast": 5, "slow": 20}, data, Costs())
    rp = replay(load_strategy("sma_cross", {"fast": 5, "slow": 20}), data, Costs())
    # size=inf: the first entry spends the whole 10,000 (to the amount step).
    first = rp.fills[0]
    assert first.amount * first.price == pytest.approx(Decimal(10_000), abs=Decimal("1e-10"))
