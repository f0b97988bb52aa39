"""Workers against SQLite and a real PostgreSQL server: several worker processes sharing a queue
while the app reads, a worker killed mid-run, cancel, SIGTERM, and a run whose training fails.

Worker processes run ``python -m seqcopy worker`` with OMP_NUM_THREADS=1: two multi-threaded torch
processes on a 2-core machine thrash.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY

from seqcopy.cli import commands as cli
from seqcopy.core import checkpoint
from seqcopy.runs.store import Store

REPO = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

# About 0.2-0.4 s an epoch on one thread: slow enough to act on mid-run, never left to finish.
SLOW = TINY.replace(hidden_size=32, train_samples=3000, epochs=40)
# A run to interrupt and resume: 10 epochs of SLOW's size, with the curriculum and fresh data.
RESUMABLE = SLOW.replace(epochs=10, cell="gru", train_seq_len=6, train_output_len=6, curriculum=True,
                         curriculum_start=2, fresh_data=True, lr_schedule="cosine", lr=0.01)


def start_worker(url: str, *extra: str, lease: float = 5, idle_exit: float | None = 3) -> subprocess.Popen:
    command = [sys.executable, "-m", "seqcopy", "worker", "--db", url, "--lease", str(lease)]
    if idle_exit is not None:
        command += ["--idle-exit", str(idle_exit)]
    return subprocess.Popen(
        command + list(extra), cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def finish(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"worker {process.pid} did not exit: {err[-2000:]}") from None
    return process.returncode, err


@pytest.fixture
def store(db_url):
    store = Store(db_url)
    yield store
    store.close()


def assert_epochs_consistent(store: Store, run) -> list[int]:
    numbers = [row["epoch"] for row in store.epochs([run.id])]
    assert numbers == list(range(1, run.epochs_done + 1)), (run.id, numbers, run.epochs_done)
    return numbers


# ---------------------------------------------------------------------------- many workers
def test_three_workers_run_every_run_exactly_once_while_the_app_reads(store, db_url):
    configs = [TINY.replace(cell=cell, seed=seed) for cell in ("rnn", "gru", "lstm", "mgru") for seed in (0, 1, 2)]
    ids = store.submit_many(configs)
    assert len(ids) == 12

    # The app: list, count and read epochs, runs and checkpoints in a loop while workers write.
    reader_errors: list[str] = []
    reads = 0
    stop = threading.Event()

    def app_reads():
        nonlocal reads
        app = Store(db_url)
        try:
            while not stop.is_set():
                try:
                    runs = app.list_runs()
                    app.list_runs(statuses=("running",))
                    app.epochs([run.id for run in runs])
                    app.get_run(ids[reads % len(ids)])
                    app.checkpoint_ids()
                    app.position_results(ids)
                    reads += 1
                    time.sleep(0.005)  # a busy app, not a spinning core stolen from the workers
                except Exception as error:  # noqa: BLE001 - every error is a failure here
                    reader_errors.append(f"{type(error).__name__}: {error}")
        finally:
            app.close()

    reader = threading.Thread(target=app_reads)
    reader.start()
    workers = [start_worker(db_url, lease=5, idle_exit=3) for _ in range(3)]
    try:
        outcomes = [finish(worker, timeout=120) for worker in workers]
    finally:
        stop.set()
        reader.join()
    for code, err in outcomes:
        assert code == 0, err
        assert "Traceback" not in err, err

    assert reader_errors == [], reader_errors[:3]
    assert reads > 10
    runs = {run.id: run for run in store.list_runs()}
    assert set(runs) == set(ids)  # none lost, none invented
    names = {f":{worker.pid}" for worker in workers}
    for run_id in ids:
        run = runs[run_id]
        assert run.status == "completed", (run_id, run.status, run.error)
        assert run.epochs_done == run.epochs_total == 3
        assert_epochs_consistent(store, run)  # no epoch twice, none missing
        assert any(run.worker_id.endswith(name) for name in names), run.worker_id
    assert store.checkpoint_ids() == set(ids)
    assert len(store.epochs(ids)) == 12 * 3
    # Each worker reports how many runs it did; together exactly twelve.
    done = sum(int(err.strip().splitlines()[-1].split(" after ")[1].split(" ")[0]) for _, err in outcomes)
    assert done == 12


# ---------------------------------------------------------------------------- recovery
def test_a_killed_workers_run_resumes_after_its_lease_bit_for_bit(store, db_url):
    """SIGKILL after a first epoch: the lease lapses, the next worker resumes the run from its
    state, and its epochs and final weights are those of the same run left alone (a second run of
    the same config, trained uninterrupted by a worker process on one thread as well)."""
    slow_id, alone_id = store.submit_many([RESUMABLE, RESUMABLE])
    victim = start_worker(db_url, lease=2, idle_exit=None)
    try:
        wait_for(lambda: store.get_run(slow_id).epochs_done >= 1, 60, "a first epoch")
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
    killed_at = time.time()
    before = store.get_run(slow_id)
    assert before.status == "running" and before.worker_id.endswith(f":{victim.pid}")
    assert_epochs_consistent(store, before)

    # Another worker takes the dead run back after its lease, resumes it, then trains the next.
    rescuer = start_worker(db_url, lease=2, idle_exit=3)
    code, err = finish(rescuer, timeout=120)
    assert code == 0, err
    after = store.get_run(slow_id)
    assert after.status == "completed" and after.restarts == 1
    assert after.started_at >= killed_at + 1  # not before the 2 s lease lapsed
    assert_same_run(store, slow_id, alone_id)
    assert store.list_runs(statuses=("running",)) == []  # never left running


def assert_same_run(store: Store, run_id: int, reference_id: int) -> None:
    """Every epoch's metrics and the final weights of two runs equal, bit for bit."""
    rows, reference = store.epochs([run_id]), store.epochs([reference_id])
    assert [row["epoch"] for row in rows] == list(range(1, RESUMABLE.epochs + 1))
    skip = {"run_id", "wall_time", "seconds", "samples_per_sec"}
    assert [{k: v for k, v in row.items() if k not in skip} for row in rows] == [
        {k: v for k, v in row.items() if k not in skip} for row in reference]
    first, _ = checkpoint.from_bytes(store.checkpoint(run_id))
    second, _ = checkpoint.from_bytes(store.checkpoint(reference_id))
    a, b = first.state_dict(), second.state_dict()
    assert all(torch.equal(a[name], b[name]) for name in a)


