"""Models: scikit-learn pipelines that predict next-period cross-sectional return rank from the
factors, validated walk-forward over dates, saved with their feature list.

Target: the return from the open after the decision close (t+1) over `horizon` bars, the trade a
decision on t's close could actually make (quantdesk.model.fills), ranked across symbols per date.
Validation splits the *dates* with TimeSeriesSplit, so a date's cross-section is never split
between train and test, and a gap of at least `horizon` dates keeps the training labels (which
look ahead) from overlapping the test period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.base import clone
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from quantdesk.errors import ConfigError, QuantdeskError
from quantdesk.selection.factors import FactorSet

MODEL_KINDS = ("ridge", "linear", "gbr", "rf")
# Real factor ICs are a few hundredths; an out-of-sample IC this high means future data leaked.
LEAK_IC = 0.5
_FORMAT = 1


class ModelError(QuantdeskError):
    """A saved model cannot be used (unreadable, or built on other features)."""


def make_pipeline(kind: str = "ridge", seed: int = 0, **params: Any) -> Pipeline:
    """Scaling plus a linear or tree model; params go to the model."""
    models = {
        "ridge": lambda: Ridge(**{"alpha": 1.0, **params}),
        "linear": lambda: LinearRegression(**params),
        "gbr": lambda: GradientBoostingRegressor(
            **{"n_estimators": 100, "max_depth": 3, "random_state": seed, **params}
        ),
        "rf": lambda: RandomForestRegressor(
            **{"n_estimators": 100, "min_samples_leaf": 5, "random_state": seed, **params}
        ),
    }
    if kind not in models:
        raise ConfigError(f"unknown model {kind!r} (known: {', '.join(MODEL_KINDS)})")
    return Pipeline([("scale", StandardScaler()), ("model", models[kind]())])


@dataclass
class Dataset:
    """Features and targets in long format, indexed by (time, symbol)."""

    X: pd.DataFrame
    target: pd.Series  # cross-sectional percentile rank of fwd, centered on 0
    fwd: pd.Series  # forward return, open t+1 to open t+1+horizon
    horizon: int

    @property
    def dates(self) -> pd.DatetimeIndex:
        """Distinct decision dates, sorted."""
        return pd.DatetimeIndex(self.X.index.get_level_values(0).unique()).sort_values()


def forward_returns(factors: FactorSet, horizon: int) -> pd.DataFrame:
    """Panel of the return from the next open over `horizon` bars (NaN where unknown)."""
    if horizon < 1:
        raise ConfigError(f"horizon must be at least 1 bar, got {horizon}")
    open_ = factors.panel.open
    return open_.shift(-(horizon + 1)) / open_.shift(-1) - 1.0


def build_dataset(
    factors: FactorSet,
    features: list[str] | None = None,
    horizon: int = 1,
    eligible: pd.DataFrame | None = None,
) -> Dataset:
    """Rows (time, symbol) with every feature and a known forward return, eligible ones only."""
    features = list(features or factors.names)
    unknown = [f for f in features if f not in factors.values]
    if unknown:
        raise ConfigError(f"unknown feature {unknown[0]!r} (computed: {', '.join(factors.names)})")
    fwd = forward_returns(factors, horizon)
    if eligible is not None:
        fwd = fwd.where(eligible)
    columns = {f: factors[f].stack(future_stack=True) for f in features}
    long = pd.DataFrame(columns)
    long["_fwd"] = fwd.stack(future_stack=True)
    long = long.replace([np.inf, -np.inf], np.nan).dropna()
    counts = long.groupby(level=0)["_fwd"].transform("size")
    long = long[counts >= 2]  # a rank needs at least two symbols
    if long.empty:
        raise ConfigError("no rows with all features and a forward return: need more history")
    long.index.names = ["time", "symbol"]
    target = long.groupby(level=0)["_fwd"].rank(pct=True) - 0.5
    return Dataset(long[features], target.rename("target"), long["_fwd"].rename("fwd"), horizon)


def date_splits(
    dates: pd.DatetimeIndex, n_splits: int, gap: int
) -> list[tuple[pd.DatetimeIndex, pd.DatetimeIndex]]:
    """Walk-forward (train dates, test dates) pairs with `gap` dates left out between them."""
    if n_splits < 2:
        raise ConfigError(f"walk-forward needs at least 2 splits, got {n_splits}")
    if len(dates) < n_splits + gap + 2:
        raise ConfigError(f"{len(dates)} dates are too few for {n_splits} splits with gap {gap}")
    splitter = TimeSeriesSplit(n_splits=n_splits, gap=gap)
    return [(dates[tr], dates[te]) for tr, te in splitter.split(np.arange(len(dates)))]


def daily_ic(prediction: pd.Series, fwd: pd.Series) -> pd.Series:
    """Spearman correlation of predictions with realized returns, per date."""
    frame = pd.DataFrame({"p": prediction, "r": fwd}).groupby(level=0).rank()
    return frame.groupby(level=0).apply(lambda g: g["p"].corr(g["r"])).dropna()


def hit_rate(prediction: pd.Series, fwd: pd.Series) -> float:
    """Share of rows where 'above the date's median' agrees between prediction and return."""
    frame = pd.DataFrame({"p": prediction, "r": fwd})
    med = frame.groupby(level=0).transform("median")
    return float(((frame["p"] > med["p"]) == (frame["r"] > med["r"])).mean())


