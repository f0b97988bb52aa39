"""The Playground's looks inside the cell: traced gates and states against the reference cells,
saliency of a perfect copier and of models that do not copy, what-if edits, unit orders, phase
summaries and the state trajectory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from copiers import shift_register

from seqcopy.config import RunConfig
from seqcopy.core.cells import CELL_NAMES, Cell, make_cell
from seqcopy.core.checkpoint import build_model
from seqcopy.ui import inside, warmup
from seqcopy.ui.playground import (
    changed_positions,
    copies_frame,
    edit_sequence,
    play_tick,
    play_toggled,
    position_from_selection,
    run_copy,
    suggest_partner,
)
from seqcopy.ui.saliency import MAX_SALIENCY_LETTERS, MEASURES, gradient_saliency, replacement_saliency
from seqcopy.vocab import InvalidSequence

TOLERANCE = dict(atol=1e-6, rtol=0)
# Every cell, and mLSTM and mGRU in both their forms.
CELLS_AND_FORMS = [(name, "krause") for name in CELL_NAMES] + [("mlstm", "input"), ("mgru", "input")]


def reference_steps(cell: Cell, x: torch.Tensor) -> list:
    """The cell's own forward, one step at a time: the state after every step."""
    state = cell.initial_state(x.shape[0])
    states = []
    for x_t in x.unbind(1):
        state = cell(x_t, state)
        states.append(state)
    return states


@pytest.mark.parametrize("name, form", CELLS_AND_FORMS)
def test_the_trace_equals_the_reference_cell_at_every_step(name, form):
    torch.manual_seed(3)
    cell = make_cell(name, 5, 7, form)
    x = torch.randn(3, 12, 5)
    with torch.no_grad():
        parts = inside.trace_sequence(cell, x)
        expected = reference_steps(cell, x)
    for t, state in enumerate(expected):
        if cell.has_cell_state:
            torch.testing.assert_close(parts["h"][:, t], state[0], **TOLERANCE)
            torch.testing.assert_close(parts["c"][:, t], state[1], **TOLERANCE)
        else:
            torch.testing.assert_close(parts["h"][:, t], state, **TOLERANCE)
    m_size = 5 if form == "input" else 7  # the input form's m_t scales the input (E)
    assert all(value.shape == (3, 12, m_size if key == "m" else 7) for key, value in parts.items())


@pytest.mark.parametrize("name, form", CELLS_AND_FORMS)
def test_the_traced_gates_rebuild_the_cells_state(name, form):
    """h and c recomputed from the traced gates (and m_t from its two factors) are the traced h
    and c: the gates shown are the ones the cell used."""
    torch.manual_seed(4)
    cell = make_cell(name, 5, 7, form)
    x = torch.randn(2, 9, 5)
    with torch.no_grad():
        parts = inside.trace_sequence(cell, x)
    h, zeros = parts["h"], torch.zeros(2, 1, 7)
    h_prev = torch.cat([zeros, h[:, :-1]], dim=1)
    expected_names = {"rnn": {"h"}, "lstm": set("ifgoch"), "gru": set("rznh"), "mlstm": set("mifgoch"),
                      "mgru": set("mrznh")}
    assert set(parts) == expected_names[name]
    if "c" in parts:
        c_prev = torch.cat([zeros, parts["c"][:, :-1]], dim=1)
        c = parts["f"] * c_prev + parts["i"] * parts["g"]
        torch.testing.assert_close(c, parts["c"], **TOLERANCE)
        torch.testing.assert_close(parts["o"] * torch.tanh(c), h, **TOLERANCE)
    if "z" in parts:
        torch.testing.assert_close((1 - parts["z"]) * parts["n"] + parts["z"] * h_prev, h, **TOLERANCE)
    if "m" in parts:
        with torch.no_grad():
            if form == "input":  # m_t = W_m x_t + U_m h_{t-1} + b_m
                m = x @ cell.weight_im.T + h_prev @ cell.weight_hm.T + cell.bias_m
            else:  # m_t = (W_mx x_t) ⊙ (W_mh h_{t-1})
                m = (x @ cell.weight_mx.T) * (h_prev @ cell.weight_mh.T)
        torch.testing.assert_close(m, parts["m"], **TOLERANCE)
    for gate in set(parts) & {"i", "f", "o", "r", "z"}:
        assert inside.QUANTITIES[gate].gate and 0 <= parts[gate].min() and parts[gate].max() <= 1


def test_a_cell_without_a_step_function_is_refused_in_one_line():
    class Unknown(Cell):  # every cell of seqcopy.core.cells has a step(); a new one without it
        pass

    with pytest.raises(inside.UntraceableCell, match="cannot look inside a Unknown"):
        inside.trace_sequence(Unknown(2, 2), torch.zeros(1, 3, 2))


