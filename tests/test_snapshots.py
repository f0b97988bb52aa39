"""Snapshots for the Playground: the retention rule (which epochs' weights a run keeps, and the
bound on them), the store's snapshots table, the worker writing them (a resumed run the same as
one left alone), and the Playground at a chosen epoch."""

from __future__ import annotations

import pytest
import torch
import ui_store
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ui_pages import open_page, point_the_app_at, texts
from test_ui_playground import open_view

from seqcopy.core import checkpoint
from seqcopy.runs.snapshots import MAX_SNAPSHOTS, EpochPoint, bound_bytes, is_log_spaced, retained
from seqcopy.runs.store import Store
from seqcopy.runs.worker import RunExecution, StopSignals


def points(accs, stages=None):
    """A history: epoch i+1 with test copy accuracy accs[i], in stage N=stages[i] (4 throughout)."""
    stages = stages or [4] * len(accs)
    return [EpochPoint(i + 1, n, a) for i, (a, n) in enumerate(zip(accs, stages, strict=True))]


# ----------------------------------------------------------------------------- the rule
def test_log_spaced_epochs_are_the_powers_of_two():
    assert [e for e in range(1, 70) if is_log_spaced(e)] == [1, 2, 4, 8, 16, 32, 64]


def test_the_rule_keeps_log_spaced_epochs_stage_ends_and_the_best():
    # Stages N=2 (epochs 1-3), N=4 (4-6), N=8 (7-12); the best copy accuracy at epoch 11.
    accs = [0.1, 0.2, 0.3, 0.2, 0.4, 0.5, 0.3, 0.6, 0.7, 0.7, 0.9, 0.8]
    stages = [2] * 3 + [4] * 3 + [8] * 6
    assert retained(points(accs, stages), last_ends_stage=False) == {
        1: "log-spaced", 2: "log-spaced", 3: "end of stage N=2", 4: "log-spaced",
        6: "end of stage N=4", 8: "log-spaced", 11: "best so far",
    }
    # The run ends at epoch 12: it ends its stage too.
    assert retained(points(accs, stages), last_ends_stage=True)[12] == "end of stage N=8"


def test_a_beaten_best_goes_unless_it_is_kept_for_another_reason():
    assert retained(points([0.1, 0.2, 0.5]), False) == {1: "log-spaced", 2: "log-spaced", 3: "best so far"}
    assert retained(points([0.1, 0.2, 0.5, 0.6]), False) == {1: "log-spaced", 2: "log-spaced",
                                                            4: "log-spaced, best so far"}
    # A tie keeps the earlier best.
    assert retained(points([0.1, 0.2, 0.5, 0.5, 0.5]), False)[3] == "best so far"


def test_the_cap_holds_whatever_the_epochs_and_stages():
    # 10,000 epochs, a new stage every epoch (the worst case): 23 slots in epoch order, plus the best.
    history = [EpochPoint(e, e, e / 10_000) for e in range(1, 10_001)]
    kept = retained(history, last_ends_stage=True)
    assert len(kept) == MAX_SNAPSHOTS
    assert sorted(kept)[:MAX_SNAPSHOTS - 1] == list(range(1, MAX_SNAPSHOTS))
    assert kept[10_000] == "best so far"  # its stage end came after the slots were full
    # Without stages: the 14 log-spaced epochs up to MAX_EPOCHS and the best, well under the cap.
    flat = retained([EpochPoint(e, 4, 0.5) for e in range(1, 10_001)], last_ends_stage=False)
    assert sorted(flat) == [2**k for k in range(14)]
    with pytest.raises(ValueError, match="at least 1"):
        retained(history, False, cap=0)


def test_the_bound_in_bytes_at_the_original_final_size():
    from seqcopy.presets import BY_SLUG

    config = BY_SLUG["original-final"].config
    size = len(checkpoint.to_bytes(checkpoint.build_model(config), config))
    assert abs(size - 296_145) < 3_000  # the size docs/scaling.md quotes
    assert bound_bytes(296_145) == 24 * 296_145 == 7_107_480


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 20)), min_size=1, max_size=60), st.integers(1, 8))
def test_an_epoch_once_dropped_is_never_kept_again_and_the_cap_holds(steps, cap):
    """The rule applied after every epoch, as the worker does: the stored snapshots only lose
    epochs that no later epoch wants back, and never exceed the cap."""
    history, stage, dropped, before = [], 1, set(), {}
    for index, (moves, acc) in enumerate(steps):
        history.append(EpochPoint(index + 1, stage, acc / 20))
        ends = moves == 0 or index == len(steps) - 1
        kept = retained(history, ends, cap)
        assert len(kept) <= cap
        assert not dropped & set(kept)
        dropped |= set(before) - set(kept)
        before, stage = kept, stage + 1 if ends else stage


