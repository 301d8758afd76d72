"""Validation: causality checks on planted bugs, deflated Sharpe and PBO against references."""

from __future__ import annotations

import itertools
import math
import textwrap
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from quantdesk.backtest.optimize import OptimizeJob, SearchSpace, evaluate
from quantdesk.backtest.runner import run, to_bars
from quantdesk.backtest.validation import (
    StudyTrials,
    Thresholds,
    ValidationError,
    deflated_sharpe,
    dsr_check,
    expected_max_sharpe,
    lookahead_check,
    neighbours,
    pbo_check,
    pbo_cscv,
    probabilistic_sharpe,
    recursive_check,
    stability_check,
    validate,
    walkforward_check,
)
from quantdesk.model import Costs
from quantdesk.strategy import repo_strategies_dir, strategy_class
from quantdesk.system.replay import replay
from tests.conftest import make_bars

PEEK = '''
import pandas as pd
from quantdesk.strategy import Int, Signals, SignalStrategy


class Peek(SignalStrategy):
    """Planted lookahead bug: buys when the NEXT bar closes higher."""

    params = {"window": Int(2, 50, 5)}
    warmup = 2

    def signals(self, bars):
        close = bars["close"]
        up = close.shift(-1) > close
        return Signals(entries=up, exits=~up)
'''

EXPANDING = '''
import pandas as pd
from quantdesk.strategy import Int, Signals, SignalStrategy


class Zscore(SignalStrategy):
    """Causal, but normalized by an expanding window: depends on how much history is loaded."""

    params = {"window": Int(2, 50, 10)}

    @property
    def warmup(self):
        return self.window

    def signals(self, bars):
        close = bars["close"]
        z = (close - close.expanding().mean()) / close.expanding().std()
        return Signals(entries=z > 0.5, exits=z < -0.5)
'''


