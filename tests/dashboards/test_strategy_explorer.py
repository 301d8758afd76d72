"""StrategyExplorer logic without a browser: widgets from params, updates on change."""

from __future__ import annotations

import ipywidgets as widgets
import pytest

from quantdesk.backtest import Costs, run
from quantdesk.dashboards.strategy_explorer import StrategyExplorer, param_widget
from quantdesk.data.store import DataStore
from quantdesk.data.synthetic import SynthSpec, generate_market, write_market
from quantdesk.errors import QuantdeskError
from quantdesk.strategy import Choice, Float, Int, load_strategy, repo_strategies_dir

DIR = repo_strategies_dir()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> DataStore:
    root = tmp_path_factory.mktemp("explorer-data")
    market = generate_market(SynthSpec(seed=2, days=15, assets=SynthSpec().assets[:2]))
    write_market(DataStore(root), market, exchange="synthetic", timeframes=("1h",))
    return DataStore(root)


def test_param_widgets_follow_the_declaration():
    box = param_widget("fast", Int(2, 200, 10), 10)
    assert isinstance(box, widgets.BoundedIntText) and (box.min, box.max, box.value) == (2, 200, 10)
    assert isinstance(param_widget("k", Float(0.5, 3.0, 2.0), 2.0), widgets.BoundedFloatText)
    choice = param_widget("m", Choice(["a", "b"], "b"), "b")
    assert isinstance(choice, widgets.Dropdown) and choice.options == ("a", "b")
    assert "qd-param-fast" in box._dom_classes


def test_changing_a_param_reruns_the_backtest(store):
    explorer = StrategyExplorer(store, strategies_dir=DIR, symbol="BTC/USDT", costs=Costs(0.001))
    bars = store.load("BTC/USDT", "1h", market="spot")
    want = run(load_strategy("sma_cross", {}, DIR), {"BTC/USDT": bars}, Costs(0.001))
    assert explorer.result.summary()["total_return"] == pytest.approx(
        want.summary()["total_return"]
    )
    assert list(explorer.figure.data[0].y) == pytest.approx(list(want.equity.iloc[:, 0]))
    stats_before = explorer.stats.value

    explorer._param_widgets["fast"].value = 4
    want = run(load_strategy("sma_cross", {"fast": 4}, DIR), {"BTC/USDT": bars}, Costs(0.001))
    assert list(explorer.figure.data[0].y) == pytest.approx(list(want.equity.iloc[:, 0]))
    assert explorer.stats.value != stats_before
    assert f"{want.summary()['total_return'] * 100:,.2f}%" in explorer.stats.value


def test_switching_strategy_rebuilds_the_param_widgets(store):
    explorer = StrategyExplorer(store, strategies_dir=DIR, symbol="ETH/USDT")
    explorer.strategy.value = "rsi_reversion"
    assert list(explorer._param_widgets) == list(load_strategy("rsi_reversion", {}, DIR).params)
    assert explorer.result.strategy == "rsi_reversion"
    assert explorer.status.value == ""


def test_a_bad_selection_shows_an_error_and_keeps_the_last_result(store):
    explorer = StrategyExplorer(store, strategies_dir=DIR, symbol="BTC/USDT", start="2024-01-05")
    before = explorer.result
    explorer.start = "2030-01-01"
    explorer.refresh()
    assert (
        explorer.status.value.startswith("<span") and "no BTC/USDT 1h bars" in explorer.status.value
    )
    assert explorer.result is before


def test_empty_store_is_a_user_error(tmp_path):
    with pytest.raises(QuantdeskError, match="no bars under"):
        StrategyExplorer(DataStore(tmp_path), strategies_dir=DIR)


def test_dashboard_cli_unknown_name_exits_2(capsys):
    from quantdesk.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["dashboard", "nope", "--port", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2
    assert len(err) == 1 and "unknown notebook 'nope'" in err[0] and "strategy_explorer" in err[0]