# ----------------------------------------------------------------------------- the store
def test_a_snapshot_is_written_read_back_once_and_pruned(db_url):
    store = Store(db_url)
    config = ui_store.TINY
    run_id = store.submit(config)
    store.claim(ui_store.WORKER)
    model = checkpoint.build_model(config)
    blob = checkpoint.to_bytes(model, config)
    row = ui_store.epoch_row(1, 0, "lstm")
    for _ in range(2):  # a retry after a lost reply: nothing doubles
        store.record_epoch(run_id, ui_store.WORKER, row, snapshot=blob, keep={1: "log-spaced, best so far"})
    assert [(s.epoch, s.size, s.reason) for s in store.snapshots(run_id)] == [(1, len(blob), "log-spaced, best so far")]
    loaded, loaded_config = checkpoint.from_bytes(store.snapshot(run_id, 1))
    assert loaded_config == config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(),
                                                 strict=True))
    # Epoch 3 is the new best: epoch 1 keeps its place as log-spaced, its reason updated.
    store.record_epoch(run_id, ui_store.WORKER, ui_store.epoch_row(3, 0, "lstm"), snapshot=blob,
                       keep={1: "log-spaced", 3: "best so far"})
    assert [(s.epoch, s.reason) for s in store.snapshots(run_id)] == [(1, "log-spaced"), (3, "best so far")]
    store.record_epoch(run_id, ui_store.WORKER, ui_store.epoch_row(4, 0, "lstm"), snapshot=blob,
                       keep={1: "log-spaced", 4: "log-spaced, best so far"})
    assert [s.epoch for s in store.snapshots(run_id)] == [1, 4]
    assert store.snapshot(run_id, 3) is None
    assert store.snapshot_sizes() == {run_id: 2 * len(blob)}
    store.finish(run_id, ui_store.WORKER, "completed", checkpoint=blob)
    store.delete_run(run_id)
    assert store.snapshots(run_id) == [] and store.snapshot_sizes() == {}


def test_an_older_store_gains_the_snapshots_table(sqlite_url):
    from sqlalchemy import inspect, text

    store = Store(sqlite_url)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE snapshots"))
        conn.execute(text("UPDATE meta SET value = '6' WHERE key = 'schema_version'"))
    store.close()
    store = Store(sqlite_url)
    assert "snapshots" in inspect(store.engine).get_table_names()
    assert store.snapshots(1) == []


# ----------------------------------------------------------------------------- the worker
CURRICULUM = ui_store.BASE_TINY.replace(epochs=6, curriculum=True, curriculum_start=2, curriculum_threshold=0.01,
                                        padding=1, seed=3)


def train_in_store(store: Store, config, stop_after: int | None = None) -> int:
    """Train ``config`` through a worker's RunExecution; with ``stop_after``, a signal after that
    epoch preempts it, and a second execution resumes it."""
    run_id = store.submit(config)
    signals = StopSignals()

    def maybe_stop(result):
        if result.epoch == stop_after:
            signals.stop()

    status = RunExecution(store, store.claim("w1"), "w1", 30.0, signals, on_epoch=maybe_stop).execute()
    if stop_after is not None:
        assert status == "preempted"
        status = RunExecution(store, store.claim("w2"), "w2", 30.0).execute()
    assert status == "completed"
    return run_id


