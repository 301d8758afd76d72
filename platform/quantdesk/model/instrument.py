"""Instruments: symbol parsing, precision, limits and fees of one market, written once.

`parse_symbol` is the one parser of ccxt unified symbols (BTC/USDT, BTC/USDT:USDT); every layer
splits symbols through it (or `split_symbol`). `round_to_step` is the one rounding to a grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any, NamedTuple

from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

from quantdesk.model.enums import Side
from quantdesk.model.numbers import ZERO, dec


class Symbol(NamedTuple):
    """A parsed ccxt unified symbol: BASE/QUOTE or BASE/QUOTE:SETTLE."""

    base: str
    quote: str
    settle: str = ""

    @property
    def cash(self) -> str:
        """The cash currency: the settle currency for derivatives, else the quote."""
        return self.settle or self.quote

    @property
    def is_derivative(self) -> bool:
        """A contract market (BTC/USDT:USDT)."""
        return bool(self.settle)


def parse_symbol(symbol: str) -> Symbol:
    """Split a ccxt unified symbol; ValueError when it has no base or quote."""
    base, _, rest = symbol.partition("/")
    quote, _, settle = rest.partition(":")
    if not base or not quote:
        raise ValueError(f"invalid symbol {symbol!r}")
    return Symbol(base, quote, settle)


def perpetual_of(symbol: str) -> str:
    """The linear perpetual of a spot symbol, settled in its quote: BTC/USDT -> BTC/USDT:USDT."""
    parsed = parse_symbol(symbol)
    return symbol if parsed.is_derivative else f"{symbol}:{parsed.quote}"


def split_symbol(symbol: str) -> tuple[str, str]:
    """(base, cash currency) of a ccxt symbol: the settle currency for derivatives."""
    parsed = parse_symbol(symbol)
    return parsed.base, parsed.cash


def round_to_step(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    """value on the grid of `step` (a tick or lot size), rounded with a decimal rounding mode."""
    return (value / step).to_integral_value(rounding) * step


@dataclass(frozen=True)
class Instrument:
    """One market: precision (steps, ticks), limits (None = no limit) and maker/taker fees."""

    symbol: str
    amount_step: Decimal
    price_tick: Decimal
    min_amount: Decimal = ZERO
    max_amount: Decimal | None = None
    min_notional: Decimal = ZERO
    maker_fee: Decimal | None = None
    taker_fee: Decimal | None = None

    @property
    def is_derivative(self) -> bool:
        """A contract market (positions with margin), e.g. BTC/USDT:USDT."""
        return ":" in self.symbol

    @property
    def base(self) -> str:
        """The asset traded."""
        return parse_symbol(self.symbol).base

    @property
    def cash_currency(self) -> str:
        """The currency amounts are paid in: the settle currency for derivatives."""
        return parse_symbol(self.symbol).cash

    @classmethod
    def from_ccxt(cls, market: Mapping[str, Any], precision_mode: int = TICK_SIZE) -> Instrument:
        """Build from a ccxt market dict (binance uses TICK_SIZE precision mode)."""

        def step(value: Any) -> Decimal:
            if value is None:
                raise ValueError(f"market {market.get('symbol')} has no precision")
            if precision_mode == DECIMAL_PLACES:
                return Decimal(1).scaleb(-int(value))
            if precision_mode == TICK_SIZE:
                return dec(value)
            raise ValueError("only TICK_SIZE and DECIMAL_PLACES precision modes are supported")

        def optional(value: Any) -> Decimal | None:
            return None if value is None else dec(value)

        limits = market.get("limits") or {}
        amount = limits.get("amount") or {}
        cost = limits.get("cost") or {}
        return cls(
            symbol=market["symbol"],
            amount_step=step(market["precision"]["amount"]),
            price_tick=step(market["precision"]["price"]),
            min_amount=optional(amount.get("min")) or ZERO,
            max_amount=optional(amount.get("max")),
            min_notional=optional(cost.get("min")) or ZERO,
            maker_fee=optional(market.get("maker")),
            taker_fee=optional(market.get("taker")),
        )

    def round_amount(self, amount: Decimal) -> Decimal:
        """Amount down to the step grid (never more than asked)."""
        return round_to_step(amount, self.amount_step, ROUND_FLOOR)

    def round_price(self, price: Decimal, side: Side | None = None) -> Decimal:
        """Price on the tick grid, rounded passively: buys down, sells up, else nearest."""
        if side is None:
            mode = ROUND_HALF_EVEN
        else:
            mode = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
        return round_to_step(price, self.price_tick, mode)
