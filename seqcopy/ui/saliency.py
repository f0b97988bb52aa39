"""Which input each output reads: saliency matrices of the copy, rows the copied outputs, columns
the input steps, each row scaled by its largest entry over the letters read (1 marks the letter
an output depends on most). A model that copies draws the diagonal: output j on letter j.

Two measures:

* gradient: ‖∂ log p(y_j = x_j) / ∂ e_t‖, the norm of the gradient of output j's
  log-probability of the right symbol with respect to the embedding of input t. Cheap (one
  backward pass per block of outputs) but local: a confident model saturates its softmax and
  its gates, and the gradient then often peaks on a neighbour of the right letter. A trained
  LSTM that copies 100% scored 30–60% diagonal on it here.
* replacement: the drop of log p(y_j = x_j) when letter t is replaced by another letter,
  averaged over the eight others (negative drops count as 0). It asks the question directly
  (what the output loses without that letter) and needs only forward passes, 8·K of them.

Torch, no Streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from seqcopy.config import RunConfig
from seqcopy.core.model import CopyModel
from seqcopy.ui.inside import trace_embedded
from seqcopy.ui.playground import copy_inputs
from seqcopy.vocab import NUM_SYMBOLS

MAX_SALIENCY_LETTERS = 100  # bounds the time: about a second for either measure at 100 letters
ROWS_PER_PASS = 25  # gradient: copies of the sequence differentiated together (bounds the memory)
SEQUENCES_PER_PASS = 256  # replacement: edited sequences run together (bounds the memory)


@dataclass(frozen=True)
class Saliency:
    matrix: pd.DataFrame  # copied outputs × input steps, each row's maximum over the letters = 1
    letters: int  # K: columns 0..K-1 are the letters read, any later ones delimiters and blanks
    letter_share: np.ndarray | None = None  # gradient: per row, the share of the norm on the letters

    @property
    def argmax(self) -> np.ndarray:
        """For each output, the letter position (0-based) it depends on most; -1 for a row with
        nothing on the letters at all."""
        letters = self.matrix.to_numpy()[:, : self.letters]
        best = letters.argmax(axis=1)
        return np.where(letters.max(axis=1) > 0, best, -1)

    @property
    def diagonal_score(self) -> float:
        """The share of outputs whose largest saliency sits on the right input letter."""
        rows = len(self.matrix)
        return float(np.mean(self.argmax == np.arange(rows))) if rows else 0.0


def _checked_inputs(config: RunConfig, text: str):
    indices, layout, inputs, targets = copy_inputs(text, config)
    if len(indices) > MAX_SALIENCY_LETTERS:
        raise ValueError(
            f"the saliency is drawn for sequences of up to {MAX_SALIENCY_LETTERS} letters; this one has {len(indices)}"
        )
    return indices, layout, inputs, targets


def _scaled(values: np.ndarray, letters: int, text: str) -> pd.DataFrame:
    """Rows scaled by their largest entry over the letters; labelled 'j: letter'."""
    peak = values[:, :letters].max(axis=1, keepdims=True)
    scaled = np.divide(values, peak, out=np.zeros_like(values), where=peak > 0)
    cleaned = text.strip().lower()
    index = [f"{j + 1}: {cleaned[j]}" for j in range(values.shape[0])]
    return pd.DataFrame(scaled, index=index, columns=list(range(values.shape[1])))


def gradient_saliency(model: CopyModel, config: RunConfig, text: str) -> Saliency:
    """The gradient measure over every input step. Raises vocab.InvalidSequence for bad text,
    ValueError for a sequence longer than MAX_SALIENCY_LETTERS."""
    indices, layout, inputs, targets = _checked_inputs(config, text)
    model.eval()
    norms = np.zeros((layout.output, layout.length))
    for first in range(0, layout.output, ROWS_PER_PASS):
        rows = range(first, min(first + ROWS_PER_PASS, layout.output))
        last_step = layout.copy_start + rows[-1]  # no later step can matter to these rows
        with torch.enable_grad():
            embedded = model.embedding(inputs[:, : last_step + 1].expand(len(rows), -1)).detach().requires_grad_(True)
            logits, _ = trace_embedded(model, embedded, check=False)
            steps = torch.tensor([layout.copy_start + j for j in rows])
            # Row b of the batch is differentiated for output rows[b] only: one backward for all.
            picked = torch.log_softmax(logits, dim=-1)[torch.arange(len(rows)), steps, targets[0, steps]]
            (gradient,) = torch.autograd.grad(picked.sum(), embedded)
        norms[first : rows[-1] + 1, : last_step + 1] = gradient.norm(dim=-1).numpy()
    letters = len(indices)
    total = norms.sum(axis=1)
    share = np.divide(norms[:, :letters].sum(axis=1), total, out=np.zeros_like(total), where=total > 0)
    return Saliency(_scaled(norms, letters, text), letters, share)


def _copy_log_probs(model: CopyModel, inputs: torch.Tensor, steps: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """log p(wanted symbol) at the copy steps, (B, N), in blocks of SEQUENCES_PER_PASS."""
    blocks = []
    with torch.inference_mode():
        for start in range(0, len(inputs), SEQUENCES_PER_PASS):
            logits, _ = trace_embedded(model, model.embedding(inputs[start : start + SEQUENCES_PER_PASS]), check=False)
            blocks.append(
                torch.log_softmax(logits[:, steps], dim=-1).gather(-1, wanted.expand(len(logits), -1, 1)).squeeze(-1)
            )
    return torch.cat(blocks)


def replacement_saliency(model: CopyModel, config: RunConfig, text: str) -> Saliency:
    """The replacement measure over the letters (K columns). Raises like gradient_saliency."""
    indices, layout, inputs, targets = _checked_inputs(config, text)
    model.eval()
    letters = len(indices)
    steps = torch.arange(layout.copy_start, layout.length)
    wanted = targets[0, steps].view(1, -1, 1)
    # Every letter position × every other letter: 8·K edited copies of the sequence.
    edited = inputs.repeat(letters * (NUM_SYMBOLS - 1), 1)
    row = 0
    for position, letter in enumerate(indices):
        for other in range(NUM_SYMBOLS):
            if other != letter:
                edited[row, position] = other
                row += 1
    original = _copy_log_probs(model, inputs, steps, wanted)[0]  # (N,)
    changed = _copy_log_probs(model, edited, steps, wanted).view(letters, NUM_SYMBOLS - 1, -1)  # (K, 8, N)
    drops = (original - changed).clamp(min=0).mean(dim=1).T.numpy().astype(float)  # (N, K)
    return Saliency(_scaled(drops, letters, text), letters)


MEASURES = {"gradient": gradient_saliency, "replacement": replacement_saliency}
