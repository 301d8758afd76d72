import numpy as np
import pandas as pd
import pytest

from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.data.synthetic import SynthSpec, generate_market, resample_ohlcv, write_market
from quantdesk.errors import DataError


@pytest.fixture(scope="module")
def market():
    return generate_market(SynthSpec(seed=3, days=30))


def _log_returns(frame: pd.DataFrame) -> pd.Series:
    return np.log(frame["close"]).diff().dropna()


def test_same_seed_same_market_and_other_seed_differs(market):
    again = generate_market(SynthSpec(seed=3, days=30))
    other = generate_market(SynthSpec(seed=4, days=30))
    for key, frame in market.minute_bars.items():
        pd.testing.assert_frame_equal(frame, again.minute_bars[key])
    pd.testing.assert_frame_equal(market.funding["BTC/USDT:USDT"], again.funding["BTC/USDT:USDT"])
    assert not np.allclose(market.bars("BTC/USDT")["close"], other.bars("BTC/USDT")["close"])


def test_six_spot_and_six_perpetual_symbols(market):
    spot = sorted(s for m, s in market.minute_bars if m == "spot")
    perps = sorted(s for m, s in market.minute_bars if m == "usdm")
    assert spot == ["BNB/USDT", "BTC/USDT", "DOGE/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]
    assert perps == [s + ":USDT" for s in spot]
    assert sorted(market.funding) == perps


@pytest.mark.parametrize("timeframe", ["1m", "1h", "1d", "4h"])
def test_bars_are_consistent_finite_and_positive(market, timeframe):
    for mkt, symbol in market.minute_bars:
        bars = market.bars(symbol, timeframe, mkt)
        values = bars.to_numpy()
        assert np.isfinite(values).all() and (values > 0).all()
        assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
        assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
        assert bars.index.is_monotonic_increasing and bars.index.is_unique


def test_timeframes_are_aggregates_of_the_minute_base(market):
    minute = market.bars("ETH/USDT", "1m")
    hourly = market.bars("ETH/USDT", "1h")
    assert len(hourly) == 30 * 24
    first = minute.iloc[:60]
    assert hourly.iloc[0]["open"] == first["open"].iloc[0]
    assert hourly.iloc[0]["close"] == first["close"].iloc[-1]
    assert hourly.iloc[0]["high"] == first["high"].max()
    assert hourly.iloc[0]["low"] == first["low"].min()
    assert hourly.iloc[0]["volume"] == pytest.approx(first["volume"].sum())
    # The fast reshape path agrees with pandas' resample.
    slow = (
        minute.iloc[:-7]
        .resample("1h")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    )
    pd.testing.assert_frame_equal(resample_ohlcv(minute.iloc[:-7], "1h"), slow, check_freq=False)


def test_each_bar_opens_at_the_previous_close(market):
    minute = market.bars("SOL/USDT", "1m")
    assert np.allclose(minute["open"].iloc[1:].to_numpy(), minute["close"].iloc[:-1].to_numpy())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_volatility_clusters(seed):
    m = generate_market(SynthSpec(seed=seed, days=30))
    for symbol in ("BTC/USDT", "DOGE/USDT"):
        r = _log_returns(m.bars(symbol, "1h")).to_numpy()
        squared, absolute = pd.Series(r**2), pd.Series(np.abs(r))
        assert np.mean([squared.autocorr(lag) for lag in range(1, 6)]) > 0.02
        assert absolute.autocorr(1) > 0.1
        # An i.i.d. shuffle of the same returns destroys the clustering.
        shuffled = pd.Series(np.abs(np.random.default_rng(0).permutation(r)))
        assert abs(shuffled.autocorr(1)) < absolute.autocorr(1)


def test_fat_tails_from_jumps(market):
    minute = _log_returns(market.bars("BTC/USDT", "1m"))
    assert minute.kurt() > 5  # a normal distribution has excess kurtosis 0


def test_symbols_are_correlated(market):
    returns = pd.DataFrame({s: _log_returns(market.bars(s, "1h")) for s in market.spec.symbols})
    corr = returns.corr().to_numpy()
    off_diagonal = corr[~np.eye(len(corr), dtype=bool)]
    assert off_diagonal.min() > 0.3 and off_diagonal.max() < 0.95


def test_trends_and_ranges_both_occur():
    m = generate_market(SynthSpec(seed=5, days=240))
    daily = np.log(m.bars("BTC/USDT", "1d")["close"])
    moves = (daily.shift(-20) - daily).abs().dropna()  # 20-day net moves
    assert moves.max() > 0.15  # trending stretches
    assert moves.min() < 0.03  # flat / ranging stretches


def test_volume_rises_with_absolute_returns(market):
    hourly = market.bars("BTC/USDT", "1h")
    r = _log_returns(hourly).abs()
    rho = r.corr(hourly["volume"].loc[r.index], method="spearman")
    assert rho > 0.3
    assert 5e8 < (hourly["volume"] * hourly["close"]).resample("1D").sum().median() < 8e9


def test_perpetuals_track_spot(market):
    spot = market.bars("BTC/USDT", "1h")["close"]
    perp = market.bars("BTC/USDT:USDT", "1h")["close"]
    basis = perp / spot - 1
    assert basis.abs().max() < 0.01
    assert basis.std() > 0  # not a copy


def test_funding_is_eight_hourly_mean_reverting_and_sometimes_negative(market):
    funding = market.funding["BTC/USDT:USDT"]["funding_rate"]
    assert len(funding) == 30 * 3
    assert set(funding.index.hour) == {0, 8, 16}
    assert (funding.index.to_series().diff().dropna() == pd.Timedelta(hours=8)).all()
    assert 0.05 < (funding < 0).mean() < 0.6
    ac = funding.autocorr(1)
    assert 0.2 < ac < 0.98  # persistent but reverting
    assert abs(funding.mean() - 1e-4) < 2e-4


def test_write_market_stores_every_series(tmp_path, market):
    store = DataStore(tmp_path)
    small = generate_market(SynthSpec(seed=1, days=2))
    paths = write_market(store, small, timeframes=("1h", "1d"))
    assert len(paths) == 12 * 2 + 6
    assert len(store.load("BTC/USDT", "1d", exchange="synthetic")) == 2
    assert len(store.load("ETH/USDT:USDT", "1h")) == 48
    assert store.exists(SeriesKey("synthetic", "usdm", "DOGE/USDT:USDT", "funding"))


def test_invalid_specs_are_refused(tmp_path):
    with pytest.raises(DataError, match="UTC midnight"):
        generate_market(SynthSpec(start="2024-01-01T05:00"))
    with pytest.raises(DataError, match="at least 1 day"):
        generate_market(SynthSpec(days=0))
    store = DataStore(tmp_path)
    with pytest.raises(DataError, match="invalid timeframe"):
        write_market(store, generate_market(SynthSpec(days=1)), timeframes=("1h", "bogus"))
    assert store.keys() == []  # validated before anything was written
