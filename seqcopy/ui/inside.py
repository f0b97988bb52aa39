"""Inside the cell: the gates, the cell state and m_t of every step, from the model's own weights.

Every cell's ``step()`` (:mod:`seqcopy.core.cells`) returns, beside the new state, what it computed
on the way, by name; this module runs it over a sequence and reads the result. No equation is
written here: a new cell is traced as soon as its class has a ``step()``. It is pure torch: the
Playground runs its models through the steps and never needs the C++ kernels of
:mod:`seqcopy.core.fast` (which cost a compile, or a ninja check, on first use).

Names of the traced quantities (each (B, T, H) over a sequence):
    h  hidden state            c  cell state (LSTM family)      m  multiplicative intermediate m_t
    i  input gate  f  forget gate  g  candidate  o  output gate      (LSTM family)
    r  reset gate  z  update gate  n  candidate                       (GRU family)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from seqcopy.core.cells import Cell, Parts, State
from seqcopy.core.diagnostics import trace_steps
from seqcopy.core.model import CopyModel


@dataclass(frozen=True)
class Quantity:
    label: str  # what the page calls it
    low: float | None  # colour range; None: symmetric around 0, from the data
    high: float | None
    gate: bool  # a sigmoid gate, 0..1


# In drawing order: what the step computes first on top, the state it leaves at the bottom.
QUANTITIES: dict[str, Quantity] = {
    "m": Quantity("multiplicative m_t", None, None, False),  # the input form's has E units, not H
    "i": Quantity("input gate i", 0.0, 1.0, True),
    "f": Quantity("forget gate f", 0.0, 1.0, True),
    "g": Quantity("candidate g", -1.0, 1.0, False),
    "o": Quantity("output gate o", 0.0, 1.0, True),
    "r": Quantity("reset gate r", 0.0, 1.0, True),
    "z": Quantity("update gate z", 0.0, 1.0, True),
    "n": Quantity("candidate n", -1.0, 1.0, False),
    "c": Quantity("cell state c", None, None, False),
    "h": Quantity("hidden state h", -1.0, 1.0, False),
}
# What the Playground draws of each cell at first: what carries its memory through the delay.
DEFAULT_DRAWN = {
    "rnn": ["h"], "lstm": ["f", "c", "h"], "gru": ["z", "h"], "mlstm": ["m", "f", "c", "h"], "mgru": ["m", "z", "h"],
}


class UntraceableCell(ValueError):
    """A cell without a ``step()``, or one whose trace disagrees with its own forward."""


# ----------------------------------------------------------------------------- whole sequences
def trace_sequence(cell: Cell, x: Tensor, state: State | None = None) -> Parts:
    """Run ``cell`` over (B, T, E) inputs step by step: every quantity it computes, (B, T, H)
    (seqcopy.core.diagnostics.trace_steps, which the per-epoch diagnostics use too)."""
    try:
        return trace_steps(cell, x, state)
    except NotImplementedError:
        raise UntraceableCell(f"the Playground cannot look inside a {type(cell).__name__} yet") from None


def check_against_cell(cell: Cell, x: Tensor, parts: Parts, steps: int = 2, tolerance: float = 1e-4) -> None:
    """Compare the first ``steps`` traced hidden states with the path the model trained on, where
    that is torch's own kernel (RNN, LSTM, GRU): a cheap guard against a trace that parted from
    the model it explains. Raises UntraceableCell. The multiplicative cells' fused path is the C++
    loops, which tests hold equal to ``step()``; they are not built for the Playground."""
    if not cell.fused_by_torch:
        return
    x = x[:, :steps]
    outputs, _ = cell.fused_forward(x, cell.initial_state(x.shape[0], x.device, x.dtype))
    for t in range(x.shape[1]):
        if not torch.allclose(outputs[:, t], parts["h"][:, t], atol=tolerance, rtol=0):
            raise UntraceableCell(f"the trace of {type(cell).__name__} disagrees with the cell at step {t}")


def trace_embedded(model: CopyModel, embedded: Tensor, check: bool = True) -> tuple[Tensor, Parts]:
    """The model's pass from (B, T, E) embeddings: (B, T, vocab) logits and every traced
    quantity, without the fused kernels. Gradients flow (for saliency) unless the caller turns
    them off; ``check`` compares the first steps with the model's fused path (check_against_cell)."""
    cell = model.recurrent.cell
    parts = trace_sequence(cell, embedded)
    if check:
        with torch.no_grad():
            check_against_cell(cell, embedded.detach(), {"h": parts["h"].detach()})
    return model.decoder(parts["h"]), parts


def trace_model(model: CopyModel, inputs: Tensor, check: bool = True) -> tuple[Tensor, Parts]:
    """(B, T) token indices → (B, T, vocab) logits and every traced quantity."""
    return trace_embedded(model, model.embedding(inputs), check)


