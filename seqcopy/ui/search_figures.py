"""A search's figures: Optuna's own (optuna.visualization), styled as the app's; and its trials table.

Each builder is a pure function of an Optuna study (or of the trial rows seqcopy.results.search
reads) returning a plotly figure or DataFrame, so it is tested without a browser. Trials are
numbered as the trials table numbers them (from 1, the number the search gave the trial), never
by Optuna's own count from 0, and keep one colour per trial in every figure. The history and the
epoch-by-epoch figure are drawn here from the study's trials, with this project's axis names and
a legend; the others are Optuna's, restyled: the app's palette and font sizes, its margins,
short titles. A view that cannot be drawn yet (one completed trial, a single parameter) is None,
never an exception, and the page says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go

from seqcopy.text import rounded
from seqcopy.ui.figures import PALETTE, colour, styled_layout

VIEWS = ("history", "importances", "parallel", "slice", "contour", "intermediate")
VIEW_TABS = {
    "history": "Optimisation history",
    "importances": "Parameter importances",
    "parallel": "Parallel coordinates",
    "slice": "Slice",
    "contour": "Contour",
    "intermediate": "Each trial's objective epoch by epoch",
}
# Short enough for a half-width column: what each shows in full is its caption (VIEW_CAPTIONS).
VIEW_TITLES = {
    "history": "History: each trial and the best",
    "importances": "Importances (fANOVA)",
    "parallel": "Parallel: trials across parameters",
    "slice": "Slice: objective by parameter",
    "contour": "Contour: objective over two",
    "intermediate": "Per epoch: each trial's objective",
}
VIEW_CAPTIONS = {
    "history": "Each completed trial's objective, and the best so far, in the order the trials were asked.",
    "importances": "How much of the objective's variation each parameter explains (Optuna's fANOVA).",
    "parallel": "Each trial as a line across the parameters, coloured by its objective.",
    "slice": "The objective against each parameter; the colour is the trial's number.",
    "contour": "The objective over the first two parameters.",
    "intermediate": "Each trial's objective (its seeds' mean) epoch by epoch; pruned trials stop early.",
}
BEST_NAME = "best so far"


def style(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    """The app's look on one of Optuna's figures."""
    fig.update_layout(title=dict(text=title, font=dict(size=15)), height=height,
                      margin=dict(l=10, r=10, t=50, b=40), colorway=list(PALETTE), template="plotly_white",
                      font=dict(size=12), legend=dict(orientation="h", y=-0.2, x=0))
    return fig


def _completed(study) -> int:
    import optuna

    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def objective_label(objective: str) -> str:
    return objective.replace("_", " ")


def trial_number(frozen, numbers: Mapping[int, int] | None = None) -> int:
    """The number the trials table shows for Optuna's trial ``frozen``: the one the search tagged
    it with, else the table's number for its storage id (a pruned grid's runs), else Optuna's
    count from 0 plus one, which is the table's wherever no trial was asked twice."""
    tagged = frozen.user_attrs.get("seqcopy_number")
    if tagged is not None:
        return int(tagged)
    if numbers and frozen._trial_id in numbers:
        return int(numbers[frozen._trial_id])
    return frozen.number + 1


def trial_colour(number: int) -> str:
    """A trial's colour in every figure of the search view."""
    return colour(number - 1)


def history_figure(study, objective: str, numbers: Mapping[int, int] | None = None) -> go.Figure | None:
    """Each completed trial's objective against its number, in its colour, and the best so far."""
    import optuna

    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    done = sorted((trial_number(t, numbers), t.value) for t in finished if t.value is not None)
    if not done:
        return None
    maximise = study.direction == optuna.study.StudyDirection.MAXIMIZE
    label = objective_label(objective)
    fig = go.Figure()
    best, running = [], None
    for _, value in done:
        running = value if running is None else (max if maximise else min)(running, value)
        best.append(running)
    fig.add_trace(go.Scatter(
        x=[n for n, _ in done], y=best, mode="lines", name=BEST_NAME, line=dict(color="#444444", width=2, shape="hv"),
        hovertext=[rounded(b) for b in best], hovertemplate="best so far: %{hovertext}<extra></extra>",
        meta={"kind": "best"},
    ))
    for number, value in done:
        fig.add_trace(go.Scatter(
            x=[number], y=[value], mode="markers", name=f"trial {number}", showlegend=False,
            marker=dict(color=trial_colour(number), size=10), hovertext=[rounded(value)],
            hovertemplate=f"trial {number}: {label} %{{hovertext}}<extra></extra>",
            meta={"kind": "trial", "trial": number},
        ))
    fig = styled_layout(fig, VIEW_TITLES["history"], "trial", label, height=330, legend_columns=2)
    fig.update_layout(hovermode="closest")
    if len(done) <= 30:  # whole trial numbers, as the table shows them
        fig.update_xaxes(tickmode="array", tickvals=[n for n, _ in done])
    return fig


