"""Funding of perpetuals in the vectorbt backtest (issue 12 item 2), on the shipped Binance data.

The convention (quantdesk.backtest.funding, the engine's): a settlement at time t is booked at
the open of the first bar opening at or after t, on the position held then, marked at the
previous bar's close; received = -quantity x close x rate (a long pays a positive rate).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest import Costs, run
from quantdesk.data.csv_import import ImportOptions, parse_csv
from quantdesk.data.samples import sample_path
from quantdesk.data.store import OHLCV_COLUMNS, normalize
from quantdesk.strategy import Signals, SignalStrategy, load_strategy, repo_strategies_dir
from tests.conftest import run_cli

PERP = "BTC/USDT:USDT"
SAMPLES = sample_path("binance-um")


class HoldFromStart(SignalStrategy):
    """Enter on the first close, never exit: 1x long for the whole period."""

    timeframe = "1d"

    def signals(self, bars: pd.DataFrame) -> Signals:
        """An entry on the first bar only."""
        close = bars["close"]
        entries = pd.DataFrame(False, index=close.index, columns=close.columns)
        entries.iloc[0] = True
        return Signals(entries=entries, exits=pd.DataFrame(False, close.index, close.columns))


@pytest.fixture(scope="module")
def btc_perp() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Real BTCUSDT perpetual daily bars and funding rates, 2020-2026."""
    bars = parse_csv(SAMPLES / "BTCUSDT-1d.csv", ImportOptions(market="usdm"))
    funding = parse_csv(SAMPLES / "BTCUSDT-funding.csv", ImportOptions(market="usdm"))
    assert bars.key.symbol == PERP == funding.key.symbol
    return normalize(bars.frame, OHLCV_COLUMNS), funding.frame


def expected_funding(bars: pd.DataFrame, rates: pd.Series, quantity: float) -> tuple[float, int]:
    """A constant long of `quantity` from the second bar on: sum over settlements of
    -quantity x (close before the booking bar) x rate, and how many settlements that is."""
    total, count = 0.0, 0
    opens = list(bars.index)
    for t, rate in rates.items():
        later = [i for i, o in enumerate(opens) if o >= t]
        if not later:
            continue  # after the last bar's open: the run ends first
        i = later[0]
        if i < 2:
            continue  # booked at the first or second open: the entry fills at the second open
        total += -quantity * float(bars["close"].iloc[i - 1]) * float(rate)
        count += 1
    return total, count


def test_a_year_long_btc_perp_pays_the_funding_of_its_notional(btc_perp) -> None:
    bars, funding = btc_perp
    year = bars.loc["2023"]
    rates = funding["funding_rate"].loc["2023"]
    # the audit's figures: 1,095 settlements in 2023, rates summing to ~0.0787 (it said 0.0789)
    assert len(rates) == 1_095
    assert rates.sum() == pytest.approx(0.07866, abs=1e-5)
    costs = Costs(fee=0.0, slippage=0.0)
    unfunded = run(HoldFromStart(), {PERP: year}, costs)
    funded = run(HoldFromStart(), {PERP: year}, costs, funding={PERP: funding})
    quantity = float(funded.trades["size"].iloc[0])
    assert quantity == pytest.approx(10_000 / year["open"].iloc[1], rel=1e-12)  # 1x, all in
    want, count = expected_funding(year, rates, quantity)
    # the entry fills at the 2023-01-02 open, after that open's booking: the 4 settlements up
    # to it meet no position; the 2 after the last bar's open (12-31 00:00) are not booked
    assert count == 1_095 - 4 - 2
    assert want == pytest.approx(-1_465, abs=10)  # ~1,500 USDT paid, as the audit said
    stats = funded.stats.loc[PERP]
    assert stats["funding"] == pytest.approx(want, rel=1e-12)
    # Funding moves equity and nothing else here: the same trade, the end value lower by it.
    assert unfunded.stats.loc[PERP, "funding"] == 0.0
    assert stats["end_value"] == pytest.approx(
        unfunded.stats.loc[PERP, "end_value"] + want, rel=1e-12
    )
    assert funded.equity[PERP].iloc[-1] == pytest.approx(stats["end_value"], rel=1e-12)
    # reported apart: price PnL is the unfunded run's, fees none, end = start + price + funding
    assert stats["price_pnl"] == pytest.approx(unfunded.stats.loc[PERP, "price_pnl"], rel=1e-12)
    assert stats["fees_paid"] == 0.0
    assert stats["end_value"] == pytest.approx(10_000 + stats["price_pnl"] + want, rel=1e-12)
    # the equity curve drops by each booking: its daily difference to the unfunded curve
    gap = (funded.equity[PERP] - unfunded.equity[PERP]).diff().fillna(0.0)
    opens = list(year.index)
    rates_at = pd.Series(0.0, index=year.index)
    for t, rate in rates.items():
        later = [i for i, o in enumerate(opens) if o >= t]
        if later and later[0] >= 2:
            rates_at.iloc[later[0]] += rate
    prev_close = year["close"].shift(1)
    np.testing.assert_allclose(gap, -quantity * prev_close.fillna(0) * rates_at, atol=1e-8)
    # a funded return below the unfunded one; Sharpe etc. follow the funded equity
    assert stats["total_return"] < unfunded.stats.loc[PERP, "total_return"]
    assert stats["sharpe"] < unfunded.stats.loc[PERP, "sharpe"]
    labels = dict(funded.summary_table()[PERP])
    assert labels["Funding"] == f"{want:+,.2f}"


