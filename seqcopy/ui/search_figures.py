"""A search's figures: Optuna's own (optuna.visualization), styled as the app's; and its trials table.

Each builder is a pure function of an Optuna study (or of the trial rows seqcopy.results.search
reads) returning a plotly figure or DataFrame, so it is tested without a browser. Optuna draws
them; we only restyle: the app's palette and font sizes, its margins, titles that say what the
objective is. A view Optuna cannot draw yet (one completed trial, a single parameter) is None,
never an exception, and the page says why.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from seqcopy.ui.figures import PALETTE

VIEWS = ("history", "importances", "parallel", "slice", "contour", "intermediate")
VIEW_TITLES = {
    "history": "Optimisation history: each trial's value and the best so far",
    "importances": "Parameter importances (fANOVA)",
    "parallel": "Parallel coordinates: each trial across the parameters",
    "slice": "Slice: the objective against each parameter",
    "contour": "Contour: the objective over two parameters",
    "intermediate": "Each trial's objective epoch by epoch (pruned ones stop early)",
}


def style(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    """The app's look on one of Optuna's figures."""
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50, b=40), colorway=list(PALETTE),
                      template="plotly_white", font=dict(size=12), legend=dict(orientation="h", y=-0.2, x=0))
    return fig


def _completed(study) -> int:
    import optuna

    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def search_figure(study, view: str, objective: str = "objective") -> go.Figure | None:
    """Optuna's figure for ``view`` (one of VIEWS), styled; None when the trials cannot draw it yet."""
    import optuna.visualization as vis

    completed = _completed(study)
    params = {name for t in study.get_trials(deepcopy=False) for name in t.params}
    if view == "intermediate":
        if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            return None
        fig = vis.plot_intermediate_values(study)
    elif completed < 1:
        return None
    elif view == "history":
        fig = vis.plot_optimization_history(study, target_name=objective)
    elif view == "importances":
        if completed < 2 or len(params) < 2:
            return None
        try:
            fig = vis.plot_param_importances(study, target_name=objective)
        except (RuntimeError, ValueError):  # all values equal: importances are undefined
            return None
    elif view == "parallel":
        fig = vis.plot_parallel_coordinate(study, target_name=objective)
    elif view == "slice":
        fig = vis.plot_slice(study, target_name=objective)
    elif view == "contour":
        if len(params) < 2 or completed < 2:
            return None
        fig = vis.plot_contour(study, params=sorted(params)[:2], target_name=objective)
    else:
        raise ValueError(f"unknown view {view!r}: one of {', '.join(VIEWS)}")
    return style(fig, VIEW_TITLES[view])


def trials_frame(rows: list[dict], objective: str) -> pd.DataFrame:
    """The trial rows (best first, as seqcopy.results.search.trials_table orders them) as the
    page's table: trial, state, each parameter, the seeds' mean ± SE, seeds, pruned epoch, runs."""
    params = sorted({name for row in rows for name in row["params"]})
    records = []
    for row in rows:
        se = row["se"]
        shown = "" if row["value"] is None else f"{row['value']:.4f}" + (
            f" ± {se:.4f}" if se is not None and math.isfinite(se) else "")
        records.append({"trial": row["number"], "state": row["state"],
                        **{name: row["params"].get(name) for name in params},
                        f"{objective} (mean ± SE)": shown, "seeds": row["n"], "pruned at epoch": row["pruned_epoch"],
                        "runs": ", ".join(map(str, row["run_ids"]))})
    return pd.DataFrame(records)
