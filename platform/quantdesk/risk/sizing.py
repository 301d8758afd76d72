"""How much an entry spends, decided once for research, replay, paper and live.

Live trading cuts every entry to what the [risk] limits allow (risk per trade over the stop
distance, the symbol exposure cap, leverage). A backtest that goes all-in reports figures no
live session could reach, so by default research sizes entries the same way: the largest
fraction of equity the limits approve, given the strategy's stop. A strategy can declare its own
`sizing` (a fraction); all-in is there when asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quantdesk.errors import ConfigError
from quantdesk.risk.limits import RiskLimits
from quantdesk.strategy import Strategy


@dataclass(frozen=True)
class Sizing:
    """The fraction of a sleeve's cash an entry spends (None = all in) and where it came from."""

    fraction: float | None
    source: str  # "risk limits", "strategy", "--size" or "all-in"

    def describe(self) -> str:
        """One phrase for CLI output and reports, e.g. '15% of equity per entry (risk limits)'."""
        if self.fraction is None:
            return "all-in (the whole sleeve per entry)"
        return f"{self.fraction:.4g} of equity per entry ({self.source})"

    def to_dict(self) -> dict[str, Any]:
        """TOML/JSON-friendly form for study metadata and the promotion record."""
        return {"fraction": self.fraction, "source": self.source}


def limits_fraction(limits: RiskLimits, stop: float | None = None) -> float:
    """The largest entry, as a fraction of equity, the pre-trade size rules approve when flat.

    The rules (quantdesk.risk.checks): risk per trade over the stop distance (the strategy's
    stop, else the default stop-loss, else the whole notional), the symbol exposure cap and the
    leverage cap; a spot entry cannot spend more than the cash (1.0)."""
    distance = stop if stop else limits.default_stop_loss
    caps = [limits.max_symbol_exposure, limits.max_leverage, 1.0]
    caps.append(limits.risk_per_trade / distance if distance else limits.risk_per_trade)
    return float(min(caps))


def entry_size(
    strategy: type[Strategy] | Strategy,
    limits: RiskLimits | None = None,
    params: Mapping[str, Any] | None = None,
    size: float | None = None,
    all_in: bool = False,
) -> Sizing:
    """The sizing a run uses: --size, else --all-in, else the strategy's own, else the limits."""
    if size is not None and all_in:
        raise ConfigError("give --size or --all-in, not both")
    if size is not None:
        if not 0 < size <= 1:
            raise ConfigError(f"--size must be a fraction in (0, 1], got {size!r}")
        return Sizing(float(size), "--size")
    if all_in:
        return Sizing(None, "all-in")
    declared = getattr(strategy, "sizing", None)
    if declared is not None:
        return Sizing(float(declared), "strategy")
    values = dict(getattr(strategy, "values", None) or {})
    values.update(params or {})
    stop = values.get("sl_stop")
    stop = float(stop) if isinstance(stop, int | float) and stop > 0 else None
    return Sizing(limits_fraction(limits or RiskLimits(), stop), "risk limits")


__all__ = ["Sizing", "entry_size", "limits_fraction"]
