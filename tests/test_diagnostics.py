"""The memory diagnostics of each epoch (seqcopy.core.diagnostics): each number on a hand-built
cell whose value is known, the probe leaving training bit for bit as it was, and the epochs table
keeping the numbers (NULL in epochs recorded before them)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from copiers import shift_register

from seqcopy.config import RunConfig
from seqcopy.core import diagnostics, train
from seqcopy.core.data import Layout
from seqcopy.core.diagnostics import DIAGNOSTICS, gate_statistics, measure, probe_batch, trace_steps
from seqcopy.core.model import CopyModel


def tiny_config(cell: str, **changes) -> RunConfig:
    return RunConfig(cell=cell, train_seq_len=6, train_output_len=6, test_seq_len=6, test_output_len=6, padding=3,
                     hidden_size=8, embedding_size=6, train_samples=64, test_samples=32, batch_size=16, epochs=2,
                     seed=3, **changes)


def model_with(cell: str, fill=None, **config_changes) -> tuple[CopyModel, RunConfig]:
    config = tiny_config(cell, **config_changes)
    torch.manual_seed(0)
    model = CopyModel(cell, embedding_size=config.embedding_size, hidden_size=config.hidden_size,
                      mult_form=config.mult_form)
    if fill is not None:
        with torch.no_grad():
            fill(model.recurrent.cell, config.hidden_size)
    return model.eval(), config


def forget_bias(value: float):
    """An LSTM whose forget gate is σ(value + small terms): biases i, f, g, o stacked in torch's order."""
    def fill(cell, hidden):
        cell.bias_ih[hidden : 2 * hidden] = value
        cell.bias_hh[hidden : 2 * hidden] = 0.0
    return fill


@pytest.mark.parametrize("cell", ["lstm", "mlstm"])
def test_a_forget_bias_of_plus_10_keeps_the_forget_gate_near_1(cell):
    model, config = model_with(cell, forget_bias(10.0) if cell == "lstm" else None)
    if cell == "mlstm":  # one bias vector, gates i, f, g, o
        with torch.no_grad():
            model.recurrent.cell.bias[8:16] = 10.0
    result = measure(model, *probe_batch(config))
    assert result.memory_gate > 0.999  # σ(10) = 0.99995, and the weights are small
    low, _ = model_with("lstm", forget_bias(-10.0))
    assert measure(low, *probe_batch(config)).memory_gate < 0.001


def test_the_gru_memory_gate_is_its_update_gate_z():
    def update_bias(value):
        def fill(cell, hidden):
            cell.bias_ih[hidden : 2 * hidden] = value  # r, z, n: z is the share of h kept
            cell.bias_hh[hidden : 2 * hidden] = 0.0
        return fill

    kept, config = model_with("gru", update_bias(10.0))
    forgot, _ = model_with("gru", update_bias(-10.0))
    assert measure(kept, *probe_batch(config)).memory_gate > 0.999
    assert measure(forgot, *probe_batch(config)).memory_gate < 0.001


def test_the_memory_gate_is_averaged_over_the_delimiter_steps_only():
    layout = Layout(4, 2, 3)  # steps 0-3 letters, 4-5 delimiters, 6-8 copying
    f = torch.zeros(2, layout.length, 5)
    f[:, 4:6] = 0.8
    gate, saturated = gate_statistics({"f": f, "h": torch.zeros(2, layout.length, 5)}, layout)
    assert gate == pytest.approx(0.8)
    assert saturated == pytest.approx(7 / 9)  # the zeros of 7 of 9 steps are saturated, 0.8 is not


def test_saturation_counts_gates_below_01_or_above_09():
    def all_biases(value):
        def fill(cell, hidden):
            for parameter in cell.parameters():
                parameter.zero_()
            cell.bias_ih.fill_(value)
        return fill

    config = tiny_config("lstm")
    middle, _ = model_with("lstm", all_biases(0.0))  # every gate σ(0) = 0.5
    assert measure(middle, *probe_batch(config)).saturated_gates == 0.0
    extreme, _ = model_with("lstm", all_biases(10.0))
    assert measure(extreme, *probe_batch(config)).saturated_gates == 1.0


def test_a_plain_rnn_has_no_gates():
    model, config = model_with("rnn")
    result = measure(model, *probe_batch(config))
    assert result.memory_gate is None and result.saturated_gates is None
    assert 0.0 <= result.saliency_diagonal <= 1.0 and result.first_input_grad > 0


def test_the_saliency_diagonal_of_a_perfect_copier_is_1_and_of_a_shifted_one_0():
    model, config = shift_register(letters=5, padding=2)
    assert measure(model, *probe_batch(config)).saliency_diagonal == 1.0
    shifted, config = shift_register(letters=5, padding=2, offset=1)  # writes letter j + 1 at output j
    assert measure(shifted, *probe_batch(config)).saliency_diagonal == 0.0


