"""The worker: claim → train → record → finish, with a heartbeat, cancel and recovery.

Many workers, on one machine or many, share one database: each claims the oldest queued run
atomically, writes every epoch in its own transaction together with the heartbeat, and at the end
stores the checkpoint and the final results. A background thread renews the heartbeat (so a long
evaluation never looks like a dead worker) and watches for cancel requests, so the training loop
itself never waits on the database. Each epoch's write also carries the run's resume state
(seqcopy.core.resume), so a worker stopped by SIGTERM or SIGINT puts its run back in the queue
("preempted at epoch k; resumes") and the next worker, anywhere, goes on from epoch k+1, bit for
bit on the CPU. Any worker takes back runs whose heartbeat lapsed past their lease: their worker
was killed, and they go back to the queue to resume, up to the run's max_restarts, then fail with
the reason (with no epoch done, queued again once).

Every write is retried through a passing outage (a server restart, a cut connection), the
final one too, while the heartbeat thread keeps the lease alive beside it; the store makes each
retry safe to repeat, so a reply lost after its COMMIT landed neither fails nor doubles a write.

A worker claims only runs whose device it serves (seqcopy.devices), and registers itself in the
store's workers table (host, pid, devices, threads, who started it, the run it trains), renewing
its own heartbeat there idle or busy (busy, in its run's heartbeat), so the dashboard and
``seqcopy workers`` show the capacity there is: a worker that stops says so; one killed stops
beating and is listed as vanished.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from seqcopy import devices
from seqcopy.core import checkpoint
from seqcopy.core.train import AfterEpoch, EpochResult, Stopped, TrainResult, train
from seqcopy.runs import snapshots, trials
from seqcopy.runs.lineage import kept_weights
from seqcopy.runs.retry import ThrottledLog, logger, retry
from seqcopy.runs.states import Outcome, RunStatus
from seqcopy.runs.store import (
    DEFAULT_LEASE,
    LeaseLost,
    RunInfo,
    Store,
    WorkerInfo,
    heartbeat_interval,
    is_transient,
    lease_problem,
    new_claim_token,
    worker_name,
)

T = TypeVar("T")
log = logger("worker")


class RunExecution:
    """Trains one run that this worker holds, reporting to the store as it goes."""

    def __init__(
        self,
        store: Store,
        run: RunInfo,
        worker_id: str,
        lease: float,
        signals: StopSignals | None = None,
        on_epoch: Callable[[EpochResult], None] | None = None,
        on_batch: Callable[[int, int], None] | None = None,
        requeue_on_stop: bool = True,
        state_every: StateEvery | None = None,
    ):
        self.store = store
        self.run = run
        # What trains: the config with the device the claim chose (an 'auto' run's answer).
        self.config = run.config.replace(device=run.device_used) if run.device_used else run.config
        self.worker_id = worker_id
        self.token = run.claim_token  # identifies this claim in every write
        self.beat_every = heartbeat_interval(lease)
        signals = signals or StopSignals()
        self.shutdown = signals.shutdown  # set by SIGTERM/SIGINT: stop after the current epoch
        self.hurry = signals.hurry  # set by a second signal: stop at the next batch
        self.lease = lease
        self.cancelled = threading.Event()  # set when the user cancels: stop at the next batch
        self.lost = threading.Event()  # set when the run was taken back from us
        self.progress = (0, run.config.batches_per_epoch)
        self._done = threading.Event()
        self._listeners = (on_epoch, on_batch)  # extra reporting, e.g. the CLI's progress lines
        self.result: TrainResult | None = None
        self.log = ThrottledLog(f"worker {worker_id}", log)
        # A stopped worker's run goes back to the queue to resume (a worker's); ``seqcopy train``
        # trains its run here and now, so a signal ends it cancelled instead.
        self.requeue_on_stop = requeue_on_stop
        self.state_every = state_every or StateEvery()
        self._state_at = (0, time.monotonic())  # (epoch, time) of the last resume state written
        self.resumed_from = 0  # the epoch of the resume state it started from (0: none)
        self.pruned: str | None = None  # why a search's pruner stopped this run (seqcopy.runs.trials)

    # The training loop's callbacks: cheap, no database on the per-batch path.
    def _on_batch(self, done: int, total: int) -> None:
        self.progress = (done, total)
        if self._listeners[1] is not None:
            self._listeners[1](done, total)

    def _should_stop(self) -> bool:
        return self.cancelled.is_set() or self.lost.is_set() or self.hurry.is_set()

    def _on_epoch(self, result: EpochResult, state: AfterEpoch, final: bool) -> None:
        """The epoch's row, when due the resume state after it, and the run's snapshots as the
        retention rule keeps them, in one write; then stop here if a signal, a cancel or a lost
        lease says so (a finished run completes, whatever came)."""
        stopping = not final and (self.shutdown.is_set() or self._should_stop())
        blob = state() if (final or stopping or self.state_every.due(result.epoch, *self._state_at)) else None
        if self._record_epoch(result, blob, *self._snapshot_plan(result, state)):
            self.cancelled.set()
        if blob is not None:
            self._state_at = (result.epoch, time.monotonic())
        if self._listeners[0] is not None:
            self._listeners[0](result)
        if not final and self.pruned is None and self.run.sweep_id is not None:
            verdict = self._ask_pruner(result.epoch)
            self.pruned = verdict.reason if verdict.stop else None
        if not final and (self.shutdown.is_set() or self._should_stop() or self.pruned):
            raise Stopped  # the epoch is safely recorded; end the run here

    def _ask_pruner(self, epoch: int) -> trials.PruneVerdict:
        """A search's trial: report this epoch to its pruner, which says go on or stop."""
        try:
            return trials.after_epoch(self.store, self.run.id, self.run.sweep_id, epoch)
        except Exception as error:  # noqa: BLE001 - a pruner's trouble must not cost the run: it trains on
            self.log("prune", f"could not report epoch {epoch} of run {self.run.id} to its search "
                              f"({type(error).__name__}: {self.store.describe(error)})")
            return trials.GO_ON

    def _snapshot_plan(self, result: EpochResult, after: AfterEpoch) -> tuple[bytes | None, dict[int, str] | None]:
        """(this epoch's snapshot bytes or None, epoch → reason of every snapshot kept) by the
        retention rule over the run's whole history (a resumed run's too, so it keeps what the run
        left alone would); (None, None) for a caller that shows no weights (snapshots untouched)."""
        history = getattr(after, "history", None)
        if history is None:
            return None, None
        points = [snapshots.EpochPoint(e.epoch, e.stage_output_len, e.test_copy_acc) for e in history]
        keep = snapshots.retained(points, after.stage_ends)
        # The bytes are taken only for an epoch kept: most epochs cost nothing here.
        data = checkpoint.to_bytes(after.model, self.run.config) if result.epoch in keep else None
        return data, keep

    def _record_epoch(self, result: EpochResult, state: bytes | None = None, snapshot: bytes | None = None,
                      keep: dict[int, str] | None = None) -> bool:
        return self._retry(
            lambda: self.store.record_epoch(self.run.id, self.worker_id, result.to_dict(), token=self.token,
                                            state=state, snapshot=snapshot, keep=keep),
            f"recording epoch {result.epoch} of run {self.run.id}",
        )

    def _record_environment(self, torch) -> None:
        """This segment's environment, on the run's record. A run resumed here trains with the
        thread count it started with (torch's reductions split by thread, so another count
        changes the last bits), restored once the run is done; where the rest cannot match (a
        GPU, another torch, a count torch refuses) the segment says its epochs agree with the
        run left alone to rounding only."""
        first = self.run.environments[0] if self.run.environments else None
        segment_exact, why = True, []
        if first is not None and self.resumed_from:
            if first.get("threads") and first["threads"] != torch.get_num_threads():
                torch.set_num_threads(int(first["threads"]))
            if first.get("threads") and torch.get_num_threads() != first["threads"]:
                why.append(f"{torch.get_num_threads()} threads here, {first['threads']} before")
            if first.get("torch") != torch.__version__:
                why.append(f"torch {torch.__version__} here, {first.get('torch')} before")
            devices_used = {str(first.get("device") or "cpu"), str(self.config.device)}
            if devices_used != {"cpu"}:
                why.append(f"trained on {' and '.join(sorted(devices_used))}: a GPU's kernels are not bit for bit "
                           "repeatable")
            segment_exact = not why
        from seqcopy.runs.provenance import environment

        segment = environment(self.resumed_from, self.config.device, self.worker_id)
        if not segment_exact:
            segment.update(exact=False, exact_note=f"epochs from {self.resumed_from + 1} agree with the run left "
                                                   f"alone to rounding only ({'; '.join(why)})")
        try:
            self._retry(lambda: self.store.add_environment(self.run.id, self.worker_id, segment, token=self.token),
                        f"recording the environment of run {self.run.id}")
        except LeaseLost:
            raise
        except Exception as error:  # noqa: BLE001 - provenance must not cost the run: it trains on, unrecorded
            self.log("environment", f"could not record the environment of run {self.run.id} "
                                    f"({type(error).__name__}: {self.store.describe(error)})")

    def _resume_state(self) -> bytes | None:
        """The run's resume state (a preempted or restarted run's, a continuation's or a fork's
        start), or None for a run from scratch."""
        found = self._retry(lambda: self.store.resume_state(self.run.id), f"reading the state of run {self.run.id}")
        if found is None:
            return None
        self.resumed_from, blob = found
        self._state_at = (self.resumed_from, time.monotonic())
        return blob

    def _retry(self, write: Callable[[], T], what: str) -> T:
        """``write()``, retried with backoff through a passing database outage for as long as
        the run is ours: until it lands, the run is taken back (LeaseLost), or a second signal
        says to stop now. Each write is safe to repeat (see Store)."""
        def passing(error: BaseException) -> bool:
            return is_transient(error) and not self.hurry.is_set()

        def before_wait(error: BaseException, _seconds: float) -> None:
            if self.lost.is_set():
                raise LeaseLost(f"run {self.run.id} was taken back while {what}") from None
            self.log("write", f"database unavailable while {what} ({self.store.describe(error)}); retrying")

        return retry(write, when=passing, first=0.5, longest=min(10.0, max(1.0, self.lease / 4)),
                     wait=self.hurry.wait, before_wait=before_wait)

    def _heartbeat_loop(self) -> None:
        """Renews the lease until the run's last write is done, whatever the training thread
        is doing: a long evaluation, or a final write waiting out an outage."""
        while not self._done.wait(self.beat_every):
            try:
                if self.store.heartbeat(self.run.id, self.worker_id, *self.progress, token=self.token):
                    self.cancelled.set()
            except LeaseLost:
                self.lost.set()
                return
            except Exception as error:  # noqa: BLE001 - never kill the run for a missed beat: say why, beat again
                self.log("heartbeat", f"heartbeat of run {self.run.id} failed "
                                      f"({type(error).__name__}: {self.store.describe(error)}); trying again")

    def execute(self) -> Outcome:
        """Train the run to its end and record it; returns the final status written, or how the
        run was handed on (preempted, or lost when it was taken back from this worker)."""
        beat = threading.Thread(target=self._heartbeat_loop, name=f"heartbeat-{self.run.id}", daemon=True)
        beat.start()
        try:
            return self._train_and_record()
        finally:  # only now: the heartbeat also covers the final write
            self._done.set()
            beat.join()

    def _train_and_record(self) -> Outcome:
        import torch

        threads_before = torch.get_num_threads()
        try:
            resume = self._resume_state()
            self._record_environment(torch)
            result = self.result = train(
                self.config,
                on_epoch_state=self._on_epoch,
                on_batch=self._on_batch,
                should_stop=self._should_stop,
                resume=resume,
            )
        except LeaseLost:
            return Outcome.LOST
        except Exception as error:  # noqa: BLE001 - a failed run must not take the worker down
            message = f"{type(error).__name__}: {error}".strip()
            detail = traceback.format_exc(limit=3)
            return self._finish(Outcome.FAILED, error=f"{message}\n{detail}"[:4000])
        finally:
            torch.set_num_threads(threads_before)
        if self.lost.is_set():
            return Outcome.LOST
        outcome, reason = ending_of(result, pruned=self.pruned, cancelled=self.cancelled.is_set(),
                                    requeue_on_stop=self.requeue_on_stop, worker_id=self.worker_id)
        if outcome == Outcome.PREEMPTED:
            return self._preempt(len(result.epochs))
        blob = checkpoint.to_bytes(result.model, self.run.config) if result.epochs else None
        results = {} if result.stopped else dict(position_acc=result.position_acc, length_acc=result.length_acc)
        return self._finish(outcome, error=reason, checkpoint=blob, **results)

    def _preempt(self, epochs: int) -> Outcome:
        """Back to the queue with the resume state: 'preempted', or 'cancelled' if a cancel came
        meanwhile, or 'lost'."""
        reason = f"preempted at epoch {epochs}; resumes"
        if self._state_at[0] != epochs:  # a second signal stopped it mid-epoch before a state of this epoch
            reason += f" from epoch {self._state_at[0] + 1}"
        try:
            self._retry(lambda: self.store.preempt(self.run.id, self.worker_id, reason, token=self.token),
                        f"putting run {self.run.id} back in the queue")
        except LeaseLost:
            return Outcome.LOST
        cancelled = self.store.get_run(self.run.id).status == RunStatus.CANCELLED
        if cancelled:
            keep_weights(self.store, self.run.id, self.log)
        return Outcome.CANCELLED if cancelled else Outcome.PREEMPTED

    def _finish(self, status: Outcome, **details) -> Outcome:
        """The final write (status, checkpoint, results: one transaction), retried through an
        outage; returns the status written, or 'lost'."""
        def write(final: str, **values) -> None:
            self.store.finish(self.run.id, self.worker_id, final, token=self.token, **values)

        try:
            self._retry(lambda: write(status, **details), f"recording run {self.run.id} as {status}")
            return status
        except LeaseLost:
            return Outcome.LOST  # another worker already declared this run dead; its verdict stands
        except Exception as error:  # noqa: BLE001 - e.g. a checkpoint the database refuses: record why
            reason = f"could not record the {status} run: {type(error).__name__}: {self.store.describe(error)}"
            self.log("finish", reason)
            try:
                self._retry(lambda: write(Outcome.FAILED, error=reason), f"recording run {self.run.id} as failed")
                return Outcome.FAILED
            except Exception as second:  # noqa: BLE001 - the database is gone for good: the lease takes the run back
                self.log(
                    "finish",
                    f"run {self.run.id} left to its lease: {type(second).__name__}: {self.store.describe(second)}",
                )
                return Outcome.LOST


