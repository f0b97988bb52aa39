"""The worker: claim → train → record → finish, with a heartbeat, cancel and recovery.

Many workers, on one machine or many, share one database: each claims the oldest queued run
atomically, writes every epoch in its own transaction together with the heartbeat, and at the end
stores the checkpoint and the final results. A background thread renews the heartbeat (so a long
evaluation never looks like a dead worker) and watches for cancel requests, so the training loop
itself never waits on the database. Any worker takes back runs whose heartbeat lapsed past their
lease: their worker was killed, and they are marked failed with the reason, epochs kept.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable

from sqlalchemy.exc import OperationalError

from . import checkpoint
from .store import DEFAULT_LEASE, LeaseLost, RunInfo, Store, _describe, worker_name
from .train import EpochResult, Stopped, TrainResult, train


class RunExecution:
    """Trains one run that this worker holds, reporting to the store as it goes."""

    def __init__(
        self,
        store: Store,
        run: RunInfo,
        worker_id: str,
        lease: float,
        shutdown: threading.Event,
        on_epoch: Callable[[EpochResult], None] | None = None,
        on_batch: Callable[[int, int], None] | None = None,
        hurry: threading.Event | None = None,
    ):
        self.store = store
        self.run = run
        self.worker_id = worker_id
        self.beat_every = max(0.2, min(5.0, lease / 4))
        self.shutdown = shutdown  # set by SIGTERM/SIGINT: stop after the current epoch
        self.hurry = hurry or threading.Event()  # set by a second signal: stop at the next batch
        self.lease = lease
        self.cancelled = threading.Event()  # set when the user cancels: stop at the next batch
        self.lost = threading.Event()  # set when the run was taken back from us
        self.progress = (0, run.config.batches_per_epoch)
        self._done = threading.Event()
        self._listeners = (on_epoch, on_batch)  # extra reporting, e.g. the CLI's progress lines
        self.result: TrainResult | None = None

    # The training loop's callbacks: cheap, no database on the per-batch path.
    def _on_batch(self, done: int, total: int) -> None:
        self.progress = (done, total)
        if self._listeners[1] is not None:
            self._listeners[1](done, total)

    def _should_stop(self) -> bool:
        return self.cancelled.is_set() or self.lost.is_set() or self.hurry.is_set()

    def _on_epoch(self, result: EpochResult) -> None:
        if self._record_epoch(result):
            self.cancelled.set()
        if self._listeners[0] is not None:
            self._listeners[0](result)
        last = result.epoch == self.run.config.epochs  # a finished run completes, whatever came
        if not last and (self.shutdown.is_set() or self._should_stop()):
            raise Stopped  # the epoch is safely recorded; end the run here

    def _record_epoch(self, result: EpochResult) -> bool:
        """record_epoch, retried with backoff through a passing database outage (up to the
        lease: past it the run is no longer ours anyway)."""
        deadline, delay = time.monotonic() + self.lease, 0.5
        while True:
            try:
                return self.store.record_epoch(self.run.id, self.worker_id, result.to_dict())
            except OperationalError:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _heartbeat_loop(self) -> None:
        while not self._done.wait(self.beat_every):
            try:
                if self.store.heartbeat(self.run.id, self.worker_id, *self.progress):
                    self.cancelled.set()
            except LeaseLost:
                self.lost.set()
                return
            except Exception:  # a transient database error must not kill the run; retry
                continue

    def execute(self) -> str:
        """Train the run to its end; returns the final status written."""
        beat = threading.Thread(target=self._heartbeat_loop, name=f"heartbeat-{self.run.id}", daemon=True)
        beat.start()
        try:
            result = self.result = train(
                self.run.config,
                on_epoch=self._on_epoch,
                on_batch=self._on_batch,
                should_stop=self._should_stop,
            )
        except LeaseLost:
            return "lost"
        except Exception as error:  # a failed run must not take the worker down
            message = f"{type(error).__name__}: {error}".strip()
            detail = traceback.format_exc(limit=3)
            self._finish("failed", error=f"{message}\n{detail}"[:4000])
            return "failed"
        finally:
            self._done.set()
            beat.join()
        if self.lost.is_set():
            return "lost"
        blob = checkpoint.to_bytes(result.model, self.run.config) if result.epochs else None
        if not result.stopped:
            self._finish("completed", checkpoint=blob, position_acc=result.position_acc, length_acc=result.length_acc)
            return "completed"
        if result.diverged:
            # A finished experiment whose answer is "this diverges": failed, with the reason on
            # one line, and the epochs and weights before the divergence kept.
            self._finish("failed", error=result.diverged, checkpoint=blob)
            return "failed"
        if self.cancelled.is_set():
            reason = f"cancelled by request after {len(result.epochs)} epoch(s)"
        else:
            reason = f"worker {self.worker_id} was stopped after {len(result.epochs)} epoch(s)"
        self._finish("cancelled", error=reason, checkpoint=blob)
        return "cancelled"

    def _finish(self, status: str, **details) -> None:
        try:
            self.store.finish(self.run.id, self.worker_id, status, **details)
        except LeaseLost:
            pass  # another worker already declared this run dead; its verdict stands
        except Exception as error:  # e.g. a checkpoint the database refuses: record why
            reason = f"could not record the {status} run: {type(error).__name__}: {_describe(error)}"
            try:
                self.store.finish(self.run.id, self.worker_id, "failed", error=reason)
            except Exception:
                pass  # the database is gone: the lease expiry will take the run back


class Worker:
    """Runs queued runs one after another until stopped (or after one, with ``once``)."""

    def __init__(self, store: Store, worker_id: str | None = None, lease: float = DEFAULT_LEASE, poll: float = 1.0):
        self.store = store
        self.worker_id = worker_id or worker_name()
        self.lease = lease
        self.poll = poll
        self.shutdown = threading.Event()
        self.hurry = threading.Event()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT finish the current epoch, record it, and stop; a second signal
        stops at the next batch (the run keeps its finished epochs)."""

        def stop(_signum, _frame):
            if self.shutdown.is_set():
                self.hurry.set()
            self.shutdown.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run_one(self) -> str | None:
        """Claim and train one run; None when the queue is empty."""
        self.store.reclaim_expired()
        run = self.store.claim(self.worker_id, self.lease)
        if run is None:
            return None
        return RunExecution(self.store, run, self.worker_id, self.lease, self.shutdown, hurry=self.hurry).execute()

    def run(self, once: bool = False, idle_exit: float | None = None) -> int:
        """Loop until shutdown; ``once`` stops after one run (or at once if none is queued);
        ``idle_exit`` stops after that many seconds with an empty queue. Returns runs done."""
        done, idle_since, failures = 0, time.monotonic(), 0
        while not self.shutdown.is_set():
            try:
                status = self.run_one()
                failures = 0
            except OperationalError as error:
                if once:
                    raise
                # The database went away for a moment (a server restart, a network cut): wait and
                # try again rather than die; a run in hand is taken back after its lease.
                failures += 1
                delay = min(30.0, self.poll * 2**failures)
                print(f"worker {self.worker_id}: database unavailable ({_describe(error)}); "
                      f"retrying in {delay:.1f} s", file=sys.stderr, flush=True)
                self.shutdown.wait(delay)
                status = None
            if status is not None:
                done += 1
                idle_since = time.monotonic()
            if once:
                break
            if status is None:
                if idle_exit is not None and time.monotonic() - idle_since > idle_exit:
                    break
                self.shutdown.wait(self.poll)
        return done
