"""A whole selection study from the data store, for the notebook and the report: the ranking
as of a time, walk-forward model validation, and the rotation backtest against buy-and-hold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from quantdesk.config import load_config
from quantdesk.data.store import DataStore
from quantdesk.data.symbols import parse_symbols
from quantdesk.model import Costs
from quantdesk.selection import plots
from quantdesk.selection.factors import compute_factors
from quantdesk.selection.models import (
    Dataset,
    Validation,
    build_dataset,
    fit,
    make_pipeline,
    save_model,
    walk_forward,
)
from quantdesk.selection.ranking import explain, parse_weights
from quantdesk.selection.rotation import (
    RotationResult,
    buy_and_hold_weights,
    run_strategy,
    simulate,
)
from quantdesk.selection.screener import Ranking, factor_config, load_panel, rank_universe
from quantdesk.selection.screens import Screen
from quantdesk.selection.universe import eligible
from quantdesk.strategy import load_strategy

if TYPE_CHECKING:
    import plotly.graph_objects as go

MODEL_FEATURES = ["momentum_7", "momentum_30", "rsi", "bb_pctb", "trend", "volatility"]


@dataclass
class SelectionStudy:
    """Ranking, model validation and rotation backtest of one universe."""

    symbols: list[str]
    timeframe: str
    weights: dict[str, float]
    ranking: Ranking
    validation: Validation
    model: str
    horizon: int
    rotation: RotationResult
    benchmark: RotationResult
    strategy: str
    factor_panels: dict[str, pd.DataFrame]
    dataset: Dataset

    def save_model(self, path: str | Path) -> Path:
        """Fit the study's model on all its data and save it (for `quantdesk select --model`)."""
        return save_model(fit(make_pipeline(self.model), self.dataset), path)

    def description(self) -> str:
        """One Markdown paragraph saying what was studied."""
        weights = ", ".join(f"{k}={v:g}" for k, v in self.weights.items())
        span = self.rotation.equity.index
        return (
            f"**Universe** {', '.join(self.symbols)} ({self.timeframe} bars, "
            f"{span[0]:%Y-%m-%d} to {span[-1]:%Y-%m-%d}). **Ranking** as of "
            f"{self.ranking.time:%Y-%m-%d %H:%M} UTC with weights {weights}. **Model** "
            f"{self.model} predicting the {self.horizon}-bar return rank, walk-forward. "
            f"**Rotation** {self.strategy} against an equal-weight buy-and-hold of the "
            "point-in-time universe."
        )

    def ranking_table(self) -> pd.DataFrame:
        """The ranked table with a 'reasons' column."""
        table = self.ranking.table.copy()
        table["reasons"] = [explain(row) for _, row in table.iterrows()]
        return table

    def validation_table(self) -> pd.DataFrame:
        """Out-of-sample IC, its t-stat, hit rate, dates, per-fold ICs."""
        rows = dict(self.validation.summary())
        for i, ic in enumerate(self.validation.fold_ic, 1):
            rows[f"fold {i} IC"] = ic
        return pd.DataFrame({"value": rows})

    def backtest_table(self) -> pd.DataFrame:
        """Rotation vs buy-and-hold headline numbers."""
        return pd.DataFrame(
            {"rotation": self.rotation.stats(), "buy_and_hold": self.benchmark.stats()}
        )

    def factor_figure(self) -> go.Figure:
        """Factor distributions."""
        return plots.factor_distributions(self.factor_panels)

    def ic_figure(self) -> go.Figure:
        """Out-of-sample IC over time."""
        return plots.ic_figure(self.validation.ic)

    def equity_figure(self) -> go.Figure:
        """Rotation and buy-and-hold equity."""
        return plots.equity_figure(
            {"rotation": self.rotation.equity, "buy and hold": self.benchmark.equity}
        )


def study_from_store(
    symbols: str | Sequence[str],
    timeframe: str = "1d",
    as_of: str | None = None,
    weights: str | Mapping[str, float] = "momentum_30=1,trend=0.5,volatility=-0.5",
    min_history: int = 60,
    model: str = "ridge",
    horizon: int = 7,
    n_splits: int = 5,
    rotation_params: Mapping[str, object] | None = None,
    fee: float = 0.001,
    slippage: float = 0.0005,
    exchange: str | None = None,
    market: str | None = None,
    data_root: str | Path | None = None,
    strategies_dir: str | Path | None = None,
) -> SelectionStudy:
    """Load the universe and run ranking, model validation and the rotation backtest."""
    names = parse_symbols(symbols) if isinstance(symbols, str) else list(symbols)
    factor_weights = parse_weights(weights) if isinstance(weights, str) else dict(weights)
    store = DataStore(data_root) if data_root else load_config().store()
    panel = load_panel(store, names, timeframe, exchange, market)
    ranking = rank_universe(
        panel, factor_weights, as_of, Screen(min_history=min_history), timeframe
    )

    config = factor_config(timeframe)
    factors = compute_factors(panel, MODEL_FEATURES, config)
    data = build_dataset(factors, MODEL_FEATURES, horizon, eligible(panel, min_history))
    validation = walk_forward(make_pipeline(model), data, n_splits=n_splits)

    params = {"min_history": min_history, **dict(rotation_params or {})}
    strategy = load_strategy("momentum_rotation", params, strategies_dir)
    costs = Costs(fee=fee, slippage=slippage)
    rotation = run_strategy(strategy, panel, costs)
    universe = eligible(panel, strategy.warmup)
    benchmark = simulate(panel, buy_and_hold_weights(universe), costs)
    return SelectionStudy(
        symbols=panel.symbols,
        timeframe=timeframe,
        weights=factor_weights,
        ranking=ranking,
        validation=validation,
        model=model,
        horizon=horizon,
        rotation=rotation,
        benchmark=benchmark,
        strategy=repr(strategy),
        factor_panels={n: v.where(universe) for n, v in factors.values.items()},
        dataset=data,
    )
