"""``seqcopy report`` counts distinct seeds of distinct configurations: a continuation has its own
row, a seed trained again counts once, pruned runs are left out unless asked (and said), and a row
whose runs ran different code or libraries is flagged."""

from __future__ import annotations

import json

from test_report import epoch_row

from seqcopy.config import RunConfig
from seqcopy.results.report import build_report
from seqcopy.runs.states import PRUNED_PREFIX
from seqcopy.runs.store import Store, runs_t

BASE = RunConfig(cell="lstm", epochs=2, tag="t")
ENV = dict(from_epoch=0, seqcopy="0.1.0", git_commit="a" * 40, git_dirty=False, torch="2.5", numpy="2.1",
           python="3.12")


def record(store, config, accs, error=None, env=None, parent=None):
    if parent is None:
        run_id = store.submit(config)
    else:
        run_id = store.submit_child(config, parent, 2, b"state", epochs_done=0 if parent < 0 else 2)
    run = store.claim("w")
    for epoch, acc in enumerate(accs, start=1):
        store.record_epoch(run_id, "w", epoch_row(epoch, acc), token=run.claim_token)
    store.finish(run_id, "w", "completed", error=error, token=run.claim_token)
    if env is not None:
        with store._write() as conn:
            conn.execute(runs_t.update().where(runs_t.c.id == run_id).values(environments=json.dumps([env])))
    return run_id


def lstm_rows(text):
    return [line for line in text.splitlines() if line.startswith("| lstm")]


def test_a_continuation_is_its_own_row_and_a_repeated_seed_counts_once(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    parent = record(store, BASE.replace(seed=0), [0.5, 0.6])
    record(store, BASE.replace(seed=1), [0.5, 0.8])
    record(store, BASE.replace(seed=1), [0.5, 0.8])  # the same configuration and seed again
    record(store, BASE.replace(seed=0, epochs=4), [0.5, 0.6, 0.7, 0.9], parent=parent)
    text = build_report(store)
    scratch, continued = lstm_rows(text)
    assert "| 2 (0, 1) |" in scratch
    assert continued.startswith(f"| lstm (continues #{parent}) |") and "| 1 (0) |" in continued
    assert "1 repeat run of a seed left out" in text
    store.close()


def test_pruned_runs_are_left_out_of_the_means_unless_asked_and_said(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    record(store, BASE.replace(seed=0), [0.5, 0.9])
    record(store, BASE.replace(seed=1), [0.1], error=f"{PRUNED_PREFIX} at epoch 1")
    text = build_report(store)
    assert "| 1 (0) |" in lstm_rows(text)[0] and "1 pruned run left out" in text and "--include-pruned" in text
    included = build_report(store, include_pruned=True)
    assert "| 2 (0, 1) |" in lstm_rows(included)[0] and "pruned run" not in included
    store.close()


def test_a_row_whose_runs_ran_different_code_or_libraries_is_flagged(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    one = record(store, BASE.replace(seed=0), [0.5, 0.9], env=ENV)
    two = record(store, BASE.replace(seed=1), [0.5, 0.9], env=dict(ENV, git_commit="b" * 40, torch="2.6"))
    text = build_report(store)
    assert f"- lstm: runs differ in code, torch (runs #{one}, #{two})" in text
    store.close()


def test_the_by_table_counts_distinct_seeds_and_leaves_pruned_runs_out_too(tmp_path):
    from seqcopy.results.report import build_by_report

    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    parent = record(store, BASE.replace(seed=0), [0.5, 0.6])
    record(store, BASE.replace(seed=0), [0.5, 0.6])
    record(store, BASE.replace(seed=1), [0.1], error=f"{PRUNED_PREFIX} at epoch 1")
    record(store, BASE.replace(seed=0, epochs=4), [0.5, 0.6, 0.7, 0.9], parent=parent)
    text = build_by_report(store, "hidden_size")
    scratch, continued = lstm_rows(text)
    assert "| 1 (0) |" in scratch and continued.startswith(f"| lstm (continues #{parent}) |")
    assert "1 repeat run of a seed left out" in text and "1 pruned run left out" in text
    store.close()