@dataclass
class Validation:
    """Out-of-sample results of a walk-forward validation."""

    ic: pd.Series  # per test date
    predictions: pd.Series
    hit_rate: float
    fold_ic: list[float] = field(default_factory=list)

    @property
    def mean_ic(self) -> float:
        """Mean out-of-sample information coefficient."""
        return float(self.ic.mean())

    @property
    def ic_tstat(self) -> float:
        """t-statistic of the mean IC (per-date ICs treated as independent)."""
        std = float(self.ic.std(ddof=1))
        return float(self.mean_ic / std * np.sqrt(len(self.ic))) if std > 0 else float("nan")

    @property
    def leak_suspected(self) -> bool:
        """True when the out-of-sample IC is too good to be true (look for future data)."""
        return self.mean_ic > LEAK_IC

    def summary(self) -> dict[str, float]:
        """The headline numbers."""
        return {
            "mean_ic": self.mean_ic,
            "ic_tstat": self.ic_tstat,
            "hit_rate": self.hit_rate,
            "dates": float(len(self.ic)),
            "leak_suspected": float(self.leak_suspected),
        }


def walk_forward(
    pipeline: Pipeline,
    data: Dataset,
    n_splits: int = 5,
    gap: int | None = None,
    progress: bool = False,
) -> Validation:
    """Fit on past dates, predict the next block, for each split; score out of sample only."""
    gap = data.horizon if gap is None else gap
    if gap < data.horizon:
        raise ConfigError(
            f"gap {gap} is shorter than the horizon {data.horizon}: training labels would "
            "overlap the test period"
        )
    dates = data.X.index.get_level_values(0)
    predictions = []
    fold_ic = []
    splits = date_splits(data.dates, n_splits, gap)
    for train, test in tqdm(splits, desc="walk-forward", disable=not progress, leave=False):
        train_rows, test_rows = dates.isin(train), dates.isin(test)
        model = clone(pipeline).fit(data.X[train_rows], data.target[train_rows])
        pred = pd.Series(model.predict(data.X[test_rows]), index=data.X.index[test_rows])
        predictions.append(pred)
        fold_ic.append(float(daily_ic(pred, data.fwd[test_rows]).mean()))
    prediction = pd.concat(predictions).rename("prediction")
    fwd = data.fwd.loc[prediction.index]
    return Validation(daily_ic(prediction, fwd), prediction, hit_rate(prediction, fwd), fold_ic)


@dataclass
class SavedModel:
    """A fitted pipeline with the features it expects, in order."""

    pipeline: Pipeline
    features: list[str]
    horizon: int
    train_start: pd.Timestamp | None = None  # first and last decision date it was fit on
    train_end: pd.Timestamp | None = None

    def check_out_of_sample(self, index: pd.DatetimeIndex, when: pd.Timestamp) -> None:
        """Refuse ranking on the bar opening at `when` (the last one the ranking uses) with a
        model that learned from that period's outcomes.

        A decision at t predicts the return from t+1 over `horizon` bars; the training labels
        reach `horizon` bars past train_end, so only t >= train_end + horizon bars is clean."""
        if self.train_end is None:
            raise ModelError(
                "the model file records no training window (saved by an older version): "
                "refit it, or pass --allow-in-sample"
            )
        bars_after = int(index.searchsorted(when, "right")) - int(
            index.searchsorted(self.train_end, "right")
        )
        if bars_after < self.horizon:
            raise ModelError(
                f"the last bar closed by the as-of ({when:%Y-%m-%d %H:%M}) is inside the model's "
                "training window "
                f"({self.train_start:%Y-%m-%d} .. {self.train_end:%Y-%m-%d}, labels "
                f"{self.horizon} bar(s) beyond): rank after it, or pass --allow-in-sample"
            )

    def predict(self, frame: pd.DataFrame) -> pd.Series:
        """Predicted return rank for rows of frame (needs every feature column)."""
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ModelError(f"model needs feature(s) {', '.join(missing)}")
        rows = frame[self.features].dropna()
        return pd.Series(self.pipeline.predict(rows), index=rows.index, name="prediction")


def contributions(model: SavedModel, frame: pd.DataFrame) -> pd.DataFrame | None:
    """Per-feature contributions (coefficient x scaled value) of a linear model's predictions;
    they sum to the prediction minus the intercept. None for tree models."""
    estimator = model.pipeline[-1]
    if not hasattr(estimator, "coef_"):
        return None
    rows = frame[model.features].dropna()
    scaled = model.pipeline[:-1].transform(rows) if len(model.pipeline) > 1 else rows.to_numpy()
    coef = np.ravel(estimator.coef_)
    return pd.DataFrame(np.asarray(scaled) * coef, index=rows.index, columns=model.features)


def fit(pipeline: Pipeline, data: Dataset) -> SavedModel:
    """Fit the pipeline on the whole dataset."""
    fitted = clone(pipeline).fit(data.X, data.target)
    dates = data.dates
    return SavedModel(fitted, list(data.X.columns), data.horizon, dates[0], dates[-1])


def save_model(model: SavedModel, path: str | Path) -> Path:
    """Write the model, its features and horizon with joblib."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _FORMAT,
        "pipeline": model.pipeline,
        "features": model.features,
        "horizon": model.horizon,
        "train_start": model.train_start,
        "train_end": model.train_end,
        "sklearn": sklearn.__version__,
    }
    joblib.dump(payload, path)
    return path


def load_model(path: str | Path, features: list[str] | None = None) -> SavedModel:
    """Load a saved model; refuse it when `features` differ from what it was trained on."""
    try:
        payload = joblib.load(path)
    except (OSError, EOFError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load model {path}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ModelError(f"{path} is not a quantdesk model file")
    model = SavedModel(
        payload["pipeline"],
        list(payload["features"]),
        int(payload["horizon"]),
        payload.get("train_start"),
        payload.get("train_end"),
    )
    if features is not None and list(features) != model.features:
        raise ModelError(
            f"model {path} was trained on features {', '.join(model.features)}; "
            f"got {', '.join(features)}"
        )
    return model