def test_spot_symbols_and_symbols_without_a_series_pay_nothing(btc_perp) -> None:
    bars, funding = btc_perp
    year = bars.loc["2023"]
    spot = run(HoldFromStart(), {"BTC/USDT": year}, Costs(), funding={"BTC/USDT": funding})
    assert spot.funding is None and spot.stats["funding"].iloc[0] == 0.0
    other = run(HoldFromStart(), {PERP: year}, Costs(), funding={"ETH/USDT:USDT": funding})
    assert other.funding is None


def test_funding_paid_shrinks_later_entries(btc_perp) -> None:
    """Each entry spends the fraction of the cash left after earlier trades and the funding
    booked up to its bar (as the engine's sleeves do): a plain loop over the trades."""
    bars, funding = btc_perp
    fee, fraction = 0.001, 0.5
    costs = Costs(fee=fee, slippage=0.0005, size=fraction)
    result = run(load_strategy("sma_cross", {"fast": 10, "slow": 30}), {PERP: bars}, costs)
    funded = run(
        load_strategy("sma_cross", {"fast": 10, "slow": 30}),
        {PERP: bars},
        costs,
        funding={PERP: funding},
    )
    assert result.funding is None
    trades = funded.trades
    assert len(trades) > 20
    booked = funded.funding[PERP].cumsum()
    realized = 0.0
    for k, trade in trades.iterrows():
        entry = pd.Timestamp(trade["entry_time"])
        cash = 10_000.0 + realized + booked.loc[:entry].iloc[-1]
        spent = trade["size"] * trade["entry_price"] * (1 + fee)
        assert spent == pytest.approx(fraction * cash, rel=1e-9), k
        realized += trade["pnl"]  # net of both fees
    # 2020-2026 funding was mostly positive: a long strategy paid it
    total = funded.stats.loc[PERP, "funding"]
    assert total == pytest.approx(float(funded.funding[PERP].sum()), rel=1e-12)
    assert total < -1_000
    stats = funded.stats.loc[PERP]
    assert stats["end_value"] == pytest.approx(
        10_000 + stats["price_pnl"] - stats["fees_paid"] + stats["funding"], rel=1e-12
    )


def test_cli_backtest_of_a_perp_shows_the_funding_line(tmp_path, monkeypatch, capsys) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("QUANTDESK_DATA", str(data))
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["data", "import", "--sample", "binance-um", "--market", "usdm"], capsys)
    assert code == 0, err
    args = ["backtest", "--strategies-dir", str(repo_strategies_dir()), "--strategy", "sma_cross"]
    args += ["--timeframe", "1d", "--start", "2023-01-01", "--end", "2023-12-31", "--all-in"]
    args += ["--param", "fast=5", "--param", "slow=20", "--fee", "0.0005"]
    code, out, err = run_cli([*args, "--symbols", PERP], capsys)
    assert code == 0, err
    line = next(x for x in out.splitlines() if "Funding" in x)
    stats_path = next(x.split(": ", 1)[1] for x in out.splitlines() if "stats.json" in x)
    stats = json.loads((tmp_path / Path(stats_path)).read_text())["stats"][PERP]
    assert stats["funding"] < -50  # a long in 2023 paid
    assert f"{stats['funding']:+,.2f}" in line
    price = next(x for x in out.splitlines() if "Price PnL" in x)
    assert f"{stats['price_pnl']:+,.2f}" in price
    end = stats["start_value"] + stats["price_pnl"] - stats["fees_paid"] + stats["funding"]
    assert stats["end_value"] == pytest.approx(end, rel=1e-12)


def test_target_weights_on_perps_book_each_symbols_funding_in_the_shared_equity() -> None:
    """momentum_rotation on the BTC and ETH perpetuals: one cash-sharing portfolio whose end
    value is the unfunded one plus the funding of every symbol, from each symbol's holdings."""
    data, funding = {}, {}
    for name in ("BTCUSDT", "ETHUSDT"):
        bars = parse_csv(SAMPLES / f"{name}-1d.csv", ImportOptions(market="usdm"))
        data[bars.key.symbol] = normalize(bars.frame, OHLCV_COLUMNS)
        rates = parse_csv(SAMPLES / f"{name}-funding.csv", ImportOptions(market="usdm"))
        funding[rates.key.symbol] = rates.frame
    strategy = load_strategy("momentum_rotation", {"top": 1})
    unfunded = run(strategy, data, Costs(fee=0.001))
    funded = run(strategy, data, Costs(fee=0.001), funding=funding)
    assets = funded.portfolio.assets()
    total = 0.0
    for symbol, frame in data.items():
        close = frame["close"].reindex(funded.bars.index).ffill()
        for t, rate in funding[symbol]["funding_rate"].items():
            i = int(funded.bars.index.searchsorted(t, side="left"))
            if 1 <= i < len(funded.bars):
                total += -assets[symbol].iloc[i - 1] * close.iloc[i - 1] * rate
    stats = funded.stats.loc["portfolio"]
    assert total < -1_000
    assert stats["funding"] == pytest.approx(total, rel=1e-9)
    assert stats["end_value"] == pytest.approx(
        unfunded.stats.loc["portfolio", "end_value"] + total, rel=1e-12
    )