def test_a_trace_that_disagrees_with_its_cell_is_caught():
    cell = make_cell("lstm", 3, 4)
    x = torch.randn(1, 3, 3)
    with torch.no_grad():
        parts = inside.trace_sequence(cell, x)
        inside.check_against_cell(cell, x, parts)  # agrees
        with pytest.raises(inside.UntraceableCell, match="disagrees"):
            inside.check_against_cell(cell, x, {"h": parts["h"] + 0.01})


@pytest.mark.parametrize("name, form", CELLS_AND_FORMS)
def test_the_playground_pass_equals_the_models_own_forward(name, form):
    """run_copy goes through the trace; its probabilities and hidden states are the model's."""
    config = RunConfig(cell=name, hidden_size=6, embedding_size=3, padding=2, train_seq_len=4, train_output_len=4,
                       mult_form=form)
    torch.manual_seed(5)
    model = build_model(config).eval()
    trace = run_copy(model, config, "axcr")
    inputs = torch.tensor([[0, 1, 2, 3, 9, 9, 10, 10, 10, 10]])
    with torch.no_grad():
        model.recurrent.fused = False  # the reference path, no compiled kernel
        hidden, _ = model.recurrent(model.embedding(inputs))
        logits = model.decoder(hidden)
    np.testing.assert_allclose(trace.probabilities.to_numpy().T, torch.softmax(logits[0], -1).numpy(), atol=1e-6)
    np.testing.assert_allclose(trace.states["h"].to_numpy().T, hidden[0].numpy(), atol=1e-6)
    assert trace.phases == ["reading"] * 4 + ["delimiter"] * 2 + ["copying"] * 4


# ----------------------------------------------------------------------------- saliency
@pytest.mark.parametrize("measure", MEASURES)
def test_the_saliency_of_a_perfect_copier_is_its_diagonal(measure):
    model, config = shift_register(letters=5, padding=2)
    assert run_copy(model, config, "axcry").copy_accuracy == 1.0
    result = MEASURES[measure](model, config, "axcry")
    assert result.matrix.shape == (5, 5 + 2 + 5 if measure == "gradient" else 5)
    assert result.diagonal_score == 1.0
    letters = result.matrix.to_numpy()[:, :5]
    np.testing.assert_allclose(np.diag(letters), 1.0)
    assert np.abs(letters - np.diag(np.diag(letters))).max() < 1e-6  # output j reads input j alone
    if measure == "gradient":
        np.testing.assert_allclose(result.letter_share, 1.0)  # nothing on the delimiters and blanks


@pytest.mark.parametrize("measure", MEASURES)
def test_the_saliency_of_models_that_never_copy_is_not_diagonal(measure):
    shifted, config = shift_register(letters=5, padding=2, offset=1)  # writes letter j+1 for letter j
    assert run_copy(shifted, config, "axcry").copy_accuracy == 0.0
    off = MEASURES[measure](shifted, config, "axcry")
    assert off.diagonal_score == 0.0
    if measure == "gradient":
        assert list(off.argmax) == [1, 2, 3, 4, -1]  # output j reads letter j+1; the last reads a delimiter
    config = RunConfig(cell="lstm", hidden_size=16, embedding_size=4, padding=2, train_seq_len=8, train_output_len=8)
    torch.manual_seed(0)
    untrained = build_model(config).eval()
    random = MEASURES[measure](untrained, config, "axcrywbt")
    assert random.diagonal_score <= 0.25
    assert np.allclose(random.matrix.to_numpy()[:, :8].max(axis=1), 1.0)  # rows scaled to their maximum


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("measure, block", [("gradient", "ROWS_PER_PASS"), ("replacement", "SEQUENCES_PER_PASS")])
def test_the_saliency_runs_for_every_cell_in_blocks(name, measure, block, monkeypatch):
    """Outputs (or edited sequences) taken in several passes give the same matrix as one pass;
    no output depends on a step after its own."""
    config = RunConfig(cell=name, hidden_size=6, embedding_size=3, padding=1, train_seq_len=5, train_output_len=5)
    torch.manual_seed(6)
    model = build_model(config).eval()
    whole = MEASURES[measure](model, config, "axcry").matrix
    monkeypatch.setattr(f"seqcopy.ui.saliency.{block}", 3)
    # Float32 products round differently with the batch size; the replacement measure takes
    # differences of log-probabilities, so it keeps fewer digits.
    np.testing.assert_allclose(MEASURES[measure](model, config, "axcry").matrix, whole, rtol=1e-5,
                               atol=1e-6 if measure == "gradient" else 1e-3)
    copy_start = 5 + 1
    for j, row in enumerate(whole.to_numpy()):  # output j, written at step copy_start + j
        assert np.all(row[copy_start + j + 1 :] == 0) and row.any()


