"""Figures of an optimization study for notebooks and reports (plotly)."""

from __future__ import annotations

import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.trial import TrialState


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def history_figure(study: optuna.Study) -> go.Figure:
    """Objective per trial with the running best; the Pareto front for two objectives."""
    if len(study.directions) > 1:
        return optuna.visualization.plot_pareto_front(
            study, target_names=["total return", "max drawdown"]
        )
    return optuna.visualization.plot_optimization_history(study)


def importances(study: optuna.Study, seed: int = 0) -> dict[str, float]:
    """Parameter importances (fANOVA, seeded); empty when too few varied trials."""
    trials = _complete(study)
    varied = [n for n in _param_names(trials) if len({str(t.params[n]) for t in trials}) > 1]
    if len(trials) < 3 or not varied:
        return {}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    target = None if len(study.directions) == 1 else (lambda t: t.values[0])
    return dict(
        optuna.importance.get_param_importances(
            study, evaluator=evaluator, params=varied, target=target
        )
    )


def _param_names(trials: list[optuna.trial.FrozenTrial]) -> list[str]:
    names: list[str] = []
    for t in trials:
        names += [n for n in t.params if n not in names]
    return [n for n in names if all(n in t.params for t in trials)]


def importance_figure(weights: dict[str, float]) -> go.Figure:
    """Horizontal bars of parameter importances."""
    items = sorted(weights.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h"))
    fig.update_layout(title="Parameter importances (fANOVA)", xaxis_title="importance")
    return fig


def heatmap_figure(study: optuna.Study, x: str, y: str) -> go.Figure:
    """Mean objective over the (x, y) values tried (first objective for a Pareto study)."""
    rows = [
        {x: t.params[x], y: t.params[y], "value": t.values[0]}
        for t in _complete(study)
        if x in t.params and y in t.params
    ]
    frame = pd.DataFrame(rows)
    table = frame.pivot_table(index=y, columns=x, values="value", aggfunc="mean")
    fig = go.Figure(
        go.Heatmap(
            z=table.to_numpy(),
            x=[str(c) for c in table.columns],
            y=[str(i) for i in table.index],
            colorscale="RdYlGn",
            colorbar={"title": "objective"},
        )
    )
    fig.update_layout(title=f"Objective by {x} and {y}", xaxis_title=x, yaxis_title=y)
    return fig


def top_two(weights: dict[str, float], study: optuna.Study) -> tuple[str, str] | None:
    """The two most important params (or the first two searched ones), None if fewer."""
    names = sorted(weights, key=lambda n: -weights[n]) or _param_names(_complete(study))
    return (names[0], names[1]) if len(names) >= 2 else None
