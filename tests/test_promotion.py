"""Promotion: validated studies land in the TOML registry; failing ones are refused; live mode's
gate accepts only the promoted params with unchanged code."""

from __future__ import annotations

import shutil
import tomllib

import numpy as np
import optuna
import pandas as pd
import pytest

from quantdesk.backtest.optimize import job_from_store, optimize
from quantdesk.data.store import DataStore, SeriesKey
from quantdesk.model import Costs
from quantdesk.promotion import NotPromotedError, code_version, require_promoted
from quantdesk.strategy import repo_strategies_dir
from tests.conftest import REPO, make_bars
from tests.conftest import run_cli as run_quantdesk

SPACE = ["sl_stop=0", "tp_stop=0", "fast=2:20:2", "slow=20:60:5"]


def sine_bars(n: int = 600, period: int = 120) -> pd.DataFrame:
    """A market with a real, repeatable cycle: trend following on it is not overfitting."""
    rng = np.random.default_rng(0)
    t = np.arange(n)
    close = 100 * np.exp(0.15 * np.sin(2 * np.pi * t / period) + rng.normal(0, 6e-4, n).cumsum())
    open_ = np.concatenate([[close[0]], close[:-1]])
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="time")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998,
            "close": close,
            "volume": 1.0,
        },
        index=index,
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A store with a cyclic market and a random walk, a strategies copy, and two studies."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = tmp_path_factory.mktemp("promo")
    store = DataStore(root / "data")
    store.write(SeriesKey("lab", "spot", "SINE/USDT", "1h"), sine_bars())
    store.write(SeriesKey("lab", "spot", "WALK/USDT", "1h"), make_bars(600, seed=9))
    strategies = root / "strategies"
    strategies.mkdir()
    shutil.copy(repo_strategies_dir() / "sma_cross.py", strategies / "sma_cross.py")
    storage = root / "studies.sqlite3"
    for name, symbol in (("cycle", "SINE/USDT"), ("walk", "WALK/USDT")):
        job = job_from_store(
            store, "sma_cross", symbol, "1h", param_args=SPACE, strategies_dir=str(strategies)
        )
        optimize(job, n_trials=16, storage=storage, study_name=name, progress=False)
    return {"root": root, "store": store, "strategies": strategies, "storage": storage}


def run_cli(lab, monkeypatch, *args: str) -> int:
    """quantdesk ARGS with the lab's data root; returns the exit code."""
    monkeypatch.chdir(lab["root"])
    monkeypatch.setenv("QUANTDESK_DATA", str(lab["root"] / "data"))
    return run_quantdesk(args)[0]


def promote_args(lab, study: str, registry) -> list[str]:
    """promote CLI args for a study of the lab."""
    return [
        "promote",
        "--strategy",
        "sma_cross",
        "--from-study",
        study,
        "--storage",
        str(lab["storage"]),
        "--registry",
        str(registry),
        "--strategies-dir",
        str(lab["strategies"]),
    ]


def test_promote_records_a_validated_study_and_gates_live_mode(lab, monkeypatch, capsys, tmp_path):
    registry = tmp_path / "promoted.toml"
    assert run_cli(lab, monkeypatch, *promote_args(lab, "cycle", registry)) == 0
    out = capsys.readouterr().out
    assert "promoted sma_cross(" in out and str(registry) in out

    entry = tomllib.loads(registry.read_text())["promoted"][0]
    study = optuna.load_study(study_name="cycle", storage=f"sqlite:///{lab['storage']}")
    best = study.best_trial
    assert entry["strategy"] == "sma_cross" and entry["study"] == "cycle"
    assert entry["params"] == {"sl_stop": 0.0, "tp_stop": 0.0, **best.params}
    assert entry["metrics"]["sharpe"] == pytest.approx(best.value)
    assert entry["data"]["symbols"] == ["SINE/USDT"] and entry["data"]["bars"] == 600
    assert entry["data"]["start"].startswith("2024-01-01T00:00")
    assert entry["sizing"] == {"kind": "all-in"}  # the lab's studies spent everything per entry
    assert {v["verdict"] for v in entry["validation"].values()} == {"pass"}
    assert set(entry["validation"]) == {
        "lookahead",
        "recursive",
        "dsr",
        "pbo",
        "stability",
        "parity",
        "walkforward",  # out-of-sample evidence is required, whatever --checks says
    }
    assert entry["validation"]["pbo"]["detail"].endswith("need <= 0.2")
    version = code_version("sma_cross", lab["strategies"])
    assert entry["code"]["strategy_sha256"] == version["strategy_sha256"]
    assert len(entry["code"]["git_commit"]) in (40, len("unknown"))

    # live mode's gate: the promoted params pass, others do not
    params = entry["params"]
    found = require_promoted("sma_cross", params, registry, lab["strategies"])
    assert found["trial"] == best.number
    with pytest.raises(NotPromotedError, match="is not a promoted version"):
        require_promoted("sma_cross", {**params, "fast": 7}, registry, lab["strategies"])
    with pytest.raises(NotPromotedError, match="never been promoted"):
        require_promoted("rsi_reversion", {}, registry, repo_strategies_dir())


