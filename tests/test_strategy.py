"""Strategy API: params (defaults, validation, parsing, grids, optuna), loading by name."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest

from quantdesk.errors import QuantdeskError
from quantdesk.strategy import (
    Below,
    Choice,
    Float,
    Int,
    ParamError,
    QuoteStrategy,
    Signals,
    SignalStrategy,
    StrategyError,
    available_strategies,
    load_strategy,
    parse_param_args,
    repo_strategies_dir,
    strategy_class,
)


class Demo(SignalStrategy):
    params = {
        "n": Int(2, 50, 10),
        "k": Float(0.5, 3.0, 2.0),
        "mode": Choice(["fast", "slow"], "fast"),
    }


def test_defaults_and_overrides_become_attributes():
    s = Demo(k=1.5)
    assert (s.n, s.k, s.mode) == (10, 1.5, "fast")
    assert s.values == {"n": 10, "k": 1.5, "mode": "fast"}
    assert isinstance(Demo(n=12.0).n, int)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"n": 51}, r"param n=51 is out of range \[2, 50\]"),
        ({"n": 2.5}, "param n must be an integer"),
        ({"n": "ten"}, "param n must be an integer"),
        ({"k": 0.1}, r"param k=0.1 is out of range \[0.5, 3\]"),
        ({"k": True}, "param k must be a number"),
        ({"mode": "medium"}, "param mode='medium' is not one of: fast, slow"),
        ({"m": 1}, "unknown param 'm' for strategy Demo .params: n, k, mode."),
    ],
)
def test_bad_params_raise_one_line_user_errors(values, message):
    with pytest.raises(ParamError, match=message) as info:
        Demo(**values)
    assert isinstance(info.value, QuantdeskError)
    assert "\n" not in str(info.value)


def test_param_declarations_reject_defaults_outside_their_bounds():
    with pytest.raises(ValueError):
        Int(1, 5, 9)
    with pytest.raises(ValueError):
        Choice(["a"], "b")


def test_grid_ranges_are_inclusive_and_validated():
    assert Int(1, 100, 5).grid("fast", "5:50:5") == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert Int(1, 100, 5).grid("fast", "5,7,9") == [5, 7, 9]
    assert Float(0, 1, 0).grid("k", "0.1:0.3:0.1") == [0.1, 0.2, 0.3]
    assert Choice(["a", "b"], "a").grid("m", "a,b") == ["a", "b"]
    with pytest.raises(ParamError, match="out of range"):
        Int(1, 20, 5).grid("fast", "5:50:5")
    with pytest.raises(ParamError, match="lo:hi:step"):
        Int(1, 20, 5).grid("fast", "5:10")
    with pytest.raises(ParamError, match="step > 0"):
        Int(1, 20, 5).grid("fast", "5:10:0")


def test_parse_param_args_splits_fixed_values_and_sweeps():
    fixed, grid = parse_param_args(Demo, ["n=12", "k=0.5:1.5:0.5", "mode=slow"])
    assert fixed == {"n": 12, "mode": "slow"}
    assert grid == {"k": [0.5, 1.0, 1.5]}
    with pytest.raises(ParamError, match="name=value"):
        parse_param_args(Demo, ["n"])
    with pytest.raises(ParamError, match="unknown param 'z'"):
        parse_param_args(Demo, ["z=1"])


def test_optuna_search_space_comes_from_the_declaration():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = []

    def objective(trial):
        values = {name: p.suggest(trial, name) for name, p in Demo.params.items()}
        seen.append(Demo(**values).values)
        return 0.0

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=20)
    dists = study.trials[0].distributions
    assert (dists["n"].low, dists["n"].high) == (2, 50)
    assert (dists["k"].low, dists["k"].high) == (0.5, 3.0)
    assert tuple(dists["mode"].choices) == ("fast", "slow")
    assert all(2 <= v["n"] <= 50 and 0.5 <= v["k"] <= 3.0 for v in seen)


def test_sweep_holds_one_list_entry_per_combination():
    s = Demo.sweep({"n": [5, 10], "mode": ["fast", "slow"]}, k=1.0)
    assert s.combos == [
        {"n": 5, "k": 1.0, "mode": "fast"},
        {"n": 5, "k": 1.0, "mode": "slow"},
        {"n": 10, "k": 1.0, "mode": "fast"},
        {"n": 10, "k": 1.0, "mode": "slow"},
    ]
    assert s.n == [5, 5, 10, 10]
    assert s.k == [1.0] * 4
    like = pd.DataFrame(0.0, index=range(2), columns=range(8))  # 4 combos x 2 symbols
    assert list(s.per_column(s.n, like)) == [5, 5, 5, 5, 10, 10, 10, 10]
    with pytest.raises(ParamError, match="out of range"):
        Demo.sweep({"n": [5, 500]})


def test_signals_need_entries_and_exits_or_weights():
    frame = pd.DataFrame({"a": [True]})
    with pytest.raises(StrategyError):
        Signals(entries=frame)
    with pytest.raises(StrategyError):
        Signals(entries=frame, exits=frame, weights=frame.astype(float))
    assert Signals(weights=frame.astype(float)).frame is not None


def test_quote_strategy_hooks_default_to_no_orders():
    q = QuoteStrategy()
    assert q.on_bar(None, None) == [] and q.on_fill(None, None) == []
    assert q.on_book(None, None) == [] and q.on_funding(None, None) == []


def test_load_strategy_by_name_from_a_folder(tmp_path):
    folder = repo_strategies_dir()
    assert {"sma_cross", "rsi_reversion"} <= set(available_strategies(folder))
    s = load_strategy("sma_cross", {"fast": 5, "slow": 20}, folder)
    assert s.label() == "sma_cross"
    assert (s.fast, s.slow, s.sl_stop) == (5, 20, 0.0)
    with pytest.raises(StrategyError, match=r"unknown strategy 'nope' .* \(available: .*sma_cross"):
        load_strategy("nope", {}, folder)
    with pytest.raises(ParamError, match=r"param fast=0 is out of range"):
        load_strategy("sma_cross", {"fast": 0}, folder)


def test_default_folder_is_cwd_strategies_and_modules_do_not_collide(tmp_path, monkeypatch):
    body = (
        "from quantdesk.strategy import Int, SignalStrategy\n"
        "class S(SignalStrategy):\n"
        "    params = {{'n': Int(1, 9, {n})}}\n"
    )
    for sub, n in (("one", 1), ("two", 2)):
        (tmp_path / sub / "strategies").mkdir(parents=True)
        (tmp_path / sub / "strategies" / "mine.py").write_text(body.format(n=n))
    monkeypatch.delenv("QUANTDESK_STRATEGIES", raising=False)
    monkeypatch.chdir(tmp_path / "one")
    first = strategy_class("mine")
    monkeypatch.chdir(tmp_path / "two")
    second = strategy_class("mine")
    assert first().n == 1 and second().n == 2
    monkeypatch.setenv("QUANTDESK_STRATEGIES", str(tmp_path / "one" / "strategies"))
    assert strategy_class("mine")().n == 1


def test_broken_strategy_file_is_a_user_error(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(StrategyError, match="broken failed to import: boom"):
        strategy_class("broken", tmp_path)
    with pytest.raises(StrategyError, match="exactly one Strategy subclass"):
        strategy_class("empty", tmp_path)


def test_declared_constraints_refuse_bad_pairs_and_thin_sweeps():
    class Cross(SignalStrategy):
        params = {"fast": Int(2, 50, 5), "slow": Int(3, 100, 20)}
        constraints = (Below("fast", "slow"),)

    assert Cross(fast=10, slow=11).values == {"fast": 10, "slow": 11}
    with pytest.raises(ParamError, match="fast=20 must be below slow=20"):
        Cross(fast=20)
    with pytest.raises(ParamError, match="fast=30 must be below slow=20"):
        Cross(fast=30)
    sweep = Cross.sweep({"fast": [5, 10, 30], "slow": [10, 40]})
    assert sweep.combos == [
        {"fast": 5, "slow": 10},
        {"fast": 5, "slow": 40},
        {"fast": 10, "slow": 40},
        {"fast": 30, "slow": 40},
    ]
    # a sweep's fixed part is checked with its grid, not against the defaults alone
    assert Cross.sweep({"slow": [40, 60]}, fast=30).values == {"fast": [30, 30], "slow": [40, 60]}
    with pytest.raises(ParamError, match="must be below"):
        Cross.sweep({"slow": [10, 20]}, fast=30)


@pytest.mark.parametrize("name", ["label", "values", "combos", "signals", "timeframe", "_x"])
def test_params_named_like_framework_attributes_are_refused(name):
    with pytest.raises(StrategyError, match=f"param '{name}' collides"):
        type("Clash", (SignalStrategy,), {"params": {name: Int(1, 5, 2)}})


def test_a_clashing_param_in_a_strategy_file_is_a_one_line_user_error(tmp_path):
    (tmp_path / "clash.py").write_text(
        "from quantdesk.strategy import Int, SignalStrategy\n\n\n"
        "class Clash(SignalStrategy):\n"
        "    params = {'values': Int(1, 5, 2)}\n"
    )
    with pytest.raises(StrategyError, match="param 'values' collides"):
        strategy_class("clash", tmp_path)
