"""Plotly figure builders of the Playground's looks inside the cell: pure functions of frames, so
they are tested without a browser. No Streamlit, no torch.

Every time axis is the input's: x is the step, labelled with the symbol fed there, and the
reading, delimiter and copying phases are split by dotted lines, so the gates, the states, the
saliency and the probabilities line up with each other and with the step slider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from seqcopy.ui.figures import colour, legend_below
from seqcopy.ui.inside import PHASES, QUANTITIES

PHASE_COLOURS = dict(zip(PHASES, ("#1f77b4", "#7f7f7f", "#d62728"), strict=True))
MAX_TICK_LABELS = 80  # beyond this many steps the symbols under the axis overlap
RIGHT, WRONG, TARGET = "#2ca02c", "#d62728", "#d9d9d9"


def _symbol_axis(fig: go.Figure, x_labels: Sequence[str], **where) -> None:
    if len(x_labels) <= MAX_TICK_LABELS:
        fig.update_xaxes(
            tickmode="array", tickvals=list(range(len(x_labels))), ticktext=list(x_labels), tickangle=0, **where
        )


def _whole_positions(fig: go.Figure, count: int) -> None:
    """Copied positions are whole numbers: a tick on each while they fit."""
    if count <= 40:
        fig.update_xaxes(dtick=1)


def _colour_range(name: str, values: np.ndarray) -> tuple[float, float]:
    quantity = QUANTITIES[name]
    if quantity.low is not None:
        return quantity.low, quantity.high
    reach = float(np.nanmax(np.abs(values))) if values.size else 1.0
    return -max(reach, 1e-6), max(reach, 1e-6)


PROBABILITIES = "p"  # the panel of the output's probabilities, above the cell's quantities


def _panel_style(name: str, values: np.ndarray) -> dict:
    """Title, colour range and scale of a panel: probabilities 0..1 in viridis, gates 0..1 in
    greens, the rest on a diverging scale around 0."""
    if name == PROBABILITIES:
        return dict(title="probability of each symbol", zmin=0.0, zmax=1.0, colorscale="Viridis")
    quantity = QUANTITIES[name]
    low, high = _colour_range(name, values)
    return dict(title=quantity.label, zmin=low, zmax=high, colorscale="Greens" if quantity.gate else "RdBu_r")


def inside_figure(
    states: Mapping[str, pd.DataFrame],
    x_labels: Sequence[str],
    letters: int,
    padding: int,
    step: int | None = None,
    probabilities: pd.DataFrame | None = None,
    row_height: int = 7,
) -> go.Figure:
    """The output's ``probabilities`` (symbols × steps) on top, then one heatmap per traced
    quantity (inside.QUANTITIES names → units × steps, already ordered and picked), stacked on
    one shared time axis, so every panel lines up with the input and with the others. The
    current ``step`` is outlined across all of them; dotted lines mark where reading ends and
    copying starts.

    The panels are laid out by hand (one x axis, a y axis per panel) rather than with
    make_subplots and add_vline(row="all"): this figure is rebuilt at every step of the slider,
    and plotly's helpers took eight times as long."""
    panels = ([(PROBABILITIES, probabilities)] if probabilities is not None else []) + list(states.items())
    heights = [
        max(110, min(420, row_height * len(frame) + 30)) if name != PROBABILITIES else 200 for name, frame in panels
    ]
    gap = 45  # pixels between panels, room for the next title
    total = sum(heights) + gap * (len(panels) - 1)
    steps = list(range(len(x_labels)))
    data, annotations, layout = [], [], {}
    top = 1.0
    for row, (name, frame) in enumerate(panels, start=1):
        values = frame.to_numpy(dtype=float)
        style = _panel_style(name, values)
        bottom = max(0.0, top - heights[row - 1] / total)  # the last panel ends at 0, not at -1e-17
        data.append(go.Heatmap(
            z=values, x=steps, y=[str(label) for label in frame.index], zmin=style["zmin"], zmax=style["zmax"],
            colorscale=style["colorscale"], xaxis="x", yaxis="y" if row == 1 else f"y{row}", name=name,
            customdata=np.array([list(x_labels)] * len(frame)),
            hovertemplate=f"step %{{x}} (input %{{customdata}})<br>{name} %{{y}}: %{{z:.3f}}<extra></extra>",
            colorbar=dict(y=(bottom + top) / 2, len=top - bottom, thickness=10, x=1.01),
        ))
        layout[f"yaxis{row if row > 1 else ''}"] = dict(
            domain=[bottom, top], autorange="reversed", showticklabels=len(frame) <= 40
        )
        annotations.append(dict(text=style["title"], x=0.5, y=top, xref="paper", yref="paper", xanchor="center",
                                yanchor="bottom", showarrow=False, font=dict(size=14)))
        top = bottom - gap / total
    line = dict(color="black", dash="dot", width=1)
    shapes = [dict(type="line", x0=x, x1=x, y0=0, y1=1, xref="x", yref="paper", line=line)
              for x in (letters - 0.5, letters + padding - 0.5)]  # reading ends; copying starts
    if step is not None:
        shapes.append(dict(type="rect", x0=step - 0.5, x1=step + 0.5, y0=0, y1=1, xref="x", yref="paper",
                           line=dict(color="red", width=2)))
    fig = go.Figure(data=data, layout=dict(
        **layout, annotations=annotations, shapes=shapes, showlegend=False,
        xaxis=dict(anchor="y" if len(panels) == 1 else f"y{len(panels)}", title=dict(text="time step (input symbol)")),
        height=total + 90, margin=dict(l=10, r=10, t=40, b=10),
    ))
    _symbol_axis(fig, x_labels)
    return fig