def intermediate_figure(study, objective: str, numbers: Mapping[int, int] | None = None) -> go.Figure | None:
    """Each trial's objective epoch by epoch (what the pruner compared), one line per trial in its
    colour, named as in the table."""
    reported = sorted(((trial_number(t, numbers), t) for t in study.get_trials(deepcopy=False)
                       if t.intermediate_values), key=lambda pair: pair[0])
    if not reported:
        return None
    label = objective_label(objective)
    fig = go.Figure()
    for number, frozen in reported:
        epochs = sorted(frozen.intermediate_values)
        values = [frozen.intermediate_values[e] for e in epochs]
        pruned = " (pruned)" if frozen.state.name == "PRUNED" else ""
        fig.add_trace(go.Scatter(
            x=epochs, y=values, mode="lines+markers", name=f"trial {number}{pruned}",
            line=dict(color=trial_colour(number), width=2), marker=dict(size=6),
            hovertext=[rounded(v) for v in values], hovertemplate="%{hovertext}",
            meta={"kind": "trial", "trial": number},
        ))
    fig = styled_layout(fig, VIEW_TITLES["intermediate"], "epoch", label, height=330, legend_columns=2)
    if max(max(t.intermediate_values) for _, t in reported) <= 30:
        fig.update_xaxes(dtick=1)  # whole epochs
    return fig


def _renumbered(fig: go.Figure, study, numbers: Mapping[int, int] | None) -> go.Figure:
    """Optuna's slice colours each point by Optuna's trial count: the table's numbers instead."""
    by_optuna = {t.number: trial_number(t, numbers) for t in study.get_trials(deepcopy=False)}
    for trace in fig.data:
        marker = getattr(trace, "marker", None)
        if marker is not None and marker.colorbar is not None and marker.colorbar.title.text == "Trial" \
                and marker.color is not None and not isinstance(marker.color, str):
            marker.color = [by_optuna.get(int(n), int(n) + 1) for n in marker.color]
    return fig


def search_figure(study, view: str, objective: str = "objective",
                  numbers: Mapping[int, int] | None = None) -> go.Figure | None:
    """The figure for ``view`` (one of VIEWS), styled; None when the trials cannot draw it yet.
    ``numbers`` (Optuna's storage trial id → the table's trial number) numbers the trials of a
    study whose trials carry no tag (a pruned grid's)."""
    import optuna.visualization as vis

    completed = _completed(study)
    params = {name for t in study.get_trials(deepcopy=False) for name in t.params}
    target = objective_label(objective)
    if view == "intermediate":
        fig = intermediate_figure(study, objective, numbers)
        return fig if fig is None else _search_look(fig)
    if completed < 1:
        return None
    if view == "history":
        return _search_look(history_figure(study, objective, numbers))
    if view == "importances":
        if completed < 2 or len(params) < 2:
            return None
        try:
            fig = vis.plot_param_importances(study, target_name=target)
        except (RuntimeError, ValueError):  # all values equal: importances are undefined
            return None
    elif view == "parallel":
        fig = vis.plot_parallel_coordinate(study, target_name=target)
    elif view == "slice":
        fig = _renumbered(vis.plot_slice(study, target_name=target), study, numbers)
    elif view == "contour":
        if len(params) < 2 or completed < 2:
            return None
        fig = vis.plot_contour(study, params=sorted(params)[:2], target_name=target)
    else:
        raise ValueError(f"unknown view {view!r}: one of {', '.join(VIEWS)}")
    return style(fig, VIEW_TITLES[view])


def _search_look(fig: go.Figure) -> go.Figure:
    fig.update_layout(colorway=list(PALETTE), template="plotly_white")
    return fig


def trials_frame(rows: list[dict], objective: str) -> pd.DataFrame:
    """The trial rows (best first, as seqcopy.results.search.trials_table orders them) as the
    page's table: trial, state, each parameter, the seeds' mean ± SE, seeds, pruned epoch, runs."""
    params = sorted({name for row in rows for name in row["params"]})
    records = []
    for row in rows:
        se = row["se"]
        shown = "" if row["value"] is None else rounded(row["value"]) + (
            f" ± {rounded(se)}" if se is not None and math.isfinite(se) else "")
        records.append({"trial": row["number"], "state": row["state"],
                        **{name: _param_text(row["params"].get(name)) for name in params},
                        f"{objective} (mean ± SE)": shown, "seeds": row["n"], "pruned at epoch": row["pruned_epoch"],
                        "runs": ", ".join(map(str, row["run_ids"]))})
    return pd.DataFrame(records)


def _param_text(value):
    """A sampled value as a person reads it (3 significant figures); choices as they are."""
    return rounded(value) if isinstance(value, float) else value