def test_the_promotion_record_states_the_studys_sizing(lab, monkeypatch, capsys, tmp_path):
    """Figures of a study sized like live (a fraction per entry) are recorded with that size."""
    job = job_from_store(
        lab["store"], "sma_cross", "SINE/USDT", "1h", param_args=SPACE,
        strategies_dir=str(lab["strategies"]), costs=Costs(0.0, 0.0, 10_000.0, size=0.2),
    )  # fmt: skip
    optimize(job, n_trials=16, storage=lab["storage"], study_name="cycle-sized", progress=False)
    registry = tmp_path / "promoted.toml"
    assert run_cli(lab, monkeypatch, *promote_args(lab, "cycle-sized", registry)) == 0
    entry = tomllib.loads(registry.read_text())["promoted"][0]
    assert entry["sizing"] == {"fraction_per_entry": 0.2, "kind": "fraction of equity"}


def test_changed_strategy_code_is_no_longer_promoted(lab, tmp_path):
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    source = lab["strategies"] / "sma_cross.py"
    shutil.copy(source, strategies / "sma_cross.py")
    from quantdesk.promotion import promote

    done = promote(
        "sma_cross",
        "cycle",
        lab["storage"],
        lab["store"],
        strategies_dir=str(strategies),
        registry=tmp_path / "reg.toml",
        checks=("lookahead", "recursive"),
    )
    params = done.entry["params"]
    assert require_promoted("sma_cross", params, tmp_path / "reg.toml", strategies)
    with open(strategies / "sma_cross.py", "a") as handle:
        handle.write("\n# tweaked after promotion\n")
    with pytest.raises(NotPromotedError, match="code changed since it was promoted"):
        require_promoted("sma_cross", params, tmp_path / "reg.toml", strategies)


def test_promote_without_the_engine_replay_refuses_to_skip_parity(lab, tmp_path):
    from quantdesk.promotion import PromotionError, promote

    registry = tmp_path / "reg.toml"
    with pytest.raises(PromotionError, match="parity check needs the engine replay"):
        promote("sma_cross", "cycle", lab["storage"], lab["store"],
                strategies_dir=str(lab["strategies"]), registry=registry)  # fmt: skip
    assert not registry.exists()


def test_promote_refuses_an_overfit_study(lab, monkeypatch, capsys, tmp_path):
    registry = tmp_path / "promoted.toml"
    assert run_cli(lab, monkeypatch, *promote_args(lab, "walk", registry)) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("refused: validation failed: ")
    assert "FAIL" in captured.out  # the verdict table says which check failed
    assert not registry.exists()


def test_promote_bad_input_exits_2(lab, monkeypatch, capsys, tmp_path):
    registry = tmp_path / "promoted.toml"
    args = promote_args(lab, "nope", registry)
    assert run_cli(lab, monkeypatch, *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("error: no study 'nope'")
    args = promote_args(lab, "cycle", registry)
    args[2] = "rsi_reversion"
    args[-1] = str(repo_strategies_dir())
    assert run_cli(lab, monkeypatch, *args) == 2
    assert "optimized sma_cross, not rsi_reversion" in capsys.readouterr().err
    assert not registry.exists()
    assert REPO.is_dir()
