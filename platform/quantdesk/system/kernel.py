"""build_kernel: the one way replay, paper and live sessions put a kernel together."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from quantdesk.engine.kernel import ExecutionMode, Kernel
from quantdesk.engine.order_manager import OrderJournal, OrderManager
from quantdesk.engine.portfolio import Portfolio
from quantdesk.engine.runner import Runner
from quantdesk.model import Order, RetryPolicy, RiskCheck, Venue
from quantdesk.risk.checks import RiskEngine
from quantdesk.risk.guard import RiskGuard


def build_kernel(
    venue: Venue,
    portfolio: Portfolio,
    journal: OrderJournal,
    clock: Any,
    *,
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
) -> Kernel:
    """A kernel over `venue`; a full RiskEngine also gets its guard (monitors, kill switch and,
    with config_path, hot reload; returns feed VaR). known_orders: finished orders from the
    journal, whose client ids must never be sent again."""
    guard = None
    if isinstance(risk, RiskEngine):
        engine = risk

        def guard(om: OrderManager) -> RiskGuard:
            return RiskGuard(
                engine, [om], journal=journal, config_path=config_path, returns=returns
            )

    kernel = Kernel(
        venue,
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
    )
    kernel.om.remember(known_orders)
    return kernel
