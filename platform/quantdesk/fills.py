"""The fill convention, written once: vectorbt backtests, SimVenue and the sandbox all follow it.

- A signal computed on the close of bar t executes at the open of bar t+1 (`next_open`).
- Slippage is a fraction of price, always against the trader; fees are a fraction of notional.
- Stops and take-profits trigger inside a bar on its high/low (touching counts) and fill at the
  trigger price, or at the open when the bar gaps through it. A triggered stop is a market
  order: it pays slippage. The trigger is a fraction of the entry fill price, and it is armed
  from the bar after the entry fill (vectorbt checks stops before a bar's orders), so the entry
  bar's own high/low never trigger it. When a bar reaches both, the stop-loss wins.
- Limit orders fill at their price when the bar trades through it (strictly beyond: touching a
  price says nothing about queue position), or at the open when the bar opens beyond it.

Functions are generic over float and Decimal: the engine passes Decimal, vectorbt code floats.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

import pandas as pd

N = TypeVar("N", float, Decimal)


class Side(StrEnum):
    """Order side."""

    BUY = "buy"
    SELL = "sell"


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
