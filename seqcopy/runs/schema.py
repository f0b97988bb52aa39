"""The runs store's tables: SQLAlchemy 2.0 typed models, one class per table.

Every run, however started, is one ``runs`` row holding its whole RunConfig (as JSON) and its
life: queued → running → completed | failed | cancelled. Each finished epoch is one ``epochs``
row, unique on (run_id, epoch). The last epoch's headline metrics are copied onto the run so
listing runs is one cheap query (MLflow keeps a ``latest_metrics`` table for the same reason).
Checkpoints live in the database so workers on other machines need no shared disk.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from seqcopy.runs.states import RunStatus

# Bumped whenever a table or column is added. Changes stay additive (new tables, and new columns
# that are nullable or have a server default), so that Store upgrades an older store in place.
# 2: runs.claim_token, runs.requeues; 3: the sweeps table, runs.sweep_id; 4: runs.device and
# runs.device_used (device-aware claiming) and the workers table; 5: the run_states table (resume
# state), runs.restarts, runs.max_restarts, runs.parent_id and runs.parent_epoch (lineage); 6: the
# epochs' memory diagnostics (DIAGNOSTIC_METRICS); 7: the snapshots table (the Playground's weights at
# a few epochs, seqcopy.runs.snapshots); 8: the searches' tables (searches, search_trials, search_runs)
# under this version: a store of version 7 may hold them already, made by that seqcopy's search
# module with these same columns, and gets them when it has none; 9: runs.preemptions (how often a
# worker's stop put the run back to resume, so a finished run still says it resumed) and
# runs.environments (what each segment of the run trained with: code, libraries, threads, hardware)
# and runs.rerun_of (the run ``seqcopy rerun`` trains again); 10: the epochs' progress measures
# (PROGRESS_METRICS), runs.submitted_by and sweeps.submitted_by (who queued it), searches.fidelity
# and searches.confirm_seeds, and search_runs.rung (a fidelity search's length step).
SCHEMA_VERSION = 10
DEFAULT_MAX_RESTARTS = 3  # lapsed leases after a first epoch that a run survives before it fails
# The stored values are the enums' own (seqcopy.runs.states): a StrEnum member is its string.
STATUSES = tuple(RunStatus)

# The per-epoch metrics, in the order the pages show them.
EPOCH_METRICS = (
    "train_loss",
    "train_acc",
    "train_copy_acc",
    "train_seq_acc",
    "test_loss",
    "test_acc",
    "test_copy_acc",
    "test_seq_acc",
    "seconds",
    "samples_per_sec",
    "lr",
)
# Memory on a fixed probe batch, per epoch (seqcopy.core.diagnostics; schema version 5): nullable,
# as epochs recorded before them, and the RNN's gates, have none.
DIAGNOSTIC_METRICS = ("memory_gate", "saturated_gates", "saliency_diagonal", "first_input_grad")
# Measures that move before copy accuracy jumps (schema version 10): nullable, as epochs recorded
# before them have none. test_copy_loss: cross-entropy over the copied positions of the test set;
# positions_copied: the share of output positions copied at >= 99% on it; stage_progress: a
# curriculum run's progress on one scale that only rises (copy accuracy without a curriculum).
PROGRESS_METRICS = ("test_copy_loss", "positions_copied", "stage_progress")
# The metrics copied onto the run row after each epoch.
LATEST_METRICS = ("train_loss", "test_loss", "test_acc", "test_copy_acc", "test_seq_acc")


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Key–value facts about the database itself (its schema version)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Sweep(Base):
    """Runs queued together as one grid (cells × seeds × swept settings)."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """Sweep id, shown on Runs and Compare."""
    name: Mapped[str] = mapped_column(String(200))
    """A short name the user gave, or one made from the grid."""
    created_at: Mapped[float] = mapped_column(Float)
    """Unix time of submission."""
    spec: Mapped[str] = mapped_column(Text)
    """The grid as JSON: cells, seeds, axes and ties as --sweep and --tie take them."""
    varied: Mapped[str] = mapped_column(Text)
    """JSON list of the settings whose value differs between the sweep's runs."""
    submitted_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """Who queued it (schema version 10): the runs a search or a fidelity step queues later are
    theirs too."""


