"""Small explicit fixtures shared by the risk tests: markets, portfolios, orders."""

from __future__ import annotations

import itertools
from decimal import Decimal as D
from typing import Any

from quantdesk.engine.portfolio import Portfolio
from quantdesk.model import Fill, Instrument, Order, OrderType, Side
from quantdesk.risk.checks import RiskEngine
from quantdesk.risk.limits import RiskConfig

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BTC/USDT:USDT")
_ids = itertools.count(1)


def markets() -> dict[str, Instrument]:
    """Price 100 everywhere; amount step 0.001, min notional 5."""
    return {
        s: Instrument(
            s,
            amount_step=D("0.001"),
            price_tick=D("0.01"),
            min_amount=D("0.001"),
            min_notional=D(5),
        )
        for s in SYMBOLS
    }


class Clock:
    """A settable ms clock."""

    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def fill(portfolio: Portfolio, symbol: str, qty: str, price: str = "100") -> None:
    """Book a fill of signed qty at price."""
    q = D(qty)
    n = next(_ids)
    portfolio.apply_fill(
        Fill(
            f"t{n}",
            f"qd-f{n}",
            symbol,
            Side.BUY if q > 0 else Side.SELL,
            abs(q),
            D(price),
            D(0),
            "USDT",
            0,
        )
    )


def engine(
    cash: str = "100000", clock: Clock | None = None, leverage: str = "1", **limits: Any
) -> RiskEngine:
    """A RiskEngine over a fresh portfolio with marks at 100 and the given limit overrides."""
    risk = RiskEngine(
        markets(),
        RiskConfig(**limits),
        Portfolio(cash={"USDT": D(cash)}),
        clock=clock or Clock(),
        leverage=D(leverage),
    )
    for s in SYMBOLS:
        risk.update_price(s, D(100))
    return risk


def order(
    amount: str, side: str = "buy", symbol: str = "BTC/USDT", price: str | None = None, **kw: Any
) -> Order:
    """A market order (limit when price is given) with a fresh client id."""
    return Order(
        f"qd-{next(_ids)}",
        symbol,
        Side(side),
        OrderType.LIMIT if price else OrderType.MARKET,
        D(amount),
        created_ms=0,
        price=D(price) if price else None,
        **kw,
    )
