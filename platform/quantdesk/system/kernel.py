"""build_kernel: the one way replay, paper and live sessions put a kernel together."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from quantdesk.engine.kernel import ExecutionMode, Kernel
from quantdesk.engine.order_manager import OrderJournal, OrderManager
from quantdesk.engine.portfolio import Portfolio
from quantdesk.engine.runner import Runner
from quantdesk.model import Order, RetryPolicy, RiskCheck, Venue, dec
from quantdesk.risk.breaker import BreakerVenue, CircuitBreaker
from quantdesk.risk.checks import RiskEngine
from quantdesk.risk.guard import RiskGuard
from quantdesk.risk.limits import RiskConfig


def venue_breaker(name: str, config: RiskConfig | None, alert: Any = None) -> CircuitBreaker:
    """The one circuit breaker of a venue, with the [risk] settings (defaults without them)."""
    return CircuitBreaker.from_config(name, config or RiskConfig(), alert=alert)


def funding_schedule(
    funding: Mapping[str, pd.DataFrame | pd.Series] | None,
) -> dict[str, list[tuple[int, Decimal]]]:
    """Stored funding rates (index: settlement time, column funding_rate) -> kernel schedule."""
    out = {}
    for symbol, rates in (funding or {}).items():
        series = rates["funding_rate"] if isinstance(rates, pd.DataFrame) else rates
        times = series.index.as_unit("ms").asi8
        out[symbol] = [(int(t), dec(r)) for t, r in zip(times, series, strict=True) if r == r]
    return out


def timeout_ms(config: RiskConfig | None) -> int | None:
    """[risk] order_timeout_s in ms (None: orders never time out)."""
    if config is None or config.order_timeout_s is None:
        return None
    return int(config.order_timeout_s * 1000)


def build_kernel(
    venue: Venue,
    portfolio: Portfolio,
    journal: OrderJournal,
    clock: Any,
    *,
    breaker: CircuitBreaker,
    runners: Sequence[Runner],
    risk: RiskCheck | None,
    mode: ExecutionMode | str = ExecutionMode.AUTO,
    amount_step: Decimal,
    timeframe_ms: int,
    equity_every: int = 1,
    retry: RetryPolicy | None = None,
    order_timeout_ms: int | None = None,
    known_orders: Iterable[Order] = (),
    config_path: Path | None = None,
    returns: pd.DataFrame | None = None,
    funding: Mapping[str, Sequence[tuple[int, Decimal]]] | None = None,
) -> Kernel:
    """A kernel over `venue`, every request through the venue's circuit `breaker`; a full
    RiskEngine also gets its guard (monitors, kill switch and, with config_path, hot reload;
    returns feed VaR). known_orders: finished orders from the journal, whose client ids must
    never be sent again; funding: per perpetual, (settlement ms, rate) to settle on positions."""
    if breaker.venue != venue.name:
        raise ValueError(f"breaker of {breaker.venue} given for venue {venue.name}")
    if isinstance(risk, RiskEngine) and risk.breakers.get(venue.name) is not breaker:
        raise ValueError(f"the risk engine must deny orders while {venue.name}'s breaker is open")
    guard = None
    if isinstance(risk, RiskEngine):
        engine = risk

        def guard(om: OrderManager) -> RiskGuard:
            return RiskGuard(
                engine, [om], journal=journal, config_path=config_path, returns=returns
            )

    kernel = Kernel(
        BreakerVenue(venue, breaker),
        portfolio,
        journal,
        clock,
        runners=runners,
        risk=risk,
        mode=ExecutionMode(mode),
        amount_step=amount_step,
        timeframe_ms=timeframe_ms,
        equity_every=equity_every,
        retry=retry,
        order_timeout_ms=order_timeout_ms,
        guard=guard,
        funding=funding,
    )
    kernel.om.remember(known_orders)
    return kernel