# ----------------------------------------------------------------------------- reading a trace
PHASES = ("reading", "delimiter", "copying")


def phases(letters: int, padding: int, steps: int) -> list[str]:
    """The phase of every step: reading the K letters, the P delimiters, then copying."""
    return [PHASES[0] if t < letters else PHASES[1] if t < letters + padding else PHASES[2] for t in range(steps)]


UNIT_ORDERS = ("value at the end of reading", "change over time", "unit number")


def unit_order(values: pd.DataFrame, letters: int, by: str = UNIT_ORDERS[0]) -> list[int]:
    """Row positions of ``values`` (units × steps) in display order: highest value at the last
    reading step first (units that stored something sit together), most variable first, or as
    numbered."""
    matrix = values.to_numpy(dtype=float)
    if by == UNIT_ORDERS[2] or matrix.size == 0:
        return list(range(matrix.shape[0]))
    if by == UNIT_ORDERS[0]:
        key = matrix[:, min(max(letters, 1), matrix.shape[1]) - 1]
    elif by == UNIT_ORDERS[1]:
        key = matrix.std(axis=1)
    else:
        raise ValueError(f"unknown unit order {by!r}: choose one of {', '.join(UNIT_ORDERS)}")
    return [int(i) for i in np.argsort(-key, kind="stable")]


def pick_units(
    states: dict[str, pd.DataFrame], names: Sequence[str], order: Sequence[int], first: int, last: int
) -> dict[str, pd.DataFrame]:
    """The quantities ``names`` with the units ``order[first - 1 : last]`` (1-based, inclusive),
    in that order. A quantity of another size than the hidden state (m_t of a form that scales
    the input has one row per input feature) keeps its first ``last - first + 1`` rows."""
    picked = list(order[first - 1 : last])
    chosen = {}
    for name in names:
        frame = states[name]
        chosen[name] = frame.iloc[picked] if len(frame) == len(order) else frame.iloc[: len(picked)]
    return chosen


def phase_means(states: dict[str, pd.DataFrame], step_phases: Sequence[str]) -> pd.DataFrame:
    """Mean of each quantity over units and the steps of each phase (quantities × phases); for
    c and m, whose sign carries no meaning on average, the mean absolute value."""
    labels = np.array(step_phases)
    rows = {}
    for name, frame in states.items():
        matrix = frame.to_numpy(dtype=float)
        if name in ("c", "m"):
            matrix = np.abs(matrix)
        rows[name] = {p: float(matrix[:, labels == p].mean()) if (labels == p).any() else np.nan for p in PHASES}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(PHASES))


# What holds the memory through the delay, per family: the forget gate (1 keeps c) or the
# update gate (1 keeps h).
_KEEPERS = (("f", "forget gate f (1 keeps c)"), ("z", "update gate z (1 keeps h)"))


def summary_line(means: pd.DataFrame) -> str:
    """One line: the keeping gate's mean through the delay beside the other phases, and the
    other gates' and |m_t|'s means through the delay."""
    def through(name: str) -> str:
        row = means.loc[name]
        return "–" if np.isnan(row["delimiter"]) else f"{row['delimiter']:.2f}"

    parts = []
    for name, label in _KEEPERS:
        if name in means.index:
            row = means.loc[name]
            parts.append(f"{label}: {through(name)} through the delay "
                         f"({row['reading']:.2f} reading, {row['copying']:.2f} copying)")
    others = [name for name in ("i", "o", "r") if name in means.index]
    if others:
        parts.append("through the delay " + ", ".join(f"{name} {through(name)}" for name in others))
    for name, label in (("c", "|c|"), ("m", "|m_t|")):
        if name in means.index:
            parts.append(f"{label} {through(name)} through the delay")
    if not parts:
        return (
            f"No gates (h_t = tanh(W x_t + U h_(t-1) + b)): mean h {means.loc['h', 'delimiter']:.2f} through the delay."
        )
    return "Mean over units · " + " · ".join(parts)


def state_trajectory(values: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The (units × steps) states projected on their first two principal components: (steps, 2)
    coordinates and the share of the variance each component explains (numpy SVD, no sklearn).
    A constant state gives zeros and zero shares."""
    points = values.to_numpy(dtype=float).T  # steps × units
    centred = points - points.mean(axis=0, keepdims=True)
    coordinates = np.zeros((points.shape[0], 2))
    shares = np.zeros(2)
    if centred.size == 0 or not np.any(centred):
        return coordinates, shares
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(2, len(s))
    coordinates[:, :k] = u[:, :k] * s[:k]
    shares[:k] = s[:k] ** 2 / np.sum(s**2)
    return coordinates, shares