class Run(Base):
    """One training run: its config, its state in the queue, and its latest metrics."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_status_id", "status", "id"),  # the claim: oldest queued run
        Index("ix_runs_cell", "cell"),
        Index("ix_runs_tag", "tag"),
        Index("ix_runs_sweep", "sweep_id"),
        Index("ix_runs_status_device_id", "status", "device", "id"),  # a worker's claim: oldest it can serve
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    """Run id, shown everywhere."""
    config: Mapped[str] = mapped_column(Text)
    """The whole RunConfig as JSON."""
    cell: Mapped[str] = mapped_column(String(16))
    """Copied out of the config for filtering."""
    seed: Mapped[int] = mapped_column(Integer)
    """Copied out of the config for grouping seeds."""
    tag: Mapped[str] = mapped_column(String(200), default="")
    """A short note or tag the user can edit."""
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED.value)
    """queued, running, completed, failed or cancelled."""
    created_at: Mapped[float] = mapped_column(Float)
    """Unix time of submission."""
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Unix time a worker claimed it."""
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Unix time it reached a final status."""
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """host:pid of the worker running it."""
    claim_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """A random token chosen by the worker for this claim: its retries recognise their own
    claim and final write after a lost reply (schema version 2)."""
    requeues: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    """Times the run went back to the queue because its worker died before a first epoch
    (schema version 2); 1 from the start for a run ``seqcopy train`` trains here and now, so it
    is never handed to another process."""
    device: Mapped[str | None] = mapped_column(String(8), nullable=True)
    """The device the config asks for (cpu, cuda, mps or auto), copied out of it at submission
    so that a worker claims only runs it can serve. NULL in rows written before schema version
    4 (or by an older seqcopy): the first worker that looks at such a run fills it in from the
    config (Store.claim)."""
    device_used: Mapped[str | None] = mapped_column(String(8), nullable=True)
    """The device the run trains on, set when a worker claims it: an 'auto' run's answer
    (schema version 4)."""
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Unix time of the worker's last sign of life."""
    lease_seconds: Mapped[float] = mapped_column(Float, default=120.0)
    """How long past its heartbeat a running run is presumed dead."""
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    """Set by cancel; the worker stops at its next check."""
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why it failed or was cancelled."""
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    """Epochs recorded so far."""
    epochs_total: Mapped[int] = mapped_column(Integer)
    """Epochs asked for."""
    batch_done: Mapped[int] = mapped_column(Integer, default=0)
    """Progress within the current epoch: batches done..."""
    batch_total: Mapped[int] = mapped_column(Integer, default=0)
    """...out of this many."""
    train_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Latest epoch's training loss."""
    test_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Latest epoch's test loss."""
    test_acc: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Latest epoch's accuracy over all test positions."""
    test_copy_acc: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Latest epoch's copy accuracy on the test set."""
    test_seq_acc: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Latest epoch's sequence accuracy on the test set."""
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id", ondelete="SET NULL"), nullable=True)
    """The sweep it was queued with; null for a run queued alone."""
    restarts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    """Times a lapsed lease after a first epoch sent it back to the queue to resume (schema version 5)."""
    preemptions: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    """Times a worker that was stopped (SIGTERM, a preemption) put it back in the queue with its
    resume state (schema version 9)."""
    rerun_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The run whose config it trains again to check it repeats (``seqcopy rerun``; schema
    version 9); no foreign key: the rerun keeps its word if that run is deleted."""
    environments: Mapped[str | None] = mapped_column(Text, nullable=True)
    """JSON list, one entry per segment it trained (a resumed run has several): the epoch it went
    on from, the code (seqcopy version, git commit and whether the checkout had changes), torch,
    numpy, Python, torch's thread count, CPU, GPU and host (seqcopy.runs.provenance; schema
    version 9); NULL for a run trained before, or not started."""
    max_restarts: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_RESTARTS,
                                              server_default=text(str(DEFAULT_MAX_RESTARTS)))
    """Past this many restarts a lapsed lease fails the run, so a run that kills its worker every
    time cannot loop for ever (schema version 5; 0 for a run ``seqcopy train`` trains here)."""
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), nullable=True)
    """The run it was forked from (submit --from) or continues (continue); null for a run from
    scratch (schema version 5)."""
    parent_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The parent's epoch whose weights (a continuation: whole resume state) it started from."""
    submitted_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """Who queued it: the signed-in user of the dashboard, or the operating-system user of the
    command line (schema version 10); NULL for a run queued before, shown as "unknown"."""


