"""Walk-forward: window arithmetic, params chosen in-sample, scored out-of-sample."""

from __future__ import annotations

import pytest

from quantdesk.backtest.optimize import OptimizeError, OptimizeJob, evaluate, optimize
from quantdesk.backtest.runner import to_bars
from quantdesk.backtest.walkforward import Window, make_windows, walk_forward
from quantdesk.strategy import repo_strategies_dir, strategy_class
from tests.conftest import make_bars


def test_rolling_and_anchored_windows():
    assert make_windows(100, n_windows=3, train_ratio=2.0) == [
        Window(1, 0, 40, 60),
        Window(2, 20, 60, 80),
        Window(3, 40, 80, 100),
    ]
    anchored = make_windows(103, n_windows=3, train_ratio=2.0, anchored=True)
    assert [(w.train_start, w.train_end, w.test_end) for w in anchored] == [
        (0, 40, 60),
        (0, 60, 80),
        (0, 80, 103),  # the last test window takes the remainder
    ]
    with pytest.raises(OptimizeError, match="too few"):
        make_windows(8, n_windows=4)


def test_walk_forward_picks_in_sample_and_scores_out_of_sample():
    data = {"BTC/USDT": make_bars(400, seed=6)}
    job = OptimizeJob(
        "sma_cross",
        data,
        "1h",
        objective="return_dd",
        fixed={"sl_stop": 0.0, "tp_stop": 0.0},
        grid={"fast": [3, 5, 8], "slow": [15, 25]},
        strategies_dir=str(repo_strategies_dir()),
    )
    result = walk_forward(job, n_windows=2, train_ratio=3.0, n_trials=10, progress=False)
    table = result.side_by_side()
    assert list(table["window"]) == [1, 2]
    assert table.columns[4:6].tolist() == ["is_objective", "oos_objective"]

    bars = to_bars(data)
    cls = strategy_class("sma_cross", repo_strategies_dir())
    windows = make_windows(len(bars), 2, 3.0)
    second = result.table.iloc[1]
    w = windows[1]
    # in-sample: the best of an optimization on the training bars alone
    train = {"BTC/USDT": data["BTC/USDT"].iloc[w.train_start : w.train_end]}
    own = optimize(job.__class__(**{**job.__dict__, "data": train}), n_trials=10, progress=False)
    assert own.best_params == {k[6:]: v for k, v in second.items() if k.startswith("param_")}
    assert second["is_objective"] == pytest.approx(own.best_trial().value)
    # out-of-sample: those params traded on the test bars only
    params = {k[6:]: v for k, v in second.items() if k.startswith("param_")}
    oos = evaluate(cls(**params), bars, job.costs, start=w.train_end, end=w.test_end)
    assert second["oos_total_return"] == pytest.approx(oos["total_return"])
    assert second["oos_objective"] == pytest.approx(oos["total_return"] - 0.5 * oos["max_drawdown"])
    summary = result.summary()
    assert summary["oos_objective"] == pytest.approx(result.table["oos_objective"].mean())
