"""`quantdesk replay` prints the backtest's stats table; `quantdesk approve` queues commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantdesk.data.store import DataStore
from quantdesk.data.synthetic import SynthSpec, generate_market, write_market
from quantdesk.engine.journal import Journal
from quantdesk.strategy import repo_strategies_dir
from tests.conftest import run_cli

ARGS = ["--symbols", "BTC/USDT,ETH/USDT", "--param", "fast=5", "--param", "slow=20"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("replay-data")
    market = generate_market(SynthSpec(seed=5, days=15, assets=SynthSpec().assets[:2]))
    write_market(DataStore(root), market, exchange="synthetic", timeframes=("1h",))
    return root


@pytest.fixture
def invoke(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUANTDESK_DATA", str(data_root))
    monkeypatch.chdir(tmp_path)

    def _invoke(*args: str) -> tuple[int, str, str]:
        return run_cli(args, capsys)

    return _invoke


def table(text: str) -> list[str]:
    """The rows of the stats table (from the first statistic to the last)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "Total return" in line)
    end = next(i for i, line in enumerate(lines) if "End value" in line)
    return lines[start : end + 1]


def test_replay_prints_the_backtest_table_and_the_journal(invoke) -> None:
    strategies = ["--strategies-dir", str(repo_strategies_dir())]
    code, bt_out, _ = invoke("backtest", "--strategy", "sma_cross", *strategies, *ARGS)
    assert code == 0
    code, rp_out, _ = invoke(
        "replay", "--strategy", "sma_cross", *strategies, *ARGS, "--no-progress"
    )
    assert code == 0
    assert table(rp_out) == table(bt_out)
    assert "Trades" in rp_out and "replay sma_cross" in rp_out
    journal = Path(rp_out.split("journal: ")[1].split()[0])
    with Journal(journal) as j:
        assert set(j.fills()["symbol"]) == {"BTC/USDT", "ETH/USDT"}


def test_a_target_weight_strategy_says_its_weights_size_it(invoke) -> None:
    strategies = ["--strategies-dir", str(repo_strategies_dir())]
    args = ["--symbols", "BTC/USDT,ETH/USDT", "--timeframe", "1h", "--param", "lookback=24"]
    args += ["--param", "top=1"]
    for command in (["backtest"], ["replay", "--no-progress"]):
        code, out, _ = invoke(*command, "--strategy", "momentum_rotation", *strategies, *args)
        assert code == 0, out
        sizing = next(line for line in out.splitlines() if line.startswith("sizing:"))
        assert "target weights" in sizing and "per entry" not in sizing
    code, out, _ = invoke("backtest", "--strategy", "sma_cross", *strategies, *ARGS)
    assert "per entry" in next(line for line in out.splitlines() if line.startswith("sizing:"))


def test_replay_refuses_a_sweep_and_an_existing_journal(invoke, tmp_path) -> None:
    strategies = ["--strategies-dir", str(repo_strategies_dir())]
    code, _, err = invoke(
        "replay",
        "--strategy",
        "sma_cross",
        *strategies,
        "--symbols",
        "BTC/USDT",
        "--param",
        "fast=5,8",
    )
    assert code == 2 and err.startswith("error: replay runs one parameter set")
    (tmp_path / "j.sqlite").write_text("")
    code, _, err = invoke(
        "replay",
        "--strategy",
        "sma_cross",
        *strategies,
        "--symbols",
        "BTC/USDT",
        "--journal",
        str(tmp_path / "j.sqlite"),
    )
    assert code == 2 and "already exists" in err


def test_confirm_replay_then_approve(invoke, tmp_path) -> None:
    journal = tmp_path / "confirm.sqlite"
    code, out, _ = invoke(
        "replay",
        "--strategy",
        "sma_cross",
        "--strategies-dir",
        str(repo_strategies_dir()),
        "--symbols",
        "BTC/USDT",
        "--param",
        "fast=5",
        "--param",
        "slow=20",
        "--mode",
        "confirm",
        "--journal",
        str(journal),
        "--no-progress",
    )
    assert code == 0 and "orders awaiting approval: 1" in out
    code, out, _ = invoke("approve", "--journal", str(journal), "--list")
    assert code == 0 and "1 order(s) awaiting approval" in out
    with Journal(journal) as j:
        orders = j.orders()
        # entries superseded by newer signals were withdrawn; the last one waits
        assert set(orders["status"]) == {"pending", "canceled"}
        (cid,) = orders[orders["status"] == "pending"]["client_order_id"]
    code, out, _ = invoke("approve", cid, "--journal", str(journal))
    assert code == 0 and f"approve {cid}" in out
    with Journal(journal) as j:
        (command,) = j.pending_commands()
        assert (command.kind, command.target) == ("approve", cid)
    code, _, err = invoke("approve", "qd-nope", "--journal", str(journal))
    assert code == 2 and "not awaiting approval" in err
    code, _, err = invoke("approve", cid, "--journal", str(tmp_path / "missing.sqlite"))
    assert code == 2 and err.startswith("error: no journal")
