"""Plotly figure builders: pure functions of DataFrames, so they are tested without a browser.

No Streamlit here. Colours come from one qualitative palette so that a run (Runs page) or a
group (Compare page) keeps its colour across every figure of the page.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from seqcopy.text import rounded
from seqcopy.vocab import CHANCE_LEVEL

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)
CHANCE_NAME = "chance (1/9)"
# Titles short enough for the narrowest column a figure is drawn in (about 350 px: three or four
# figures side by side); what they measure exactly is the y axis's title.
TITLE_CHARACTERS = 34
METRIC_TITLES = {
    "loss": "Loss",
    "acc": "Accuracy",
    "copy_acc": "Copy accuracy",
    "seq_acc": "Sequence accuracy",
}
METRIC_AXES = {
    "loss": "cross-entropy",
    "acc": "accuracy, all positions",
    "copy_acc": "copy acc, copied symbols",
    "seq_acc": "share of sequences all right",
}
X_TITLES = {"epoch": "epoch", "minutes": "wall time (minutes since start)"}
# The memory diagnostics of each epoch (seqcopy.core.diagnostics), as their figures name them.
DIAGNOSTIC_TITLES = {
    "memory_gate": "Memory gate in the delay",
    "saturated_gates": "Saturated gates",
    "saliency_diagonal": "Saliency diagonal",
    "first_input_grad": "Gradient to the first input",
}
DIAGNOSTIC_AXES = {
    "memory_gate": "mean forget f / update z",
    "saturated_gates": "share < 0.1 or > 0.9",
    "saliency_diagonal": "share on the right letter",
    "first_input_grad": "last output → first input",
}
CURRICULUM_NAME = "curriculum stage change"
# A decimal with more digits than a person reads (a sampled learning rate), standing alone:
# not inside a word such as a tag 'v1.2345'.
_LONG_NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d{4,}(?:e[-+]?\d+)?(?![\w.])")
# Roughly what one legend entry takes in a horizontal legend: the line sample and gaps, then
# each character at the legend's font size; and the width each of ``legend_columns`` has.
LEGEND_ENTRY_PX, LEGEND_CHAR_PX, LEGEND_ROW_PX, COLUMN_PX = 46, 7.0, 30, 330


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def legend_text(name: object) -> str:
    """A legend entry or hover name as a person reads it: every long decimal in it rounded to
    three significant figures ('lr=0.001202222703522498' → 'lr=0.00120'); the CSVs keep them exact."""
    return _LONG_NUMBER.sub(lambda match: rounded(float(match[0])), str(name))


def legend_rows(names: list[str], legend_columns: int = 1) -> int:
    """How many rows a horizontal legend of ``names`` takes in a figure ``legend_columns`` columns
    wide, entries packed left to right as plotly packs them. Estimated on the generous side: a
    legend taller than the room left for it would make plotly shrink the plot instead."""
    width = COLUMN_PX * max(legend_columns, 1)
    rows, used = 0, width
    for name in names:
        entry = LEGEND_ENTRY_PX + LEGEND_CHAR_PX * len(name)
        if used + entry > width:
            rows, used = rows + 1, 0
        used += entry
    return rows


def legend_below(fig: go.Figure, height: int, legend_columns: int = 1) -> go.Figure:
    """A horizontal legend under the plot, the figure grown by its rows, so the plot keeps
    ``height`` however many entries there are (a legend beside or over the plot narrows it or
    covers the title); long decimals in the entries' names rounded (legend_text)."""
    names = []
    for trace in fig.data:
        if trace.name is not None:
            trace.name = legend_text(trace.name)
        if trace.showlegend is not False and trace.name:
            names.append(trace.name)
    legend = LEGEND_ROW_PX * legend_rows(names, legend_columns)
    axis = 45  # the x axis's ticks and title, between the plot and the legend
    bottom = axis + legend + 10
    fig.update_layout(
        height=height + bottom, margin=dict(l=10, r=10, t=50, b=bottom),
        legend=dict(orientation="h", yanchor="top", yref="container", y=(legend + 10) / (height + bottom),
                    x=0, font=dict(size=12)),
    )
    return fig


def styled_layout(
    fig: go.Figure,
    title: str,
    x_title: str,
    y_title: str,
    log_y: bool = False,
    height: int = 300,
    legend_columns: int = 1,
) -> go.Figure:
    """Title, axes, and a horizontal legend below the plot with room for it: the figure grows by
    the legend's rows, so the plot keeps ``height`` however many entries there are (figures side
    by side in narrow columns wrap theirs to about one long entry a row; a wider figure says how
    many columns wide it is with ``legend_columns``). Long decimals in entry names are rounded."""
    legend_below(fig, height, legend_columns)
    fig.update_layout(title=dict(text=title, font=dict(size=15)), xaxis_title=x_title, yaxis_title=y_title,
                      hovermode="x unified", yaxis_hoverformat=".3g")  # 3 significant figures on hover
    if log_y:
        # Every tick with its whole value: plotly labels a log axis's in-between ticks by their
        # first digit alone ('5', '2' below '0.1'), which reads as the numbers 5 and 2.
        fig.update_layout(yaxis_type="log", yaxis_tickformat=".3g")
    return fig