def test_the_saliency_refuses_a_sequence_too_long_to_draw():
    model, config = shift_register(letters=2, padding=1)
    for measure in (gradient_saliency, replacement_saliency):
        with pytest.raises(ValueError, match=f"up to {MAX_SALIENCY_LETTERS} letters"):
            measure(model, config.replace(train_seq_len=100), "a" * (MAX_SALIENCY_LETTERS + 1))


# ----------------------------------------------------------------------------- what if
@pytest.mark.parametrize("position", [1, 3, 5])
def test_a_what_if_edit_changes_only_the_copy_of_the_edited_letter(position):
    model, config = shift_register(letters=5, padding=2)
    original = run_copy(model, config, "axcry")
    edited_text = edit_sequence("axcry", position, "o")
    edited = run_copy(model, config, edited_text)
    copies = copies_frame({"original": original, "edited": edited})
    assert changed_positions(copies, "original", "edited") == [position]
    assert edited.copied.loc[position - 1, "output"] == "o"
    assert edited.copy_accuracy == 1.0


def test_an_edit_to_the_same_letter_changes_nothing_and_bad_edits_are_refused():
    model, config = shift_register(letters=3, padding=1)
    copies = copies_frame({"a": run_copy(model, config, "axc"),
                           "b": run_copy(model, config, edit_sequence("axc", 2, "x"))})
    assert changed_positions(copies, "a", "b") == []
    for position, letter in ((0, "a"), (4, "a"), (1, "q"), (1, "ab")):
        with pytest.raises(InvalidSequence):
            edit_sequence("axc", position, letter)


def test_more_delimiters_lengthen_the_delay_not_the_copy():
    config = RunConfig(cell="gru", hidden_size=6, embedding_size=3, padding=2, train_seq_len=4, train_output_len=4)
    model = build_model(config).eval()
    longer = run_copy(model, config, "axcr", extra_delimiters=5)
    assert "".join(longer.inputs) == "axcr" + "$" * 7 + "····"
    assert longer.copy_start == 11 and longer.padding == 7 and len(longer.copied) == 4
    assert longer.phases.count("delimiter") == 7
    with pytest.raises(InvalidSequence, match="extra delimiters"):
        run_copy(model, config, "axcr", extra_delimiters=-1)


def test_a_click_on_the_input_row_picks_a_letter_position():
    assert position_from_selection({"selection": {"points": [{"x": 2, "y": 0}]}}, letters=4) == 3
    assert position_from_selection({"selection": {"points": [{"x": 5}]}}, letters=4) is None  # a delimiter
    assert position_from_selection({"selection": {"points": []}}, letters=4) is None
    assert position_from_selection(None, letters=4) is None


# ----------------------------------------------------------------------------- reading a trace
def test_units_are_ordered_by_their_value_at_the_end_of_reading_or_their_change():
    values = pd.DataFrame([[0.0, 0.1, 0.1, 0.1], [0.0, 0.9, -0.9, 0.9], [0.0, 0.5, 0.5, 0.5]], index=["u0", "u1", "u2"])
    assert inside.unit_order(values, letters=2) == [1, 2, 0]  # step 1 is the last letter read
    assert inside.unit_order(values, letters=2, by="change over time") == [1, 2, 0]
    assert inside.unit_order(values, letters=3) == [2, 0, 1]
    assert inside.unit_order(values, letters=2, by="unit number") == [0, 1, 2]
    with pytest.raises(ValueError, match="unknown unit order"):
        inside.unit_order(values, 2, by="colour")


def test_units_are_picked_in_order_and_a_quantity_of_another_size_keeps_its_first_rows():
    states = {"h": pd.DataFrame(np.arange(12).reshape(4, 3), index=["u0", "u1", "u2", "u3"]),
              "m": pd.DataFrame(np.zeros((2, 3)), index=["e0", "e1"])}
    picked = inside.pick_units(states, ["h", "m"], order=[3, 1, 0, 2], first=1, last=3)
    assert list(picked["h"].index) == ["u3", "u1", "u0"]
    assert list(picked["m"].index) == ["e0", "e1"]
    assert list(inside.pick_units(states, ["h"], [3, 1, 0, 2], 2, 2)["h"].index) == ["u1"]


