"""`quantdesk validate`: verdict table, exit 0 / 1 / 2."""

from __future__ import annotations

import textwrap

import pytest

from quantdesk.backtest.optimize import job_from_store, optimize
from quantdesk.backtest.runner import to_bars
from quantdesk.backtest.validation import (
    LOOKAHEAD_MAX_CUTS,
    LOOKAHEAD_RANDOM_CUTS,
    RECURSIVE_RANDOM_STARTS,
)
from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.strategy import repo_strategies_dir, strategy_class
from tests.backtest.test_sparse_biases import fired_rows
from tests.backtest.test_validation import PEEK
from tests.conftest import make_bars, run_cli

ARGS = ["validate", "--symbols", "BTC/USDT", "--timeframe", "1h"]


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A store with 400 hourly bars, a strategies folder with the planted bug, cwd = tmp_path."""
    store = DataStore(tmp_path / "data")
    store.write(SeriesKey("lab", "spot", "BTC/USDT", "1h"), make_bars(400, seed=5))
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "peek.py").write_text(textwrap.dedent(PEEK))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "data"))
    return tmp_path


def run(*args: str) -> int:
    """quantdesk ARGS -> exit code."""
    return run_cli(args)[0]


def test_bundled_strategy_passes_and_planted_bug_fails(root, capsys):
    bundled = ["--strategies-dir", str(repo_strategies_dir())]
    checks = ["--checks", "lookahead,recursive,parity"]
    assert run(*ARGS, "--strategy", "sma_cross", *bundled, *checks) == 0
    out = capsys.readouterr().out
    assert "verdict: PASS" in out and out.count(" pass ") == 3
    # the table says how many bars each causality check looked at: every firing bar + random
    strategy = strategy_class("sma_cross", repo_strategies_dir())()
    n, w = 400, strategy.warmup
    fired = fired_rows(strategy.signals(to_bars({"BTC/USDT": make_bars(400, seed=5)})))
    cuts = [r + 1 for r in fired if w + 2 <= r + 1 <= n - 1]
    starts = [r - w for r in fired if 1 <= r - w <= n - w - 3]
    assert 0 < len(cuts) <= LOOKAHEAD_MAX_CUTS - LOOKAHEAD_RANDOM_CUTS
    assert f" {len(cuts) + LOOKAHEAD_RANDOM_CUTS} bars " in out
    assert f" {len(starts) + RECURSIVE_RANDOM_STARTS} starts, warmup {w} " in out

    assert run(*ARGS, "--strategy", "peek", "--checks", "lookahead") == 1
    out = capsys.readouterr().out
    assert "lookahead" in out and "FAIL" in out and "verdict: FAIL" in out


def test_validate_a_study_runs_the_overfitting_checks(root, capsys):
    from quantdesk.strategy import repo_strategies_dir

    strategies = str(repo_strategies_dir())
    job = job_from_store(
        DataStore(root / "data"),
        "sma_cross",
        "BTC/USDT",
        "1h",
        param_args=["sl_stop=0", "tp_stop=0", "fast=2:12:2", "slow=20:40:10"],
        strategies_dir=strategies,
    )
    result = optimize(job, n_trials=8, storage=root / "s.sqlite3", study_name="s", progress=False)
    # every configuration tried counts, pruned ones included (issue 12: honest deflation)
    tried = sum(t.state.name in ("COMPLETE", "PRUNED") for t in result.study.trials)
    code = run(
        "validate",
        "--strategy",
        "sma_cross",
        "--study",
        "s",
        "--storage",
        str(root / "s.sqlite3"),
        "--strategies-dir",
        strategies,
        "--checks",
        "dsr,pbo,stability",
    )
    out = capsys.readouterr().out
    for name in ("dsr", "pbo", "stability"):
        assert name in out
    assert f"over {tried} trials" in out  # the DSR deflates by the study's trial count
    assert code == (0 if "verdict: PASS" in out else 1)


def test_validate_bad_input_exits_2(root, capsys):
    assert run("validate", "--strategy", "peek") == 2
    assert "give --symbols" in capsys.readouterr().err
    assert run(*ARGS, "--strategy", "peek", "--checks", "nope") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown check 'nope'" in err[0]
    assert run(*ARGS, "--strategy", "peek", "--param", "window=3,5") == 2
    assert "one value per --param" in capsys.readouterr().err
