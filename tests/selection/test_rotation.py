"""Rotation backtests on the real daily data and on a larger synthetic universe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantdesk.backtest.runner import run
from quantdesk.data.synthetic import DEFAULT_ASSETS, Asset, SynthSpec, generate_market
from quantdesk.errors import ConfigError, QuantdeskError
from quantdesk.selection.panel import Panel
from quantdesk.selection.rotation import (
    Costs,
    buy_and_hold_weights,
    rebalance_mask,
    run_strategy,
    simulate,
    top_n_weights,
)
from quantdesk.selection.universe import eligible, first_eligible
from quantdesk.strategy import load_strategy, repo_strategies_dir

BNB_LISTED = pd.Timestamp("2020-02-10", tz="UTC")


def rotation(**params):
    return load_strategy("momentum_rotation", params, repo_strategies_dir())


@pytest.fixture(scope="module")
def real_runs(real_panel: Panel):
    strategy = rotation(lookback=30, top=2, every=7, min_history=60)
    costly = run_strategy(strategy, real_panel, Costs(fee=0.001, slippage=0.0005))
    free = run_strategy(strategy, real_panel, Costs(fee=0.0, slippage=0.0))
    bench = simulate(real_panel, buy_and_hold_weights(eligible(real_panel, strategy.warmup)))
    return strategy, costly, free, bench


def check_weights(weights: pd.DataFrame, top: int) -> None:
    decided = weights.dropna(how="all")
    assert len(decided) > 0
    sums = decided.sum(axis=1)
    assert (sums <= 1 + 1e-12).all()
    assert ((decided > 0).sum(axis=1) <= top).all()
    assert (weights.fillna(0) >= 0).all().all()


def test_real_rotation_weights_costs_and_listing(real_runs, real_panel: Panel) -> None:
    strategy, costly, free, bench = real_runs
    check_weights(costly.weights, top=2)
    # rebalances happen weekly (every 7th day from the epoch), nowhere else
    decided = costly.weights.dropna(how="all").index
    assert set(decided.to_series().diff().dropna()) == {pd.Timedelta(days=7)}
    # costs reduce returns
    assert costly.total_return < free.total_return
    assert costly.stats()["fees_paid"] > 0 and free.stats()["fees_paid"] == 0
    # BNB is never held (nor targeted) before listing + min history
    eligible_from = BNB_LISTED + pd.Timedelta(days=strategy.warmup - 1)
    assert (costly.held().loc[:eligible_from, "BNB/USDT"] == 0).all()
    assert (costly.weights.loc[:eligible_from, "BNB/USDT"].fillna(0) == 0).all()
    assert (costly.held()["BNB/USDT"] > 0).any()  # and it is picked later on
    # the benchmark holds every eligible coin, BNB only once eligible
    held = bench.held()
    assert (held.loc[:eligible_from, "BNB/USDT"] == 0).all()
    assert (held.loc["2021-01-01"] > 0).all()
    assert np.isfinite(bench.total_return) and bench.total_return != costly.total_return


def test_fills_at_next_open_with_slippage(real_runs, real_panel: Panel) -> None:
    _, costly, _, _ = real_runs
    orders = costly.portfolio.orders.records_readable
    first = orders.iloc[0]
    decision = costly.weights.dropna(how="all").index
    fill_time = pd.Timestamp(first["Timestamp"])
    assert fill_time - pd.Timedelta(days=1) in decision  # decided on the previous close
    expected = real_panel.open.loc[fill_time, first["Column"]] * (1 + 0.0005)
    assert first["Price"] == pytest.approx(expected, rel=1e-12)
    assert first["Fees"] == pytest.approx(first["Size"] * first["Price"] * 0.001, rel=1e-9)


def test_same_result_as_the_research_runner(real_runs, real_bars) -> None:
    """quantdesk.backtest.run on the strategy gives the same equity while every coin trades."""
    strategy, costly, _, _ = real_runs
    result = run(strategy, real_bars, Costs(fee=0.001, slippage=0.0005))
    end = "2026-09-30"  # LTC trades a week longer than the others; the two differ only there
    pd.testing.assert_series_equal(
        result.equity["portfolio"].loc[:end], costly.equity.loc[:end], check_names=False
    )


def test_weights_are_causal(real_panel: Panel) -> None:
    """Weights decided at t from bars up to t equal the full-history weights at t."""
    strategy = rotation(lookback=10, top=2, every=1, min_history=20)
    full = strategy.signals(real_panel.to_multi()).weights
    for cut in ["2020-02-20", "2020-03-12", "2020-03-13", "2022-05-10", "2024-12-31"]:
        part = strategy.signals(real_panel.loc(end=cut).to_multi()).weights
        pd.testing.assert_series_equal(part.iloc[-1], full.loc[cut], check_names=False)


def test_schedule_does_not_depend_on_history_start(real_panel: Panel) -> None:
    strategy = rotation(lookback=10, top=2, every=7, min_history=20)
    full = strategy.signals(real_panel.to_multi()).weights
    late = strategy.signals(real_panel.loc(start="2023-01-01").to_multi()).weights
    later = late.loc["2023-06-01":"2023-12-31"]
    pd.testing.assert_frame_equal(later, full.loc["2023-06-01":"2023-12-31"])


@pytest.fixture(scope="module")
def synthetic_panel() -> Panel:
    """12 synthetic coins over 200 days; the last two listed after 60 and 120 days."""
    extra = tuple(Asset(f"ALT{i}", 5.0 * (i + 1), 0.7 + 0.05 * i, 5e7) for i in range(6))
    market = generate_market(SynthSpec(seed=11, days=200, assets=DEFAULT_ASSETS + extra))
    bars = {s: market.bars(s, "1d") for s in market.spec.symbols}
    bars["ALT4/USDT"] = bars["ALT4/USDT"].iloc[60:]
    bars["ALT5/USDT"] = bars["ALT5/USDT"].iloc[120:]
    return Panel.from_bars(bars)


@pytest.mark.parametrize("weighting", ["equal", "score"])
def test_synthetic_universe_rotation(synthetic_panel: Panel, weighting: str) -> None:
    strategy = rotation(lookback=14, top=4, every=5, min_history=20, weighting=weighting)
    costly = run_strategy(strategy, synthetic_panel, Costs(fee=0.002, slippage=0.001))
    free = run_strategy(strategy, synthetic_panel, Costs(fee=0.0, slippage=0.0))
    check_weights(costly.weights, top=4)
    assert costly.total_return < free.total_return
    first = first_eligible(eligible(synthetic_panel, strategy.warmup))
    for late in ("ALT4/USDT", "ALT5/USDT"):
        listed = synthetic_panel.close[late].first_valid_index()
        assert first[late] == listed + pd.Timedelta(days=strategy.warmup - 1)
        before = costly.weights.loc[: first[late] - pd.Timedelta(days=1), late]
        assert (before.fillna(0) == 0).all()
        assert (costly.held().loc[: first[late], late] == 0).all()


def test_top_n_weights_equal_and_score() -> None:
    index = pd.date_range("2024-01-01", periods=3, tz="UTC")
    scores = pd.DataFrame(
        {"A": [3.0, 1.0, np.nan], "B": [2.0, np.nan, np.nan], "C": [1.0, -1.0, np.nan]}, index=index
    )
    when = pd.Series([True, True, True], index=index)
    equal = top_n_weights(scores, 2, when)
    assert equal.iloc[0].tolist() == [0.5, 0.5, 0.0]
    assert equal.iloc[1].tolist() == [0.5, 0.0, 0.5]
    assert equal.iloc[2].tolist() == [0.0, 0.0, 0.0]  # nothing eligible: all cash
    score = top_n_weights(scores, 2, when, weighting="score")
    np.testing.assert_allclose(score.iloc[0], [0.6, 0.4, 0.0])
    np.testing.assert_allclose(score.iloc[1], [1.0, 0.0, 0.0])  # negative scores get nothing
    skip = top_n_weights(scores, 2, pd.Series([True, False, True], index=index))
    assert skip.iloc[1].isna().all()


def test_bad_inputs_are_refused(real_panel: Panel) -> None:
    with pytest.raises(ConfigError, match="at least 1 bar"):
        rebalance_mask(real_panel.index, 0)
    heavy = pd.DataFrame(0.6, index=real_panel.index[:3], columns=real_panel.symbols)
    with pytest.raises(ConfigError, match="sum above 1"):
        simulate(real_panel, heavy)
    late = pd.DataFrame(0.0, index=real_panel.index, columns=real_panel.symbols)
    late.loc["2020-01-05", "BNB/USDT"] = 0.5  # BNB is listed on 2020-02-10
    with pytest.raises(ConfigError, match="no price"):
        simulate(real_panel, late)
    with pytest.raises(QuantdeskError, match="fraction"):
        Costs(fee=-0.01)
