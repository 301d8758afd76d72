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
    "price_pnl",
    "fees_paid",
    "funding",
    "start_value",
    "end_value",
]


def compute_stats(portfolio: vbt.Portfolio, funding: pd.DataFrame | None = None) -> pd.DataFrame:
    """Stats per portfolio column: returns and ratios as fractions, durations as Timedelta.

    funding: cash received (negative: paid) per bar and portfolio column (see
    quantdesk.backtest.funding); it is added to the portfolio's cash, so the equity-based
    stats include it, while trade stats (win rate, profit factor) stay price PnL net of fees.
    End value = start value + price PnL - fees paid + funding.
    """
    closed = portfolio.trades.closed
    value = equity_with_funding(portfolio, funding)
    init = _init_cash(portfolio, value)
    rets = funded_returns(portfolio, funding)
    assets = portfolio.assets()
    if isinstance(assets, pd.DataFrame) and portfolio.wrapper.grouper.is_grouped():
        exposure = (assets != 0).any(axis=1).mean()
    else:
        exposure = (pd.DataFrame(assets) != 0).mean()
    received = funding_received(portfolio, funding, value.columns)
    end_value = value.iloc[-1]
    fees_paid = _per_column(portfolio.orders.fees.sum(), value.columns)
    stats = pd.DataFrame(
        {
            "total_return": end_value / init - 1.0,
            "cagr": rets.annualized(),
            "sharpe": rets.sharpe_ratio(),
            "sortino": rets.sortino_ratio(),
            "calmar": rets.calmar_ratio(),
            "max_drawdown": rets.max_drawdown(),
            "max_drawdown_duration": rets.drawdowns.max_duration(),
            "win_rate": _per_column(closed.win_rate(), value.columns),
            "profit_factor": _per_column(closed.profit_factor(), value.columns),
            "exposure": _per_column(exposure, value.columns),
            "trades": _per_column(portfolio.trades.count(), value.columns),
            "price_pnl": end_value - init - received + fees_paid,
            "fees_paid": fees_paid,
            "funding": received,
            "start_value": pd.Series(init, index=value.columns),
            "end_value": end_value,
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


def _per_column(values: object, columns: pd.Index) -> pd.Series:
    """A per-column stat as a Series on columns (a grouped portfolio gives one scalar)."""
    if isinstance(values, pd.Series):
        if len(values) == len(columns):
            return pd.Series(values.to_numpy(), index=columns)
        values = values.iloc[0]
    return pd.Series(values, index=columns)


def funding_received(
    portfolio: vbt.Portfolio, funding: pd.DataFrame | None, columns: pd.Index
) -> pd.Series:
    """Total funding received per stats column (summed over a cash-sharing group's symbols)."""
    if funding is None:
        return pd.Series(0.0, index=columns)
    if portfolio.wrapper.grouper.is_grouped():
        return pd.Series(float(funding.to_numpy().sum()), index=columns)
    return pd.Series(funding.sum(axis=0).to_numpy(), index=columns)


def equity_with_funding(portfolio: vbt.Portfolio, funding: pd.DataFrame | None) -> pd.DataFrame:
    """The portfolio's value at each close plus the funding received up to then."""
    value = portfolio.value()
    if isinstance(value, pd.Series):
        value = value.to_frame("portfolio")  # one cash-sharing group (target weights)
        if funding is not None:
            return value.add(funding.sum(axis=1).cumsum(), axis=0)
        return value
    if funding is None:
        return value
    return value + funding.cumsum().to_numpy()


def _init_cash(portfolio: vbt.Portfolio, value: pd.DataFrame) -> np.ndarray:
    # a writable array: numba types a read-only one apart (a compile of its own)
    return np.array(np.broadcast_to(np.asarray(portfolio.init_cash, float), value.shape[1]))


def funded_returns(portfolio: vbt.Portfolio, funding: pd.DataFrame | None) -> object:
    """vectorbt's returns accessor on the equity with funding (`.obj`: returns per bar).

    The same formulas the Portfolio's sharpe_ratio(), max_drawdown(), ... apply to its
    unfunded value."""
    value = equity_with_funding(portfolio, funding)
    init = _init_cash(portfolio, value)
    return pd.DataFrame.vbt.returns.from_value(value, init_value=init, freq=portfolio.wrapper.freq)


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
        ("Price PnL", f"{row['price_pnl']:+,.2f}"),
        ("Fees paid", f"{row['fees_paid']:,.2f}"),
        ("Funding", f"{row['funding']:+,.2f}"),
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
