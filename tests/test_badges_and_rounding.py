"""What a run's status alone does not say (RunInfo.badges, shown_status), on both stores, and the
three significant figures every page rounds to (text.rounded)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ui_store import TINY, WORKER, epoch_row

from seqcopy.runs.lineage import continue_run
from seqcopy.runs.queueing import queue_grid
from seqcopy.runs.states import RunBadge, RunStatus
from seqcopy.runs.store import Store
from seqcopy.text import rounded


def _train(store: Store, run_id: int, epochs: range) -> None:
    claimed = store.claim(WORKER)
    assert claimed.id == run_id
    for epoch in epochs:
        store.record_epoch(run_id, WORKER, epoch_row(epoch, 0, "lstm"), state=b"state")


def test_a_preempted_run_says_it_resumes_then_that_it_resumed(db_url):
    store = Store(db_url)
    run_id = store.submit(TINY.replace(epochs=3))
    assert store.get_run(run_id).badges == ()
    _train(store, run_id, range(1, 2))
    store.preempt(run_id, WORKER, "preempted at epoch 1; resumes")
    waiting = store.get_run(run_id)
    assert waiting.status == RunStatus.QUEUED and waiting.badges == (RunBadge.PREEMPTED,)
    assert waiting.shown_status == "queued · preempted, resumes"
    _train(store, run_id, range(2, 4))
    store.finish(run_id, WORKER, RunStatus.COMPLETED)
    done = store.get_run(run_id)
    assert done.preemptions == 1 and done.error is None  # the note is gone, the count is not
    assert done.shown_status == "completed · resumed" and not done.pruned


def test_a_pruned_run_is_not_a_plain_completed_one(db_url):
    store = Store(db_url)
    run_id = store.submit(TINY)
    _train(store, run_id, range(1, 2))
    store.finish(run_id, WORKER, RunStatus.COMPLETED, error="pruned at epoch 1 by the median pruner (trial 3)")
    run = store.get_run(run_id)
    assert run.pruned and run.shown_status == "completed · pruned"
    other = store.submit(TINY)
    _train(store, other, range(1, 2))
    store.finish(other, WORKER, RunStatus.COMPLETED, error="target reached at epoch 1")
    assert not store.get_run(other).pruned


def test_a_continuation_and_a_fork_are_told_apart(db_url):
    store = Store(db_url)
    parent = store.submit(TINY.replace(epochs=2))
    _train(store, parent, range(1, 3))
    store.finish(parent, WORKER, RunStatus.COMPLETED, checkpoint=b"weights")
    child, _, _ = continue_run(store, parent, 2)
    fork = queue_grid(store, [TINY.replace(lr=0.01)], name="fork", spec={}, is_sweep=False,
                      fork=(store.get_run(parent), 2, b"weights")).run_ids[0]
    assert store.get_run(child).badges == (RunBadge.CONTINUED,)
    assert store.get_run(fork).badges == (RunBadge.FORKED,)
    assert store.get_run(child).continues_parent and not store.get_run(fork).continues_parent


@pytest.mark.parametrize("value, shown", [
    (0.001202222703522498, "0.00120"), (0.81234, "0.812"), (1 / 9, "0.111"), (0.9996, "1.00"),
    (99.95, "100"), (1234.56, "1230"), (10000, "10000"), (15, "15"), (0.001, "0.001"), (0.5, "0.5"),
    (3.2e-5, "3.20e-5"), (-0.011, "-0.011"), (np.float32(0.25), "0.25"), (np.int64(7), "7"),
    (None, ""), (math.nan, ""), ("lstm", "lstm"), (True, "True"),
])
def test_numbers_are_rounded_to_three_significant_figures(value, shown):
    assert rounded(value) == shown


def test_a_difference_is_signed():
    assert rounded(0.0579, signed=True) == "+0.0579"
    assert rounded(-0.08, signed=True) == "-0.08"
    assert rounded(0.0, signed=True) == "0"