# ---------------------------------------------------------------------------- cancel and stop
def test_cancel_of_a_queued_run_through_the_cli(store, db_url, capsys):
    run_id = store.submit(TINY)
    assert cli.main(["cancel", str(run_id), "--db", db_url]) == 0
    assert f"run {run_id} cancelled" in capsys.readouterr().out
    run = store.get_run(run_id)
    assert run.status == "cancelled" and run.epochs_done == 0 and store.epochs([run_id]) == []
    assert store.checkpoint(run_id) is None


def test_cancel_of_a_running_run_stops_within_one_epoch(store, db_url, capsys):
    run_id = store.submit(SLOW)
    worker = start_worker(db_url, lease=2, idle_exit=1)
    try:
        wait_for(lambda: store.get_run(run_id).epochs_done >= 1, 60, "a first epoch")
        before = store.get_run(run_id).epochs_done
        assert cli.main(["cancel", str(run_id), "--db", db_url]) == 0
        at_cancel = store.get_run(run_id).epochs_done  # read after the request is committed
        assert "will stop" in capsys.readouterr().out
        wait_for(lambda: store.get_run(run_id).status != "running", 30, "the run to stop")
    finally:
        code, err = finish(worker)
    assert code == 0, err
    run = store.get_run(run_id)
    assert run.status == "cancelled" and "cancelled by request" in run.error
    # At most the epoch in progress when the request was committed is finished and recorded.
    assert before <= run.epochs_done <= at_cancel + 1 < SLOW.epochs
    assert_epochs_consistent(store, run)
    blob = store.checkpoint(run_id)
    assert blob is not None
    model, config = checkpoint.from_bytes(blob)
    assert config == SLOW


