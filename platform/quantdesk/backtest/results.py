"""BacktestResult: stats, equity, trades and figures of one backtest, and saving them."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import vectorbt as vbt

from quantdesk.backtest import plots
from quantdesk.backtest.metrics import (
    compute_stats,
    equity_with_funding,
    format_stats,
    monthly_returns,
    stats_row,
)
from quantdesk.data.store import atomic_write_parquet
from quantdesk.strategy import naive_utc, on_index

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from quantdesk.backtest.runner import GridResult
    from quantdesk.model import Costs

_TRADE_COLUMNS = {
    "Column": "column",
    "Direction": "direction",
    "Status": "status",
    "Size": "size",
    "Entry Timestamp": "entry_time",
    "Avg Entry Price": "entry_price",
    "Entry Fees": "entry_fees",
    "Exit Timestamp": "exit_time",
    "Avg Exit Price": "exit_price",
    "Exit Fees": "exit_fees",
    "PnL": "pnl",
    "Return": "return",
}


_DIRECTIONS = np.array(["Long", "Short"], dtype=object)  # vectorbt TradeDirection
_STATUSES = np.array(["Open", "Closed"], dtype=object)  # vectorbt TradeStatus


def naive_portfolio(portfolio: vbt.Portfolio) -> vbt.Portfolio:
    """The same portfolio on a tz-naive UTC index (itself when already naive).

    vectorbt 1.2 turns a tz-aware index into Python Timestamps in its shape checks (see
    quantdesk.strategy.naive_utc), dozens of times for one set of stats: computations run
    on naive UTC, the outputs get the bars' UTC index back.
    """
    index = portfolio.wrapper.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        return portfolio
    naive = index.tz_convert("UTC").tz_localize(None)
    close = portfolio.close
    if isinstance(close, pd.Series | pd.DataFrame):
        close = on_index(close, naive)
    return portfolio.replace(wrapper=portfolio.wrapper.replace(index=naive), close=close)


@dataclass
class BacktestResult:
    """Everything one backtest produced; computed lazily from the vectorbt portfolio.

    The portfolio is kept on a tz-naive UTC index (vectorbt is much faster on one; a tz-aware
    one is converted); stats, equity, trades, figures and saved files carry the bars' index
    (tz-aware UTC), as does funding.
    """

    strategy: str
    params: dict[str, Any]
    symbols: list[str]
    timeframe: str
    costs: Costs
    bars: pd.DataFrame = field(repr=False)
    portfolio: vbt.Portfolio = field(repr=False)
    # Funding cash received (negative: paid) per bar and portfolio column; None without perps.
    funding: pd.DataFrame | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.portfolio = naive_portfolio(self.portfolio)

    @cached_property
    def _naive_funding(self) -> pd.DataFrame | None:
        return None if self.funding is None else naive_utc(self.funding)

    @cached_property
    def stats(self) -> pd.DataFrame:
        """One row of statistics per symbol (or one for a target-weight portfolio)."""
        return compute_stats(self.portfolio, self._naive_funding)

    def summary(self, column: object | None = None) -> pd.Series:
        """The stats of one column (the first when there are several)."""
        return stats_row(self.stats, column if column is not None else self.stats.index[0])

    @cached_property
    def equity(self) -> pd.DataFrame:
        """Portfolio value at each bar's close, one column per symbol (or 'portfolio'), with
        the funding received up to then."""
        return on_index(equity_with_funding(self.portfolio, self._naive_funding), self.bars.index)

    @cached_property
    def trades(self) -> pd.DataFrame:
        """One row per trade: times (the bars' UTC), prices, size, fees, PnL, return,
        open/closed; what vectorbt's `trades.records_readable` says, read straight from the
        records (its readable form maps every bar's timestamp through a dict)."""
        records = self.portfolio.trades.values
        index = self.bars.index
        columns = self.portfolio.wrapper.columns
        return pd.DataFrame(
            {
                "column": [str(c) for c in columns[records["col"]]],
                "direction": _DIRECTIONS[records["direction"]].astype(str),
                "status": _STATUSES[records["status"]].astype(str),
                "size": records["size"],
                "entry_time": index[records["entry_idx"]],
                "entry_price": records["entry_price"],
                "entry_fees": records["entry_fees"],
                "exit_time": index[records["exit_idx"]],
                "exit_price": records["exit_price"],
                "exit_fees": records["exit_fees"],
                "pnl": records["pnl"],
                "return": records["return"],
            }
        )

    def description(self) -> str:
        """One Markdown paragraph saying what was run."""
        meta = self.metadata()
        params = ", ".join(f"{k}={v}" for k, v in self.params.items()) or "defaults"
        return (
            f"**{self.strategy}** ({params}) on {', '.join(self.symbols)}, "
            f"{self.timeframe} bars from {meta['start'][:16]} to {meta['end'][:16]} UTC "
            f"({meta['bars']} bars). Starting cash {self.costs.init_cash:,.0f} per symbol, "
            f"fee {self.costs.fee:.3%} of notional, slippage {self.costs.slippage:.3%} of price; "
            "signals on a bar's close fill at the next bar's open."
        )

    def trades_table(self) -> pd.DataFrame:
        """The trades table for reading: rounded, with duration and exit reason, no
        internal columns (it has to fit a page)."""
        table = self.trades.copy()
        table["duration"] = self._held(table).astype(str)
        table["exit_reason"] = [self._exit_reason(t) for t in table.to_dict("records")]
        table["fees"] = table["entry_fees"] + table["exit_fees"]
        order = [
            "column",
            "direction",
            "status",
            "entry_time",
            "exit_time",
            "duration",
            "exit_reason",
            "size",
            "entry_price",
            "exit_price",
            "fees",
            "pnl",
            "return",
        ]
        return table[order].round(
            {
                "size": 6,
                "entry_price": 4,
                "exit_price": 4,
                "fees": 2,
                "pnl": 2,
                "return": 4,
            }
        )

    def trades_view(self) -> Any:
        """The trades table as a report shows it (a pandas Styler): times to the minute in
        UTC, compact durations, money with separators, returns in percent, no index, cells
        that do not wrap, so 13 columns fit a laptop-width page."""
        from quantdesk.reports_format import duration, money, pct

        table = self.trades_table()
        table["duration"] = [duration(d) for d in self._held(table)]
        table["exit_time"] = table["exit_time"].where(table["status"] == "Closed")  # still open

        def minute(t: Any) -> str:
            return "" if pd.isna(t) else pd.Timestamp(t).strftime("%Y-%m-%d %H:%M")

        formats = {
            "entry_time": minute,
            "exit_time": minute,
            "size": "{:.6g}",
            "entry_price": money,
            "exit_price": money,
            "fees": money,
            "pnl": money,
            "return": pct,
        }
        labels = {c: c.replace("_", " ") for c in table.columns} | {"column": "market"}
        styler = table.style.hide(axis="index").format(formats)
        styler = styler.relabel_index([labels[c] for c in table.columns], axis="columns")
        count = f"{len(table)} trade" + ("" if len(table) == 1 else "s")
        styler = styler.set_caption(f"{count}; times in UTC")
        return styler.set_table_styles(
            [{"selector": "td, th", "props": "white-space: nowrap; padding: 2px 8px;"}],
            overwrite=False,
        )

    def _held(self, trades: pd.DataFrame) -> pd.Series:
        """How long each trade was held; an open one up to the last bar."""
        exits = trades["exit_time"].where(trades["status"] == "Closed", self.bars.index[-1])
        return pd.to_datetime(exits) - pd.to_datetime(trades["entry_time"])

    def _exit_reason(self, trade: dict[str, Any]) -> str:
        """open, stop-loss, take-profit (the exit price sits at the stop, within slippage and
        a tick of rounding) or signal."""
        if trade["status"] != "Closed":
            return "open"
        entry, exit_ = float(trade["entry_price"]), float(trade["exit_price"])
        sign = 1.0 if trade["direction"] == "Long" else -1.0
        move = sign * (exit_ / entry - 1.0)
        tolerance = self.costs.slippage * 2 + 1e-9
        sl, tp = (float(self.params.get(k) or 0.0) for k in ("sl_stop", "tp_stop"))
        if sl and abs(move + sl) <= tolerance:
            return "stop-loss"
        if tp and abs(move - tp) <= tolerance:
            return "take-profit"
        return "signal"

    def summary_table(self) -> pd.DataFrame:
        """Stats formatted for people: one row per statistic, one column per symbol."""
        from quantdesk.reports_format import drawdown, pct

        table = {str(c): dict(format_stats(self.stats.loc[c])) for c in self.stats.index}
        for column, bench in self.benchmark_summary().items():
            if column in table:
                table[column]["Buy-and-hold return"] = pct(bench["total_return"])
                table[column]["Buy-and-hold max drawdown"] = drawdown(bench["max_drawdown"])
        frame = pd.DataFrame(table)
        frame.index.name = "statistic"
        return frame

    def monthly_returns(self, column: object | None = None) -> pd.DataFrame:
        """Years x months table of returns of one equity column."""
        column = column if column is not None else self.equity.columns[0]
        return monthly_returns(self.equity[column])

    def monthly_figure(self, column: object | None = None) -> go.Figure:
        """Heatmap of monthly returns (%)."""
        column = column if column is not None else self.equity.columns[0]
        return plots.monthly_heatmap(self.monthly_returns(column), f"Monthly returns (%) {column}")

    def benchmark(self, column: object | None = None) -> pd.Series:
        """Buy and hold from the first close with the same starting value (a symbol's column:
        that symbol; a portfolio column: every symbol in equal parts)."""
        column = column if column is not None else self.equity.columns[0]
        close = self.bars["close"]
        symbols = [column] if column in close.columns else list(close.columns)
        relative = (close[symbols] / close[symbols].iloc[0]).mean(axis=1)
        return relative * float(self.equity[column].iloc[0])

    def benchmark_summary(self) -> dict[str, dict[str, float]]:
        """Total return and max drawdown (a negative fraction) of buy and hold, per column."""
        out = {}
        for column in self.equity.columns:
            bench = self.benchmark(column)
            out[str(column)] = {
                "total_return": float(bench.iloc[-1] / bench.iloc[0] - 1.0),
                "max_drawdown": float((bench / bench.cummax() - 1.0).min()),
            }
        return out

    def equity_figure(self, column: object | None = None, log_scale: bool = False) -> go.Figure:
        """Equity curve beside buy and hold, with the drawdown underneath."""
        column = column if column is not None else self.equity.columns[0]
        return plots.equity_figure(
            self.equity[column],
            title=f"{self.strategy} {column}",
            benchmark=self.benchmark(column),
            log_scale=log_scale,
        )

    def trades_figure(self, symbol: str | None = None) -> go.Figure:
        """Close price with entry and exit markers."""
        symbol = symbol or self.symbols[0]
        trades = self.trades[self.trades["column"] == str(symbol)]
        ohlc = self.bars.xs(symbol, axis=1, level=1) if symbol in self.bars["close"] else None
        return plots.trades_figure(
            self.bars["close"][symbol], trades, title=f"{symbol} trades", ohlc=ohlc
        )

    def metadata(self) -> dict[str, Any]:
        """What was run, as JSON-friendly values."""
        index = self.bars.index
        return {
            "strategy": self.strategy,
            "params": self.params,
            "symbols": self.symbols,
            "timeframe": self.timeframe,
            "start": index[0].isoformat(),
            "end": index[-1].isoformat(),
            "bars": len(index),
            "fee": self.costs.fee,
            "slippage": self.costs.slippage,
            "init_cash": self.costs.init_cash,
        }

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write stats.json, equity.parquet and trades.parquet into a new folder under out_dir.

        The folder appears complete or not at all: files are written into a temp folder that
        is renamed into place.
        """
        root = Path(out_dir) / "backtests"
        root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = root / f"{self.strategy}-{stamp}"
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        try:
            stats = self.stats.copy()
            stats["max_drawdown_duration"] = stats["max_drawdown_duration"].astype(str)
            payload = {
                **self.metadata(),
                "stats": {str(k): _json_row(v) for k, v in stats.to_dict("index").items()},
            }
            (tmp / "stats.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
            equity = self.equity.copy()
            equity.columns = [str(c) for c in equity.columns]
            atomic_write_parquet(tmp / "equity.parquet", equity)
            atomic_write_parquet(tmp / "trades.parquet", self.trades)
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return {name: target / name for name in ("stats.json", "equity.parquet", "trades.parquet")}


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float) and value != value:
            value = None  # NaN is not JSON
        elif isinstance(value, float) and value in (float("inf"), float("-inf")):
            value = str(value)
        out[key] = value
    return out


def save_grid(result: GridResult, out_dir: str | Path) -> Path:
    """Write a sweep's stats table to out_dir/backtests/NAME-grid-STAMP.parquet."""
    root = Path(out_dir) / "backtests"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = root / f"{result.strategy}-grid-{stamp}.parquet"
    stats = result.stats.reset_index()
    stats["symbol"] = stats["symbol"].astype(str)
    atomic_write_parquet(path, stats)
    return path
