"""Loss and the accuracies, on (B, T, V) logits and (B, T) targets.

Accuracy over all positions is the historical number, and it flatters: the K + P blank targets
are easy, so a model that never copies still scores (K + P + N/9) / (K + P + N). Copy accuracy
counts only the N target symbols, whose chance level is 1/9; sequence accuracy asks for every
copied symbol of a sequence to be right.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from seqcopy.vocab import CHANCE_LEVEL


def sequence_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy per time step, averaged over steps and sequences."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@dataclass
class Counts:
    """Running sums from which every accuracy is derived; add batches with ``update``.

    The sums of right answers stay tensors on the model's device until read, so adding a batch
    never waits for the device (no host synchronisation per batch on a GPU).
    """

    loss_sum: Tensor | float = 0.0  # sum over batches of (mean loss × positions)
    positions: int = 0
    correct: Tensor | int = 0
    copy_positions: int = 0
    copy_correct: Tensor | int = 0
    sequences: int = 0
    sequences_correct: Tensor | int = 0

    def update(self, logits: Tensor, targets: Tensor, copy_start: int, loss: Tensor | None = None) -> None:
        """Add one batch; ``copy_start`` is the index of the first target symbol."""
        if loss is None:
            loss = sequence_loss(logits, targets)
        right = logits.argmax(-1) == targets
        copy_right = right[:, copy_start:]
        self.loss_sum = self.loss_sum + loss.detach() * targets.numel()
        self.positions += targets.numel()
        self.correct = self.correct + right.sum()
        self.copy_positions += copy_right.numel()
        self.copy_correct = self.copy_correct + copy_right.sum()
        self.sequences += targets.shape[0]
        self.sequences_correct = self.sequences_correct + copy_right.all(dim=1).sum()

    @property
    def loss(self) -> float:
        return float(self.loss_sum) / max(self.positions, 1)

    @property
    def accuracy(self) -> float:
        return float(self.correct) / max(self.positions, 1)

    @property
    def copy_accuracy(self) -> float:
        return float(self.copy_correct) / max(self.copy_positions, 1)

    @property
    def sequence_accuracy(self) -> float:
        return float(self.sequences_correct) / max(self.sequences, 1)


def blank_baseline_accuracy(symbols: int, padding: int, output: int) -> float:
    """Accuracy over all positions of a model that writes blanks right and guesses the copy."""
    return (symbols + padding + output * CHANCE_LEVEL) / (symbols + padding + output)


