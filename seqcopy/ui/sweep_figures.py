"""Figures of a sweep: a final metric against a swept setting, how fast each run reached a copy
accuracy, and parallel coordinates over every varied setting. Pure builders: DataFrame in
(seqcopy.ui.sweep_frames), plotly Figure out, tested without a browser.

Every trace carries ``meta`` saying what it is (``kind``: seeds, mean, band_upper, band_lower,
never, …; and its ``group``), so tests and readers can find it without relying on trace order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from seqcopy.results.spread import ERROR_KINDS, ERROR_SHORT
from seqcopy.text import rounded
from seqcopy.ui.figures import add_chance_line, colour, rgba, styled_layout
from seqcopy.ui.sweep_frames import is_categorical, is_numeric, spans_a_decade, summary_by_setting, x_order

NEVER_COLOUR = "#444444"


def _x_axis(fig: go.Figure, values: Sequence, log_x: bool | None) -> bool:
    """Numbers on a numeric axis (log where they span a decade, unless ``log_x`` says), anything
    else (and a single number) as categories in order; returns whether the axis is logarithmic."""
    order = x_order(list(values))
    if is_categorical(order):
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=[_category(v) for v in order])
        return False
    log = spans_a_decade(order) if log_x is None else log_x and spans_a_decade(order)
    fig.update_xaxes(type="log" if log else "linear")
    if len(order) <= 12:
        fig.update_xaxes(tickmode="array", tickvals=order, ticktext=[rounded(v) for v in order])
    return log


def _category(value) -> str:
    """A category's name: a number as a person reads it (0.00120, not 0.001202222703522498)."""
    return rounded(value)


def _xs(values: pd.Series, numeric: bool) -> list:
    return list(values) if numeric else [_category(v) for v in values]


def _mode(numeric: bool) -> str:
    """A line joins the means only along a numeric axis: between categories it would suggest an
    order and a trend that are not there."""
    return "lines+markers" if numeric else "markers"


def metric_vs_setting_figure(
    frame: pd.DataFrame,
    y: str,
    x_title: str,
    error: str = "se",
    style: str = "bars",
    log_x: bool | None = None,
    show_seeds: bool = True,
) -> go.Figure:
    """The final ``y`` of each run against its setting ``x`` (frame from settings_frame), one
    colour per line (``group``): the mean over its seeds at each value with the chosen spread as
    error bars (``style='bars'``) or a band (``'band'``), each seed a faint point; a log x axis
    where the values span a decade; the chance line for copy accuracy."""
    fig = go.Figure()
    data = frame.dropna(subset=[y])
    numeric = not is_categorical(list(data["x"]))
    style = style if numeric else "bars"  # a band spans between values: categories have none
    summary = summary_by_setting(data, y, error)
    for index, (name, line) in enumerate(summary.groupby("group", sort=True)):
        hue = colour(index)
        xs = _xs(line["x"], numeric)
        if show_seeds:
            seeds = data[data["group"] == name]
            fig.add_trace(go.Scatter(
                x=_xs(seeds["x"], numeric), y=seeds[y], mode="markers", name=f"{name}: seeds", legendgroup=str(name),
                showlegend=False, marker=dict(color=rgba(hue, 0.35), size=7), text=seeds["label"],
                hovertemplate="%{text}: %{y:.3g}<extra></extra>",
                meta={"kind": "seeds", "group": str(name), "runs": [int(i) for i in seeds["run_id"]]},
            ))
        if style == "band":
            for edge, fill in (("upper", None), ("lower", "tonexty")):
                fig.add_trace(go.Scatter(
                    x=xs, y=line[edge], mode="lines", line=dict(width=0), fill=fill, fillcolor=rgba(hue, 0.2),
                    showlegend=False, legendgroup=str(name), hoverinfo="skip", name=f"{name} {edge}",
                    meta={"kind": f"band_{edge}", "group": str(name)},
                ))
        bars = dict(type="data", array=np.nan_to_num(line["half"].to_numpy()), visible=style == "bars",
                    color=hue, thickness=1.5, width=4)
        counts = sorted(set(line["n"]))
        n_text = f"n={counts[0]}" if len(counts) == 1 else f"n={counts[0]}–{counts[-1]}"
        fig.add_trace(go.Scatter(
            x=xs, y=line["mean"], mode=_mode(numeric), name=f"{name} (mean ± {ERROR_SHORT[error]}, {n_text})",
            legendgroup=str(name), line=dict(color=hue, width=3), marker=dict(size=8 if numeric else 11), error_y=bars,
            customdata=np.stack([np.nan_to_num(line["half"].to_numpy()), line["n"].to_numpy()], axis=-1),
            hovertemplate="%{y:.3g} ± %{customdata[0]:.3g} (n=%{customdata[1]})<extra>" + str(name) + "</extra>",
            meta={"kind": "mean", "group": str(name), "error": error},
        ))
    if y.endswith("copy_acc"):
        add_chance_line(fig)
    if y.endswith("acc"):
        fig.update_yaxes(range=[0, 1.02])
    log = _x_axis(fig, list(data["x"]), log_x)
    title = (f"{y.replace('_', ' ')} against {x_title}<br><sup>mean over seeds ± {ERROR_KINDS[error]}; "
             f"each seed a faint point{'; log x' if log else ''}</sup>")
    fig = styled_layout(fig, title, x_title, y.replace("_", " "), legend_columns=3)
    return fig.update_layout(hovermode="closest")