def keep_weights(store: Store, run_id: int, log: ThrottledLog) -> None:
    """A run that ended between epochs keeps its last state's weights as its checkpoint
    (seqcopy.runs.lineage.kept_weights; nothing for a run queued again or one with a checkpoint)."""
    try:
        kept_weights(store, run_id)
    except Exception as error:  # noqa: BLE001 - the state stays; fork and evaluate convert it when asked
        log("weights", f"could not keep the weights of run {run_id} ({type(error).__name__}: {error})")


def ending_of(result: TrainResult, *, pruned: str | None, cancelled: bool, requeue_on_stop: bool,
              worker_id: str) -> tuple[Outcome, str | None]:
    """How a run that trained to its end or stopped ends, and the reason shown beside it: a run
    that was not stopped completed (with its --stop-at note); one whose loss diverged failed (its
    epochs and weights before that kept); a pruned one completed, its epochs a true, shorter run;
    a cancelled one cancelled; one stopped by a signal goes back to the queue to resume (a
    worker's), or ends cancelled (``seqcopy train`` trains its run here and now)."""
    epochs = len(result.epochs)
    if not result.stopped:
        return Outcome.COMPLETED, (f"target reached at epoch {result.target_epoch}"
                                   if result.target_epoch is not None else None)
    if result.diverged:
        return Outcome.FAILED, result.diverged
    if cancelled:
        return Outcome.CANCELLED, f"cancelled by request after {epochs} epoch(s)"
    if pruned:
        return Outcome.COMPLETED, pruned
    if requeue_on_stop:
        return Outcome.PREEMPTED, None
    return Outcome.CANCELLED, f"worker {worker_id} was stopped after {epochs} epoch(s)"


