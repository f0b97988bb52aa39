"""Recipes that work: presets for the Launch form and ``--preset`` on the command line.

The seed's defaults stay the defaults (RunConfig); a preset is a complete RunConfig, so choosing
one sets every field, and anything given beside it (a flag, a form field changed afterwards)
overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import RunConfig


@dataclass(frozen=True)
class Preset:
    name: str  # as the form lists it
    slug: str  # as --preset takes it
    config: RunConfig


_ALL = [
    # Learns to copy short sequences in about a minute on a 2-core CPU (measured, LSTM seed 0:
    # 90% test copy accuracy at epoch 8, 98.6% at epoch 15, about 2 s an epoch).
    Preset("Quick demo", "quick-demo", RunConfig(
        cell="lstm", seed=0, train_seq_len=10, test_seq_len=10, padding=3, train_output_len=10,
        test_output_len=10, embedding_size=16, hidden_size=128, lr=0.003, epochs=15,
        test_samples=500, tag="quick demo",
    )),
    # Copies of 20 symbols at ≥ 99% test copy accuracy within 10 CPU-minutes for LSTM and mGRU
    # (README; GRU lands at 98.3–99.8%, mLSTM fails): the curriculum 8 → 16 → 20 on fresh data,
    # orthogonal recurrent weights with forget bias 1, and a cosine-decayed learning rate.
    Preset("Copies of 20 symbols", "copy-20", RunConfig(
        cell="lstm", seed=0, train_seq_len=20, test_seq_len=20, padding=3, train_output_len=20,
        test_output_len=20, embedding_size=16, hidden_size=256, lr=0.003, lr_schedule="cosine",
        epochs=70, init="scaled", curriculum=True, curriculum_start=8, fresh_data=True, tag="copy 20",
    )),
    # The seed's final configuration, as it was.
    Preset("The original final configuration", "original-final", RunConfig(
        train_seq_len=100, test_seq_len=500, padding=3, train_output_len=100, test_output_len=200,
        batch_size=64, embedding_size=16, hidden_size=256, epochs=10, lr=0.005,
        tag="original final configuration",
    )),
    Preset("The seed's defaults", "seed-defaults", RunConfig()),
]

PRESETS: dict[str, RunConfig] = {preset.name: preset.config for preset in _ALL}
BY_SLUG: dict[str, Preset] = {preset.slug: preset for preset in _ALL}
