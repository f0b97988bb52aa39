"""The runs store: every run, its epochs, results and checkpoint, in SQLite or PostgreSQL.

Callers get plain objects (:class:`RunInfo`, dicts), never an ORM session. Each write is one short
transaction. On SQLite the database runs in WAL mode with a busy timeout, and every write
transaction takes the write lock up front (``BEGIN IMMEDIATE``) so that readers never see
"database is locked" and two writers never deadlock upgrading their locks. On PostgreSQL a worker
claims a run with ``SELECT … FOR UPDATE SKIP LOCKED``, so many workers on many machines never take
the same run.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, create_engine, delete, event, func, insert, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from .config import SETTINGS, ConfigError, RunConfig
from .schema import (
    EPOCH_METRICS,
    FINISHED,
    LATEST_METRICS,
    SCHEMA_VERSION,
    Base,
    Checkpoint,
    Epoch,
    LengthResult,
    Meta,
    PositionResult,
    Run,
    Sweep,
)
from .sweeps import varied_keys

DEFAULT_URL = "sqlite:///runs.db"
DEFAULT_LEASE = 120.0
SCHEMA_LOCK = 0x5E0C0B7  # PostgreSQL advisory lock held while the schema is checked or created

runs_t = Run.__table__
epochs_t = Epoch.__table__
checkpoints_t = Checkpoint.__table__
positions_t = PositionResult.__table__
lengths_t = LengthResult.__table__
meta_t = Meta.__table__
sweeps_t = Sweep.__table__


class StoreError(Exception):
    """A database that cannot be used: bad URL, unreachable server, foreign file, old schema."""


class UnknownRun(LookupError):
    """No run has this id."""


class UnknownSweep(LookupError):
    """No sweep has this id."""


class LeaseLost(RuntimeError):
    """The run was taken back from this worker (its lease lapsed) or no longer runs."""


@dataclass(frozen=True)
class RunInfo:
    """A run row as a plain object."""

    id: int
    config: RunConfig
    status: str
    tag: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    worker_id: str | None
    heartbeat_at: float | None
    cancel_requested: bool
    error: str | None
    epochs_done: int
    epochs_total: int
    batch_done: int
    batch_total: int
    latest: dict
    sweep_id: int | None = None

    @classmethod
    def from_row(cls, row) -> RunInfo:
        m = row._mapping
        return cls(
            id=m["id"],
            config=RunConfig.from_dict(json.loads(m["config"])),
            status=m["status"],
            tag=m["tag"] or "",
            created_at=m["created_at"],
            started_at=m["started_at"],
            finished_at=m["finished_at"],
            worker_id=m["worker_id"],
            heartbeat_at=m["heartbeat_at"],
            cancel_requested=bool(m["cancel_requested"]),
            error=m["error"],
            epochs_done=m["epochs_done"],
            epochs_total=m["epochs_total"],
            batch_done=m["batch_done"],
            batch_total=m["batch_total"],
            latest={name: m[name] for name in LATEST_METRICS},
            sweep_id=m.get("sweep_id"),
        )


@dataclass(frozen=True)
class SweepInfo:
    """A sweeps row as a plain object: the grid it queued and the settings its runs vary."""

    id: int
    name: str
    created_at: float
    spec: dict
    varied: list[str]

    @classmethod
    def from_row(cls, row) -> SweepInfo:
        m = row._mapping
        return cls(id=m["id"], name=m["name"], created_at=m["created_at"], spec=json.loads(m["spec"]),
                   varied=json.loads(m["varied"]))


def database_url(explicit: str | None = None) -> str:
    """``--db`` if given, else ``SEQCOPY_DB``, else the embedded SQLite default."""
    return explicit or os.environ.get("SEQCOPY_DB") or DEFAULT_URL


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _describe(error: Exception) -> str:
    """The database driver's message, on one line."""
    original = getattr(error, "orig", None) or error
    text = " ".join(str(original).split())
    return text[:300] or type(original).__name__


