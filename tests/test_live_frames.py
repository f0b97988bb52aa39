"""The live state's pure parts: the run table's progress, statuses and badges, a fork drawn from
its parent's epoch, the CSV's columns, rounded group labels, and the sidebar's line about the
local worker as the store's heartbeats tell it."""

from __future__ import annotations

import dataclasses

import pandas as pd
from ui_store import TINY, epoch_row

from seqcopy.config import RunConfig
from seqcopy.runs.states import RunStatus
from seqcopy.runs.store import RunInfo, WorkerInfo
from seqcopy.ui import frames
from seqcopy.ui.workers import local_worker_line

NOW = 1_800_000_000.0


def run(run_id: int, config: RunConfig = TINY, **fields) -> RunInfo:
    base = dict(id=run_id, config=config, status=RunStatus.COMPLETED, tag="", created_at=NOW - 60, started_at=NOW - 50,
                finished_at=NOW - 10, worker_id=None, heartbeat_at=None, cancel_requested=False, error=None,
                epochs_done=config.epochs, epochs_total=config.epochs, batch_done=0, batch_total=0, latest={})
    return RunInfo(**{**base, **fields})


def epochs_of(run_id: int, numbers: range) -> list[dict]:
    return [{"run_id": run_id, "wall_time": NOW + epoch, **epoch_row(epoch, 0, "lstm")} for epoch in numbers]


def test_the_table_shows_epochs_done_of_total_and_the_status_with_its_badges():
    runs = [
        run(1, status=RunStatus.RUNNING, epochs_done=10, epochs_total=15, finished_at=None),
        run(2, status=RunStatus.QUEUED, preemptions=1, epochs_done=4, epochs_total=15, error="preempted at epoch 4; "
            "resumes"),
        run(3, error="pruned at epoch 2 by the median pruner (trial 3)"),
        run(4, parent_id=3, parent_epoch=2, sweep_id=9),
    ]
    frame = frames.runs_frame(runs, now=NOW).set_index("id")
    assert frame.loc[1, "epochs"] == "10/15"  # not '66.67%'
    assert frame.loc[2, "shown_status"] == "queued · preempted, resumes" and frame.loc[2, "status"] == "queued"
    assert frame.loc[3, "shown_status"] == "completed · pruned" and frame.loc[3, "badges"] == "pruned"
    assert frame.loc[4, "badges"] == "forked"
    # The status filter matches the plain word; the badge filter any of the badges asked for.
    table = frame.reset_index()
    assert list(frames.filter_runs(table, statuses=["completed"])["id"]) == [3, 4]
    assert list(frames.filter_runs(table, badges=["preempted", "forked"])["id"]) == [2, 4]


def test_a_fork_is_drawn_from_its_parents_epoch_and_keeps_its_own_for_hover():
    parent = run(1, TINY.replace(epochs=4))
    fork = run(2, TINY.replace(epochs=2), parent_id=1, parent_epoch=3, sweep_id=5)
    # A continuation already numbers its epochs on from its parent's: no shift.
    continuation = run(3, TINY.replace(epochs=6), parent_id=1, parent_epoch=4)
    rows = epochs_of(1, range(1, 5)) + epochs_of(2, range(1, 3)) + epochs_of(3, range(5, 7))
    infos = {1: parent, 2: fork, 3: continuation}
    drawn = frames.epochs_frame(rows, infos, lineage_axis=True)
    by_run = {i: group for i, group in drawn.groupby("run_id")}
    assert by_run[2]["epoch"].tolist() == [4, 5] and by_run[2]["run_epoch"].tolist() == [1, 2]
    assert by_run[1]["epoch"].tolist() == [1, 2, 3, 4]
    assert by_run[3]["epoch"].tolist() == [5, 6] == by_run[3]["run_epoch"].tolist()
    # Compare's seed bands keep each run's own epochs.
    plain = frames.epochs_frame(rows, infos)
    assert plain[plain["run_id"] == 2]["epoch"].tolist() == [1, 2]
    assert frames.fork_offset(fork) == 3 and frames.fork_offset(continuation) == 0 == frames.fork_offset(parent)


