"""The one conversion of numbers to Decimal, and ZERO.

Floats go through their shortest repr, so 0.1 becomes Decimal("0.1") (what a person reading the
config or the price expects), not the binary expansion Decimal(0.1) gives.
"""

from __future__ import annotations

from decimal import Decimal
from numbers import Integral, Real

ZERO = Decimal(0)


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
