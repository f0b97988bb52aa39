"""Run a trained model over a typed sequence: what it read, what it wrote, how sure it was.

The input is laid out exactly as in training (``data.make_sequences``): the typed symbols, the
run's P delimiters ``$``, then one blank per symbol to copy back (N = the typed length). Torch,
no Streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..config import RunConfig
from ..data import Layout, make_sequences
from ..model import CopyModel
from ..vocab import ALPHABET, SYMBOLS, VISIBLE_BLANK, decode, validate_symbols

MAX_PLAYGROUND_LENGTH = 500  # keeps the heatmaps drawable in a browser
SYMBOL_LABELS = [VISIBLE_BLANK if s == " " else s for s in SYMBOLS]  # 11 row labels


def max_sequence_length(config: RunConfig) -> int:
    """How long a typed sequence may be: five times the training length (the length sweep's
    largest factor), at least 20, at most MAX_PLAYGROUND_LENGTH."""
    return int(min(MAX_PLAYGROUND_LENGTH, max(20, 5 * config.train_seq_len)))


def random_sequence(length: int, rng: np.random.Generator) -> str:
    return "".join(ALPHABET[i] for i in rng.integers(0, len(ALPHABET), size=length))


@dataclass(frozen=True)
class CopyTrace:
    """One pass of the model over one sequence, step by step."""

    sequence: str  # the letters it had to copy
    inputs: list[str]  # the symbol fed at each step ('·' for a blank)
    targets: list[str]  # the symbol it should write at each step
    outputs: list[str]  # the symbol it wrote (argmax) at each step
    probabilities: pd.DataFrame  # (11 symbols × T steps) softmax
    hidden: pd.DataFrame  # (H units × T steps) hidden state
    copy_start: int  # first step whose target is a copied symbol

    @property
    def steps(self) -> int:
        return len(self.inputs)

    @property
    def copied(self) -> pd.DataFrame:
        """The copy, symbol by symbol: what was asked, what came out, right or not, confidence."""
        rows = []
        for position, step in enumerate(range(self.copy_start, self.steps), start=1):
            target, output = self.targets[step], self.outputs[step]
            rows.append({
                "position": position, "step": step, "target": target, "output": output,
                "right": output == target, "confidence": float(self.probabilities.iloc[:, step].max()),
            })
        return pd.DataFrame(rows)

    @property
    def copy_accuracy(self) -> float:
        copied = self.copied
        return float(copied["right"].mean()) if len(copied) else 0.0


def run_copy(model: CopyModel, config: RunConfig, text: str) -> CopyTrace:
    """Let ``model`` read ``text`` and copy it back. Raises vocab.InvalidSequence (one line
    naming what is wrong) for text that is not a sequence of the alphabet's letters."""
    indices = validate_symbols(text, max_sequence_length(config))
    layout = Layout(symbols=len(indices), padding=config.padding, output=len(indices))
    inputs, targets = make_sequences(np.array([indices], dtype=np.int64), layout)
    model.eval()
    with torch.inference_mode():
        logits, hidden, _ = model.forward_with_hidden(inputs)
    probs = torch.softmax(logits[0].float(), dim=-1).numpy()  # (T, 11)
    outputs = logits[0].argmax(-1).tolist()
    steps = list(range(layout.length))
    return CopyTrace(
        sequence=decode(indices),
        inputs=list(decode(inputs[0].tolist())),
        targets=list(decode(targets[0].tolist())),
        outputs=list(decode(outputs)),
        probabilities=pd.DataFrame(probs.T, index=SYMBOL_LABELS, columns=steps),
        hidden=pd.DataFrame(hidden[0].float().numpy().T, index=[f"h{i}" for i in range(hidden.shape[-1])], columns=steps),
        copy_start=layout.copy_start,
    )