def test_sigterm_finishes_the_epoch_queues_the_run_with_its_state_and_the_next_worker_finishes_it(store, db_url):
    run_id, alone_id = store.submit_many([RESUMABLE, RESUMABLE])
    worker = start_worker(db_url, lease=2, idle_exit=None)
    try:
        wait_for(lambda: store.get_run(run_id).epochs_done >= 1, 60, "a first epoch")
        at_signal = store.get_run(run_id).epochs_done
        worker.send_signal(signal.SIGTERM)
    finally:
        code, err = finish(worker, timeout=30)
    assert code == 0, err
    assert "Traceback" not in err
    run = store.get_run(run_id)
    # The epoch in progress when the signal came was finished and recorded with its state, and
    # the run went back to the queue: not cancelled.
    assert run.status == "queued" and run.worker_id is None
    assert at_signal + 1 <= run.epochs_done <= at_signal + 2 < RESUMABLE.epochs
    assert run.error == f"preempted at epoch {run.epochs_done}; resumes"
    assert store.resume_state(run_id)[0] == run.epochs_done
    assert_epochs_consistent(store, run)

    second = start_worker(db_url, lease=2, idle_exit=2)
    code, err = finish(second, timeout=120)
    assert code == 0, err
    assert store.get_run(run_id).status == "completed"
    assert_same_run(store, run_id, alone_id)


def test_a_training_exception_fails_the_run_and_the_worker_goes_on(store, monkeypatch, one_thread):
    import seqcopy.runs.worker as worker_module

    real_train = worker_module.train

    def flaky_train(config, **kwargs):
        if config.seed == 1:
            raise RuntimeError("the GPU caught fire (seed 1)")
        return real_train(config, **kwargs)

    monkeypatch.setattr(worker_module, "train", flaky_train)
    ids = store.submit_many([TINY.replace(seed=seed) for seed in (0, 1, 2)])
    worker = worker_module.Worker(store, worker_id="test:1", lease=5, poll=0.05)
    assert worker.run(idle_exit=0.1) == 3
    statuses = {run.id: run for run in store.list_runs()}
    assert [statuses[i].status for i in ids] == ["completed", "failed", "completed"]
    error = statuses[ids[1]].error
    assert error.startswith("RuntimeError: the GPU caught fire (seed 1)")
    assert store.checkpoint(ids[1]) is None and store.checkpoint(ids[2]) is not None


def test_a_diverging_run_fails_on_one_line_with_its_epochs_kept(store, nan_loss_from_batch, one_thread):
    from seqcopy.runs.worker import Worker

    config = TINY.replace(epochs=3)
    nan_loss_from_batch(2 * config.batches_per_epoch + 1)  # epoch 3, batch 1
    run_id = store.submit(config)
    assert Worker(store, worker_id="test:nan", lease=5).run(once=True) == 1
    run = store.get_run(run_id)
    assert run.status == "failed" and run.epochs_done == 2
    assert run.error == ("training diverged at epoch 3, batch 1: the loss is nan; "
                         "try a lower learning rate or --clip norm")
    assert [row["epoch"] for row in store.epochs([run_id])] == [1, 2]
    assert store.checkpoint(run_id) is not None  # the weights of epoch 2, downloadable from the Runs page


def test_worker_once_runs_one_and_exits(store, one_thread):
    from seqcopy.runs.worker import Worker

    first, second = store.submit_many([TINY, TINY.replace(seed=1)])
    assert Worker(store, worker_id="test:once", lease=5).run(once=True) == 1
    assert store.get_run(first).status == "completed"
    assert store.get_run(second).status == "queued"
    assert Worker(store, worker_id="test:once", lease=5).run(once=True) == 1
    assert Worker(store, worker_id="test:once", lease=5).run(once=True) == 0  # empty queue: exits


def test_a_run_taken_back_is_not_counted_as_done_by_the_worker_nor_in_its_row(store, monkeypatch, one_thread):
    from seqcopy.runs.store import LeaseLost
    from seqcopy.runs.worker import Worker

    run_id = store.submit(TINY)

    def taken_back(*args, **kwargs):
        raise LeaseLost(f"run {run_id} is no longer held")

    monkeypatch.setattr(store, "record_epoch", taken_back)
    assert Worker(store, worker_id="test:lost", lease=5).run(once=True) == 0  # what `worker` prints
    (row,) = store.list_workers()
    assert row.runs_done == 0  # what `seqcopy workers` and the Launch page show