def make_engine(url: str) -> Engine:
    """An engine for ``url`` configured for concurrent use; StoreError for a bad URL."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"not a database URL: {url!r} (try sqlite:///runs.db or postgresql://host/db)") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(f"unsupported database {backend!r}: use sqlite:///FILE or postgresql://HOST/DB")
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, installed with us
    try:
        if backend == "sqlite":
            engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
            _configure_sqlite(engine)
        else:
            engine = create_engine(
                parsed, pool_pre_ping=True, connect_args={"connect_timeout": 5}
            )
    except (NoSuchModuleError, ImportError, ArgumentError) as error:
        raise StoreError(f"cannot use {parsed.drivername}: {_describe(error)}") from None
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the sqlite3 module, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA foreign_keys = ON")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        # Writers take the write lock at BEGIN: no lock upgrade, so no SQLITE_BUSY deadlock.
        writing = connection.get_execution_options().get("seqcopy_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _enable_wal(cursor, patience: float = 30.0) -> None:
    """Switch to WAL, waiting for the lock it needs. SQLite answers "database is locked" at once
    here, without its busy handler, when other connections open a fresh database at the same
    moment (several workers started together), so wait as busy_timeout would."""
    deadline = time.monotonic() + patience
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Store:
    """All reads and writes of runs. Safe to share between threads; one per process is enough."""

    def __init__(self, url: str | None = None, engine: Engine | None = None, create: bool = True):
        self.url = database_url(url)
        self.engine = engine or make_engine(self.url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        try:
            self._prepare(create)
        except DBAPIError as error:
            self.engine.dispose()
            raise StoreError(f"cannot open the database {self.safe_url}: {_describe(error)}") from None

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def _prepare(self, create: bool) -> None:
        with self._write() as conn:
            if not self.is_sqlite:
                # Workers started together on a fresh database: one creates the tables, the
                # others wait here and then find them (SQLite's BEGIN IMMEDIATE does the same).
                conn.execute(text(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})"))
            tables = set(inspect(conn).get_table_names())
            if "meta" not in tables:
                if tables & {"runs", "epochs"}:
                    raise StoreError(f"{self.safe_url} holds tables that seqcopy did not write")
                if not create:
                    raise StoreError(f"{self.safe_url} holds no seqcopy runs")
                Base.metadata.create_all(conn)
                conn.execute(insert(meta_t).values(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            found = conn.execute(select(meta_t.c.value).where(meta_t.c.key == "schema_version")).scalar()
            if found != str(SCHEMA_VERSION):
                raise StoreError(
                    f"{self.safe_url} was written with store schema version {found}, this seqcopy "
                    f"reads version {SCHEMA_VERSION}: use another --db or move the file aside"
                )

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(seqcopy_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @staticmethod
    def _status(conn: Connection, run_id: int) -> str:
        """The run's status, inside the caller's transaction; UnknownRun if there is none."""
        status = conn.execute(select(runs_t.c.status).where(runs_t.c.id == run_id)).scalar()
        if status is None:
            raise UnknownRun(f"no run with id {run_id}")
        return status

    def _any(self, *conditions) -> bool:
        with self._read() as conn:
            return conn.execute(select(runs_t.c.id).where(*conditions).limit(1)).first() is not None

    # ------------------------------------------------------------------ queueing
    def submit(self, config: RunConfig, status: str = "queued", worker_id: str | None = None) -> int:
        return self.submit_many([config], status=status, worker_id=worker_id)[0]

    def submit_many(
        self, configs: Sequence[RunConfig], status: str = "queued", worker_id: str | None = None,
        sweep: dict | None = None,
    ) -> list[int]:
        """Queue runs (all or none): every config is validated before anything is written.
        ``sweep`` ({name, spec}) records them as one sweep in the same transaction."""
        for config in configs:
            errors = config.validate(check_device=False)  # the worker checks the device
            if errors:
                raise ConfigError(errors)
        now = time.time()
        ids = []
        with self._write() as conn:
            sweep_id = self._insert_sweep(conn, sweep, configs, now) if sweep is not None else None
            for config in configs:
                values = dict(
                    config=config.to_json(), cell=config.cell, seed=config.seed, tag=config.tag,
                    status=status, created_at=now, epochs_total=config.epochs,
                    lease_seconds=DEFAULT_LEASE, cancel_requested=False, epochs_done=0,
                    batch_done=0, batch_total=config.batches_per_epoch, sweep_id=sweep_id,
                )
                if status == "running":
                    values.update(started_at=now, heartbeat_at=now, worker_id=worker_id)
                ids.append(conn.execute(insert(runs_t).values(**values).returning(runs_t.c.id)).scalar_one())
        return ids

    def submit_sweep(self, configs: Sequence[RunConfig], name: str, spec: dict) -> tuple[int, list[int]]:
        """Queue a grid as one sweep, all or nothing; returns (sweep id, run ids)."""
        if not configs:
            raise ValueError("a sweep needs at least one run")
        ids = self.submit_many(configs, sweep={"name": name, "spec": spec})
        with self._read() as conn:
            return conn.execute(select(runs_t.c.sweep_id).where(runs_t.c.id == ids[0])).scalar_one(), ids

    @staticmethod
    def _insert_sweep(conn: Connection, sweep: dict, configs: Sequence[RunConfig], now: float) -> int:
        problem = SETTINGS["tag"].problem(sweep["name"])  # a name follows a tag's rules
        if problem:
            raise ConfigError({"sweep_name": f"the sweep's name: {problem}"})
        return conn.execute(
            insert(sweeps_t).values(name=sweep["name"], created_at=now, spec=json.dumps(sweep["spec"]),
                                    varied=json.dumps(varied_keys(configs))).returning(sweeps_t.c.id)
        ).scalar_one()

    def claim(self, worker_id: str, lease: float = DEFAULT_LEASE) -> RunInfo | None:
        """Atomically take the oldest queued run for ``worker_id``; None when the queue is empty."""
        now = time.time()
        # An idle worker polls often: look with a read first, take the write lock only for work.
        if not self._any(runs_t.c.status == "queued"):
            return None
        with self._write() as conn:
            query = select(runs_t.c.id).where(runs_t.c.status == "queued").order_by(runs_t.c.id).limit(1)
            if not self.is_sqlite:
                # Other workers skip the row this one holds instead of waiting for it.
                query = query.with_for_update(skip_locked=True)
            run_id = conn.execute(query).scalar()
            if run_id is None:
                return None
            conn.execute(
                update(runs_t)
                .where(runs_t.c.id == run_id, runs_t.c.status == "queued")
                .values(status="running", worker_id=worker_id, started_at=now, heartbeat_at=now,
                        lease_seconds=lease, batch_done=0)
            )
            return RunInfo.from_row(conn.execute(select(runs_t).where(runs_t.c.id == run_id)).one())

    def _owned(self, run_id: int, worker_id: str):
        return (runs_t.c.id == run_id, runs_t.c.worker_id == worker_id, runs_t.c.status == "running")

    def heartbeat(self, run_id: int, worker_id: str, batch_done: int | None = None, batch_total: int | None = None) -> bool:
        """Record a sign of life (and progress within the epoch); returns cancel_requested.
        Raises LeaseLost if the run is no longer this worker's."""
        values = {"heartbeat_at": time.time()}
        if batch_done is not None:
            values.update(batch_done=batch_done, batch_total=batch_total)
        with self._write() as conn:
            changed = conn.execute(update(runs_t).where(*self._owned(run_id, worker_id)).values(**values))
            if changed.rowcount != 1:
                raise LeaseLost(f"run {run_id} is no longer held by {worker_id}")
            return bool(conn.execute(select(runs_t.c.cancel_requested).where(runs_t.c.id == run_id)).scalar())

    def record_epoch(self, run_id: int, worker_id: str, epoch: dict) -> bool:
        """Write one epoch's row, the run's latest metrics and the heartbeat in one transaction;
        returns cancel_requested."""
        now = time.time()
        row = {name: float(epoch[name]) for name in EPOCH_METRICS}
        with self._write() as conn:
            changed = conn.execute(
                update(runs_t)
                .where(*self._owned(run_id, worker_id))
                .values(heartbeat_at=now, epochs_done=epoch["epoch"], batch_done=0,
                        **{name: row[name] for name in LATEST_METRICS})
            )
            if changed.rowcount != 1:
                raise LeaseLost(f"run {run_id} is no longer held by {worker_id}")
            conn.execute(
                insert(epochs_t).values(
                    run_id=run_id, epoch=int(epoch["epoch"]), wall_time=now,
                    stage_output_len=int(epoch["stage_output_len"]),
                    stage_seq_len=int(epoch["stage_seq_len"]), **row,
                )
            )
            return bool(conn.execute(select(runs_t.c.cancel_requested).where(runs_t.c.id == run_id)).scalar())

    def finish(
        self,
        run_id: int,
        worker_id: str,
        status: str,
        error: str | None = None,
        checkpoint: bytes | None = None,
        position_acc: Sequence[float] = (),
        length_acc: Iterable[dict] = (),
    ) -> None:
        """Mark a held run completed, failed or cancelled, with its checkpoint and results."""
        assert status in FINISHED
        with self._write() as conn:
            changed = conn.execute(
                update(runs_t)
                .where(*self._owned(run_id, worker_id))
                .values(status=status, error=error, finished_at=time.time(), heartbeat_at=time.time())
            )
            if changed.rowcount != 1:
                raise LeaseLost(f"run {run_id} is no longer held by {worker_id}")
            if checkpoint is not None:
                epochs_done = conn.execute(select(runs_t.c.epochs_done).where(runs_t.c.id == run_id)).scalar()
                conn.execute(
                    insert(checkpoints_t).values(run_id=run_id, data=checkpoint, size=len(checkpoint), epoch=epochs_done)
                )
            if position_acc:
                conn.execute(
                    insert(positions_t),
                    [{"run_id": run_id, "position": i + 1, "copy_acc": float(a)} for i, a in enumerate(position_acc)],
                )
            lengths = [dict(run_id=run_id, **item) for item in length_acc]
            if lengths:
                conn.execute(insert(lengths_t), lengths)

    def request_cancel(self, run_id: int) -> str:
        """Cancel a queued run at once, or ask a running one to stop; returns its status after."""
        with self._write() as conn:
            status = self._status(conn, run_id)
            if status == "queued":
                changed = conn.execute(
                    update(runs_t).where(runs_t.c.id == run_id, runs_t.c.status == "queued")
                    .values(status="cancelled", cancel_requested=True, finished_at=time.time(),
                            error="cancelled before it started")
                )
                if changed.rowcount == 1:
                    return "cancelled"
                # A worker claimed it meanwhile (PostgreSQL): ask the running run to stop.
                status = conn.execute(select(runs_t.c.status).where(runs_t.c.id == run_id)).scalar()
            if status == "running":
                conn.execute(update(runs_t).where(runs_t.c.id == run_id).values(cancel_requested=True))
            return status

    def reclaim_expired(self, now: float | None = None) -> list[int]:
        """Fail running runs whose worker stopped sending heartbeats past the lease. Their
        finished epochs stay; the reason is recorded. Returns the ids taken back."""
        now = time.time() if now is None else now
        lapsed = (runs_t.c.status == "running", runs_t.c.heartbeat_at + runs_t.c.lease_seconds < now)
        if not self._any(*lapsed):
            return []
        with self._write() as conn:
            expired = conn.execute(
                select(runs_t.c.id, runs_t.c.worker_id, runs_t.c.heartbeat_at).where(*lapsed)
            ).all()
            taken = []
            for run_id, worker, beat in expired:
                changed = conn.execute(
                    update(runs_t).where(runs_t.c.id == run_id, runs_t.c.status == "running",
                                         runs_t.c.heartbeat_at == beat)
                    .values(status="failed", finished_at=now,
                            error=f"worker {worker} stopped responding: no heartbeat for {now - beat:.0f} s")
                )
                if changed.rowcount == 1:  # not finished, beaten or taken back meanwhile
                    taken.append(run_id)
        return taken

    # ------------------------------------------------------------------ editing
    def set_tag(self, run_id: int, tag: str) -> None:
        if len(tag) > 200:
            raise ValueError("a tag has at most 200 characters")
        with self._write() as conn:
            if conn.execute(update(runs_t).where(runs_t.c.id == run_id).values(tag=tag)).rowcount != 1:
                raise UnknownRun(f"no run with id {run_id}")

    def delete_run(self, run_id: int) -> None:
        """Delete a run that is not running, with everything recorded for it."""
        with self._write() as conn:
            status = self._status(conn, run_id)
            if status == "running":
                raise ValueError(f"run {run_id} is running: cancel it first")
            for table in (epochs_t, checkpoints_t, positions_t, lengths_t):
                conn.execute(delete(table).where(table.c.run_id == run_id))
            conn.execute(delete(runs_t).where(runs_t.c.id == run_id))

    # ------------------------------------------------------------------ reading
    def get_run(self, run_id: int) -> RunInfo:
        with self._read() as conn:
            row = conn.execute(select(runs_t).where(runs_t.c.id == run_id)).one_or_none()
        if row is None:
            raise UnknownRun(f"no run with id {run_id}")
        return RunInfo.from_row(row)

    def list_runs(
        self, statuses: Sequence[str] | None = None, limit: int | None = None, sweep_id: int | None = None
    ) -> list[RunInfo]:
        query = select(runs_t).order_by(runs_t.c.id.desc())
        if sweep_id is not None:
            query = query.where(runs_t.c.sweep_id == sweep_id)
        if statuses:
            query = query.where(runs_t.c.status.in_(statuses))
        if limit:
            query = query.limit(limit)
        with self._read() as conn:
            return [RunInfo.from_row(row) for row in conn.execute(query)]

    def list_sweeps(self) -> list[SweepInfo]:
        """Every sweep, newest first."""
        with self._read() as conn:
            return [SweepInfo.from_row(row) for row in conn.execute(select(sweeps_t).order_by(sweeps_t.c.id.desc()))]

    def get_sweep(self, sweep_id: int) -> SweepInfo:
        with self._read() as conn:
            row = conn.execute(select(sweeps_t).where(sweeps_t.c.id == sweep_id)).one_or_none()
        if row is None:
            raise UnknownSweep(f"no sweep with id {sweep_id}")
        return SweepInfo.from_row(row)

    def count_runs(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(select(runs_t.c.status, func.count()).group_by(runs_t.c.status)).all()
        return {status: count for status, count in rows}

    def epochs(self, run_ids: Sequence[int]) -> list[dict]:
        """Every epoch row of the given runs, ordered by run and epoch."""
        if not run_ids:
            return []
        query = select(epochs_t).where(epochs_t.c.run_id.in_(list(run_ids))).order_by(epochs_t.c.run_id, epochs_t.c.epoch)
        with self._read() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def position_results(self, run_ids: Sequence[int]) -> list[dict]:
        query = select(positions_t).where(positions_t.c.run_id.in_(list(run_ids))).order_by(positions_t.c.run_id, positions_t.c.position)
        with self._read() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def length_results(self, run_ids: Sequence[int]) -> list[dict]:
        query = select(lengths_t).where(lengths_t.c.run_id.in_(list(run_ids))).order_by(lengths_t.c.run_id, lengths_t.c.seq_len)
        with self._read() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def checkpoint(self, run_id: int) -> bytes | None:
        with self._read() as conn:
            return conn.execute(select(checkpoints_t.c.data).where(checkpoints_t.c.run_id == run_id)).scalar()

    def checkpoint_ids(self) -> set[int]:
        with self._read() as conn:
            return set(conn.execute(select(checkpoints_t.c.run_id)).scalars())


def _refuse_missing_sqlite_file(url: str | None) -> None:
    try:
        parsed = make_url(database_url(url))
    except ArgumentError:
        return  # Store() reports a malformed URL in its own words
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not os.path.exists(parsed.database):
            raise StoreError(f"no runs store at {parsed.database} (nothing has been run here yet?)")


def open_store(url: str | None = None, create: bool = True) -> Store:
    """A Store for ``url`` (or SEQCOPY_DB, or runs.db); StoreError with one line when unusable.
    ``create=False`` (for commands that only read or cancel) refuses to create a new store, so a
    mistyped path reports an error instead of leaving an empty runs.db behind."""
    try:
        if not create:
            _refuse_missing_sqlite_file(url)
        return Store(url, create=create)
    except StoreError:
        raise
    except SQLAlchemyError as error:
        raise StoreError(f"cannot open the database: {_describe(error)}") from None
