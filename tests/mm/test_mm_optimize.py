"""Walk-forward optuna search of quoting params: windows, the params scored out of sample,
determinism, flow windows, the search space and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quantdesk.errors import BacktestError
from quantdesk.mm.backtest import run_mm
from quantdesk.mm.flow import BOOK, FlowConfig, generate_flow, window
from quantdesk.mm.optimize import (
    Range,
    fold_windows,
    parse_range,
    search_space,
    walk_forward,
)
from quantdesk.strategy import repo_strategies_dir, strategy_class
from tests.conftest import run_cli
from tests.mm.helpers import SYMBOL, write_recording

SPACE = {"min_half_spread": Range(0.5, 3.0), "price_skew": Range(0.0, 10.0), "levels": Range(1, 3)}


@pytest.fixture(scope="module")
def flow():
    return generate_flow(FlowConfig(hours=0.3), seed=11)


@pytest.fixture(scope="module")
def basic():
    return strategy_class("basic_mm", str(repo_strategies_dir()))


@pytest.fixture(scope="module")
def result(flow, basic):
    return walk_forward(basic, flow, SPACE, {"size": 2.0}, folds=3, trials=4, seed=5)


def test_windows_follow_each_other_without_overlap(flow, result):
    end = int(flow.time_ns[-1]) + 1
    assert len(result.folds) == 2
    previous_oos_end = None
    for f in result.folds:
        assert f.in_sample.start_ns < f.in_sample.end_ns <= f.out_of_sample.start_ns
        assert f.out_of_sample.start_ns < f.out_of_sample.end_ns <= end
        if previous_oos_end is not None:  # rolling: each OOS window starts where the last ended
            assert f.out_of_sample.start_ns == previous_oos_end
            assert f.in_sample.start_ns == result.folds[f.index - 1].out_of_sample.start_ns
        previous_oos_end = f.out_of_sample.end_ns
    assert result.folds[-1].out_of_sample.end_ns == end
    anchored = fold_windows(flow, 3, anchored=True)
    assert [ins.start_ns for ins, _ in anchored] == [0, 0]
    assert anchored[1][0].end_ns == anchored[1][1].start_ns


def test_the_best_in_sample_params_are_the_ones_scored_out_of_sample(flow, basic, result):
    for f, study in zip(result.folds, result.studies, strict=True):
        assert f.params == basic.validate_params({"size": 2.0, **study.best_params})
        assert f.in_sample_stats["sharpe"] == pytest.approx(study.best_value, abs=1e-12)
        assert study.best_value == max(t.value for t in study.trials if t.value is not None)
        assert len(study.trials) == 4 and f.trials == 4
        oos = window(flow, f.out_of_sample.start_ns, f.out_of_sample.end_ns)
        again = run_mm(basic(**f.params), oos).stats
        for key in ("sharpe", "total_pnl", "max_drawdown", "maker_fills"):
            assert f.out_of_sample_stats[key] == pytest.approx(again[key], abs=1e-12)
    frame = result.frame()
    assert list(frame.index) == [0, 1] and (frame["param_size"] == 2.0).all()
    assert {"is_sharpe", "oos_sharpe", "is_total_pnl", "oos_max_drawdown"} <= set(frame.columns)


def test_a_fixed_seed_gives_the_same_run(flow, basic, result):
    again = walk_forward(basic, flow, SPACE, {"size": 2.0}, folds=3, trials=4, seed=5)
    pd.testing.assert_frame_equal(again.frame(), result.frame())
    other = walk_forward(basic, flow, SPACE, {"size": 2.0}, folds=3, trials=4, seed=6)
    assert other.folds[0].params != result.folds[0].params


def test_a_window_starts_from_the_book_at_its_start(flow):
    start, end = 400 * 10**9, 700 * 10**9
    part = window(flow, start, end)
    before = int(np.searchsorted(flow.time_ns, start, side="left")) - 1
    assert part.kind[0] == BOOK and part.time_ns[0] == 0
    assert (part.bid_tick[0], part.ask_tick[0]) == (flow.bid_tick[before], flow.ask_tick[before])
    inside = (flow.time_ns >= start) & (flow.time_ns < end)
    assert len(part) == int(inside.sum()) + 1
    assert np.array_equal(part.time_ns[1:], flow.time_ns[inside] - start)
    assert part.config.start_ns == flow.config.start_ns + start


def test_the_search_space_is_declared_or_given(basic):
    assert set(search_space(basic)) >= {"min_half_spread", "max_half_spread", "levels"}
    assert "levels" not in search_space(basic, fixed={"levels": 2})
    assert parse_range("gamma=0.01:1:log") == ("gamma", Range(0.01, 1.0, log=True))
    with pytest.raises(BacktestError, match="has no param 'nope'"):
        search_space(basic, {"nope": Range(0, 1)})
    with pytest.raises(BacktestError, match="out of range"):
        search_space(basic, {"levels": Range(1, 50)})
    with pytest.raises(BacktestError, match="needs low < high"):
        search_space(basic, {"levels": Range(3, 1)})
    with pytest.raises(BacktestError, match="must look like"):
        parse_range("gamma=0.1")


def test_cli_optimize_prints_each_fold_and_writes_the_table(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "data"))
    target = tmp_path / "wf.csv"
    argv = ["mm", "optimize", "--strategies-dir", str(repo_strategies_dir()), "--hours", "0.2"]
    argv += ["--strategy", "avellaneda_stoikov", "--folds", "3", "--trials", "3"]
    argv += ["--search", "gamma=0.01:1:log", "--no-progress", "--out", str(target)]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "OOS sharpe" in out and "fold 1: gamma=" in out and "out-of-sample PnL" in out
    table = pd.read_csv(target, index_col="fold")
    assert len(table) == 2 and table["param_kappa"].eq(100.0).all()  # only gamma searched


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--folds", "1"], "Invalid value for '--folds'"),
        (["--search", "gamma=1:0"], "has no param 'gamma'"),
        (["--search", "levels=5:1"], "needs low < high"),
        (["--search", "levels"], "must look like name=low:high"),
        (["--param", "levels=1,2"], "give one value"),
        (["--out", "no/such/dir/wf.csv"], "does not exist"),
        (["--out", "wf.txt"], "--out must name a .csv file"),
        (["--strategy", "sma_cross"], "not a QuoteStrategy"),
    ],
)
def test_cli_optimize_bad_input_is_one_line_exit_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    argv = ["mm", "optimize", "--strategies-dir", str(repo_strategies_dir()), "--hours", "0.05"]
    code, out, err = run_cli([*argv, "--trials", "1", *args], capsys)
    assert code == 2, (out, err)
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.glob("*.csv"))


def test_cli_optimize_on_a_recording(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "data"))
    write_recording(tmp_path / "data")
    argv = ["mm", "optimize", "--strategies-dir", str(repo_strategies_dir()), "--source", "store"]
    argv += ["--symbol", SYMBOL, "--folds", "2", "--trials", "2", "--no-progress"]
    argv += ["--search", "min_half_spread=0.5:1", "--objective", "total_pnl"]
    argv += ["--out", str(tmp_path / "wf.csv")]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "recorded BTC/USDT" in out and "walk-forward basic_mm" in out
    # 2 folds of the 6 s recording: in sample [0, 3 s), out of sample [3 s, 6 s]
    row = pd.read_csv(tmp_path / "wf.csv", index_col="fold").iloc[0]
    assert row["is_start_h"] == 0.0
    assert row["is_end_h"] * 3600 == pytest.approx(3.0, abs=1e-6) == row["oos_start_h"] * 3600
    assert row["oos_end_h"] * 3600 == pytest.approx(6.0, abs=1e-6)
