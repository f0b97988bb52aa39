"""Memory over training: four numbers per epoch, measured on a small fixed probe batch.

train() calls :func:`measure` once per epoch, after the test pass, on :func:`probe_batch`: the
configured task (K = train_seq_len, N = train_output_len; the last curriculum stage) drawn from a
random stream of its own (PROBE_STREAM), so the probe changes no other stream and no weight: it
reads the model through each cell's ``step()`` and takes gradients with respect to the input
embeddings only (torch.autograd.grad, so no parameter's ``.grad`` is touched).

The four numbers (None where a cell has no such gate):

- ``memory_gate``: the mean forget gate f (LSTM family) or update gate z (GRU family; z is the
  share of h_{t-1} kept) over the P delimiter steps, the pure delay between reading and copying,
  over every unit and probe sequence. Near 1: the cell holds what it read.
- ``saturated_gates``: the share of sigmoid gate activations (i, f, o or r, z) over every step
  that are saturated, below 0.1 or above 0.9 (the thresholds of Karpathy, Johnson & Fei-Fei 2015,
  "Visualizing and understanding recurrent networks").
- ``saliency_diagonal``: the share of probed outputs whose largest gradient, over the K letters
  read, falls on the right letter: ‖∂ log p(y_j = x_j) / ∂ e_t‖ is largest at t = j. Each probe
  sequence b probes one output j_b, spread evenly over the N outputs, so that one backward pass
  serves the whole batch (sequences of a batch do not interact).
- ``first_input_grad``: the norm of the gradient of the last output's log-probability of its
  target with respect to the first input symbol's embedding, ‖∂ log p(y_T) / ∂ e_1‖, the mean over
  the probe batch: how much gradient crosses the whole sequence (a vanishing gradient shows here).

PROBE_SIZE sequences: 32 gives the diagonal a resolution of 1/32 and costs one forward and two
backward passes of a 32-sequence batch through the step-by-step cell, against an epoch's hundreds
of batches (bench/bench_probe.py measures it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seqcopy.config import RunConfig
from seqcopy.core import data
from seqcopy.core.cells import Cell, Parts, State
from seqcopy.core.data import Layout
from seqcopy.core.model import CopyModel

PROBE_STREAM = 4  # beside data's TRAIN, TEST, SHUFFLE and SWEEP streams (0-3) and the stages' (100+)
PROBE_SIZE = 32
SATURATION = (0.1, 0.9)  # below the first or above the second: a saturated gate (Karpathy et al. 2015)
MEMORY_GATES = ("f", "z")  # the LSTM family's forget gate, the GRU family's update gate
SIGMOID_GATES = ("i", "f", "o", "r", "z")
DIAGNOSTICS = ("memory_gate", "saturated_gates", "saliency_diagonal", "first_input_grad")


@dataclass(frozen=True)
class Diagnostics:
    memory_gate: float | None
    saturated_gates: float | None
    saliency_diagonal: float
    first_input_grad: float

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in DIAGNOSTICS}


def trace_steps(cell: Cell, x: Tensor, state: State | None = None) -> Parts:
    """Run ``cell`` over (B, T, E) inputs step by step with its ``step()``: every quantity it
    computes, each (B, T, ·). Differentiable. NotImplementedError for a cell without a step()."""
    if state is None:
        state = cell.initial_state(x.shape[0], x.device, x.dtype)
    collected: dict[str, list[Tensor]] = {}
    for x_t in x.unbind(1):
        state, parts = cell.step(x_t, state)
        for name, value in parts.items():
            collected.setdefault(name, []).append(value)
    return {name: torch.stack(values, dim=1) for name, values in collected.items()}


def probe_batch(config: RunConfig, size: int = PROBE_SIZE) -> tuple[Tensor, Tensor, Layout]:
    """The fixed probe: ``size`` sequences of the configured task from the run's PROBE_STREAM,
    the same every epoch."""
    layout = Layout(config.train_seq_len, config.padding, config.train_output_len)
    inputs, targets = data.random_sequences(data.generator(config.seed, PROBE_STREAM), size, layout)
    return inputs, targets, layout


def gate_statistics(parts: Parts, layout: Layout) -> tuple[float | None, float | None]:
    """(memory_gate, saturated_gates) of a trace; None for a cell without the gates."""
    memory = next((parts[name] for name in MEMORY_GATES if name in parts), None)
    delay = slice(layout.symbols, layout.copy_start)  # the P delimiter steps
    memory_gate = None if memory is None else float(memory[:, delay].mean())
    gates = [parts[name].flatten() for name in SIGMOID_GATES if name in parts]
    if not gates:
        return memory_gate, None
    values = torch.cat(gates)
    low, high = SATURATION
    return memory_gate, float(((values < low) | (values > high)).float().mean())


def probed_outputs(batch: int, outputs: int) -> Tensor:
    """The output (0-based, among the N copied) each probe sequence differentiates: spread evenly."""
    return torch.arange(batch) * outputs // batch


def measure(model: CopyModel, inputs: Tensor, targets: Tensor, layout: Layout) -> Diagnostics:
    """The four numbers of the module's docstring for ``model`` on the probe (inputs, targets)."""
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            embedded = model.embedding(inputs).detach().requires_grad_(True)
            parts = trace_steps(model.recurrent.cell, embedded)
            log_p = torch.log_softmax(model.decoder(parts["h"]), dim=-1)
            rows = torch.arange(len(inputs))
            last = layout.length - 1
            (to_first,) = torch.autograd.grad(log_p[rows, last, targets[:, last]].sum(), embedded,
                                              retain_graph=True)
            probed = probed_outputs(len(inputs), layout.output)
            steps = layout.copy_start + probed
            (saliency,) = torch.autograd.grad(log_p[rows, steps, targets[rows, steps]].sum(), embedded)
        letters = saliency.norm(dim=-1)[:, : layout.symbols]
        diagonal = float((letters.argmax(dim=1) == probed).float().mean())
        memory_gate, saturated = gate_statistics({name: value.detach() for name, value in parts.items()}, layout)
        return Diagnostics(memory_gate, saturated, diagonal, float(to_first[:, 0].norm(dim=-1).mean()))
    finally:
        model.train(was_training)
