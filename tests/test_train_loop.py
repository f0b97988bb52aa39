"""The training loop's pieces: set_up() and train_epoch() make train(), and the one TrainState the
loop carries is the resume state, in the bytes format every stored state already has."""

from __future__ import annotations

import io

import pytest
import torch
from conftest import TINY

from seqcopy.core import checkpoint
from seqcopy.core import resume as resume_state
from seqcopy.core.train import set_up, train, train_epoch

# The keys of a "seqcopy-resume-1" payload as the first code wrote them: states in users' stores
# have exactly these, so the format may gain none and lose none without a new marker.
V1_KEYS = {"format", "epoch", "planned_epochs", "model", "optimiser", "plateau", "shuffle_rng", "torch_rng",
           "stage", "data_epoch", "step", "segment_start", "segment_steps", "target_hits", "epochs"}
CONFIG = TINY.replace(epochs=3, lr_schedule="plateau", warmup_epochs=1, lr=0.02)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Bit-identical results need the same torch thread count."""


def payload(blob: bytes) -> dict:
    return torch.load(io.BytesIO(blob), weights_only=True)


def states_of(config) -> dict[int, bytes]:
    states = {}
    train(config, on_epoch_state=lambda result, after, final: states.update({result.epoch: after()}))
    return states


def test_set_up_then_train_epoch_is_train():
    loop = set_up(CONFIG)
    ends = [train_epoch(loop, epoch) for epoch in range(1, CONFIG.epochs + 1)]
    assert ends == [False, False, True]
    alone = train(CONFIG)
    timing = ("seconds", "samples_per_sec")
    strip = [{k: v for k, v in e.to_dict().items() if k not in timing} for e in loop.result.epochs]
    assert strip == [{k: v for k, v in e.to_dict().items() if k not in timing} for e in alone.epochs]


def test_a_state_holds_the_first_formats_keys_and_the_counters_the_loop_carried():
    states = states_of(CONFIG)
    saved = payload(states[2])
    assert set(saved) == V1_KEYS and saved["format"] == resume_state.STATE_FORMAT
    assert (saved["epoch"], saved["planned_epochs"], saved["step"]) == (2, 3, 2 * CONFIG.batches_per_epoch)
    assert [e["epoch"] for e in saved["epochs"]] == [1, 2] and saved["plateau"] is not None


def test_a_state_in_the_first_format_resumes():
    """A payload written key by key as the first code did (not through TrainState) resumes as it would."""
    states = states_of(CONFIG)
    buffer = io.BytesIO()
    torch.save({key: payload(states[1])[key] for key in sorted(V1_KEYS)}, buffer)
    resumed = train(CONFIG, resume=buffer.getvalue())
    alone = train(CONFIG)
    assert [e.test_loss for e in resumed.epochs] == [e.test_loss for e in alone.epochs]
    for name, tensor in alone.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor)


def test_an_incomplete_state_is_refused_in_one_line():
    saved = payload(states_of(TINY.replace(epochs=1))[1])
    del saved["optimiser"], saved["step"]
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    with pytest.raises(checkpoint.CheckpointError, match="^resume state incomplete: missing optimiser, step$"):
        resume_state.from_bytes(buffer.getvalue())


def test_the_counters_leave_the_saved_form_to_the_live_objects():
    state = resume_state.from_bytes(states_of(TINY.replace(epochs=1))[1])
    counters = state.counters()
    assert (counters.epoch, counters.step, counters.segment_steps) == (state.epoch, state.step, state.segment_steps)
    assert counters.model == {} and counters.optimiser == {} and counters.torch_rng is None and counters.epochs == []