def _reached_seed_points(line_runs: pd.DataFrame, name, hue: str, numeric: bool) -> go.Scatter:
    """One line's runs that reached the threshold, each a faint point at how long it took: the
    spread behind the mean stays visible. Hidden from the legend; its mean line stands for it."""
    return go.Scatter(
        x=_xs(line_runs["x"], numeric), y=line_runs["y"], mode="markers", showlegend=False, legendgroup=str(name),
        name=f"{name}: seeds", marker=dict(color=rgba(hue, 0.35), size=7), text=line_runs["label"],
        hovertemplate="%{text}: %{y:.3g}<extra></extra>",
        meta={"kind": "seeds", "group": str(name), "runs": [int(i) for i in line_runs["run_id"]]},
    )


def _reached_mean_line(line_runs: pd.DataFrame, members: pd.DataFrame, name, hue: str, numeric: bool,
                       error: str) -> go.Scatter:
    """One line's mean time to the threshold at each setting, over the runs that reached it, with
    error bars and a 'reached/runs' label: a mean of the survivors alone would flatter a setting
    where most seeds never got there, so the label says how many it stands for."""
    summary = summary_by_setting(line_runs, "y", error)
    totals = members.groupby("x")["run_id"].count()
    texts = [f"{n}/{totals[x]}" for x, n in zip(summary["x"], summary["n"], strict=True)]
    return go.Scatter(
        x=_xs(summary["x"], numeric),
        y=summary["mean"],
        mode=_mode(numeric) + "+text",
        text=texts,
        textposition="middle left",
        textfont=dict(size=10, color=hue),
        name=f"{name} (mean of the runs that reached it; reached/runs)",
        legendgroup=str(name),
        line=dict(color=hue, width=3),
        marker=dict(size=8),
        error_y=dict(type="data", array=np.nan_to_num(summary["half"].to_numpy()), color=hue, thickness=1.5, width=4),
        meta={"kind": "mean", "group": str(name), "reached": texts},
    )


def _never_crosses(never: pd.DataFrame, numeric: bool, threshold: float, measure: str) -> go.Scatter:
    """Runs that never reached the threshold, an open cross at how far they ran: dropping them
    would hide the failures, and their length is a lower bound on the time they would need."""
    return go.Scatter(
        x=_xs(never["x"], numeric), y=never[f"{measure}_run"], mode="markers",
        name=f"never reached {threshold:.0%} (plotted at its last {'epoch' if measure == 'epochs' else 'minute'})",
        marker=dict(symbol="x-open", size=10, color=NEVER_COLOUR), text=never["label"] + " · " + never["group"],
        hovertemplate="%{text}: not reached in %{y:.3g} " + measure + "<extra></extra>",
        meta={"kind": "never", "runs": [int(i) for i in never["run_id"]]},
    )


