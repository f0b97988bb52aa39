"""The dashboard starts its local worker again when it exits with runs still queued, a bounded
number of times, and says so in its log. A stand-in process (a sleep) takes the worker's place:
what is supervised is the process's exit, not what it trains."""

from __future__ import annotations

import signal
import sys
import time

import pytest
from ui_store import TINY

from seqcopy.runs.store import Store
from seqcopy.ui.local_worker import LocalWorker


class SleepingWorker(LocalWorker):
    def command(self) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def worker():
    made = SleepingWorker("sqlite:///unused.db", limit=2, window=600.0, delay=0.0)
    made.start()
    yield made
    made.stop(wait=1.0)


def kill(worker: LocalWorker, how: int = signal.SIGTERM) -> None:
    worker.process.send_signal(how)
    worker.process.wait(10)


def test_a_killed_worker_is_restarted_while_runs_are_queued_and_not_past_the_bound(worker, capsys):
    first = worker.pid
    assert worker.supervise(queued=True, now=0.0).restarted is False  # alive: nothing to do
    kill(worker)
    nothing_queued = worker.supervise(queued=False, now=1.0)
    assert not nothing_queued.restarted and not worker.alive() and nothing_queued.exit_code is not None
    once = worker.supervise(queued=True, now=2.0)
    assert once.restarted and worker.alive() and worker.pid != first
    assert once.note == "The local worker exited; restarted it (1 of at most 2)."
    kill(worker, signal.SIGKILL)
    twice = worker.supervise(queued=True, now=3.0)
    assert twice.restarted and twice.restarts == 2 and worker.starts == 3
    kill(worker)
    past = worker.supervise(queued=True, now=4.0)
    assert past.gave_up and not past.restarted and not worker.alive() and worker.starts == 3
    assert "the most it is restarted on its own" in past.note
    assert worker.supervise(queued=True, now=5.0).gave_up and worker.starts == 3  # still not, and said once
    log = capsys.readouterr().err
    assert log.count("restarted it as pid") == 2 and log.count("not restarting it") == 1
    # Once the restarts are older than the window, it is restarted again.
    assert worker.supervise(queued=True, now=700.0).restarted and worker.starts == 4


def test_a_persons_restart_resets_the_count(worker):
    for now in (1.0, 2.0, 3.0):
        kill(worker)
        worker.supervise(queued=True, now=now)
    assert not worker.alive()
    worker.restart()
    assert worker.alive() and worker.supervise(queued=True, now=4.0).restarts == 0
    kill(worker)
    assert worker.supervise(queued=True, now=5.0).restarted


def test_a_sigterm_puts_the_run_back_and_the_restarted_worker_resumes_it(tmp_path, monkeypatch):
    """The tour's case for real: SIGTERM to the local worker mid-run; the run waits, preempted,
    and the worker started again by supervise goes on from its state."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(url)
    run_id = store.submit(TINY.replace(epochs=500))  # far longer than the test waits: it is cancelled

    def wait_for(condition, seconds: float = 60.0):
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert condition()

    worker = LocalWorker(url, delay=0.0)
    worker.start()
    try:
        wait_for(lambda: store.get_run(run_id).epochs_done >= 2)
        kill(worker)  # SIGTERM: the worker records its epoch and puts the run back
        waiting = store.get_run(run_id)
        assert waiting.shown_status == "queued · preempted, resumes", waiting.shown_status
        stopped = next(w for w in store.list_workers() if w.id == worker.worker_id)
        assert stopped.state() == "stopped"
        assert worker.supervise(queued=True).restarted
        wait_for(lambda: store.get_run(run_id).status == "running")
        assert store.get_run(run_id).shown_status == "running · resumed"
    finally:
        store.request_cancel(run_id)
        worker.stop(wait=30.0)


def test_an_exited_worker_waits_out_the_delay_before_its_restart():
    made = SleepingWorker("sqlite:///unused.db", limit=2, window=600.0, delay=4.0)
    made.start()
    try:
        kill(made)
        assert not made.supervise(queued=True, now=10.0).restarted  # noticed: the run shows preempted
        assert not made.supervise(queued=True, now=13.0).restarted
        assert made.supervise(queued=True, now=14.5).restarted and made.alive()
    finally:
        made.stop(wait=1.0)