@pytest.fixture(scope="module")
def hourly() -> pd.DataFrame:
    """600 hourly bars of two symbols."""
    return to_bars({"BTC/USDT": make_bars(600, seed=1), "ETH/USDT": make_bars(600, seed=2)})


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A strategies folder holding the planted-bug strategies."""
    folder = tmp_path_factory.mktemp("strategies")
    (folder / "peek.py").write_text(textwrap.dedent(PEEK))
    (folder / "zscore.py").write_text(textwrap.dedent(EXPANDING))
    return folder


def test_planted_lookahead_is_caught(planted, hourly):
    check = lookahead_check(strategy_class("peek", planted)(), hourly)
    assert check.passed is False
    assert "changes once bars after" in check.detail


def test_history_dependent_signals_fail_recursive_but_pass_lookahead(planted, hourly):
    strategy = strategy_class("zscore", planted)()
    assert lookahead_check(strategy, hourly).passed is True  # it is causal...
    check = recursive_check(strategy, hourly)
    assert check.passed is False  # ...but not independent of the history loaded
    assert "depends on history before" in check.detail


@pytest.mark.parametrize("name", ["sma_cross", "rsi_reversion"])
def test_bundled_signal_strategies_pass_both(name, hourly):
    strategy = strategy_class(name, repo_strategies_dir())()
    assert lookahead_check(strategy, hourly).passed is True
    assert recursive_check(strategy, hourly).passed is True


def test_momentum_rotation_passes_both():
    data = {
        s: make_bars(220, freq="1D", seed=i) for i, s in enumerate(["A/USDT", "B/USDT", "C/USDT"])
    }
    # C lists later: the point-in-time universe must still be causal and history-independent.
    data["C/USDT"] = data["C/USDT"].iloc[40:]
    cls = strategy_class("momentum_rotation", repo_strategies_dir())
    strategy = cls(lookback=10, top=2, every=3, min_history=15)
    bars = to_bars(data)
    assert lookahead_check(strategy, bars).passed is True
    assert recursive_check(strategy, bars).passed is True


# --- deflated Sharpe -----------------------------------------------------------------------


def test_deflated_sharpe_matches_the_papers_worked_example():
    # Bailey & Lopez de Prado (2014), numerical example: N=100 trials, V[SR]=1/2 annualized,
    # best SR 2.5 annualized, 5 years of daily returns (T=1250), skew -3, kurtosis 10.
    variance = 0.5 / 250
    assert expected_max_sharpe(100, variance) == pytest.approx(0.1132, abs=1e-4)
    dsr = deflated_sharpe(2.5 / math.sqrt(250), variance, 100, 1250, skew=-3, kurtosis=10)
    assert dsr == pytest.approx(0.9004, abs=1e-4)


def test_dsr_check_recomputes_from_returns():
    rng = np.random.default_rng(3)
    returns = pd.Series(rng.normal(0.0004, 0.01, 500))
    sharpes = rng.normal(0.05, 0.03, 25)
    check = dsr_check(returns, sharpes, 25)
    r = returns.to_numpy()
    sr = r.mean() / r.std(ddof=1)
    var = np.var(sharpes, ddof=1)
    z1, z2 = sps.norm.ppf(1 - 1 / 25), sps.norm.ppf(1 - 1 / (25 * math.e))
    sr0 = math.sqrt(var) * ((1 - np.euler_gamma) * z1 + np.euler_gamma * z2)
    g3, g4 = sps.skew(r), sps.kurtosis(r, fisher=False)
    z = (sr - sr0) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    assert check.data["dsr"] == pytest.approx(sps.norm.cdf(z), rel=1e-12)
    assert 0.05 < check.data["dsr"] < 0.95 and check.passed is False
    # one trial: no deflation, the DSR is the probabilistic Sharpe against zero
    assert deflated_sharpe(0.1, 0.01, 1, 100) == probabilistic_sharpe(0.1, 0.0, 100, 0.0, 3.0)


def test_dsr_counts_every_trial_tried_pruned_and_infeasible_included():
    import optuna
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState

    study = optuna.create_study(direction="maximize")
    dist = {"fast": IntDistribution(2, 50)}
    states = [TrialState.COMPLETE] * 3 + [TrialState.PRUNED] * 4 + [TrialState.FAIL]
    for i, state in enumerate(states):
        done = state == TrialState.COMPLETE
        study.add_trial(
            optuna.trial.create_trial(
                params={"fast": 2 + i},
                distributions=dist,
                value=0.1 * i if done else None,
                state=state,
                user_attrs={"sharpe_bar": 0.01 * i} if done else {},
            )
        )
    trials = StudyTrials.from_study(study, {"slow": 30})
    assert trials.n_trials == 7  # 3 complete + 4 pruned; the failed one never ran
    assert trials.params == [{"slow": 30, "fast": f} for f in (2, 3, 4)]
    assert trials.sharpes == [0.0, 0.01, 0.02]
    # more trials tried deflate the same Sharpe more
    rng = np.random.default_rng(3)
    returns = pd.Series(rng.normal(0.001, 0.01, 500))
    sharpes = rng.normal(0.05, 0.03, 26)
    assert dsr_check(returns, sharpes, 60).data["dsr"] < dsr_check(returns, sharpes, 26).data["dsr"]


# --- PBO ------------------------------------------------------------------------------------


def naive_pbo(matrix: np.ndarray, splits: int) -> tuple[float, list[float]]:
    """CSCV written out literally from the paper, with pandas."""
    frame = pd.DataFrame(matrix)
    blocks = np.array_split(np.arange(len(frame)), splits)
    logits = []
    for chosen in itertools.combinations(range(splits), splits // 2):
        is_rows = np.concatenate([blocks[i] for i in chosen])
        oos_rows = np.concatenate([blocks[i] for i in range(splits) if i not in chosen])
        is_sr = frame.iloc[is_rows].mean() / frame.iloc[is_rows].std()
        oos_sr = frame.iloc[oos_rows].mean() / frame.iloc[oos_rows].std()
        best = is_sr.idxmax()
        omega = sps.rankdata(oos_sr.to_numpy())[best] / (len(oos_sr) + 1)
        logits.append(math.log(omega / (1 - omega)))
    return float(np.mean(np.array(logits) <= 0)), logits


def test_pbo_equals_a_literal_recomputation():
    rng = np.random.default_rng(11)
    matrix = rng.normal(0, 1, (120, 7)) + rng.normal(0, 0.05, 7)
    result = pbo_cscv(matrix, 6)
    expected, logits = naive_pbo(matrix, 6)
    assert result.n_combinations == math.comb(6, 3) == len(logits)
    assert result.pbo == pytest.approx(expected)
    np.testing.assert_allclose(result.logits, logits, rtol=1e-9)


def test_pbo_is_a_coin_flip_for_noise_and_zero_for_a_dominant_strategy():
    # One noise matrix gives a noisy PBO (its splits are correlated); the mean over many is 1/2.
    pbos = [pbo_cscv(np.random.default_rng(s).normal(0, 0.01, (600, 20)), 8).pbo for s in range(30)]
    assert 0.4 < np.mean(pbos) < 0.6
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.01, (1200, 40))
    dominant = noise.copy()
    dominant[:, 17] += 0.005  # a real edge, half a standard deviation per period
    assert pbo_cscv(dominant, 10).pbo == 0.0


def test_pbo_verdict_follows_the_configured_threshold():
    rng = np.random.default_rng(2)
    noise = pd.DataFrame(rng.normal(0, 0.01, (400, 12)))
    pbo = pbo_cscv(noise.to_numpy(), 10).pbo
    assert 0.2 < pbo < 0.9  # noise: the in-sample winner is a coin flip out of sample
    assert pbo_check(noise).passed is False  # the default (<= 0.2) refuses it
    assert pbo_check(noise, thresholds=Thresholds(max_pbo=0.95)).passed is True
    with pytest.raises(ValidationError, match="max_pbo must be within"):
        Thresholds(max_pbo=1.5)


def test_walkforward_check_needs_out_of_sample_evidence():
    space = {"sl_stop": 0.0, "tp_stop": 0.0}
    grid = {"fast": [3, 5, 8], "slow": [12, 20]}
    dirs = str(repo_strategies_dir())
    short = OptimizeJob("sma_cross", {"X/USDT": make_bars(10, seed=1)}, "1h", fixed=space,
                        grid=grid, strategies_dir=dirs)  # fmt: skip
    check = walkforward_check(short)
    assert check.passed is False and check.detail.startswith("no out-of-sample evidence")
    noise = OptimizeJob("sma_cross", {"X/USDT": make_bars(900, seed=4)}, "1h", fixed=space,
                        grid=grid, strategies_dir=dirs)  # fmt: skip
    check = walkforward_check(noise, n_trials=6)
    table = pd.DataFrame(check.data["table"])
    assert len(table) == 3
    # the verdict is the summary of the per-window table, with the configured efficiency
    efficiency = table["oos_objective"].mean() / table["is_objective"].mean()
    assert check.data["efficiency"] == pytest.approx(efficiency)
    lenient = walkforward_check(noise, Thresholds(min_wf_efficiency=-1e9), n_trials=6)
    assert lenient.passed is bool(table["oos_objective"].mean() > 0)
    assert check.passed is False  # noise does not hold up out of sample


def test_pbo_rejects_bad_shapes():
    with pytest.raises(ValidationError, match="at least two configurations"):
        pbo_cscv(np.zeros((100, 1)))
    with pytest.raises(ValidationError, match="even number"):
        pbo_cscv(np.zeros((100, 3)), 5)


# --- stability and the report ---------------------------------------------------------------


def test_neighbours_step_each_searched_param_within_bounds():
    cls = strategy_class("sma_cross", repo_strategies_dir())
    space = SearchSpace(cls, fixed={"sl_stop": 0.0, "tp_stop": 0.0}, grid={"slow": [20, 30, 40]})
    best = cls.validate_params({"fast": 2, "slow": 30, "sl_stop": 0.0, "tp_stop": 0.0})
    around = neighbours(space, best)
    # fast=2: 2-1 is below the Int's low (2), so only 3; slow steps along its listed values
    assert [(p["fast"], p["slow"]) for p in around] == [(3, 30), (2, 20), (2, 40)]


def test_stability_is_the_median_neighbour_over_the_best(hourly):
    cls = strategy_class("sma_cross", repo_strategies_dir())
    space = SearchSpace(cls, fixed={"sl_stop": 0.0, "tp_stop": 0.0})
    best = cls.validate_params({"fast": 10, "slow": 40})
    costs = Costs()
    check = stability_check(space, best, hourly, costs, "return_dd")
    scores = []
    for p in neighbours(space, best):
        m = evaluate(cls(**p), hourly, costs)
        scores.append(m["total_return"] - 0.5 * m["max_drawdown"])
    assert [row["objective"] for row in check.data["table"]] == pytest.approx(scores)
    m = evaluate(cls(**best), hourly, costs)
    top = m["total_return"] - 0.5 * m["max_drawdown"]
    assert check.value == f"{np.median(scores):.3g} vs {top:.3g}"
    if top > 0:
        assert check.passed is (np.median(scores) / top >= 0.5)
    else:
        assert check.passed is False


def test_validate_runs_requested_checks_and_skips_what_needs_a_study(planted, hourly):
    data = {"BTC/USDT": make_bars(400, seed=1)}
    good = validate(
        strategy_class("sma_cross", repo_strategies_dir())(),
        data,
        Costs(),
        checks=("lookahead", "recursive", "dsr", "parity"),
        replay_fn=replay,
    )
    assert [c.status for c in good.checks] == ["pass", "pass", "skip", "pass"]
    parity = good.checks[-1]  # the engine's replay made the backtest's trades
    trades = run(strategy_class("sma_cross", repo_strategies_dir())(), data, Costs()).trades
    assert len(trades) > 0 and parity.value == f"{len(trades)} trades"
    assert good.passed is True
    assert list(good.table()["check"]) == ["lookahead", "recursive", "dsr", "parity"]
    bad = validate(strategy_class("peek", planted)(), data, Costs(), checks=("lookahead",))
    assert bad.passed is False and [c.name for c in bad.failures()] == ["lookahead"]
    with pytest.raises(ValidationError, match="unknown check 'nope'"):
        validate(strategy_class("peek", planted)(), data, Costs(), checks=("nope",))


def test_parity_without_an_injected_replay_is_reported_not_run():
    """Research sits below the engine: with no replay given, parity says so instead of passing."""
    data = {"BTC/USDT": make_bars(300, seed=2)}
    strategy = strategy_class("sma_cross", repo_strategies_dir())()
    [check] = validate(strategy, data, Costs(), checks=("parity",)).checks
    assert check.status == "skip" and "replay_fn" in check.detail
    calls = []

    def broken_replay(strategy, data, costs, funding=None):
        calls.append(sorted(data))
        result = replay(strategy, data, costs, funding=funding)
        # an engine that lost its last trade
        return SimpleNamespace(trades=result.trades.iloc[:-1], final_equity=result.final_equity)

    [check] = validate(strategy, data, Costs(), checks=("parity",), replay_fn=broken_replay).checks
    assert calls == [["BTC/USDT"]]
    assert check.status == "FAIL" and check.detail == "trade counts differ"
