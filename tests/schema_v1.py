"""The runs store's tables as seqcopy wrote them at store schema version 1 (before claim tokens
and requeues), copied here so that the upgrade test builds a genuine old store."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

Table("meta", metadata, Column("key", String(64), primary_key=True), Column("value", String(256), nullable=False))

Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("config", Text, nullable=False),
    Column("cell", String(16), nullable=False),
    Column("seed", Integer, nullable=False),
    Column("tag", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("worker_id", String(128)),
    Column("heartbeat_at", Float),
    Column("lease_seconds", Float, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Column("error", Text),
    Column("epochs_done", Integer, nullable=False),
    Column("epochs_total", Integer, nullable=False),
    Column("batch_done", Integer, nullable=False),
    Column("batch_total", Integer, nullable=False),
    *(Column(name, Float) for name in ("train_loss", "test_loss", "test_acc", "test_copy_acc", "test_seq_acc")),
    Index("ix_runs_status_id", "status", "id"),
    Index("ix_runs_cell", "cell"),
    Index("ix_runs_tag", "tag"),
)

Table(
    "epochs", metadata,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("epoch", Integer, primary_key=True),
    Column("wall_time", Float, nullable=False),
    Column("stage_output_len", Integer, nullable=False),
    Column("stage_seq_len", Integer, nullable=False),
    *(Column(name, Float, nullable=False) for name in (
        "train_loss", "train_acc", "train_copy_acc", "train_seq_acc", "test_loss", "test_acc",
        "test_copy_acc", "test_seq_acc", "seconds", "samples_per_sec", "lr")),
    Index("ix_epochs_run", "run_id"),
)

Table(
    "checkpoints", metadata,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("size", Integer, nullable=False),
    Column("epoch", Integer, nullable=False),
)

Table(
    "position_results", metadata,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("copy_acc", Float, nullable=False),
)

Table(
    "length_results", metadata,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("seq_len", Integer, primary_key=True),
    Column("output_len", Integer, nullable=False),
    Column("copy_acc", Float, nullable=False),
    Column("seq_acc", Float, nullable=False),
)
