"""Continue and fork through the command line: `seqcopy continue RUN --epochs N` queues a new run
that goes on from the parent's whole resume state (bit for bit the longer run at a constant
rate); `seqcopy submit --from RUN` starts runs from its weights with other settings, refusing in
one line a change that makes the weights unusable; the lineage is recorded, listed and reported.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY, assert_one_line_error, run_cli

from seqcopy.core import checkpoint
from seqcopy.core.train import train
from seqcopy.runs.store import Store
from seqcopy.runs.worker import Worker

BASE = TINY.replace(epochs=3)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Bit-identical results need the same torch thread count."""


@pytest.fixture
def store(sqlite_url):
    store = Store(sqlite_url)
    yield store
    store.close()


def completed(store: Store, config) -> int:
    run_id = store.submit(config)
    assert Worker(store, worker_id="w:1", lease=30).run(once=True) == 1
    assert store.get_run(run_id).status == "completed"
    return run_id


def test_continue_queues_a_child_that_goes_on_bit_for_bit(store, sqlite_url, capsys):
    parent = completed(store, BASE)
    code, out, err = run_cli(capsys, "continue", str(parent), "--epochs", "2", "--db", sqlite_url)
    assert code == 0, err
    child = int(out.strip())
    assert f"continues #{parent} from epoch 3 to epoch 5" in err
    run = store.get_run(child)
    assert (run.status, run.parent_id, run.parent_epoch, run.epochs_done, run.epochs_total) == (
        "queued", parent, 3, 3, 5)
    assert run.lineage == f"from #{parent} @ epoch 3"
    assert Worker(store, worker_id="w:2", lease=30).run(once=True) == 1
    assert [row["epoch"] for row in store.epochs([child])] == [4, 5]  # numbered on from the parent's
    longer = train(BASE.replace(epochs=5))
    assert [row["test_loss"] for row in store.epochs([parent, child])] == [e.test_loss for e in longer.epochs]
    model, _ = checkpoint.from_bytes(store.checkpoint(child))
    reference = longer.model.state_dict()
    assert all(torch.equal(t, reference[name]) for name, t in model.state_dict().items())
    assert store.get_run(parent).epochs_done == 3  # the parent stays as it was

    code, out, _ = run_cli(capsys, "runs", "--json", "--db", sqlite_url)
    listed = {row["id"]: row for row in json.loads(out)}
    assert listed[child]["lineage"] == f"from #{parent} @ epoch 3"
    code, out, _ = run_cli(capsys, "report", "--db", sqlite_url)
    assert f"from #{parent} @ epoch 3" in out


def test_continue_refuses_what_it_cannot_continue(store, sqlite_url, capsys):
    queued = store.submit(BASE)
    assert_one_line_error(*run_cli(capsys, "continue", str(queued), "--epochs", "2", "--db", sqlite_url)[::2],
                          "is queued", "once it ends")
    store.request_cancel(queued)
    done = completed(store, BASE)
    assert_one_line_error(*run_cli(capsys, "continue", str(done), "--epochs", "0", "--db", sqlite_url)[::2],
                          "--epochs")
    assert_one_line_error(*run_cli(capsys, "continue", "999", "--epochs", "1", "--db", sqlite_url)[::2],
                          "no run with id 999")


def test_a_fork_grid_starts_from_the_parents_weights_with_its_lineage(store, sqlite_url, capsys):
    parent = completed(store, BASE.replace(cell="gru"))
    code, out, err = run_cli(capsys, "submit", "--from", str(parent), "-iseq", "6", "-oseq", "6",
                             "--sweep", "lr=0.01,0.02", "--db", sqlite_url)
    assert code == 0, err
    ids = [int(line) for line in out.split()]
    assert len(ids) == 2 and f"from #{parent} @ epoch 3" in err
    for run_id in ids:
        run = store.get_run(run_id)
        assert run.config.cell == "gru" and run.config.train_seq_len == 6  # the parent's settings, changed
        assert (run.parent_id, run.parent_epoch, run.epochs_done) == (parent, 3, 0)
    assert Worker(store, worker_id="w:2", lease=30).run(idle_exit=0) == 2
    assert [row["epoch"] for row in store.epochs([ids[0]])] == [1, 2, 3]
    scratch = train(store.get_run(ids[0]).config)
    assert store.epochs([ids[0]])[0]["train_loss"] != scratch.epochs[0].train_loss  # it did start elsewhere


@pytest.mark.parametrize("flags, needle", [
    (["-hs", "16"], "-hs/--hidden_size 16 differs from the parent's 8"),
    (["-c", "lstm"], "-c/--cell lstm differs"),
    (["-em", "5"], "embedding_size 5 differs"),
])
def test_a_fork_that_makes_the_weights_unusable_is_refused_in_one_line(store, sqlite_url, capsys, flags, needle):
    parent = completed(store, BASE.replace(cell="gru"))
    before = len(store.list_runs())
    code, _, err = run_cli(capsys, "submit", "--from", str(parent), *flags, "--db", sqlite_url)
    assert_one_line_error(code, err, f"--from {parent}", needle)
    assert len(store.list_runs()) == before  # nothing queued


def test_a_fork_of_a_run_without_weights_is_refused(store, sqlite_url, capsys):
    queued = store.submit(BASE)
    code, _, err = run_cli(capsys, "submit", "--from", str(queued), "--db", sqlite_url)
    assert_one_line_error(code, err, "has no weights", "once it ends")


def test_max_restarts_is_recorded_and_checked(store, sqlite_url, capsys):
    code, out, err = run_cli(capsys, "submit", "-hs", "8", "--max-restarts", "0", "--db", sqlite_url)
    assert code == 0, err
    assert store.get_run(int(out.strip())).max_restarts == 0
    assert_one_line_error(*run_cli(capsys, "submit", "--max-restarts", "-1", "--db", sqlite_url)[::2],
                          "--max-restarts")