def add_chance_line(fig: go.Figure) -> go.Figure:
    """A dotted horizontal line at 1/9, the copy accuracy of guessing: a shape spanning the whole
    plot, plus a legend entry (a trace holding only the level) so the reader knows what it is."""
    style = dict(color="grey", dash="dot", width=1.5)
    fig.add_hline(y=CHANCE_LEVEL, line=style)
    fig.add_trace(go.Scatter(
        x=[None], y=[CHANCE_LEVEL], mode="lines", name=CHANCE_NAME, line=style, hoverinfo="skip",
        meta={"kind": "chance"},
    ))
    return fig


def run_curves_figure(
    epochs: pd.DataFrame,
    metric: str,
    x: str = "epoch",
    log_y: bool = False,
    stages: pd.DataFrame | None = None,
) -> go.Figure:
    """Train (dashed) and test (solid) ``metric`` per epoch for each run in ``epochs``.

    ``metric`` is 'loss', 'acc' or 'copy_acc' (columns train_<metric>, test_<metric>); copy
    accuracy gets the chance line; ``stages`` (from frames.stage_changes) marks where a run's
    curriculum moved on (add_stage_ticks)."""
    fig = go.Figure()
    for index, (run_id, run) in enumerate(epochs.groupby("run_id", sort=True)):
        label = run["label"].iloc[0] if "label" in run else f"#{run_id}"
        for split, dash in (("train", "dash"), ("test", "solid")):
            fig.add_trace(go.Scatter(
                x=run[x], y=run[f"{split}_{metric}"], mode="lines+markers" if len(run) < 30 else "lines",
                name=label if split == "test" else f"{label} train", legendgroup=str(run_id),
                showlegend=split == "test",  # one entry per run; clicking it hides both lines
                line=dict(color=colour(index), dash=dash, width=2), marker=dict(size=5),
            ))
    if metric == "copy_acc":
        add_chance_line(fig)
    if metric != "loss":
        fig.update_layout(yaxis_range=None if log_y else [0, 1.02])
    if stages is not None and not stages.empty:
        add_stage_ticks(fig, stages, x)
    title = f"{METRIC_TITLES.get(metric, metric)}<br><sup>solid: test · dashed: train</sup>"
    return styled_layout(fig, title, X_TITLES.get(x, x), METRIC_AXES.get(metric, metric.replace("_", " ")), log_y)


def add_stage_ticks(fig: go.Figure, stages: pd.DataFrame, x: str = "epoch") -> go.Figure:
    """Where a run's curriculum moved on (frames.stage_changes: run_id, label, the new
    stage_output_len), a short tick at the foot of the plot, the full text on hover: labels
    written on the plot pile up when several runs change stage at nearby epochs. The ticks
    sit on an axis of their own (0 to 1, hidden) so that they stay at the foot whatever the
    metric's scale."""
    labels = stages["label"] if "label" in stages else "#" + stages["run_id"].astype(str)
    text = [f"{label}: curriculum → N={int(n)} at {x} {rounded(at)}"
            for label, n, at in zip(labels, stages["stage_output_len"], stages[x], strict=True)]
    fig.add_trace(go.Scatter(
        x=stages[x], y=[0.04] * len(stages), yaxis="y2", mode="markers", name=CURRICULUM_NAME,
        marker=dict(symbol="line-ns-open", size=16, color="#444444", line=dict(width=2)), cliponaxis=False,
        hovertext=text, hovertemplate="%{hovertext}<extra></extra>", meta={"kind": "curriculum"},
    ))
    fig.update_layout(yaxis2=dict(overlaying="y", range=[0, 1], visible=False, fixedrange=True))
    return fig


def diagnostic_curves_figure(epochs: pd.DataFrame, metric: str, x: str = "epoch") -> go.Figure:
    """One line per run of the memory diagnostic ``metric`` (a column of ``epochs``) per epoch:
    shares and gates on [0, 1], the gradient norm on a log axis. Runs without the value (an RNN
    has no gate; epochs recorded before the diagnostics) draw nothing."""
    fig = go.Figure()
    for index, (run_id, run) in enumerate(epochs.groupby("run_id", sort=True)):
        measured = run.dropna(subset=[metric])
        if measured.empty:
            continue
        label = run["label"].iloc[0] if "label" in run else f"#{run_id}"
        fig.add_trace(go.Scatter(x=measured[x], y=measured[metric], mode="lines+markers" if len(run) < 30 else "lines",
                                 name=label, line=dict(color=colour(index), width=2), marker=dict(size=5),
                                 meta={"kind": "diagnostic", "run": int(run_id)}))
    gradient = metric == "first_input_grad"
    if not gradient:
        fig.update_yaxes(range=[0, 1.02])
    return styled_layout(fig, DIAGNOSTIC_TITLES.get(metric, metric), X_TITLES.get(x, x),
                         DIAGNOSTIC_AXES.get(metric, metric.replace("_", " ")), log_y=gradient)


