"""One number format for people, shared by the CLI, reports and dashboards.

Percentages carry two decimals and a % sign; a drawdown is always shown as a loss (negative),
whichever sign convention the number came in (vectorbt's -0.12 or the optimizer's 0.12);
ratios that are not finite (a Sharpe of a flat, zero-trade equity) read "n/a", never "inf".
"""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

Number = float | int | Decimal | None


def _missing(x: Number) -> bool:
    if x is None:
        return True
    try:
        return not math.isfinite(float(x))
    except (TypeError, ValueError):
        return True


def pct(x: Number, digits: int = 2) -> str:
    """0.1234 -> '12.34%'."""
    return "n/a" if _missing(x) else f"{float(x) * 100:,.{digits}f}%"


def drawdown(x: Number, digits: int = 2) -> str:
    """A drawdown as a loss: 0.1234 or -0.1234 -> '-12.34%' (zero stays '0.00%')."""
    if _missing(x):
        return "n/a"
    value = -abs(float(x))
    return f"{value * 100:,.{digits}f}%" if value else f"{0:.{digits}f}%"


def ratio(x: Number, digits: int = 3) -> str:
    """A ratio like Sharpe: '1.234', 'n/a' when undefined or infinite."""
    return "n/a" if _missing(x) else f"{float(x):,.{digits}f}"


def money(x: Number, digits: int = 2) -> str:
    """10234.5 -> '10,234.50'."""
    return "n/a" if _missing(x) else f"{float(x):,.{digits}f}"


def duration(x: timedelta | None) -> str:
    """A holding time, compact: '45m', '18h', '3h 05m', '1d 03h' ('n/a' when missing)."""
    if x is None or x != x:  # NaT compares unequal to itself
        return "n/a"
    minutes = int(x.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m" if minutes else f"{hours}h"
    return f"{minutes}m"
