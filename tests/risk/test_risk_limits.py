"""[risk] config: defaults from the issue, per-strategy overrides, one-line errors."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from quantdesk.config import load_config, parse_config
from quantdesk.errors import ConfigError
from quantdesk.risk.limits import RiskConfig


def test_defaults() -> None:
    limits = parse_config({}).risk.limits_for("any")
    assert limits.risk_per_trade == 0.02
    assert limits.daily_loss_limit == 0.05
    assert limits.max_open_positions == 10
    assert limits.max_symbol_exposure == 0.15
    assert limits.liquidation_buffer == 0.05
    assert limits.max_order_notional is None and limits.max_gross_exposure is None


def test_overrides_apply_to_their_strategy_only() -> None:
    risk = parse_config(
        {"risk": {"max_open_positions": 4, "strategies": {"mm": {"max_order_notional": "250"}}}}
    ).risk
    assert risk.limits_for("mm").max_order_notional == D(250)
    assert risk.limits_for("mm").max_open_positions == 4  # inherited
    assert risk.limits_for("other").max_order_notional is None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"daily_loss_limit": -0.05}, "risk.daily_loss_limit"),
        ({"risk_per_trade": 1.5}, "risk.risk_per_trade"),
        ({"max_open_positions": 0}, "risk.max_open_positions"),
        ({"liquidation_action": "ignore"}, "risk.liquidation_action"),
        ({"daily_loss_limt": 0.05}, "risk.daily_loss_limt"),
        ({"strategies": {"mm": {"price_band": -1}}}, "strategies.mm: price_band"),
    ],
)
def test_invalid_values_name_the_field_in_one_line(raw: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"risk": raw})
    message = str(err.value)
    assert field in message and "\n" not in message


def test_load_config_reads_the_risk_section(tmp_path) -> None:
    path = tmp_path / "quantdesk.toml"
    path.write_text("[risk]\ndaily_loss_limit = 0.03\n[risk.strategies.sma]\nmax_leverage = 1.5\n")
    config = load_config(path, env={})
    assert config.risk.daily_loss_limit == 0.03
    assert config.risk.limits_for("sma").max_leverage == 1.5
    assert isinstance(config.risk, RiskConfig)


def test_protective_prices_from_the_default_stop_and_take_profit() -> None:
    limits = RiskConfig(default_stop_loss=0.05, default_take_profit=0.1).limits_for("x")
    assert limits.protective_prices(True, D(200)) == (D(190), D(220))
    assert limits.protective_prices(False, D(200)) == (D(210), D(180))
    off = RiskConfig(default_stop_loss=None, default_take_profit=None)
    assert off.protective_prices(True, D(200)) == (None, None)