class Epoch(Base):
    """One finished epoch of one run, with every metric the trainer reports."""

    __tablename__ = "epochs"
    __table_args__ = (Index("ix_epochs_run", "run_id"),)

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    """The run."""
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    """1-based epoch number; unique per run."""
    wall_time: Mapped[float] = mapped_column(Float)
    """Unix time the epoch was recorded."""
    stage_output_len: Mapped[int] = mapped_column(Integer)
    """Curriculum stage: output length trained this epoch."""
    stage_seq_len: Mapped[int] = mapped_column(Integer)
    """Curriculum stage: input length trained this epoch."""
    train_loss: Mapped[float] = mapped_column(Float)
    train_acc: Mapped[float] = mapped_column(Float)
    train_copy_acc: Mapped[float] = mapped_column(Float)
    train_seq_acc: Mapped[float] = mapped_column(Float)
    test_loss: Mapped[float] = mapped_column(Float)
    test_acc: Mapped[float] = mapped_column(Float)
    test_copy_acc: Mapped[float] = mapped_column(Float)
    test_seq_acc: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    samples_per_sec: Mapped[float] = mapped_column(Float)
    lr: Mapped[float] = mapped_column(Float)
    memory_gate: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Mean forget (LSTMs) or update (GRUs) gate over the delay on the probe batch (version 5)."""
    saturated_gates: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Share of sigmoid gate activations below 0.1 or above 0.9 on the probe batch (version 5)."""
    saliency_diagonal: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Share of probed outputs whose largest input gradient is on the right letter (version 5)."""
    first_input_grad: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Norm of the gradient from the last output to the first input's embedding (version 5)."""
    test_copy_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Cross-entropy over the copied positions of the test set only (version 10)."""
    positions_copied: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Share of the test set's output positions copied at >= 99% (version 10)."""
    stage_progress: Mapped[float | None] = mapped_column(Float, nullable=True)
    """A curriculum run's progress that only rises as stages pass; copy accuracy without one (version 10)."""


class Checkpoint(Base):
    """A finished run's weights: the checkpoint bytes (state_dict and config)."""

    __tablename__ = "checkpoints"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    """The run."""
    data: Mapped[bytes] = mapped_column(LargeBinary)
    """torch.save bytes; loaded with weights_only=True."""
    size: Mapped[int] = mapped_column(Integer)
    """len(data), to list without reading the blob."""
    epoch: Mapped[int] = mapped_column(Integer)
    """The epoch these weights finished."""


class RunState(Base):
    """A run's resume state (seqcopy.core.resume): weights, optimiser, random streams, curriculum
    stage and schedule after its last recorded epoch, one per run, overwritten each epoch in the
    epoch's own transaction (schema version 5). Kept when the run ends: continue and fork start
    from it. In the store, so that any worker on any machine can resume the run."""

    __tablename__ = "run_states"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    """The run."""
    epoch: Mapped[int] = mapped_column(Integer)
    """The epoch after which the state was taken (0: a fork's start weights)."""
    data: Mapped[bytes] = mapped_column(LargeBinary)
    """torch.save bytes; loaded with weights_only=True."""
    size: Mapped[int] = mapped_column(Integer)
    """len(data), to measure without reading the blob."""
    updated_at: Mapped[float] = mapped_column(Float)
    """Unix time of the write."""


class Snapshot(Base):
    """A run's weights after one epoch, kept for the Playground's epoch slider (schema version 7):
    the epochs seqcopy.runs.snapshots retains (log-spaced, each curriculum stage's end, the best so
    far; at most MAX_SNAPSHOTS per run), written with the epoch's row and pruned as the rule drops
    them. A store from before version 7 has none for its runs: the Playground shows their final model."""

    __tablename__ = "snapshots"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    """The run."""
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    """The epoch these weights finished."""
    data: Mapped[bytes] = mapped_column(LargeBinary)
    """Checkpoint bytes (state_dict and config), as the final checkpoint's; loaded with weights_only=True."""
    size: Mapped[int] = mapped_column(Integer)
    """len(data), to list and measure without reading the blob."""
    reason: Mapped[str] = mapped_column(String(200))
    """Why the rule keeps it: "log-spaced", "end of stage N=8", "best so far", joined by ", "."""


class PositionResult(Base):
    """Final copy accuracy at one output position of the test set."""

    __tablename__ = "position_results"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    """1-based output position."""
    copy_acc: Mapped[float] = mapped_column(Float)


class LengthResult(Base):
    """Final copy accuracy at one test length (length generalisation)."""

    __tablename__ = "length_results"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    seq_len: Mapped[int] = mapped_column(Integer, primary_key=True)
    """K of the test sequences."""
    output_len: Mapped[int] = mapped_column(Integer)
    """N of the test sequences."""
    copy_acc: Mapped[float] = mapped_column(Float)
    seq_acc: Mapped[float] = mapped_column(Float)


