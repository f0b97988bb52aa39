"""A small run really learns to copy (a slow test: about 20 s on the 2-core CPU)."""

import pytest

from seqcopy.core.train import Stopped, train
from seqcopy.presets import PRESETS


@pytest.mark.slow
def test_lstm_learns_to_copy_ten_symbols():
    config = PRESETS["Quick demo"].replace(cell="lstm", epochs=14, test_samples=300)
    assert (config.train_seq_len, config.train_output_len) == (10, 10)
    history = []

    def stop_once_learnt(epoch, _after, _final):
        history.append(epoch.test_copy_acc)
        if epoch.test_copy_acc >= 0.9:
            raise Stopped  # learnt: no need to spend the remaining epochs

    train(config, on_epoch_state=stop_once_learnt)
    print("test copy accuracy by epoch:", [round(a, 3) for a in history])
    assert history[0] < 0.3  # it starts near chance (1/9)...
    assert max(history) >= 0.9  # ...and learns to copy