def saliency_figure(
    matrix: pd.DataFrame, letters: int, x_labels: Sequence[str], score: float, measure: str, letters_only: bool = True
) -> go.Figure:
    """Copied outputs (rows) × input steps (columns), each row scaled to its largest letter
    (values above 1, on steps after the letters, are clipped); an open square marks the input
    each output should read (the diagonal)."""
    shown = matrix.iloc[:, :letters] if letters_only else matrix
    labels = list(x_labels)[: shown.shape[1]]
    rows = [str(label) for label in matrix.index]
    fig = go.Figure(go.Heatmap(
        z=shown.to_numpy(dtype=float), x=list(range(shown.shape[1])), y=rows, zmin=0, zmax=1, colorscale="Blues",
        customdata=np.array([labels] * len(rows)), colorbar=dict(title="", thickness=10),
        hovertemplate="output %{y}<br>input step %{x} (%{customdata}): %{z:.3f}<extra></extra>",
    ))
    fig.add_trace(
        go.Scatter(
            x=list(range(len(rows))),
            y=rows,
            mode="markers",
            name="the right input",
            marker=dict(
                symbol="square-open",
                size=max(6, min(16, 400 // max(len(rows), 1))),
                color="#ff7f0e",
                line=dict(width=2),
            ),
            hoverinfo="skip",
        )
    )
    _symbol_axis(fig, labels)
    title = (f"{measure.capitalize()} · diagonal: {score:.0%}"
             "<br><sup>outputs reading the right letter most</sup>")
    fig.update_layout(title=title, height=max(280, min(700, 16 * len(rows) + 150)), margin=dict(l=10, r=10, t=60, b=10),
                      xaxis_title="input step (symbol read)", yaxis_title="copied output", showlegend=False)
    fig.update_yaxes(autorange="reversed")
    return fig


def copy_grid_figure(copies: pd.DataFrame, changed: Sequence[int] = ()) -> go.Figure:
    """The copies of several passes (copies_frame: label, position, target, output, right) as a
    grid of letters: the symbols to write, then one row per pass, green right, red wrong; a pass
    whose targets differ (an edited input) gets its own row of targets. The ``changed`` positions
    are outlined."""
    labels = list(dict.fromkeys(copies["label"]))
    positions = sorted(copies["position"].unique())
    by_label = {label: copies[copies["label"] == label].set_index("position") for label in labels}

    def letters(frame: pd.DataFrame, column: str) -> list[str]:
        return [str(frame[column][p]) if p in frame.index else "" for p in positions]

    rows, z, text = [], [], []
    shown_targets = None
    for label, mine in by_label.items():
        targets = letters(mine, "target")
        if targets != shown_targets:
            rows.append("should write" if shown_targets is None else f"should write ({label})")
            z.append([0.5] * len(positions))
            text.append(targets)
            shown_targets = targets
        rows.append(str(label))
        z.append([float(mine["right"][p]) if p in mine.index else np.nan for p in positions])
        text.append(letters(mine, "output"))
    fig = go.Figure(go.Heatmap(
        z=z, x=positions, y=rows, text=text, texttemplate="%{text}", textfont=dict(size=14), zmin=0, zmax=1,
        colorscale=[[0, WRONG], [0.499, WRONG], [0.5, TARGET], [0.501, TARGET], [1, RIGHT]], showscale=False,
        xgap=2, ygap=2, hovertemplate="position %{x}, %{y}: %{text}<extra></extra>",
    ))
    for position in changed:
        fig.add_shape(type="rect", x0=position - 0.5, x1=position + 0.5, y0=-0.5, y1=len(rows) - 0.5,
                      line=dict(color="black", width=3))
    fig.update_yaxes(autorange="reversed")
    _whole_positions(fig, len(positions))
    fig.update_layout(height=70 + 40 * len(rows), margin=dict(l=10, r=10, t=30, b=10), xaxis_title="copied position",
                      title="Green: right · red: wrong" + (" · outlined: changed by the edit" if len(changed) else ""))
    return fig


def right_probability_figure(copies: pd.DataFrame) -> go.Figure:
    """The probability each pass gave the right symbol at every copied position (1/9 would be a
    guess), right copies as dots, wrong ones as crosses."""
    fig = go.Figure()
    for index, (label, rows) in enumerate(copies.groupby("label", sort=False)):
        fig.add_trace(
            go.Scatter(
                x=rows["position"],
                y=rows["p_right"],
                mode="lines+markers",
                name=str(label),
                line=dict(color=colour(index), width=2),
                marker=dict(size=9, symbol=["circle" if right else "x" for right in rows["right"]]),
                customdata=np.stack([rows["target"], rows["output"]], axis=-1),
                hovertemplate="position %{x}: should write %{customdata[0]}, wrote %{customdata[1]}"
                "<br>p(right) %{y:.3f}<extra>%{fullData.name}</extra>",
            )
        )
    fig.add_hline(
        y=1 / 9,
        line=dict(color="grey", dash="dot", width=1),
        annotation_text="chance 1/9",
        annotation_position="top left",
    )
    fig.update_yaxes(range=[0, 1.05])
    _whole_positions(fig, copies["position"].nunique())
    fig.update_layout(
        title="p(right symbol)<br><sup>● right · ✕ wrong</sup>",
        xaxis_title="copied position",
        yaxis_title="p(right symbol)",
    )
    return legend_below(fig, 300, legend_columns=2)


def trajectory_figure(
    trajectory: pd.DataFrame, shares: Sequence[float], step: int | None = None, title: str = "Hidden state"
) -> go.Figure:
    """The state's path over time on its first two principal components (trajectory: step, pc1,
    pc2, phase, symbol), coloured by phase, each step labelled with its symbol."""
    fig = go.Figure(go.Scatter(
        x=trajectory["pc1"], y=trajectory["pc2"], mode="lines", line=dict(color="#c7c7c7", width=1),
        hoverinfo="skip", showlegend=False,
    ))
    for phase in PHASES:
        rows = trajectory[trajectory["phase"] == phase]
        if rows.empty:
            continue
        fig.add_trace(go.Scatter(
            x=rows["pc1"], y=rows["pc2"], mode="markers+text" if len(trajectory) <= 60 else "markers", name=phase,
            text=rows["symbol"], textposition="top center", marker=dict(color=PHASE_COLOURS[phase], size=9),
            customdata=rows["step"], hovertemplate="step %{customdata}: %{text}<extra>%{fullData.name}</extra>",
        ))
    if step is not None and step in set(trajectory["step"]):
        here = trajectory[trajectory["step"] == step]
        fig.add_trace(go.Scatter(x=here["pc1"], y=here["pc2"], mode="markers", name=f"step {step}",
                                 marker=dict(symbol="circle-open", size=20, color="black", line=dict(width=2))))
    fig.update_layout(
        title=f"{title} on its principal components<br><sup>"
        f"({shares[0]:.0%} and {shares[1]:.0%} of the variance)</sup>",
        xaxis_title=f"PC 1 ({shares[0]:.0%})",
        yaxis_title=f"PC 2 ({shares[1]:.0%})",
    )
    return legend_below(fig, 460, legend_columns=2)


def input_row_figure(sequence: str, selected: int | None = None) -> go.Figure:
    """The letters read, one clickable marker each; the ``selected`` (1-based) one highlighted."""
    steps = list(range(len(sequence)))
    colours = ["#ff7f0e" if selected == step + 1 else "#1f77b4" for step in steps]
    fig = go.Figure(go.Scatter(
        x=steps, y=[0] * len(steps), mode="markers+text", text=list(sequence), textposition="middle center",
        textfont=dict(color="white", size=14), marker=dict(symbol="square", size=26, color=colours),
        hovertemplate="position %{customdata}: %{text}<extra>click to edit</extra>", customdata=[s + 1 for s in steps],
    ))
    fig.update_xaxes(visible=False, range=[-0.7, max(len(steps), 8) - 0.3])
    fig.update_yaxes(visible=False)
    fig.update_layout(height=90, margin=dict(l=10, r=10, t=10, b=10), showlegend=False, dragmode=False)
    return fig
