"""`quantdesk backtest --risk`: the strategy replayed through the engine with the [risk] limits."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from quantdesk.backtest import Costs
from quantdesk.data.store import DataStore
from quantdesk.data.synthetic import SynthSpec, generate_market, write_market
from quantdesk.model import Side
from quantdesk.risk.limits import RiskConfig
from quantdesk.strategy import load_strategy, repo_strategies_dir
from quantdesk.system.replay import replay
from tests.conftest import run_cli

ARGS = [
    "--strategy",
    "sma_cross",
    "--symbols",
    "BTC/USDT",
    "--timeframe",
    "1h",
    "--param",
    "fast=6",
    "--param",
    "slow=24",
    "--exchange",
    "synthetic",
    "--market",
    "spot",
]


@pytest.fixture(scope="module")
def market():
    return generate_market(SynthSpec(seed=11, days=20, assets=SynthSpec().assets[:2]))


@pytest.fixture
def invoke(market, tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    write_market(DataStore(root), market, exchange="synthetic", timeframes=("1h",))
    monkeypatch.setenv("QUANTDESK_DATA", str(root))
    monkeypatch.chdir(tmp_path)

    def _invoke(*args: str) -> tuple[int, str, str]:
        argv = ["backtest", "--strategies-dir", str(repo_strategies_dir()), *args]
        return run_cli(argv, capsys)

    return _invoke


def test_risk_flag_reports_what_live_would_cut(invoke, market, tmp_path: Path) -> None:
    (tmp_path / "quantdesk.toml").write_text("[risk]\nmax_symbol_exposure = 0.2\n")
    # sized as live sizes by default: entries already within the limits, nothing to cut
    code, out, err = invoke(*ARGS, "--risk")
    assert code == 0, err
    assert "sizing: 0.2 of equity per entry (risk limits)" in out
    assert "approved_reduced" not in out
    # all-in, the live RiskEngine cuts every entry: what an all-in backtest would hide
    code, out, err = invoke(*ARGS, "--risk", "--all-in")
    assert code == 0, err
    assert "with risk limits: sma_cross" in out and "pre-trade risk decisions" in out
    # the same replay directly: every entry is cut to 20% of equity
    strategy = load_strategy("sma_cross", {"fast": 6, "slow": 24})
    result = replay(
        strategy,
        {"BTC/USDT": market.bars("BTC/USDT", "1h")},
        Costs(),
        risk_config=RiskConfig(max_symbol_exposure=0.2),
    )
    buys = [f for f in result.fills if f.side is Side.BUY]
    assert buys and all(f.amount * f.price <= D("0.2") * D(10_500) for f in buys)
    cut = result.extra["risk"]["approved_reduced: symbol_exposure"]
    assert cut == len(buys)
    row = next(line for line in out.splitlines() if "approved_reduced: symbol_exposure" in line)
    assert row.split()[-2] == str(cut)


def test_risk_flag_refuses_bad_limits_and_sweeps(invoke, tmp_path: Path) -> None:
    (tmp_path / "quantdesk.toml").write_text("[risk]\nmax_open_positions = 0\n")
    code, _, err = invoke(*ARGS, "--risk")
    assert code == 2 and "risk.max_open_positions" in err and len(err.splitlines()) == 1
    (tmp_path / "quantdesk.toml").write_text("")
    code, _, err = invoke(*ARGS[:6], "--param", "fast=4,6", "--exchange", "synthetic", "--risk")
    assert code == 2 and "--risk runs one parameter set" in err
