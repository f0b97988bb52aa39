"""The Playground's figure builders on hand-made frames: no model, no browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqcopy.ui import playground_figures as pf


def test_the_inside_figure_stacks_one_heatmap_per_quantity_on_one_time_axis():
    labels = list("ax$··")
    states = {
        "f": pd.DataFrame(np.full((3, 5), 0.5), index=["u2", "u0", "u1"]),
        "c": pd.DataFrame([[0.0, 2.0, -3.0, 1.0, 0.0]], index=["u0"]),
        "h": pd.DataFrame(np.zeros((2, 5)), index=["u0", "u1"]),
    }
    fig = pf.inside_figure(states, labels, letters=2, padding=1, step=3)
    heatmaps = list(fig.data)
    assert [h.name for h in heatmaps] == ["f", "c", "h"]
    assert list(heatmaps[0].y) == ["u2", "u0", "u1"]  # the order given is the order drawn
    assert (heatmaps[0].zmin, heatmaps[0].zmax) == (0.0, 1.0)  # a gate: 0 closed, 1 open
    assert (heatmaps[1].zmin, heatmaps[1].zmax) == (-3.0, 3.0)  # c: symmetric around 0, from the data
    assert (heatmaps[2].zmin, heatmaps[2].zmax) == (-1.0, 1.0)
    assert {h.xaxis for h in heatmaps} == {"x"} and [h.yaxis for h in heatmaps] == ["y", "y2", "y3"]
    domains = [fig.layout.yaxis.domain, fig.layout.yaxis2.domain, fig.layout.yaxis3.domain]
    assert all(upper[0] > lower[1]
               for upper, lower in zip(domains, domains[1:], strict=False))  # stacked, not overlapping
    assert [a.text for a in fig.layout.annotations] == ["forget gate f", "cell state c", "hidden state h"]
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert sorted(s.x0 for s in lines) == [1.5, 2.5]  # reading ends, copying starts
    (step,) = [s for s in fig.layout.shapes if s.type == "rect"]
    assert (step.x0, step.x1, step.yref, step.line.color) == (2.5, 3.5, "paper", "red")
    assert list(fig.layout.xaxis.ticktext) == labels and fig.layout.xaxis.anchor == "y3"


def test_the_inside_figure_puts_the_probabilities_on_top_of_the_same_axis():
    probabilities = pd.DataFrame(np.full((11, 4), 1 / 11), index=list("axcrywbto$·"))
    fig = pf.inside_figure({"h": pd.DataFrame(np.zeros((2, 4)))}, list("a$··"), 1, 1, step=0,
                           probabilities=probabilities)
    assert [h.name for h in fig.data] == ["p", "h"] and list(fig.data[0].y) == list("axcrywbto$·")
    assert (fig.data[0].zmin, fig.data[0].zmax) == (0.0, 1.0)
    assert fig.layout.annotations[0].text == "probability of each symbol" and fig.layout.xaxis.anchor == "y2"


def test_the_inside_figure_of_one_quantity_and_no_step():
    fig = pf.inside_figure({"h": pd.DataFrame(np.zeros((4, 100)))}, ["a"] * 100, letters=50, padding=0)
    assert len(fig.data) == 1 and fig.layout.xaxis.anchor == "y"
    assert not [s for s in fig.layout.shapes if s.type == "rect"]
    assert fig.layout.xaxis.ticktext is None  # 100 steps: too many symbols to label


def test_the_saliency_figure_marks_the_diagonal_and_can_show_every_step():
    matrix = pd.DataFrame(np.eye(3, 7), index=["1: a", "2: x", "3: c"])
    fig = pf.saliency_figure(matrix, letters=3, x_labels=list("axc$···"), score=2 / 3, measure="gradient")
    heatmap, squares = fig.data
    assert np.asarray(heatmap.z).shape == (3, 3) and (heatmap.zmin, heatmap.zmax) == (0, 1)
    assert list(squares.x) == [0, 1, 2] and list(squares.y) == ["1: a", "2: x", "3: c"]
    assert "Gradient · diagonal: 67%" in fig.layout.title.text
    everything = pf.saliency_figure(matrix, 3, list("axc$···"), 1.0, "gradient", letters_only=False)
    assert np.asarray(everything.data[0].z).shape == (3, 7)


def copies(label: str, targets: str, outputs: str) -> pd.DataFrame:
    return pd.DataFrame({
        "label": label, "position": range(1, len(targets) + 1), "target": list(targets), "output": list(outputs),
        "right": [t == o for t, o in zip(targets, outputs, strict=True)],
        "p_right": [0.9 if t == o else 0.2 for t, o in zip(targets, outputs, strict=True)],
    })


def test_the_copy_grid_marks_right_and_wrong_and_outlines_changes():
    frame = pd.concat([copies("#1 lstm", "axc", "axc"), copies("#2 gru", "axc", "axo")])
    fig = pf.copy_grid_figure(frame)
    (grid,) = fig.data
    assert list(grid.y) == ["should write", "#1 lstm", "#2 gru"]
    assert [list(row) for row in grid.text] == [list("axc"), list("axc"), list("axo")]
    assert [list(row) for row in grid.z][1:] == [[1, 1, 1], [1, 1, 0]]
    assert not fig.layout.shapes
    edited = pd.concat([copies("original", "axc", "axc"), copies("edited", "aoc", "aoc")])
    fig = pf.copy_grid_figure(edited, changed=[2])
    assert list(fig.data[0].y) == ["should write", "original", "should write (edited)", "edited"]
    assert [(s.x0, s.x1) for s in fig.layout.shapes] == [(1.5, 2.5)]
    assert "outlined" in fig.layout.title.text


def test_the_right_probability_figure_has_one_line_per_pass_and_marks_wrong_copies():
    fig = pf.right_probability_figure(pd.concat([copies("original", "axc", "axc"), copies("edited", "axc", "axo")]))
    assert [t.name for t in fig.data] == ["original", "edited"]
    assert list(fig.data[1].marker.symbol) == ["circle", "circle", "x"]
    assert list(fig.data[1].y) == [0.9, 0.9, 0.2]
    assert [s.y0 for s in fig.layout.shapes] == [pytest.approx(1 / 9)]  # the chance line


def test_the_trajectory_is_coloured_by_phase_with_the_step_ringed():
    trajectory = pd.DataFrame({
        "step": range(6), "pc1": [0, 1, 2, 3, 4, 5.0], "pc2": [0, 1, 0, 1, 0, 1.0],
        "phase": ["reading", "reading", "delimiter", "copying", "copying", "copying"], "symbol": list("ax$axo"),
    })
    fig = pf.trajectory_figure(trajectory, shares=[0.7, 0.2], step=4, title="Hidden state h")
    names = [t.name for t in fig.data]
    assert names == [None, "reading", "delimiter", "copying", "step 4"]
    assert list(fig.data[3].text) == list("axo") and list(fig.data[4].x) == [4.0]
    assert "(70% and 20% of the variance)" in fig.layout.title.text
    assert len(pf.trajectory_figure(trajectory, [0.5, 0.5]).data) == 4  # no step, no ring


def test_the_input_row_highlights_the_chosen_letter():
    fig = pf.input_row_figure("axcr", selected=3)
    (row,) = fig.data
    assert list(row.text) == list("axcr") and list(row.customdata) == [1, 2, 3, 4]
    assert [c == "#ff7f0e" for c in row.marker.color] == [False, False, True, False]


def test_every_panel_fits_on_the_page_however_many_are_drawn():
    from seqcopy.ui.inside import QUANTITIES

    states = {name: pd.DataFrame(np.zeros((units, 30)))
              for name, units in zip(QUANTITIES, (1, 5, 40, 128, 64, 3, 7, 90, 2, 128), strict=True)}
    fig = pf.inside_figure(states, ["a"] * 30, 10, 3, step=29, probabilities=pd.DataFrame(np.zeros((11, 30))))
    domains = [fig.layout[f"yaxis{i if i > 1 else ''}"].domain for i in range(1, len(states) + 2)]
    assert all(0 <= low < high <= 1 for low, high in domains)
    assert all(upper[0] > lower[1] for upper, lower in zip(domains, domains[1:], strict=False))