class StateEvery:
    """How often a worker writes the resume state: every ``epochs`` epochs or ``seconds``
    seconds, whichever comes first (either 0: not by that measure), and always after a run's last
    epoch and before it stops. ``parse('1')`` every epoch (the default: at most a few tenths of a
    percent of an epoch at the original final size, docs/scaling.md), ``parse('300s')`` every
    five minutes. A resume then goes on from the last state written, re-training (bit for bit the
    same) the epochs after it."""

    def __init__(self, epochs: int = 1, seconds: float = 0.0):
        self.epochs, self.seconds = epochs, seconds

    @classmethod
    def parse(cls, text: str) -> StateEvery:
        """'N' epochs or 'Ns' seconds; ValueError (one line) otherwise."""
        text = str(text).strip().lower()
        try:
            if text.endswith("s"):
                seconds = float(text[:-1])
                if not seconds > 0 or seconds == float("inf"):
                    raise ValueError
                return cls(epochs=0, seconds=seconds)
            epochs = int(text)
            if epochs < 1:
                raise ValueError
            return cls(epochs=epochs)
        except ValueError:
            raise ValueError(f"--state-every: a whole number of epochs (1, 5) or of seconds (300s), got {text!r}") \
                from None

    def due(self, epoch: int, last_epoch: int, last_time: float) -> bool:
        """Whether the state after ``epoch`` is written, the last being after ``last_epoch`` at ``last_time``."""
        if self.epochs and epoch - last_epoch >= self.epochs:
            return True
        return bool(self.seconds) and time.monotonic() - last_time >= self.seconds