def _seed_lines(members: pd.DataFrame, x: str, y: str, run: str, name, hue: str) -> go.Scatter:
    """Every seed of a group as a thin line in its colour, all in one trace with the runs
    separated by gaps (NaN): one trace per group instead of one per run keeps a 200-run
    comparison fast to build and draw."""
    ordered = members.sort_values([run, x])
    run_ids = ordered[run].to_numpy()
    ends = np.append(np.flatnonzero(run_ids[1:] != run_ids[:-1]) + 1, len(run_ids))
    xs = np.insert(ordered[x].to_numpy(dtype=float), ends, np.nan)  # NaN: a gap
    ys = np.insert(ordered[y].to_numpy(dtype=float), ends, np.nan)
    ids = [int(i) for i in pd.unique(run_ids)]
    return go.Scatter(
        x=xs, y=ys, mode="lines", name=f"{name}: seeds", legendgroup=str(name), showlegend=False,
        line=dict(color=rgba(hue, 0.45), width=1), hoverinfo="skip", connectgaps=False,
        meta={"kind": "seeds", "group": str(name), "runs": ids},
    )


def _std_band(stats: pd.DataFrame, x: str, name, hue: str) -> list[go.Scatter]:
    """The mean ± std band as two invisible edges, upper then lower: plotly fills "tonexty" down
    to the trace drawn just before, so the order matters. An x that one run alone reached has no
    std (NaN); it counts as 0 there so the band narrows to the mean instead of breaking."""
    upper = stats["mean"] + stats["std"].fillna(0)
    lower = stats["mean"] - stats["std"].fillna(0)
    return [
        go.Scatter(
            x=stats[x], y=upper, mode="lines", line=dict(width=0), showlegend=False,
            legendgroup=str(name), hoverinfo="skip", name=f"{name} + std",
            meta={"kind": "band_upper", "group": str(name)},
        ),
        go.Scatter(
            x=stats[x], y=lower, mode="lines", line=dict(width=0), fill="tonexty",
            fillcolor=rgba(hue, 0.2), showlegend=False, legendgroup=str(name), hoverinfo="skip",
            name=f"{name} − std", meta={"kind": "band_lower", "group": str(name)},
        ),
    ]


def _seed_mean_line(stats: pd.DataFrame, x: str, name, hue: str, runs: int) -> go.Scatter:
    """A group's mean line, the one legend entry for the group; its name says how many seeds it
    averages, or that a lone seed has no band. Markers only while they stay few enough to read."""
    legend = f"{name} (mean of {runs} seeds ± std)" if runs > 1 else f"{name} (1 seed, no band)"
    return go.Scatter(
        x=stats[x], y=stats["mean"], mode="lines+markers" if len(stats) < 30 else "lines",
        name=legend, legendgroup=str(name), line=dict(color=hue, width=3), marker=dict(size=5),
        meta={"kind": "mean", "group": str(name), "runs": int(runs)},
    )


def seed_band_figure(
    frame: pd.DataFrame,
    x: str,
    y: str,
    title: str,
    group: str = "group",
    run: str = "run_id",
    chance: bool = False,
    log_y: bool = False,
    show_seeds: bool = True,
    x_title: str | None = None,
    y_title: str | None = None,
    legend_columns: int = 1,
) -> go.Figure:
    """Per group, one colour: the mean of ``y`` across its runs (seeds) at each ``x``, a band of
    ± one sample standard deviation (ddof 1), and each seed as a thin line.

    A group with a single run gets no band (there is no spread to show) and says so in its
    legend name. At an ``x`` that only some runs reached, the mean is over those runs."""
    fig = go.Figure()
    for index, (name, members) in enumerate(frame.groupby(group, sort=True)):
        hue = colour(index)
        runs = members[run].nunique()
        stats = members.groupby(x)[y].agg(["mean", "std", "count"]).reset_index().sort_values(x)
        if show_seeds:
            fig.add_trace(_seed_lines(members, x, y, run, name, hue))
        if runs > 1:
            fig.add_traces(_std_band(stats, x, name, hue))
        fig.add_trace(_seed_mean_line(stats, x, name, hue, runs))
    if chance:
        add_chance_line(fig)
    if y.endswith("acc") and not log_y:
        fig.update_yaxes(range=[0, 1.02])  # accuracies on their whole scale, chance in view
    return styled_layout(fig, title, x_title or x, y_title or y.replace("_", " "), log_y, legend_columns=legend_columns)
