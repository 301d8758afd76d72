"""Fills and costs, and the fill convention written once (backtests, SimVenue, the sandbox).

- A signal computed on the close of bar t executes at the open of bar t+1 (`next_open`).
- Slippage is a fraction of price, always against the trader; fees are a fraction of notional.
- Inside a bar, the market order due at its open executes first, then the bar trades through
  its range. So an exit signal due at the open exits at the open, even when the bar later
  reaches the stop or the target (the stop would come too late to replace it).
- Stops and take-profits trigger inside a bar on its high/low (touching counts) and fill at the
  trigger price, or at the open when the bar gaps through it. A triggered stop is a market
  order: it pays slippage. The trigger is a fraction of the entry fill price, and it is live
  from the entry fill on: the entry bar's high/low, which trade after its open, can trigger it.
  When a bar reaches both, the stop-loss wins (the path inside a bar is unknown: the
  pessimistic side).
- Limit orders fill at their price when the bar trades through it (strictly beyond: touching a
  price says nothing about queue position), or at the open when the bar opens beyond it.

Functions are generic over float and Decimal: the engine passes Decimal, vectorbt code floats.
`net_fill` is the one place that says what a fill does to an account, whatever currency its fee
was charged in: the portfolio, the strategy runners and SimVenue all book fills through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

import pandas as pd

from quantdesk.errors import BacktestError
from quantdesk.model.enums import Side
from quantdesk.model.instrument import split_symbol
from quantdesk.model.numbers import ZERO

N = TypeVar("N", float, Decimal)
INIT_CASH = 10_000.0


@dataclass(frozen=True)
class Costs:
    """The terms a simulation trades on: fee as a fraction of notional, slippage as a fraction
    of price, starting cash, and `size`: the fraction of the cash an entry spends (None = all of
    it). Research, replay, paper and live take `size` from one place
    (quantdesk.risk.sizing.entry_size), so they size alike."""

    fee: float = 0.0
    slippage: float = 0.0
    init_cash: float = INIT_CASH
    size: float | None = None

    def __post_init__(self) -> None:
        if self.size is not None and not (
            isinstance(self.size, int | float) and 0.0 < self.size <= 1.0
        ):
            raise BacktestError(f"size must be a fraction in (0, 1], got {self.size!r}")
        for name in ("fee", "slippage"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value < 0.1):
                raise BacktestError(f"{name} must be a fraction in [0, 0.1), got {value!r}")
        if not self.init_cash > 0:
            raise BacktestError(f"init_cash must be positive, got {self.init_cash!r}")


@dataclass(frozen=True)
class Fill:
    """One execution reported by a venue; trade_id is unique per venue."""

    trade_id: str
    client_order_id: str
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    timestamp: int  # ms UTC
    venue: str = ""
    venue_order_id: str | None = None

    @property
    def notional(self) -> Decimal:
        """amount * price."""
        return self.amount * self.price


@dataclass(frozen=True)
class NetFill:
    """What one fill does to an account: the trade itself, and its fee by where it is paid.

    A fee in the base asset (Binance spot buys) shrinks the quantity received instead of the
    cash; a fee in the cash currency is paid out of cash; a fee in a third asset (BNB) is paid
    out of that asset and has no value in the cash currency here.
    """

    base: str
    cash_currency: str
    quantity: Decimal  # signed trade quantity, before any fee
    price: Decimal
    cash: Decimal  # signed cash flow of the trade, before any fee
    fee_currency: str
    fee_in_base: Decimal = ZERO
    fee_in_cash: Decimal = ZERO
    fee_in_other: Decimal = ZERO

    @property
    def fee_value(self) -> Decimal:
        """The fee valued in the cash currency (at the fill price for a base-asset fee)."""
        return self.fee_in_base * self.price if self.fee_in_base else self.fee_in_cash

    @property
    def net_quantity(self) -> Decimal:
        """Signed change of the holding, fee included."""
        return self.quantity - self.fee_in_base


def net_fill(fill: Fill) -> NetFill:
    """Split one fill into its trade and its fee, the fee by the currency it is charged in."""
    base, ccy = split_symbol(fill.symbol)
    sign = 1 if fill.side is Side.BUY else -1
    cur = fill.fee_currency or ccy
    fees = {"fee_in_base": ZERO, "fee_in_cash": ZERO, "fee_in_other": ZERO}
    if fill.fee:
        key = "fee_in_base" if cur == base else "fee_in_cash" if cur == ccy else "fee_in_other"
        fees[key] = fill.fee
    return NetFill(
        base=base,
        cash_currency=ccy,
        quantity=sign * fill.amount,
        price=fill.price,
        cash=-sign * fill.amount * fill.price,
        fee_currency=cur,
        **fees,
    )


def next_open(signal: pd.Series) -> pd.Series:
    """Shift a close-of-bar signal so it acts on the next bar (execute at its open)."""
    return signal.shift(1, fill_value=False) if signal.dtype == bool else signal.shift(1)


def slipped_price(price: N, side: Side, slippage: N) -> N:
    """Execution price after slippage: buys pay more, sells receive less."""
    return price * (1 + slippage) if side is Side.BUY else price * (1 - slippage)


def fee(notional: N, rate: N) -> N:
    """Fee charged on a fill: a fraction of its absolute notional."""
    return abs(notional) * rate


def stop_fill(side: Side, trigger: N, bar_open: N, bar_high: N, bar_low: N) -> N | None:
    """Fill price of a stop or take-profit order within a bar, or None if it does not trigger.

    side is the side of the exit order: a SELL stop (long stop-loss) triggers when the low
    touches the trigger; a SELL take-profit is the BUY-side logic mirrored, see take_profit_fill.
    """
    if side is Side.SELL:
        if bar_open <= trigger:
            return bar_open  # gapped through: the first price available is the open
        return trigger if bar_low <= trigger else None
    if bar_open >= trigger:
        return bar_open
    return trigger if bar_high >= trigger else None


def take_profit_fill(side: Side, trigger: N, bar_open: N, bar_high: N, bar_low: N) -> N | None:
    """Fill price of a take-profit (a SELL above the market or a BUY below it), or None."""
    if side is Side.SELL:
        if bar_open >= trigger:
            return bar_open  # gapped above the target: filled at the (better) open
        return trigger if bar_high >= trigger else None
    if bar_open <= trigger:
        return bar_open
    return trigger if bar_low <= trigger else None


def limit_fill(side: Side, limit: N, bar_open: N, bar_high: N, bar_low: N) -> N | None:
    """Fill price of a resting limit order within a bar, or None if the bar does not cross it."""
    if side is Side.BUY:
        if bar_open < limit:
            return bar_open
        return limit if bar_low < limit else None
    if bar_open > limit:
        return bar_open
    return limit if bar_high > limit else None