class StopSignals:
    """What SIGINT and SIGTERM do to ``seqcopy worker``, ``train`` and ``ray``: the first one
    finishes the epoch in progress (``shutdown``), a second one stops at the next batch
    (``hurry``); ``count`` says how many came. :meth:`stop` does the same from any thread (a Ray
    actor's stop()); :meth:`install` makes the signals call it, :meth:`restore` puts the handlers
    before back."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.shutdown = threading.Event()
        self.hurry = threading.Event()
        self.count = 0
        self._before: dict = {}

    def stop(self) -> None:
        self.count += 1
        if self.shutdown.is_set():
            self.hurry.set()
        self.shutdown.set()

    def install(self) -> StopSignals:
        """Route SIGINT and SIGTERM here (from the main thread); returns self."""
        for sig in self.SIGNALS:
            self._before[sig] = signal.signal(sig, lambda _signum, _frame: self.stop())
        return self

    def restore(self) -> None:
        for sig, handler in self._before.items():
            signal.signal(sig, handler)
        self._before.clear()


def worker_origin() -> str | None:
    """Who started this worker, as the workers table shows it, when the caller does not say
    (the dashboard and ``seqcopy ray`` do): SEQCOPY_WORKER_ORIGIN, a label of the user's own
    (say 'systemd on box3'), else the Slurm job and array task it runs in."""
    given = os.environ.get("SEQCOPY_WORKER_ORIGIN", "").strip()
    if given:
        return given[:200]
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"slurm job {os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '?')}"
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm job {os.environ['SLURM_JOB_ID']}"
    return None


class Worker:
    """Runs queued runs that it can serve one after another until stopped (or after one, with
    ``once``). ``device``: what to serve (seqcopy.devices; DeviceUnavailable for a GPU this
    machine lacks)."""

    def __init__(
        self, store: Store, worker_id: str | None = None, lease: float = DEFAULT_LEASE, poll: float = 1.0,
        device: str = "auto", origin: str | None = None, state_every: StateEvery | None = None,
    ):
        problem = lease_problem(lease)
        if problem:
            raise ValueError(f"lease: {problem}")
        self.state_every = state_every
        self.store = store
        self.worker_id = worker_id or worker_name()
        self.lease = lease
        self.poll = poll
        self.device, self.serves = devices.serving(device)
        self.origin = origin if origin is not None else worker_origin()
        self.signals = StopSignals()
        self.shutdown, self.hurry = self.signals.shutdown, self.signals.hurry
        self.runs_done = 0  # runs it finished (a run taken back from it is not one)
        self.current_run: int | None = None
        self._claim_token: str | None = None  # kept until a claim is known to have been answered
        self._presence_done = threading.Event()
        self.log = ThrottledLog(f"worker {self.worker_id}", log)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT finish the current epoch, record it, and stop; a second signal
        stops at the next batch (the run keeps its finished epochs)."""
        self.signals.install()

    def stop(self) -> None:
        """What a signal does, callable from any thread (the Ray actor's stop())."""
        self.signals.stop()

    # ---------------------------------------------------------------- the workers table
    def registration(self) -> WorkerInfo:
        """This worker's row of the workers table, as it starts."""
        import torch  # loaded already: the worker trains

        now = time.time()
        host, _, pid = self.worker_id.rpartition(":")
        return WorkerInfo(
            id=self.worker_id, host=host or socket.gethostname(), pid=int(pid) if pid.isdecimal() else os.getpid(),
            device=self.device, serves=",".join(self.serves), threads=torch.get_num_threads(), origin=self.origin,
            started_at=now, heartbeat_at=now, lease_seconds=self.lease,
        )

    def _report(self) -> None:
        """Our row's heartbeat and current run; registers again if the row is missing. Never
        raises: the workers table is for people to look at, training must not wait on it."""
        try:
            if not self.store.worker_beat(self.worker_id, self.current_run, self.runs_done):
                self.store.register_worker(self.registration())
                self.store.worker_beat(self.worker_id, self.current_run, self.runs_done)
        except Exception as error:  # noqa: BLE001 - an outage: the next beat tries again
            self.log("presence", f"could not renew this worker's row ({type(error).__name__}: "
                                 f"{self.store.describe(error)}); trying again")

    def _presence_loop(self) -> None:
        while not self._presence_done.wait(heartbeat_interval(self.lease)):
            self._beat_while_idle()

    def _beat_while_idle(self) -> None:
        """The presence loop's beat, while no run is under way: a busy worker's row beats with
        its run's heartbeat, in the same transaction (Store.heartbeat), not in a second one."""
        if self.current_run is None:
            self._report()

    # ---------------------------------------------------------------- claiming and training
    def run_one(self) -> Outcome | None:
        """Claim and train one run; None when no run it can serve is queued."""
        for taken in self.store.reclaim_expired():
            keep_weights(self.store, taken, self.log)  # one that failed by --max-restarts keeps its weights
        # The last claim raised, yet it may have landed with its reply lost: first look for the
        # run it took, by its token, rather than leave that run to lapse untrained.
        run = self.store.held(self.worker_id, self._claim_token) if self._claim_token else None
        if run is None:
            self._claim_token = self._claim_token or new_claim_token()
            run = self.store.claim(self.worker_id, self.lease, token=self._claim_token,
                                   serves=self.serves, device=self.device)
            if run is None and self._ask_trial():  # a search's next trial, asked now that a worker is free
                run = self.store.claim(self.worker_id, self.lease, token=self._claim_token,
                                       serves=self.serves, device=self.device)
        self._claim_token = None  # answered: the next claim gets a token of its own
        if run is None:
            return None
        self.current_run = run.id
        self._report()
        try:
            status = RunExecution(self.store, run, self.worker_id, self.lease, self.signals,
                                  state_every=self.state_every).execute()
        finally:
            self.current_run = None
        if status.counts_as_done:
            self.runs_done += 1
            self._tell_trial(run)
        self._report()
        return status

    def _ask_trial(self) -> int:
        """Queue the next trial of an open search (seqcopy.runs.trials); the runs queued."""
        try:
            return trials.refill(self.store, self.worker_id, self.lease)
        except DBAPIError:
            raise  # the loop waits out an outage
        except Exception as error:  # noqa: BLE001 - a search's trouble must not stop the worker: say why
            self.log("search", f"could not ask a search for a trial ({type(error).__name__}: {error})")
            return 0

    def _tell_trial(self, run: RunInfo) -> None:
        """The run belonged to a search's trial: tell the study if it was the trial's last."""
        try:
            trials.after_run(self.store, run.id, run.sweep_id)
        except Exception as error:  # noqa: BLE001 - the next idle worker settles the trial (trials.settle)
            self.log("search", f"could not tell the search about run {run.id} ({type(error).__name__}: {error})")

    def run(self, once: bool = False, idle_exit: float | None = None) -> int:
        """Loop until shutdown; ``once`` stops after one run (or at once if none is queued);
        ``idle_exit`` stops after that many seconds with an empty queue. Returns the runs it
        finished (as its row in the workers table counts them: not a run taken back from it).
        The worker is in the workers table meanwhile, and marked stopped when it returns."""
        self._report()
        presence = threading.Thread(target=self._presence_loop, name="worker-presence", daemon=True)
        presence.start()
        try:
            return self._loop(once, idle_exit)
        finally:
            self._presence_done.set()
            presence.join()
            try:
                self.store.worker_stopped(self.worker_id, self.runs_done)
            except Exception as error:  # noqa: BLE001 - the row turns 'vanished' after a lease instead
                self.log("presence", f"could not mark this worker stopped ({self.store.describe(error)})")

    def _loop(self, once: bool, idle_exit: float | None) -> int:
        idle_since = time.monotonic()

        def passing(error: BaseException) -> bool:
            return not once and is_transient(error) and not self.shutdown.is_set()

        def before_wait(error: BaseException, seconds: float) -> None:
            # The database went away for a moment (a server restart, a network cut, a full disk):
            # wait and try again rather than die. This is not idleness: queued runs may be
            # waiting, so --idle-exit counts from the next time the queue is seen empty.
            nonlocal idle_since
            idle_since = time.monotonic() + seconds
            log.warning("worker %s: database unavailable (%s); retrying in %.1f s",
                        self.worker_id, self.store.describe(error), seconds)

        while not self.shutdown.is_set():
            try:
                # A signal during a wait ends the loop rather than claim another run.
                status = retry(lambda: None if self.shutdown.is_set() else self.run_one(), when=passing,
                               first=2 * self.poll, longest=30.0, wait=self.shutdown.wait, before_wait=before_wait)
            except DBAPIError as error:
                if self.shutdown.is_set() and not once and is_transient(error):
                    break  # stopped while waiting out an outage
                raise
            if status is not None:
                idle_since = time.monotonic()
            if once:
                break
            if status is None:
                if idle_exit is not None and time.monotonic() - idle_since > idle_exit:
                    break
                self.shutdown.wait(self.poll)
        return self.runs_done