def _never_pile_counts(never: pd.DataFrame, numeric: bool, measure: str) -> go.Scatter:
    """'n×' above each spot where crosses coincide: many runs share the same x and the same run
    length, and stacked crosses look like one."""
    piles = never.groupby(["x", f"{measure}_run"], sort=False)["run_id"].count().reset_index()
    return go.Scatter(
        x=_xs(piles["x"], numeric),
        y=piles[f"{measure}_run"],
        mode="markers+text",
        text=[f"{n}×" for n in piles["run_id"]],
        marker=dict(size=14, opacity=0),
        textposition="top center",
        textfont=dict(size=10, color=NEVER_COLOUR),
        showlegend=False,
        hoverinfo="skip",
        meta={"kind": "never_count"},
    )


def _convergence_layout(fig: go.Figure, frame: pd.DataFrame, x_title: str, threshold: float, measure: str,
                        error: str, log_x: bool | None) -> go.Figure:
    """Axes, title and legend of the convergence figure; the y axis starts at 0 and leaves room
    above the longest run for the pile counts drawn over the crosses."""
    highest = np.nanmax([frame[f"{measure}_run"].max(), 0.0])
    fig.update_yaxes(range=[0, 1.15 * highest if highest > 0 else 1])  # room for the counts above the crosses
    log = _x_axis(fig, list(frame["x"]), log_x)
    unit = "epochs" if measure == "epochs" else "minutes of training and testing"
    title = (f"{unit.capitalize()} to reach {threshold:.0%} test copy accuracy against {x_title}"
             f"<br><sup>mean ± {ERROR_KINDS[error]} of the runs that reached it{'; log x' if log else ''}</sup>")
    fig = styled_layout(fig, title, x_title, unit, legend_columns=3)
    return fig.update_layout(hovermode="closest")


def convergence_figure(frame: pd.DataFrame, x_title: str, threshold: float, measure: str = "epochs",
                       error: str = "se", log_x: bool | None = None) -> go.Figure:
    """How long each run took to first reach ``threshold`` test copy accuracy (frame from
    convergence_frame), in ``measure`` (epochs or minutes), against its setting: each run that
    reached it a faint point, the mean of those with the chosen spread and how many of the seeds
    reached it ('2/3'); runs that never reached it are not dropped: an open cross at how far they
    ran, marked as such."""
    fig = go.Figure()
    numeric = not is_categorical(list(frame["x"]))
    done = frame[frame["reached"]].assign(y=frame[f"{measure}_to"])
    for index, (name, members) in enumerate(frame.groupby("group", sort=True)):
        hue = colour(index)
        line_runs = done[done["group"] == name]
        fig.add_trace(_reached_seed_points(line_runs, name, hue, numeric))
        fig.add_trace(_reached_mean_line(line_runs, members, name, hue, numeric, error))
    never = frame[~frame["reached"]]
    if not never.empty:
        fig.add_trace(_never_crosses(never, numeric, threshold, measure))
        fig.add_trace(_never_pile_counts(never, numeric, measure))
    return _convergence_layout(fig, frame, x_title, threshold, measure, error, log_x)


