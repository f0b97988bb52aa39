"""Copy-task batches: the one place that knows the sequence layout.

Input  = K random symbols, P delimiters ``$``, N blanks            (length K + P + N)
Target = K + P blanks, then the first N input symbols                (same length)

The model reads the K symbols, sees the delimiters, and must then write back the first N symbols
while it is fed blanks. Every random draw comes from a ``numpy.random.Generator`` seeded from the
run's seed, so a run's data is the same on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from seqcopy.vocab import BLANK_INDEX, DELIMITER_INDEX, NUM_SYMBOLS

# Separate streams for the train set, the test set, the shuffling and the length sweep, so that
# changing the number of test samples never changes the training data (and vice versa).
TRAIN_STREAM, TEST_STREAM, SHUFFLE_STREAM, SWEEP_STREAM = 0, 1, 2, 3


@dataclass(frozen=True)
class Layout:
    """Where the parts of one copy-task sequence sit."""

    symbols: int  # K
    padding: int  # P
    output: int  # N (≤ K)

    @property
    def length(self) -> int:
        return self.symbols + self.padding + self.output

    @property
    def copy_start(self) -> int:
        """Index of the first target symbol."""
        return self.symbols + self.padding

    def copy_mask(self) -> torch.Tensor:
        """Boolean (length,) mask of the positions whose target is a copied symbol."""
        mask = torch.zeros(self.length, dtype=torch.bool)
        mask[self.copy_start :] = True
        return mask


def generator(seed: int, stream: int) -> np.random.Generator:
    """A generator for one purpose (``*_STREAM``) of one run's seed."""
    return np.random.default_rng([seed, stream])


def make_sequences(symbols: np.ndarray, layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets (both (B, K+P+N) int64) for the given (B, K) symbol indices."""
    batch, k = symbols.shape
    if k != layout.symbols:
        raise ValueError(f"expected {layout.symbols} symbols per row, got {k}")
    if layout.output > layout.symbols:
        raise ValueError("the output cannot be longer than the input")
    inputs = np.full((batch, layout.length), BLANK_INDEX, dtype=np.int64)
    targets = np.full((batch, layout.length), BLANK_INDEX, dtype=np.int64)
    inputs[:, : layout.symbols] = symbols
    inputs[:, layout.symbols : layout.copy_start] = DELIMITER_INDEX
    targets[:, layout.copy_start :] = symbols[:, : layout.output]
    return torch.from_numpy(inputs), torch.from_numpy(targets)


def random_sequences(
    rng: np.random.Generator, count: int, layout: Layout
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random copy-task pairs drawn from ``rng``."""
    symbols = rng.integers(0, NUM_SYMBOLS, size=(count, layout.symbols), dtype=np.int64)
    return make_sequences(symbols, layout)


def shuffled_batches(
    inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, rng: np.random.Generator
):
    """Yield mini-batches of a data set in a fresh random order (the last one may be smaller)."""
    order = torch.from_numpy(rng.permutation(len(inputs)))
    for start in range(0, len(inputs), batch_size):
        index = order[start : start + batch_size]
        yield inputs[index], targets[index]
