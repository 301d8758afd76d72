"""The `[risk]` section of quantdesk.toml: limits with defaults and per-strategy overrides.

Fractions are of equity (0.02 = 2%). A limit set to nothing (omitted where the default is None)
is off. Every value is validated when the config loads (and again on hot reload), so a bad edit
is refused with one line naming the field instead of surfacing mid-session.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Fraction = Field(gt=0, le=1)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RiskLimits(_Model):
    """Every limit the pre-trade check and the monitors enforce."""

    risk_per_trade: float = Field(0.02, gt=0, le=1, description="stop distance x size / equity")
    daily_loss_limit: float = Field(0.05, gt=0, le=1, description="of the UTC day's start equity")
    max_drawdown: float = Field(0.20, gt=0, le=1, description="from the equity peak: halt")
    reduce_at: float = Field(
        0.8, gt=0, le=1, description="share of the loss/drawdown limits that moves to REDUCING"
    )
    max_open_positions: int = Field(10, ge=1)
    max_symbol_exposure: float = Field(0.15, gt=0, description="|position| x price / equity")
    max_gross_exposure: Decimal | None = Field(None, gt=0, description="sum |notional|, currency")
    max_order_notional: Decimal | None = Field(None, gt=0, description="per order, currency")
    price_band: float = Field(0.05, gt=0, le=1, description="limit price vs last price")
    max_orders_per_second: int = Field(5, ge=1)
    max_orders_per_minute: int = Field(60, ge=1)
    max_cancel_ratio: float = Field(0.9, gt=0, description="cancels / orders in the window")
    cancel_ratio_window_s: float = Field(300.0, gt=0)
    cancel_ratio_min_orders: int = Field(20, ge=1, description="orders before the ratio applies")
    max_leverage: float = Field(3.0, gt=0, description="gross exposure / equity")
    liquidation_buffer: float = Field(0.05, gt=0, lt=1, description="perps: liq. price vs mark")
    liquidation_action: Literal["reduce", "reject"] = "reduce"
    maintenance_margin_rate: float = Field(0.004, ge=0, lt=1)
    default_stop_loss: float | None = Field(0.05, gt=0, lt=1)
    default_take_profit: float | None = Field(0.10, gt=0)

    def protective_prices(
        self, long: bool, entry: Decimal
    ) -> tuple[Decimal | None, Decimal | None]:
        """(stop-loss, take-profit) prices for a position entered at `entry` (None = off)."""
        from quantdesk.model import dec  # config loads this module; the CLI starts without pandas

        sl = None if self.default_stop_loss is None else dec(self.default_stop_loss)
        tp = None if self.default_take_profit is None else dec(self.default_take_profit)
        sign = 1 if long else -1
        return (
            None if sl is None else entry * (1 - sign * sl),
            None if tp is None else entry * (1 + sign * tp),
        )


class RiskConfig(RiskLimits):
    """`[risk]`: the limits, engine-side settings and `[risk.strategies.NAME]` overrides."""

    monitor_interval_s: float = Field(10.0, gt=0, description="monitors also run on every fill")
    reload_interval_s: float = Field(2.0, gt=0, description="how often quantdesk.toml is polled")
    flatten_on_halt: bool = Field(False, description="automatic halts also flatten positions")
    breaker_failures: int = Field(5, ge=1, description="consecutive failures that open it")
    breaker_cooldown_s: float = Field(60.0, gt=0)
    order_timeout_s: float | None = Field(
        None, gt=0, description="cancel working orders older than this (stops/take-profits kept)"
    )
    var_window_days: int = Field(250, ge=2)
    strategies: dict[str, dict[str, Any]] = {}

    @model_validator(mode="after")
    def _overrides_valid(self) -> RiskConfig:
        # Validate each override now (not when the strategy first trades) by building it.
        for name in self.strategies:
            self.limits_for(name)
        return self

    def limits_for(self, strategy_id: str | None = None) -> RiskLimits:
        """The limits for one strategy: the defaults with its overrides applied."""
        base = {name: getattr(self, name) for name in RiskLimits.model_fields}
        override = self.strategies.get(strategy_id or "", {})
        try:
            return RiskLimits.model_validate({**base, **override})
        except Exception as exc:
            # Re-raise as a pydantic error located under strategies.NAME.
            raise ValueError(f"strategies.{strategy_id}: {_first_error(exc)}") from None


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)
