import pytest

from seqcopy.config import RunConfig
from seqcopy.report import build_report, first_reaching, mean_std
from seqcopy.schema import EPOCH_METRICS
from seqcopy.store import Store


def epoch_row(epoch, copy_acc, seconds=30.0):
    row = {name: 0.5 for name in EPOCH_METRICS}
    row.update(epoch=epoch, test_copy_acc=copy_acc, test_seq_acc=copy_acc / 2, seconds=seconds,
               stage_output_len=4, stage_seq_len=4)
    return row


def record(store, config, copy_accs):
    run_id = store.submit(config)
    store.claim("w")
    for epoch, acc in enumerate(copy_accs, start=1):
        store.record_epoch(run_id, "w", epoch_row(epoch, acc))
    store.finish(run_id, "w", "completed")
    return run_id


def test_mean_std_and_first_reaching():
    assert mean_std([0.5, 0.7]) == "0.600 ± 0.141"
    assert mean_std([0.25]) == "0.250"
    history = [epoch_row(1, 0.5), epoch_row(2, 0.95), epoch_row(3, 0.995)]
    assert first_reaching(history, 0.9) == (2, 1.0)
    assert first_reaching(history, 0.999) is None


def test_report_groups_by_tag_and_cell(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    base = RunConfig(epochs=3, tag="demo")
    record(store, base.replace(seed=0), [0.5, 0.95, 0.99])
    record(store, base.replace(seed=1), [0.5, 0.91, 0.97])
    record(store, base.replace(cell="gru", seed=0), [0.1, 0.1, 0.1])
    store.submit(base.replace(cell="rnn"))  # queued: not in the report
    text = build_report(store)
    lstm = next(line for line in text.splitlines() if line.startswith("| lstm"))
    gru = next(line for line in text.splitlines() if line.startswith("| gru"))
    assert "2 (0, 1)" in lstm and "0.980 ± 0.014" in lstm  # final copy accuracies 0.99 and 0.97
    assert "2.0 ± 0.0 ep" in lstm  # both reached 90% at epoch 2
    assert "not reached by 1/2" in lstm  # only seed 0 reached 99%
    assert "not reached by 1/1" in gru
    assert "| rnn" not in text
    assert "### demo" in text


def test_empty_store(tmp_path):
    assert "No completed runs" in build_report(Store(f"sqlite:///{tmp_path / 'e.db'}"))
