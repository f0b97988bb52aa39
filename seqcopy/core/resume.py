"""A run's resume state: everything ``train()`` carries from one epoch to the next, as bytes.

The state after epoch k holds the weights and Adam's moments, the plateau scheduler, the position
of every random stream (the shuffling generator, torch's global generator), the curriculum stage
and which training set it trains on, the learning-rate schedule's step and segment, the stop-at
patience count, and the epochs reported so far. ``train(config, resume=state)`` goes on at epoch
k + 1 and, on the same machine and torch thread count, computes bit for bit what the run left
alone would have. (The test set and every training set are regenerated from the seed: each is a
pure function of (seed, stream, stage, epoch), so only the choice of set is stored.)

Like a checkpoint it is loaded with ``torch.load(weights_only=True)``: data, never code. A
checkpoint (seqcopy.core.checkpoint) given as ``resume`` is a fork's start: its weights only, with
a fresh optimiser and the run's own schedule from epoch 1.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, fields

import torch

from seqcopy.config import RunConfig
from seqcopy.core.checkpoint import CheckpointError, first_line, weights_to_bytes

STATE_FORMAT = "seqcopy-resume-1"

# A field's saved form: the loop keeps it in a live object of its own (the model, Adam, a
# generator…) and writes it here only when a state is taken, so the carried counters stay light.
SAVED_FORM = {"saved_form": True}


@dataclass
class TrainState:
    """What the training loop carries from one epoch to the next, as it is saved and loaded: the
    counters (live in the loop) and the live objects' saved form (filled when a state is taken).
    The defaults are a new run's, before its first epoch."""

    epoch: int = 0  # epochs finished; the next one is epoch + 1
    # config.epochs when the state was written: a larger one later is a continuation
    planned_epochs: int = field(default=0, metadata=SAVED_FORM)
    model: dict = field(default_factory=dict, metadata=SAVED_FORM)  # state_dict
    # Adam's state_dict (moments, step counts, the current learning rate)
    optimiser: dict = field(default_factory=dict, metadata=SAVED_FORM)
    # ReduceLROnPlateau's state_dict, when the schedule is 'plateau'
    plateau: dict | None = field(default=None, metadata=SAVED_FORM)
    # numpy bit generator state of the shuffling stream
    shuffle_rng: dict | None = field(default=None, metadata=SAVED_FORM)
    # torch's global CPU generator (nothing draws from it today; kept so nothing can drift)
    torch_rng: torch.Tensor | None = field(default=None, metadata=SAVED_FORM)
    stage: int = 0  # curriculum stage of the next epoch
    data_epoch: int = 0  # the training set of the next epoch: 0 the stage's first, e > 0 fresh data drawn after epoch e
    step: int = 0  # optimiser steps taken
    segment_start: int = 0  # the step where the schedule's current segment began (a continuation starts one)
    segment_steps: int = 0  # the steps of that segment (a new run's: config.epochs × batches)
    target_hits: int = 0  # epochs in a row at the --stop-at target
    # EpochResult.to_dict() of epochs 1..epoch
    epochs: list[dict] = field(default_factory=list, metadata=SAVED_FORM)

    def counters(self) -> TrainState:
        """This state without its saved form: what the loop carries once the live objects hold the rest."""
        return TrainState(**{item.name: getattr(self, item.name) for item in fields(self)
                             if not item.metadata.get("saved_form")})

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        payload = {"format": STATE_FORMAT, **self.__dict__}
        torch.save(payload, buffer)
        return buffer.getvalue()


@dataclass
class WeightsStart:
    """A fork's start: another run's weights, and the epoch of that run they finished."""

    model: dict
    parent_epoch: int | None


def from_bytes(data: bytes) -> TrainState | WeightsStart:
    """A resume state, or (for checkpoint bytes) a fork's start; CheckpointError with one line otherwise."""
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for foreign or truncated bytes
        raise CheckpointError(f"not a readable resume state ({first_line(error)})") from None
    if not isinstance(payload, dict):
        raise CheckpointError("not a seqcopy resume state")
    if payload.get("format") == STATE_FORMAT:
        # Every state ever written holds every field; one without them all is broken, not old.
        names = [item.name for item in fields(TrainState)]
        missing = [name for name in names if name not in payload]
        if missing:
            raise CheckpointError(f"resume state incomplete: missing {', '.join(missing)}")
        return TrainState(**{name: payload[name] for name in names})
    if "state_dict" in payload:  # a checkpoint: a fork starts from its weights
        return WeightsStart(model=payload["state_dict"], parent_epoch=payload.get("epoch"))
    raise CheckpointError("not a seqcopy resume state (missing or unknown format marker)")


def checkpoint_of(data: bytes, config: RunConfig) -> tuple[int, bytes]:
    """(its epoch, checkpoint bytes) of the weights a resume state holds: what a run stopped
    between epochs (preempted, then cancelled or failed) keeps, to fork and evaluate."""
    state = from_bytes(data)
    if not isinstance(state, TrainState):
        raise CheckpointError("not a seqcopy resume state")
    return state.epoch, weights_to_bytes(state.model, config)