def parallel_coordinates_figure(frame: pd.DataFrame, keys: Sequence[str], metric: str) -> go.Figure:
    """One line per run across an axis for every setting in ``keys`` and a last axis for its
    final ``metric``, coloured by that metric. Numbers keep their scale; other settings (cell,
    on/off, choices) become evenly spaced categories with their names as ticks."""
    data = frame.dropna(subset=[metric])
    dimensions = []
    for key in keys:
        values = list(data[key])
        if is_numeric(values):
            dimensions.append(dict(label=key, values=[float(v) for v in values]))
        else:
            order = x_order(values)
            code = {value: i for i, value in enumerate(order)}
            dimensions.append(dict(label=key, values=[code[v] for v in values], tickvals=list(range(len(order))),
                                   ticktext=[str(v) for v in order]))
    bounded = metric.endswith("acc")
    dimensions.append(dict(label=metric, values=data[metric].astype(float).tolist(),
                           range=[0, 1] if bounded else None))
    fig = go.Figure(
        go.Parcoords(
            dimensions=dimensions,
            domain=dict(x=[0, 0.88]),  # room for the colour bar beside the last axis
            line=dict(
                color=data[metric].astype(float).tolist(),
                colorscale="Viridis",
                showscale=True,
                cmin=0 if bounded else None,
                cmax=1 if bounded else None,
                colorbar=dict(title=metric.replace("_", " ")),
            ),
            meta={"kind": "parcoords", "keys": list(keys), "metric": metric, "runs": [int(i) for i in data["run_id"]]},
        )
    )
    fig.update_layout(title=f"Every run across the varied settings, coloured by {metric.replace('_', ' ')}",
                      height=420, margin=dict(l=60, r=40, t=80, b=30))
    return fig


def _p_text(p: float) -> str:
    return "—" if pd.isna(p) else rounded(p)


def verdicts_figure(verdicts: pd.DataFrame, reference: str, y: str, x_title: str,
                    log_x: bool | None = None) -> go.Figure:
    """Each group's difference from ``reference`` in the final ``y`` (frame from verdicts_frame)
    against the setting: the difference of means with its 95% interval as error bars, a filled
    marker where the difference is clear (the interval excludes 0), an open one where these seeds
    cannot decide, and the zero line (no difference). Hover names the test and its p-value."""
    fig = go.Figure()
    numeric = not is_categorical(list(verdicts["x"]))
    # Colours as the page's other figures give them: by the group's place among all groups, sorted.
    order = sorted({*verdicts["group"], reference})
    for name, line in verdicts.groupby("group", sort=True):
        hue = colour(order.index(name))
        line = line.dropna(subset=["difference"])
        plus = (line["high"] - line["difference"]).fillna(0).to_numpy()
        minus = (line["difference"] - line["low"]).fillna(0).to_numpy()
        fig.add_trace(go.Scatter(
            x=_xs(line["x"], numeric), y=line["difference"], mode=_mode(numeric), name=str(name), showlegend=True,
            legendgroup=str(name), line=dict(color=hue, width=2),
            marker=dict(size=11, color=[hue if clear else "white" for clear in line["clear"]],
                        line=dict(color=hue, width=2), symbol="circle"),
            error_y=dict(type="data", symmetric=False, array=plus, arrayminus=minus, color=hue, thickness=1.5, width=4),
            text=line["verdict"], customdata=np.stack([line["test"], line["p"].map(_p_text),
                                                       line["permutation_p"].map(_p_text)], axis=-1),
            hovertemplate="%{text}<br>%{customdata[0]}, p = %{customdata[1]} (exact permutation test: "
                          "%{customdata[2]})<extra>" + str(name) + "</extra>",
            meta={"kind": "difference", "group": str(name), "clear": [bool(c) for c in line["clear"]]},
        ))
    fig.add_hline(y=0, line=dict(color="#444444", width=1, dash="dot"),
                  annotation_text=f"no difference from {reference}", annotation_position="bottom right")
    log = _x_axis(fig, list(verdicts["x"]), log_x)
    title = (f"{y.replace('_', ' ')}: each group minus {reference}, with the 95% interval of the difference"
             f"<br><sup>filled: clear (the interval excludes 0); open: these seeds cannot decide; paired by seed "
             f"where both ran the same seeds, Welch's t-test otherwise{'; log x' if log else ''}</sup>")
    fig = styled_layout(fig, title, x_title, f"difference in {y.replace('_', ' ')}", legend_columns=3)
    return fig.update_layout(hovermode="closest")