def test_the_worker_keeps_what_the_rule_says_and_a_resumed_run_keeps_the_same(sqlite_url, one_thread):
    store = Store(sqlite_url)
    alone = train_in_store(store, CURRICULUM)
    resumed = train_in_store(store, CURRICULUM, stop_after=3)
    epochs = store.epochs([alone])
    history = [EpochPoint(e["epoch"], e["stage_output_len"], e["test_copy_acc"]) for e in epochs]
    expected = retained(history, last_ends_stage=True)
    assert {e["stage_output_len"] for e in epochs} == {2, 4}  # the curriculum moved on: a stage end in the middle
    kept = {s.epoch: s.reason for s in store.snapshots(alone)}
    assert kept == expected and any("end of stage N=2" in why for why in kept.values())
    assert {s.epoch: s.reason for s in store.snapshots(resumed)} == kept
    for epoch in kept:  # the same weights, bit for bit
        one, _ = checkpoint.from_bytes(store.snapshot(alone, epoch))
        two, _ = checkpoint.from_bytes(store.snapshot(resumed, epoch))
        assert all(torch.equal(a, b) for a, b in zip(one.state_dict().values(), two.state_dict().values(),
                                                     strict=True))
    # The last epoch's snapshot is the final checkpoint's weights.
    final, _ = checkpoint.from_bytes(store.checkpoint(alone))
    last, _ = checkpoint.from_bytes(store.snapshot(alone, CURRICULUM.epochs))
    assert all(torch.equal(a, b) for a, b in zip(final.state_dict().values(), last.state_dict().values(),
                                                 strict=True))


# ----------------------------------------------------------------------------- the Playground
@pytest.fixture(scope="module")
def trained_store(tmp_path_factory):
    """A run trained for real by a worker (snapshots kept) and one written without any (an older store)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('snapshots') / 'runs.db'}"
    store = Store(url)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trained = train_in_store(store, CURRICULUM.replace(epochs=5, tag="with snapshots"))
    finally:
        torch.set_num_threads(before)
    older = ui_store.add_run(store, ui_store.TINY.replace(tag="older store"), "completed")
    store.close()
    return url, trained, older


def plain(elements) -> str:
    """The elements' text with Markdown's escapes taken out, as a reader sees it."""
    return texts(elements).replace("\\", "")


def choose(at, run_id: int):
    models = at.selectbox(key="play_run")
    models.select_index(next(i for i, label in enumerate(models.options) if label.startswith(f"#{run_id} "))).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_playground_shows_the_model_at_the_chosen_epoch(trained_store, monkeypatch):
    url, trained, _ = trained_store
    point_the_app_at(url, monkeypatch)
    store = Store(url)
    kept = {s.epoch: s.reason for s in store.snapshots(trained)}
    at = choose(open_page("views/playground.py"), trained)
    at.text_input(key="play_text").set_value("axcr").run()
    slider = at.select_slider(key=f"play_epoch_{trained}")
    assert list(slider.options) == [str(e) for e in sorted(kept) if e < 5] + ["final"]
    assert slider.value == "final"
    assert "Showing the final model (epoch 5), the run's checkpoint." in plain(at.caption)
    final_copy = texts(at.markdown)
    for epoch in (1, 2):
        slider.set_value(epoch).run()
        assert not at.exception, [e.value for e in at.exception]
        assert f"Showing the model after epoch {epoch} of 5: kept as {kept[epoch]}." in plain(at.caption)
    # The epoch's own weights drive the views: its copy of the same sequence is the snapshot's.
    from seqcopy.ui.playground import marked_copy, run_copy

    model, config = checkpoint.from_bytes(store.snapshot(trained, 2))
    at_two = marked_copy(run_copy(model, config, "axcr"))
    assert at_two in texts(at.markdown) and "Wrote:" in final_copy
    # Every view draws, at that epoch, after which the slider still says epoch 2.
    assert at.get_by_key("play_inside") is not None
    open_view(at, "Which input each output reads")
    assert at.get_by_key("play_saliency") is not None
    open_view(at, "What if")
    assert f"**Original:** `axcr` → {at_two}" in texts(at.markdown)
    open_view(at, "Side by side")
    assert "· epoch 2" in texts(at.markdown)
    open_view(at, "State trajectory")
    assert at.get_by_key("play_pca") is not None
    assert at.select_slider(key=f"play_epoch_{trained}").value == 2


def test_a_run_without_snapshots_says_so_and_shows_its_final_model(trained_store, monkeypatch):
    url, _, older = trained_store
    point_the_app_at(url, monkeypatch)
    at = choose(open_page("views/playground.py"), older)
    assert not [s for s in at.select_slider if s.key == f"play_epoch_{older}"]
    assert "no snapshots kept for this run (an older store): showing its final model" in plain(at.caption)
    assert "Wrote:" in texts(at.markdown)