def test_phase_means_and_the_summary_line_name_the_gate_that_holds_the_memory():
    step_phases = inside.phases(letters=2, padding=2, steps=6)
    assert step_phases == ["reading", "reading", "delimiter", "delimiter", "copying", "copying"]
    states = {
        "f": pd.DataFrame([[0.2, 0.4, 1.0, 0.8, 0.5, 0.5]]),
        "c": pd.DataFrame([[0.0, -1.0, -2.0, 2.0, 0.0, 0.0]]),
        "i": pd.DataFrame([[1.0, 1.0, 0.0, 0.1, 0.0, 0.0]]),
    }
    means = inside.phase_means(states, step_phases)
    assert means.loc["f"].tolist() == pytest.approx([0.3, 0.9, 0.5])
    assert means.loc["c", "delimiter"] == pytest.approx(2.0)  # |c|: the sign carries nothing on average
    line = inside.summary_line(means)
    assert "forget gate f (1 keeps c): 0.90 through the delay (0.30 reading, 0.50 copying)" in line
    assert "i 0.05" in line and "|c| 2.00" in line
    gru = inside.summary_line(inside.phase_means({"z": pd.DataFrame([[0.5, 0.5, 0.99, 0.97, 0.1, 0.1]])}, step_phases))
    assert "update gate z (1 keeps h): 0.98 through the delay" in gru
    rnn = inside.summary_line(inside.phase_means({"h": pd.DataFrame([[0.5, 0.5, 0.25, 0.25, 0.1, 0.1]])}, step_phases))
    assert rnn.startswith("No gates") and "0.25" in rnn


def test_the_state_trajectory_is_the_first_two_principal_components():
    rng = np.random.default_rng(0)
    steps = np.arange(20)
    direction_a, direction_b = rng.normal(size=8), rng.normal(size=8)
    points = np.outer(np.sin(steps), direction_a) * 3 + np.outer(np.cos(steps), direction_b) + 5
    coordinates, shares = inside.state_trajectory(pd.DataFrame(points.T))
    assert coordinates.shape == (20, 2)
    assert shares.sum() == pytest.approx(1.0)  # the data is two-dimensional: two components explain it all
    assert shares[0] > shares[1]
    centred = points - points.mean(axis=0)
    # distances between steps are kept: the projection loses nothing of a plane
    np.testing.assert_allclose(np.linalg.norm(coordinates[3] - coordinates[7]), np.linalg.norm(centred[3] - centred[7]))
    flat, none = inside.state_trajectory(pd.DataFrame(np.ones((4, 5))))
    assert not flat.any() and not none.any()


# ----------------------------------------------------------------------------- side by side, text
def test_the_partner_model_is_another_cell_of_the_same_sweep():
    class Run:  # submitted untagged; the tag as edited on Runs is the one that counts
        def __init__(self, id, cell, k=4, tag=""):
            self.id, self.tag, self.config = id, tag, RunConfig(cell=cell, train_seq_len=k, train_output_len=min(k, 4))

    runs = [Run(1, "lstm", tag="a"), Run(2, "lstm", tag="a"), Run(3, "gru", k=8, tag="a"), Run(4, "gru"),
            Run(5, "mlstm", tag="a")]
    assert suggest_partner(runs, runs[0]) == 4  # mlstm, same tag and lengths
    assert suggest_partner(runs[:4], runs[0]) == 3  # gru of the same lengths, other tag
    assert suggest_partner(runs[:2], runs[0]) == 1  # only another lstm
    assert suggest_partner(runs[:1], runs[0]) is None


def test_playing_steps_through_and_stops_at_the_end():
    assert play_toggled(False, 3, 10) == (True, 3) and play_toggled(True, 3, 10) == (False, 3)
    assert play_toggled(False, 9, 10) == (True, 0)  # at the end: play again from the start
    assert play_tick(3, 10) == (4, True) and play_tick(8, 10) == (9, False) and play_tick(9, 10) == (9, False)


def test_a_pass_orders_its_units_and_sums_up_its_phases_once():
    config = RunConfig(cell="lstm", hidden_size=6, embedding_size=3, padding=2, train_seq_len=4, train_output_len=4)
    torch.manual_seed(1)
    trace = run_copy(build_model(config).eval(), config, "axcr")
    assert trace.ordering == "c"
    for by in inside.UNIT_ORDERS:
        assert trace.unit_orders[by] == inside.unit_order(trace.states["c"], 4, by)
    assert trace.phase_summary == inside.summary_line(inside.phase_means(trace.states, trace.phases))
    assert trace.unit_orders is trace.unit_orders and trace.phase_summary is trace.phase_summary  # kept, not redone


def test_the_warm_up_imports_the_playground_once_in_the_background():
    """In a fresh interpreter: nothing heavy at import, torch and the model code after the
    thread ran, and one thread however often it is asked for."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from seqcopy.ui import warmup\n"
        "assert 'torch' not in sys.modules\n"
        "thread = warmup.warm_up_in_background()\n"
        "assert warmup.warm_up_in_background() is thread and thread.daemon\n"
        "thread.join(60)\n"
        "print(sorted(name for name in warmup.MODULES if name in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted(warmup.MODULES))
