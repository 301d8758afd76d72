"""`quantdesk optimize`: grid fast path into a SQLite study, walk-forward table, bad input."""

from __future__ import annotations

import optuna
import pytest

from quantdesk.data.store import DataStore, SeriesKey
from tests.conftest import make_bars, run_cli

BASE = [
    "optimize",
    "--strategy",
    "sma_cross",
    "--symbols",
    "BTC/USDT",
    "--timeframe",
    "1h",
    "--param",
    "sl_stop=0",
    "--param",
    "tp_stop=0",
]


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A store with 400 hourly BTC/USDT bars as the configured data root (cwd = tmp_path)."""
    DataStore(tmp_path / "data").write(
        SeriesKey("lab", "spot", "BTC/USDT", "1h"), make_bars(400, seed=2)
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUANTDESK_DATA", str(tmp_path / "data"))
    return tmp_path


def run(*args: str) -> int:
    """quantdesk ARGS -> exit code."""
    return run_cli(args)[0]


def test_optimize_grid_into_a_sqlite_study(root, capsys):
    grid = ["--param", "fast=3,5", "--param", "slow=20:30:10", "--trials", "6"]
    grid += ["--min-trades", "0", "--holdout", "0"]
    assert run(*BASE, *grid, "--storage", "studies.sqlite3", "--study", "s") == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{root / 'studies.sqlite3'}")
    assert len(study.trials) == 4  # 2 x 2 combinations, each once (grid fast path)
    assert "sharpe (grid): top 4 of 4 complete trials" in out
    best = study.best_trial.params
    assert f"best: sl_stop=0.0, tp_stop=0.0, fast={best['fast']}, slow={best['slow']}" in out
    # the default study name and storage: reports/optuna.sqlite3
    assert run(*BASE, *grid) == 0
    assert (root / "reports" / "optuna.sqlite3").is_file()
    assert "study: sma_cross-1h-sharpe" in capsys.readouterr().out


def test_optimize_holds_out_the_tail_and_scores_it_out_of_sample(root, capsys):
    from quantdesk.backtest.optimize import evaluate
    from quantdesk.backtest.runner import Costs, to_bars
    from quantdesk.strategy import repo_strategies_dir, strategy_class

    grid = ["--param", "fast=3,5", "--param", "slow=20,30", "--min-trades", "0"]
    assert run(*BASE, *grid, "--storage", "s.sqlite3", "--study", "h") == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="h", storage=f"sqlite:///{root / 's.sqlite3'}")
    meta = study.user_attrs["quantdesk"]
    assert meta["bars"] == 320  # the search saw the first 80% only
    assert "at least 0 trades" in out
    assert "out-of-sample (held out, never searched)" in out and "(80 bars)" in out
    bars = to_bars({"BTC/USDT": make_bars(400, seed=2)})
    sma = strategy_class("sma_cross", repo_strategies_dir())
    params = {"sl_stop": 0.0, "tp_stop": 0.0, **study.best_trial.params}
    costs = Costs(fee=0.001, size=0.15)  # sized as the [risk] defaults allow, as the CLI does
    tail = evaluate(sma(**params), bars, costs, start=320)
    inside = evaluate(sma(**params), bars.iloc[:320], costs)
    best_row = next(line for line in out.splitlines() if f"│ {study.best_trial.number} " in line)
    assert f"{tail['total_return'] * 100:.2f}%" in best_row
    assert f"{inside['total_return'] * 100:.2f}%" in best_row
    assert tail["total_return"] != inside["total_return"]
    # the default constraint is one a quant would accept, and it is shown
    assert run(*BASE, *grid[:4], "--storage", "s.sqlite3", "--study", "h2") == 0
    assert "at least 10 trades" in capsys.readouterr().out


def test_optimize_walk_forward_prints_in_and_out_of_sample(root, capsys):
    args = ["--param", "fast=3,5", "--param", "slow=20,30", "--walk-forward", "2", "--trials", "4"]
    assert run(*BASE, *args, "--objective", "return_dd") == 0
    out = capsys.readouterr().out
    assert "walk-forward (rolling, return_dd): in-sample vs out-of-sample" in out
    assert "IS obj" in out and "OOS obj" in out and "efficiency" in out


def test_optimize_bad_input_exits_2(root, capsys):
    cases = [
        (["--objective", "nope"], "unknown objective 'nope'"),
        (["--workers", "2", "--storage", "memory"], "shared --storage"),
        (["--param", "fast=1"], "out of range"),
        (["--holdout", "1.5"], "holdout must be a fraction"),
    ]
    for extra, message in cases:
        assert run(*BASE, "--trials", "2", *extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def _stderr_of(args: list[str], cwd, tty: bool) -> str:
    """stderr of `quantdesk ARGS` in a fresh process, through a pseudo-terminal if tty."""
    import os
    import pty
    import subprocess
    import sys

    entry = "import sys; from quantdesk.cli import main; sys.exit(main(sys.argv[1:]))"
    master, slave = pty.openpty() if tty else (None, subprocess.PIPE)
    if tty:  # a terminal 100 columns wide (a new pty has 0: tqdm then draws nothing)
        import fcntl
        import struct
        import termios

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-c", entry, *args],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=slave, env=os.environ.copy(),
    )  # fmt: skip
    if not tty:
        err = proc.communicate(timeout=300)[1].decode()
        assert proc.returncode == 0, err
        return err
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=300) == 0
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("method", ["tpe", "grid"])
def test_a_progress_bar_only_in_a_terminal(root, method):
    args = [*BASE, "--param", "fast=3,5", "--param", "slow=20:30:10", "--trials", "4"]
    args += ["--min-trades", "0", "--holdout", "0", "--method", method, "--storage", "memory"]
    shown = _stderr_of(args, root, tty=True)
    assert "4/4" in shown and "100%" in shown, shown  # tqdm's bar, finished
    assert "4/4" not in _stderr_of(args, root, tty=False)  # logs and CI get no bar


def test_the_config_storage_key_stands_in_for_a_missing_storage_option(root, capsys):
    """[storage] optuna in quantdesk.toml: every worker without --storage shares that study."""
    (root / "quantdesk.toml").write_text('[storage]\noptuna = "team.sqlite3"\n')
    grid = ["--param", "fast=3,5", "--param", "slow=20", "--trials", "2"]
    grid += ["--min-trades", "0", "--holdout", "0", "--study", "team"]
    assert run(*BASE, *grid) == 0
    assert "(storage: team.sqlite3)" in capsys.readouterr().out
    study = optuna.load_study(study_name="team", storage=f"sqlite:///{root / 'team.sqlite3'}")
    assert len(study.trials) == 2
    assert not (root / "reports" / "optuna.sqlite3").exists()
    # an explicit --storage still wins over the config
    assert run(*BASE, *grid, "--storage", "mine.sqlite3") == 0
    assert (root / "mine.sqlite3").is_file()
