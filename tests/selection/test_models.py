"""Models: walk-forward over dates with a gap, out-of-sample IC, leakage checks, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.errors import ConfigError
from quantdesk.selection.factors import FactorSet, compute_factors
from quantdesk.selection.models import (
    LEAK_IC,
    ModelError,
    build_dataset,
    daily_ic,
    date_splits,
    fit,
    forward_returns,
    load_model,
    make_pipeline,
    save_model,
    walk_forward,
)
from quantdesk.selection.panel import Panel

FEATURES = ["momentum_7", "volatility", "rsi"]


@pytest.fixture(scope="module")
def factors(random_walk) -> FactorSet:
    """Twelve independent random walks over 260 days: nothing in the past predicts the future."""
    panel = Panel.from_bars({f"C{i}/USDT": random_walk(260, seed=100 + i) for i in range(12)})
    return compute_factors(panel, FEATURES)


def with_feature(factors: FactorSet, name: str, frame: pd.DataFrame) -> FactorSet:
    return FactorSet(factors.panel, {**factors.values, name: frame})


def test_forward_return_starts_at_next_open(factors: FactorSet) -> None:
    fwd = forward_returns(factors, 3)
    open_ = factors.panel.open["C0/USDT"]
    t = 50
    assert fwd["C0/USDT"].iloc[t] == pytest.approx(open_.iloc[t + 4] / open_.iloc[t + 1] - 1)
    assert fwd["C0/USDT"].iloc[-4:].isna().all()  # not known yet at the end of the data


def test_target_is_a_cross_sectional_rank(factors: FactorSet) -> None:
    data = build_dataset(factors, FEATURES, horizon=1)
    one_date = data.target.loc[data.dates[10]]
    fwd = data.fwd.loc[data.dates[10]]
    assert len(one_date) == 12
    assert (one_date.rank() == fwd.rank()).all()
    assert one_date.max() == pytest.approx(0.5)


def test_splits_keep_dates_whole_with_a_gap(factors: FactorSet) -> None:
    data = build_dataset(factors, FEATURES, horizon=3)
    for train, test in date_splits(data.dates, n_splits=4, gap=3):
        assert train.max() < test.min()
        between = data.dates[(data.dates > train.max()) & (data.dates < test.min())]
        assert len(between) == 3
    with pytest.raises(ConfigError, match="overlap the test period"):
        walk_forward(make_pipeline("ridge"), data, n_splits=4, gap=2)


def test_planted_future_information_is_flagged(factors: FactorSet) -> None:
    """A feature holding the very return being predicted gives an IC near 1: flagged."""
    peek = forward_returns(factors, 1)
    data = build_dataset(with_feature(factors, "peek", peek), [*FEATURES, "peek"], horizon=1)
    result = walk_forward(make_pipeline("ridge"), data, n_splits=4)
    assert result.mean_ic > 0.9
    assert result.leak_suspected
    assert result.hit_rate > 0.85
    honest = walk_forward(make_pipeline("ridge"), build_dataset(factors, FEATURES), n_splits=4)
    assert abs(honest.mean_ic) < 0.1 and not honest.leak_suspected


def test_memorizing_model_sees_no_test_rows(factors: FactorSet) -> None:
    """Noise features: a forest memorizes its training rows (in-sample IC high), so if any test
    row reached training the out-of-sample IC would be high too. It must stay near zero."""
    rng = np.random.default_rng(5)
    shape = factors["rsi"].shape
    noisy = factors
    for i in range(3):
        frame = pd.DataFrame(rng.normal(size=shape), index=factors["rsi"].index)
        noisy = with_feature(noisy, f"noise{i}", frame.set_axis(factors["rsi"].columns, axis=1))
    names = ["noise0", "noise1", "noise2"]
    data = build_dataset(noisy, names, horizon=1)
    forest = make_pipeline("rf", n_estimators=30, min_samples_leaf=1)
    in_sample = fit(forest, data).predict(data.X)
    assert daily_ic(in_sample, data.fwd).mean() > 0.6
    result = walk_forward(forest, data, n_splits=4)
    assert abs(result.mean_ic) < 0.1
    assert len(result.ic) > 150


def test_weak_real_signal_is_measured_not_flagged(factors: FactorSet) -> None:
    rng = np.random.default_rng(9)
    fwd = forward_returns(factors, 1)
    hint = fwd + rng.normal(0, 4 * float(np.nanstd(fwd.to_numpy())), fwd.shape)
    data = build_dataset(with_feature(factors, "hint", hint), ["hint"], horizon=1)
    result = walk_forward(make_pipeline("linear"), data, n_splits=4)
    assert 0.05 < result.mean_ic < LEAK_IC
    assert result.ic_tstat > 3
    assert result.hit_rate > 0.5
    assert result.summary()["leak_suspected"] == 0.0


@pytest.mark.parametrize("kind", ["ridge", "gbr"])
def test_save_and_load_refuses_other_features(factors: FactorSet, tmp_path, kind: str) -> None:
    data = build_dataset(factors, FEATURES, horizon=1)
    model = fit(
        make_pipeline(kind, n_estimators=20) if kind == "gbr" else make_pipeline(kind), data
    )
    path = save_model(model, tmp_path / "m.joblib")
    loaded = load_model(path, FEATURES)
    snapshot = factors.as_of(factors.panel.index[-1])
    pd.testing.assert_series_equal(loaded.predict(snapshot), model.predict(snapshot))
    with pytest.raises(ModelError, match="trained on features momentum_7, volatility, rsi"):
        load_model(path, ["momentum_7", "rsi", "volatility"])
    with pytest.raises(ModelError, match="needs feature"):
        loaded.predict(snapshot.drop(columns="rsi"))
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        load_model(junk)


def test_bad_model_requests(factors: FactorSet) -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        make_pipeline("svm")
    with pytest.raises(ConfigError, match="unknown feature"):
        build_dataset(factors, ["trend"])