def test_the_gradient_to_the_first_input_is_the_models_own_and_zero_where_it_cannot_reach():
    # The shift register forgets a letter K + P + 1 steps after reading it: the last output is
    # due later than that after the first letter, so no gradient can reach it.
    model, config = shift_register(letters=5, padding=2)
    assert measure(model, *probe_batch(config)).first_input_grad == 0.0
    # Any model: the same number from the model's own (fused) forward and autograd.
    model, config = model_with("gru")
    inputs, targets, layout = probe_batch(config)
    embedded = model.embedding(inputs).detach().requires_grad_(True)
    outputs, _ = model.recurrent(embedded)
    log_p = torch.log_softmax(model.decoder(outputs), dim=-1)
    last = layout.length - 1
    (gradient,) = torch.autograd.grad(log_p[torch.arange(len(inputs)), last, targets[:, last]].sum(), embedded)
    expected = float(gradient[:, 0].norm(dim=-1).mean())
    assert measure(model, inputs, targets, layout).first_input_grad == pytest.approx(expected, rel=1e-5)


def test_the_probe_touches_no_weight_and_no_gradient():
    model, config = model_with("lstm")
    model.train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    measure(model, *probe_batch(config))
    assert model.training  # the mode it had
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[name], p) for name, p in model.named_parameters())


def test_trace_steps_equals_the_cells_forward():
    model, config = model_with("mgru")
    inputs, _, _ = probe_batch(config)
    embedded = model.embedding(inputs)
    parts = trace_steps(model.recurrent.cell, embedded)
    outputs, _ = model.recurrent(embedded)
    torch.testing.assert_close(parts["h"], outputs, atol=1e-5, rtol=1e-5)


def training_numbers(result) -> list[dict]:
    timing = ("seconds", "samples_per_sec")  # wall clock: never the same twice
    return [{k: v for k, v in epoch.to_dict().items() if k not in DIAGNOSTICS and k not in timing}
            for epoch in result.epochs]


@pytest.mark.parametrize("cell, changes", [("lstm", {}), ("mgru", {"curriculum": True, "curriculum_start": 2}),
                                           ("gru", {"fresh_data": True})])
def test_training_is_bit_for_bit_what_it_was_without_the_probe(cell, changes, monkeypatch):
    config = tiny_config(cell, **changes).replace(epochs=3)
    measured = train.train(config)
    assert all(epoch.saliency_diagonal is not None for epoch in measured.epochs)
    monkeypatch.setattr(diagnostics, "measure", lambda *args: diagnostics.Diagnostics(None, None, None, None))
    monkeypatch.setattr(diagnostics, "probe_batch", lambda config: (torch.zeros(1, 1), torch.zeros(1, 1), None))
    plain = train.train(config)  # no probe drawn, nothing measured: training as it was before the probe
    assert training_numbers(measured) == training_numbers(plain)  # exact floats, every metric of every epoch
    weights, plain_weights = measured.model.state_dict(), plain.model.state_dict()
    assert all(torch.equal(weights[name], plain_weights[name]) for name in weights)
    assert measured.length_acc == plain.length_acc and measured.position_acc == plain.position_acc


def test_the_epochs_table_keeps_the_diagnostics_and_null_where_there_are_none(tmp_path):
    from seqcopy.runs.store import Store

    store = Store(f"sqlite:///{tmp_path / 'd.db'}")
    config = tiny_config("lstm")
    run_id = store.submit(config)
    store.claim("w")
    result = train.train(config)
    for epoch in result.epochs:
        store.record_epoch(run_id, "w", epoch.to_dict())
    rows = store.epochs([run_id])
    for row, epoch in zip(rows, result.epochs, strict=True):
        assert {name: row[name] for name in DIAGNOSTICS} == pytest.approx(
            {name: getattr(epoch, name) for name in DIAGNOSTICS})
    old = dataclasses.replace(result.epochs[0], epoch=3, memory_gate=None, saturated_gates=math.nan)
    old_dict = {k: v for k, v in old.to_dict().items() if k != "first_input_grad"}  # an older worker's row
    store.record_epoch(run_id, "w", old_dict)
    third = store.epochs([run_id])[-1]
    assert third["memory_gate"] is None and third["saturated_gates"] is None and third["first_input_grad"] is None


def test_the_runs_figure_draws_each_measured_run_and_skips_the_unmeasured():
    import pandas as pd

    from seqcopy.ui.figures import diagnostic_curves_figure

    labels = ["#1 lstm s0"] * 2 + ["#2 rnn s0"] * 2
    epochs = pd.DataFrame({"run_id": [1, 1, 2, 2], "epoch": [1, 2, 1, 2], "label": labels,
                           "memory_gate": [0.7, 0.9, None, None], "first_input_grad": [1e-3, 1e-5, 0.1, 0.2]})
    gates = diagnostic_curves_figure(epochs.astype({"memory_gate": float}), "memory_gate")
    assert [trace.meta["run"] for trace in gates.data] == [1] and list(gates.data[0].y) == [0.7, 0.9]
    assert list(gates.layout.yaxis.range) == [0, 1.02]
    gradient = diagnostic_curves_figure(epochs, "first_input_grad")
    assert len(gradient.data) == 2 and gradient.layout.yaxis.type == "log"
