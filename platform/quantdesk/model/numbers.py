"""The one conversion of numbers to Decimal, and ZERO.

Floats go through their shortest repr, so 0.1 becomes Decimal("0.1") (what a person reading the
config or the price expects), not the binary expansion Decimal(0.1) gives.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from numbers import Integral, Real
from typing import ParamSpec, TypeVar

ZERO = Decimal(0)
# Python's default context, written down: ccxt's rounding helpers set ROUND_HALF_UP on the
# calling thread's context in place, so the ambient context depends on what ran before
MONEY = Context(
    prec=28, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)

P = ParamSpec("P")
R = TypeVar("R")


def money_math(fn: Callable[P, R]) -> Callable[P, R]:
    """fn run under a fresh copy of MONEY: its Decimal results never depend on the caller's
    thread or on what changed that thread's context before."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with localcontext(MONEY):
            return fn(*args, **kwargs)

    return run


def dec(value: Real | str | Decimal) -> Decimal:
    """value as a Decimal: floats (numpy's too) through their shortest repr, ints exactly,
    strings as written; bools and None are refused (they are never a quantity)."""
    if type(value) is float:  # the common case first: risk checks convert limits per order
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or value is None:
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, Integral):
        return Decimal(int(value))
    if isinstance(value, str):
        return Decimal(value)
    return Decimal(repr(float(value)))
