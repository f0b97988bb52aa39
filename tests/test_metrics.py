import numpy as np
import pytest
import torch

from seqcopy.core.data import Layout, make_sequences
from seqcopy.core.metrics import Counts, blank_baseline_accuracy
from seqcopy.vocab import BLANK_INDEX


def one_hot_logits(predictions: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(predictions, 11).float() * 10


def batch_counts(logits: torch.Tensor, targets: torch.Tensor, copy_start: int) -> Counts:
    counts = Counts()
    counts.update(logits, targets, copy_start)
    return counts


def test_blank_only_model_is_not_credited_for_copying():
    layout = Layout(20, 3, 10)
    _, targets = make_sequences(np.random.default_rng(0).integers(0, 9, (50, 20)), layout)
    blanks = torch.full_like(targets, BLANK_INDEX)
    counts = batch_counts(one_hot_logits(blanks), targets, layout.copy_start)
    assert counts.accuracy == pytest.approx(23 / 33)  # the historical number looks fine...
    assert counts.copy_accuracy == 0.0  # ...but nothing was copied
    assert counts.sequence_accuracy == 0.0


def test_hand_made_predictions():
    targets = torch.tensor([[10, 10, 0, 1], [10, 10, 2, 3]])
    predictions = torch.tensor([[10, 10, 0, 1], [10, 0, 2, 4]])
    counts = batch_counts(one_hot_logits(predictions), targets, copy_start=2)
    assert counts.accuracy == pytest.approx(6 / 8)
    assert counts.copy_accuracy == pytest.approx(3 / 4)
    assert counts.sequence_accuracy == pytest.approx(1 / 2)


def test_counts_accumulate_over_batches_weighted_by_size():
    targets = torch.tensor([[10, 0], [10, 1], [10, 2]])
    right = one_hot_logits(targets)
    wrong = one_hot_logits(torch.tensor([[10, 5]]))
    counts = Counts()
    counts.update(right, targets, 1)
    counts.update(wrong, torch.tensor([[10, 0]]), 1)
    assert counts.copy_accuracy == pytest.approx(3 / 4)
    assert counts.sequences == 4


def test_blank_baseline_matches_the_brief():
    # a model that never copies: 72% with the default test lengths, 56% on the final configuration
    assert blank_baseline_accuracy(40, 3, 20) == pytest.approx(0.72, abs=0.005)
    assert blank_baseline_accuracy(100, 3, 100) == pytest.approx(0.56, abs=0.005)
