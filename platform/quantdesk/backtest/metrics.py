"""Performance statistics of a vectorbt portfolio, one row per column, in plain units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import vectorbt as vbt

STAT_COLUMNS = [
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration",
    "win_rate",
    "profit_factor",
    "exposure",
    "trades",
    "fees_paid",
    "start_value",
    "end_value",
]


def compute_stats(portfolio: vbt.Portfolio) -> pd.DataFrame:
    """Stats per portfolio column: returns and ratios as fractions, durations as Timedelta."""
    closed = portfolio.trades.closed
    value = portfolio.value()
    if isinstance(value, pd.Series):
        value = value.to_frame("portfolio")  # one cash-sharing group (target weights)
    assets = portfolio.assets()
    if isinstance(assets, pd.DataFrame) and portfolio.wrapper.grouper.is_grouped():
        exposure = (assets != 0).any(axis=1).mean()
    else:
        exposure = (pd.DataFrame(assets) != 0).mean()
    stats = pd.DataFrame(
        {
            "total_return": portfolio.total_return(),
            "cagr": portfolio.annualized_return(),
            "sharpe": portfolio.sharpe_ratio(),
            "sortino": portfolio.sortino_ratio(),
            "calmar": portfolio.calmar_ratio(),
            "max_drawdown": portfolio.max_drawdown(),
            "max_drawdown_duration": portfolio.drawdowns.max_duration(),
            "win_rate": closed.win_rate(),
            "profit_factor": closed.profit_factor(),
            "exposure": exposure,
            "trades": portfolio.trades.count(),
            "fees_paid": portfolio.orders.fees.sum(),
            "start_value": value.iloc[0] * 0 + portfolio.init_cash,
            "end_value": value.iloc[-1],
        },
        index=value.columns,
    )
    stats["trades"] = stats["trades"].fillna(0).astype(np.int64)
    # A flat equity has no return distribution: its ratios are undefined, not infinite.
    ratios = ["sharpe", "sortino", "calmar", "profit_factor"]
    stats.loc[stats["trades"] == 0, ratios] = np.nan
    stats[ratios] = stats[ratios].replace([np.inf, -np.inf], np.nan)
    stats["max_drawdown_duration"] = pd.to_timedelta(
        stats["max_drawdown_duration"].fillna(pd.Timedelta(0))
    )
    return stats[STAT_COLUMNS]


def stats_row(stats: pd.DataFrame, column: object | None = None) -> pd.Series:
    """One column's stats (the only one when column is None)."""
    if column is None:
        if len(stats) != 1:
            raise ValueError("several columns: say which one")
        return stats.iloc[0]
    return stats.loc[column]


def format_stats(row: pd.Series) -> list[tuple[str, str]]:
    """(label, text) pairs for people: percentages, ratios, counts, money."""

    from quantdesk.reports_format import drawdown, pct
    from quantdesk.reports_format import ratio as num

    return [
        ("Total return", pct(row["total_return"])),
        ("CAGR", pct(row["cagr"])),
        ("Sharpe", num(row["sharpe"])),
        ("Sortino", num(row["sortino"])),
        ("Calmar", num(row["calmar"])),
        ("Max drawdown", drawdown(row["max_drawdown"])),
        ("Max drawdown duration", str(row["max_drawdown_duration"])),
        ("Win rate", pct(row["win_rate"])),
        ("Profit factor", num(row["profit_factor"])),
        ("Exposure", pct(row["exposure"])),
        ("Trades", str(int(row["trades"]))),
        ("Fees paid", f"{row['fees_paid']:,.2f}"),
        ("End value", f"{row['end_value']:,.2f}"),
    ]


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Month-by-month returns of an equity curve: rows are years, columns months 1..12."""
    month_end = equity.resample("ME").last()
    start = pd.Series([equity.iloc[0]], index=[month_end.index[0] - pd.offsets.MonthEnd(1)])
    returns = pd.concat([start, month_end]).pct_change().iloc[1:]
    table = pd.DataFrame(
        {"year": returns.index.year, "month": returns.index.month, "ret": returns.to_numpy()}
    )
    return table.pivot(index="year", columns="month", values="ret").reindex(columns=range(1, 13))
