"""Vectorbt backtests: `run(strategy, data, costs) -> BacktestResult`, and parameter grids."""

from quantdesk.backtest.results import BacktestResult
from quantdesk.backtest.runner import BacktestError, GridResult, run, run_grid, simulate, to_bars
from quantdesk.model import Costs

__all__ = [
    "BacktestError",
    "BacktestResult",
    "Costs",
    "GridResult",
    "run",
    "run_grid",
    "simulate",
    "to_bars",
]