def test_the_csv_has_every_setting_the_status_and_badges_and_exact_values():
    config = TINY.replace(cell="lstm", lr=0.001202222703522498, seed=4)
    infos = {7: run(7, config, status=RunStatus.QUEUED, preemptions=1, parent_id=2, parent_epoch=3, sweep_id=1)}
    rows = epochs_of(7, range(1, 3))
    rows[0]["test_loss"] = 0.123456789
    table = frames.metrics_export(rows, infos)
    assert list(table.columns[:6]) == ["run_id", "cell", "seed", "status", "badges", "lineage"]
    for name in RunConfig().to_dict():
        assert (name if name != "lr" else "lr_setting") in table.columns, name
    first = table.iloc[0]
    assert (first["cell"], first["seed"], first["status"]) == ("lstm", 4, "queued")
    assert first["badges"] == "preempted, forked" and first["lineage"] == "from #2 @ epoch 3"
    assert first["lr_setting"] == 0.001202222703522498 and first["test_loss"] == 0.123456789  # exact
    assert "lr" in table.columns  # the epoch's own rate stays under its name
    # Through a CSV and back, nothing is rounded.
    again = pd.read_csv(pd.io.common.StringIO(table.to_csv(index=False)))
    assert again["lr_setting"].iloc[0] == 0.001202222703522498


def test_group_labels_round_numbers_to_three_significant_figures():
    a = run(1, TINY.replace(lr=0.001202222703522498))
    assert frames.group_of(a, "lr") == "0.00120"
    assert frames.group_of(a, ("cell", "lr", "curriculum")) == f"{TINY.cell}, lr=0.00120, curriculum=False"
    assert frames.group_of(a, "train_seq_len") == str(TINY.train_seq_len)  # whole numbers stay whole
    b = run(2, TINY.replace(lr=0.5))
    assert "0\\.00120: a single seed" in frames.group_summary([a, b], ("lr",))  # markdown-escaped


def worker(beat_ago: float, stopped: bool = False, run_id: int | None = None, lease: float = 60.0) -> WorkerInfo:
    return WorkerInfo(id="box:42", host="box", pid=42, device="cpu", serves="cpu", threads=1, origin="dashboard",
                      started_at=NOW - 600, heartbeat_at=NOW - beat_ago, lease_seconds=lease, run_id=run_id,
                      stopped_at=NOW - beat_ago if stopped else None)


def test_the_sidebar_line_comes_from_the_heartbeats():
    def line(workers, alive=True):
        return local_worker_line("box:42", 42, alive, workers, NOW)

    starting = line([])
    assert starting.ok and starting.text == "Local worker: starting (pid 42)"
    live = line([worker(2.0, run_id=7)])
    assert live.ok and live.text.startswith("Local worker: live (pid 42) · training #7")
    # A process that still runs but has not beaten for longer than its lease: vanished, not 'running'.
    vanished = line([worker(300.0)])
    assert not vanished.ok and vanished.text.startswith("Local worker: vanished (pid 42): no heartbeat for 5 min")
    stopped = line([worker(5.0, stopped=True)], alive=False)
    assert not stopped.ok and stopped.text == "Local worker: stopped (pid 42) 5 s ago"
    # Killed outright, within its lease: the row still says live, the process has exited.
    killed = line([worker(2.0)], alive=False)
    assert not killed.ok and killed.text.startswith("Local worker: exited (pid 42)")
    other = dataclasses.replace(worker(1.0), id="box:43")
    assert line([other]).text == "Local worker: starting (pid 42)"  # another worker's row is not ours


def test_group_labels_round_but_never_merge_two_settings():
    from seqcopy.ui.frames import group_of, label_digits

    def run(run_id: int, lr: float) -> RunInfo:
        return RunInfo(id=run_id, config=RunConfig().replace(lr=lr), status=RunStatus.COMPLETED, tag="", created_at=0,
                       started_at=None, finished_at=None, worker_id=None, heartbeat_at=None, cancel_requested=False,
                       error=None, epochs_done=1, epochs_total=1, batch_done=0, batch_total=0, latest={})

    far = [run(1, 0.001202222703522498), run(2, 0.01)]
    assert label_digits(far, "lr") == 3 and group_of(far[0], "lr") == "0.00120"
    near = [run(1, 0.0012022), run(2, 0.0012049)]
    digits = label_digits(near, ("cell", "lr"))
    assert len({group_of(r, ("cell", "lr"), digits) for r in near}) == 2
    assert group_of(near[0], ("cell", "lr"), digits) == "rnn, lr=0.001202"
