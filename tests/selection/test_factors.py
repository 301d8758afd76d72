"""Each factor against a direct pandas computation on small series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.errors import ConfigError, DataError
from quantdesk.selection.factors import (
    FactorConfig,
    MarketInputs,
    compute_factors,
    factor_names,
    load_supply,
)
from quantdesk.selection.panel import Panel

CFG = FactorConfig()


@pytest.fixture(scope="module")
def factors(two_coin_panel: Panel):
    return compute_factors(two_coin_panel)


def sma(s: pd.Series, n: int) -> pd.Series:
    return s.rolling(n).mean()


def check(actual: pd.DataFrame, expected_per_symbol) -> None:
    for symbol in actual.columns:
        expected = expected_per_symbol(symbol)
        got = actual[symbol]
        assert got.notna().sum() >= 5, f"{symbol}: factor mostly NaN"
        pd.testing.assert_series_equal(got, expected, check_names=False, rtol=1e-9, atol=1e-12)


def series(panel: Panel, symbol: str) -> dict[str, pd.Series]:
    return {f: getattr(panel, f)[symbol] for f in ("open", "high", "low", "close", "volume")}


def test_panel_keeps_listing_gaps_and_fills_holes(two_coin_panel: Panel) -> None:
    close = two_coin_panel.close["BBB/USDT"]
    assert close[:"2024-01-20"].isna().all()  # not listed yet: stays NaN
    hole = pd.Timestamp("2024-03-01", tz="UTC")
    assert close[hole] == close[hole - pd.Timedelta("1D")]  # missing bar carries the close
    assert two_coin_panel.volume["BBB/USDT"][hole] == 0.0


def test_rsi_matches_pandas(two_coin_panel: Panel, factors) -> None:
    def expected(sym: str) -> pd.Series:
        delta = two_coin_panel.close[sym].diff()
        up, down = delta.clip(lower=0), (-delta).clip(lower=0)
        return 100 - 100 / (1 + sma(up, 14) / sma(down, 14))

    check(factors["rsi"], expected)


def test_macd_hist_matches_pandas(two_coin_panel: Panel, factors) -> None:
    def expected(sym: str) -> pd.Series:
        close = two_coin_panel.close[sym]
        macd = sma(close, 12) - sma(close, 26)
        return (macd - sma(macd, 9)) / close

    check(factors["macd_hist"], expected)


def test_bollinger_pctb_matches_pandas(two_coin_panel: Panel, factors) -> None:
    def expected(sym: str) -> pd.Series:
        close = two_coin_panel.close[sym]
        mid, std = sma(close, 20), close.rolling(20).std(ddof=0)
        return (close - (mid - 2 * std)) / (4 * std)

    check(factors["bb_pctb"], expected)


@pytest.mark.parametrize("window", [7, 30, 90])
def test_momentum_matches_pandas(two_coin_panel: Panel, factors, window: int) -> None:
    check(factors[f"momentum_{window}"], lambda s: two_coin_panel.close[s].pct_change(window))


def test_change_and_volatility_match_pandas(two_coin_panel: Panel, factors) -> None:
    check(factors["change_1"], lambda s: two_coin_panel.close[s].pct_change())

    def vol(sym: str) -> pd.Series:
        logret = np.log(two_coin_panel.close[sym]).diff()
        return logret.rolling(30).std(ddof=0) * np.sqrt(365)

    check(factors["volatility"], vol)


def test_trend_matches_pandas(two_coin_panel: Panel, factors) -> None:
    def expected(sym: str) -> pd.Series:
        b = series(two_coin_panel, sym)
        prev = b["close"].shift()
        tr = pd.concat(
            [b["high"] - b["low"], (b["high"] - prev).abs(), (b["low"] - prev).abs()], axis=1
        ).max(axis=1, skipna=False)
        tr.iloc[0] = b["high"].iloc[0] - b["low"].iloc[0]
        first = b["close"].first_valid_index()
        tr[first] = b["high"][first] - b["low"][first]  # no previous close on the first bar
        return (b["close"] - sma(b["close"], 20)) / sma(tr, 20)

    check(factors["trend"], expected)


def test_volume_factors_match_pandas(two_coin_panel: Panel, factors) -> None:
    def qv(sym: str) -> pd.Series:
        return two_coin_panel.close[sym] * two_coin_panel.volume[sym]

    check(factors["quote_volume"], lambda s: sma(qv(s), 30))
    check(factors["volume_surge"], lambda s: sma(qv(s), 3) / sma(qv(s), 30))


def test_listing_age_counts_bars_since_listing(factors) -> None:
    age = factors["listing_age"]["BBB/USDT"]
    assert age[:"2024-01-20"].isna().all()
    assert age["2024-01-21"] == 1
    assert age["2024-01-30"] == 10
    assert factors["listing_age"]["AAA/USDT"].iloc[-1] == 120


def test_as_of_takes_the_last_bar_at_or_before(factors) -> None:
    snap = factors.as_of("2024-02-10 13:00")
    assert snap.attrs["time"] == pd.Timestamp("2024-02-10", tz="UTC")
    assert snap.loc["BBB/USDT", "listing_age"] == 21
    assert snap.loc["AAA/USDT", "momentum_7"] == factors["momentum_7"].loc["2024-02-10", "AAA/USDT"]
    with pytest.raises(DataError, match="before the data"):
        factors.as_of("2023-12-31")


def test_spread_and_market_cap_need_inputs(two_coin_panel: Panel, tmp_path) -> None:
    with pytest.raises(ConfigError, match="needs a spread table"):
        compute_factors(two_coin_panel, ["spread"])
    assert "market_cap" not in factor_names()
    supply_csv = tmp_path / "supply.csv"
    supply_csv.write_text("symbol,circulating_supply\nAAA/USDT,1000\n")
    spread = pd.DataFrame(
        {"AAA/USDT": [0.001, 0.002], "BBB/USDT": [0.01, 0.02]},
        index=pd.DatetimeIndex(["2024-02-01 12:00", "2024-03-05"], tz="UTC"),
    )
    inputs = MarketInputs(spread=spread, supply=load_supply(supply_csv))
    fs = compute_factors(two_coin_panel, ["spread", "market_cap"], inputs=inputs)
    # a spread quoted at noon applies from the next bar on, and is carried until updated
    assert np.isnan(fs["spread"].loc["2024-02-01", "AAA/USDT"])
    assert fs["spread"].loc["2024-02-02", "AAA/USDT"] == 0.001
    assert fs["spread"].loc["2024-03-10", "BBB/USDT"] == 0.02
    close = two_coin_panel.close
    pd.testing.assert_series_equal(fs["market_cap"]["AAA/USDT"], close["AAA/USDT"] * 1000)
    assert fs["market_cap"]["BBB/USDT"].isna().all()


def test_bad_supply_table_and_unknown_factor(two_coin_panel: Panel, tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,supply\nAAA/USDT,1\n")
    with pytest.raises(DataError, match="circulating_supply"):
        load_supply(bad)
    with pytest.raises(ConfigError, match="unknown factor 'momentumm'"):
        compute_factors(two_coin_panel, ["momentumm"])