def test_the_worker_survives_a_database_outage(store, monkeypatch, one_thread, capsys):
    from sqlalchemy.exc import OperationalError

    from seqcopy.runs.worker import Worker

    run_id = store.submit(TINY)
    real_claim, outages = Store.claim, []

    def flaky_claim(self, *args, **kwargs):
        if len(outages) < 2:
            outages.append(1)
            raise OperationalError("SELECT …", {}, Exception("server closed the connection unexpectedly"))
        return real_claim(self, *args, **kwargs)

    monkeypatch.setattr(Store, "claim", flaky_claim)
    assert Worker(store, worker_id="test:outage", lease=5, poll=0.01).run(idle_exit=0.1) == 1
    assert store.get_run(run_id).status == "completed"
    assert capsys.readouterr().err.count("database unavailable") == 2


def test_sigterm_stops_an_idle_worker_at_once(sqlite_url):
    Store(sqlite_url).close()
    worker = start_worker(sqlite_url, idle_exit=None)
    try:
        line = worker.stderr.readline()  # "worker host:pid on URL" once its handlers are in place
        assert f":{worker.pid} on " in line
        worker.send_signal(signal.SIGTERM)
    finally:
        code, err = finish(worker, timeout=15)
    assert code == 0 and "stopped after 0 run(s)" in err


def test_a_stop_during_the_last_epoch_still_completes_the_run(sqlite_url):
    """SIGTERM while the final epoch runs: every epoch finished, so the run completes with its
    final results instead of being marked cancelled."""

    from seqcopy.config import RunConfig
    from seqcopy.runs.store import Store
    from seqcopy.runs.worker import RunExecution, StopSignals

    store = Store(sqlite_url)
    config = RunConfig(train_seq_len=4, test_seq_len=6, padding=2, train_output_len=4, test_output_len=4,
                       batch_size=16, embedding_size=4, hidden_size=8, epochs=1, train_samples=32, test_samples=8)
    run_id = store.submit(config)
    run = store.claim("w")
    signals = StopSignals()
    signals.stop()  # the signal came before the (only, hence last) epoch ended
    assert RunExecution(store, run, "w", 30.0, signals).execute() == "completed"
    assert store.get_run(run_id).status == "completed"
    assert store.position_results([run_id]) and store.checkpoint(run_id)


def test_a_failing_heartbeat_is_logged_on_one_line_now_and_then_and_the_run_goes_on(sqlite_url, monkeypatch, one_thread,
                                                                                    capsys):
    """The heartbeat thread never dies of an error, nor hides it: one line on stderr, then at
    most one every 10 s, counting the ones in between."""
    import seqcopy.runs.worker as worker_module

    store = Store(sqlite_url)
    run_id = store.submit(TINY)
    run = store.claim("w", lease=1.0)
    beats = []

    def broken_heartbeat(*args, **kwargs):
        beats.append(time.monotonic())
        raise RuntimeError("the heartbeat broke")

    real_train = worker_module.train

    def train_after_three_beats(config, **kwargs):
        wait_for(lambda: len(beats) >= 3, 10, "three heartbeats")  # one every 0.25 s
        return real_train(config, **kwargs)

    monkeypatch.setattr(store, "heartbeat", broken_heartbeat)
    monkeypatch.setattr(worker_module, "train", train_after_three_beats)
    assert worker_module.RunExecution(store, run, "w", 1.0).execute() == "completed"
    assert store.get_run(run_id).status == "completed"
    lines = [line for line in capsys.readouterr().err.splitlines() if "heartbeat" in line]
    assert len(beats) >= 3  # it kept beating after the first failure
    assert lines[0] == f"worker w: heartbeat of run {run_id} failed (RuntimeError: the heartbeat broke); trying again"
    # Then at most a line every 10 s (none at all unless this machine is very slow today).
    assert len(lines) <= 1 + len(beats) // 40 and all("more like it" in line for line in lines[1:])