class WorkerRow(Base):
    """One worker process, as it registered itself: what it serves, where it runs, and its last
    sign of life (schema version 4). Rows stay after the worker stops, so the dashboard can show
    the workers that went away as well as the live ones."""

    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_heartbeat", "heartbeat_at"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    """host:pid, the worker id written on the runs it claims."""
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(8))
    """The device it trains 'auto' runs on: its best one."""
    serves: Mapped[str] = mapped_column(String(64))
    """The devices whose runs it claims, comma-separated (e.g. 'cuda,cpu')."""
    threads: Mapped[int] = mapped_column(Integer)
    """torch threads of its training."""
    origin: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """Who started it, when known: 'ray node …', 'slurm job 17_3', 'dashboard'."""
    started_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float)
    """Unix time of its last sign of life, renewed every few seconds, idle or busy."""
    lease_seconds: Mapped[float] = mapped_column(Float)
    """Past this long without a heartbeat the worker is presumed gone ('vanished')."""
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The run it trains now (or trained last, once stopped or vanished)."""
    runs_done: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    """Runs it finished."""
    stopped_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Unix time it stopped cleanly; NULL while it lives, or when it vanished."""


class Search(Base):
    """A sweep that is a search (seqcopy.runs.trials): Optuna trials asked as workers free up, or
    a grid's runs compared by a pruner (``submit --prune``). The Optuna study itself lives in
    Optuna's own tables of the same database."""

    __tablename__ = "searches"

    sweep_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    """The sweep the search is."""
    kind: Mapped[str] = mapped_column(String(16))
    """search (sampled trials) or grid (submit --prune)."""
    study_name: Mapped[str] = mapped_column(String(200))
    """The Optuna study in this database."""
    trials: Mapped[int] = mapped_column(Integer)
    """Trials to run in all."""
    asked: Mapped[int] = mapped_column(Integer, default=0)
    """Trial numbers handed out so far: bounded by ``trials``, so N workers never ask more."""
    objective: Mapped[str] = mapped_column(String(32))
    """An epochs metric: the seeds' mean is the trial's value."""
    direction: Mapped[str] = mapped_column(String(8))
    """maximize or minimize."""
    sampler: Mapped[str] = mapped_column(String(16))
    sampler_seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pruner: Mapped[str] = mapped_column(String(16))
    seeds: Mapped[str] = mapped_column(Text)
    """JSON list: one run per seed and trial."""
    space: Mapped[str] = mapped_column(Text)
    """JSON: setting → Optuna distribution JSON."""
    base: Mapped[str] = mapped_column(Text)
    """The base RunConfig as JSON ("{}" for a pruned grid, whose runs are queued up front)."""
    fidelity: Mapped[str | None] = mapped_column(Text, nullable=True)
    """JSON: {setting: [value, ...]}, the task lengths a fidelity search trains its trials up
    (schema version 10); NULL for a search without one."""
    confirm_seeds: Mapped[str | None] = mapped_column(Text, nullable=True)
    """JSON list: the seeds the best configuration is queued on once the search ends (schema version 10)."""
    created_at: Mapped[float] = mapped_column(Float)


class SearchTrial(Base):
    """One trial of a search, numbered 1, 2, … in the order asked."""

    __tablename__ = "search_trials"

    sweep_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    """1-based, in the order asked."""
    trial_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Optuna's trial id (its storage's), once asked."""
    params: Mapped[str | None] = mapped_column(Text, nullable=True)
    """JSON: setting → value."""
    state: Mapped[str] = mapped_column(String(16))
    """asking, running, completed, pruned or failed (TrialState)."""
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    """The seeds' mean of the objective."""
    se: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Its standard error over the seeds (None for one seed)."""
    n: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Seeds in the mean."""
    pruned_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The epoch the pruner stopped the trial at."""
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """Who asked it."""
    updated_at: Mapped[float] = mapped_column(Float)


class SearchRun(Base):
    """Which trial a run belongs to: one run per seed of the trial."""

    __tablename__ = "search_runs"
    # The name SQLAlchemy gave ``index=True`` when these tables lived outside this file: an upgraded
    # store has it already.
    __table_args__ = (Index("ix_search_runs_sweep_id", "sweep_id"),)

    run_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    rung: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """A fidelity search's step: 0 on the shortest task, 1 on the next (schema version 10); NULL
    for a search without fidelity."""

