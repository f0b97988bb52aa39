"""Plotly figure builders: pure functions of DataFrames, so they are tested without a browser.

No Streamlit here. Colours come from one qualitative palette so that a run (Runs page) or a
group (Compare page) keeps its colour across every figure of the page.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from seqcopy.vocab import CHANCE_LEVEL

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)
CHANCE_NAME = "chance (1/9)"
METRIC_TITLES = {
    "loss": "Loss (cross-entropy)",
    "acc": "Accuracy over all positions",
    "copy_acc": "Copy accuracy (copied symbols only)",
    "seq_acc": "Sequence accuracy (every symbol right)",
}
X_TITLES = {"epoch": "epoch", "minutes": "wall time (minutes since start)"}
# The memory diagnostics of each epoch (seqcopy.core.diagnostics), as their figures name them.
DIAGNOSTIC_TITLES = {
    "memory_gate": "Memory gate through the delay (forget f / update z)",
    "saturated_gates": "Share of saturated gates (< 0.1 or > 0.9)",
    "saliency_diagonal": "Saliency diagonal (outputs reading the right letter)",
    "first_input_grad": "Gradient from the last output to the first input",
}


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def styled_layout(
    fig: go.Figure,
    title: str,
    x_title: str,
    y_title: str,
    log_y: bool = False,
    height: int = 300,
    legend_columns: int = 1,
) -> go.Figure:
    """Title, axes, and a legend below the plot with room for it: figures side by side in
    narrow columns wrap their legend to about one entry a row, so the bottom margin grows with
    the number of entries (and all figures of one page with the same entries stay aligned);
    a wider figure says how many entries fit on a row with ``legend_columns``."""
    entries = sum(1 for trace in fig.data if trace.showlegend is not False)
    bottom = 60 + 22 * -(-entries // max(legend_columns, 1))
    fig.update_layout(
        title=title, height=height + bottom, margin=dict(l=10, r=10, t=50, b=bottom),
        legend=dict(orientation="h", yanchor="top", y=-60 / max(height - 50, 1), x=0),
        xaxis_title=x_title, yaxis_title=y_title, hovermode="x unified",
    )
    if log_y:
        fig.update_yaxes(type="log")
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
    curriculum moved on, with the new output length."""
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
    if stages is not None and not stages.empty:
        # One vertical dotted line per stage change, labelled with the new output length.
        for _, change in stages.iterrows():
            fig.add_vline(x=change[x], line=dict(color="black", dash="dot", width=1),
                          annotation_text=f"curriculum → N={int(change['stage_output_len'])}",
                          annotation_position="top", annotation_font_size=10)
    if metric == "copy_acc":
        add_chance_line(fig)
    if metric != "loss":
        fig.update_yaxes(range=None if log_y else [0, 1.02])
    title = f"{METRIC_TITLES.get(metric, metric)}<br><sup>solid: test · dashed: train</sup>"
    return styled_layout(fig, title, X_TITLES.get(x, x), metric.replace("_", " "), log_y)


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
    return styled_layout(fig, DIAGNOSTIC_TITLES.get(metric, metric), X_TITLES.get(x, x), metric.replace("_", " "),
                   log_y=gradient)


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
