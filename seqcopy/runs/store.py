"""The runs store: every run, its epochs, results and checkpoint, in SQLite or PostgreSQL.

Callers get plain objects (:class:`RunInfo`, dicts), never an ORM session. Each write is one short
transaction. On SQLite the database runs in WAL mode with a busy timeout, and every write
transaction takes the write lock up front (``BEGIN IMMEDIATE``) so that readers never see
"database is locked" and two writers never deadlock upgrading their locks. On PostgreSQL a worker
claims a run with ``SELECT … FOR UPDATE SKIP LOCKED``, so many workers on many machines never take
the same run.

Every write a worker retries through a database outage is safe to repeat, because a retry cannot
know whether its first attempt landed (a COMMIT may reach the server and its reply be lost): an
epoch already recorded is not written twice, a claim carries a token by which the worker finds
the run it holds, and the final write recognises a run it already finished. A store written by
an older seqcopy is upgraded in place when opened (:func:`upgrade_schema`); one written by a
newer seqcopy is refused.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.schema import CreateColumn

from seqcopy.config import SETTINGS, ConfigError, RunConfig, varied_keys
from seqcopy.errors import InputError
from seqcopy.runs.access import os_user
from seqcopy.runs.redact import display_url, scrub
from seqcopy.runs.schema import (
    DEFAULT_MAX_RESTARTS,
    DIAGNOSTIC_METRICS,
    EPOCH_METRICS,
    LATEST_METRICS,
    PROGRESS_METRICS,
    SCHEMA_VERSION,
    Base,
    Checkpoint,
    Epoch,
    LengthResult,
    Meta,
    PositionResult,
    Run,
    RunState,
    Snapshot,
    Sweep,
    WorkerRow,
)
from seqcopy.runs.search_tables import SearchTables, trial_runs_t
from seqcopy.runs.states import FINISHED, PRUNED_PREFIX, RunBadge, RunStatus, WorkerPresence
from seqcopy.text import MAX_ID, check_tag, storable

DEFAULT_URL = "sqlite:///runs.db"
UNKNOWN_SUBMITTER = "unknown"  # runs queued before schema version 10 recorded no submitter
DEFAULT_LEASE = 120.0
MIN_LEASE = 1.0  # seconds: four heartbeats at the shortest interval
SCHEMA_LOCK = 0x5E0C0B7  # PostgreSQL advisory lock held while the schema is checked or created

runs_t = Run.__table__
epochs_t = Epoch.__table__
checkpoints_t = Checkpoint.__table__
positions_t = PositionResult.__table__
lengths_t = LengthResult.__table__
meta_t = Meta.__table__
sweeps_t = Sweep.__table__
workers_t = WorkerRow.__table__
states_t = RunState.__table__
snapshots_t = Snapshot.__table__


@dataclass(frozen=True)
class SnapshotInfo:
    """One kept snapshot of a run, without its bytes."""

    epoch: int
    size: int
    reason: str


class StoreError(InputError):
    """A database that cannot be used: bad URL, unreachable server, foreign file, old schema."""


class UnknownRun(InputError, LookupError):
    """No run has this id."""


class UnknownSweep(InputError, LookupError):
    """No sweep has this id."""


class LeaseLost(RuntimeError):
    """The run was taken back from this worker (its lease lapsed) or no longer runs."""


def is_transient(error: BaseException) -> bool:
    """A database error that may pass: the server unreachable or restarting, a connection cut,
    a SQLite file locked or its disk full. A retry may succeed; the statement itself was fine."""
    if isinstance(error, (OperationalError, InterfaceError)):
        return True
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


@functools.lru_cache(maxsize=8192)
def _config_from_json(text: str) -> RunConfig:
    """A run's config, parsed once per process: it never changes after submission, RunConfig is
    frozen, and the pages list every run every few seconds (a third of listing 1,000 runs)."""
    return RunConfig.from_dict(json.loads(text))


def _environments(text: str | None) -> tuple[dict, ...]:
    """runs.environments as RunInfo keeps it: () for NULL or anything not a JSON list of objects."""
    if not text:
        return ()
    try:
        found = json.loads(text)
    except ValueError:
        return ()
    return tuple(item for item in found if isinstance(item, dict)) if isinstance(found, list) else ()


@dataclass(frozen=True)
class RunInfo:
    """A run row as a plain object."""

    id: int
    config: RunConfig
    status: RunStatus
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
    claim_token: str | None = None  # the worker's mark on its claim (Store.held)
    device_used: str | None = None  # the device it trains on, set by the claim (an 'auto' run's answer)
    restarts: int = 0  # lapsed leases after a first epoch it resumed from
    preemptions: int = 0  # stopped workers that put it back in the queue with its state
    max_restarts: int = DEFAULT_MAX_RESTARTS
    parent_id: int | None = None  # the run it was forked from or continues
    parent_epoch: int | None = None  # the parent's epoch it started from
    # one dict per segment it trained (seqcopy.runs.provenance): () when none was recorded
    environments: tuple[dict, ...] = ()
    rerun_of: int | None = None  # the run it trains again (seqcopy rerun)
    submitted_by: str | None = None  # who queued it (None: queued before schema 10, shown "unknown")

    @property
    def submitter(self) -> str:
        """Who queued it, as pages and reports show it."""
        return self.submitted_by or UNKNOWN_SUBMITTER

    @property
    def lineage(self) -> str:
        """'from #12 @ epoch 30', or '' for a run trained from scratch."""
        if self.parent_id is None:
            return ""
        return f"from #{self.parent_id}" + (f" @ epoch {self.parent_epoch}" if self.parent_epoch is not None else "")

    @property
    def continues_parent(self) -> bool:
        """Whether it continues its parent (the parent's whole state, epochs numbered on from the
        parent's) rather than forks it (its weights only, epochs from 1): a fork is always queued
        as a sweep (seqcopy.runs.queueing), a continuation never, and sweeps are never deleted."""
        return self.parent_id is not None and self.sweep_id is None

    @property
    def badges(self) -> tuple[RunBadge, ...]:
        """What its status alone does not say, in the order pages show it: pruned, waiting to
        resume or resumed, continued or forked."""
        found = []
        if self.status == RunStatus.COMPLETED and (self.error or "").startswith(PRUNED_PREFIX):
            found.append(RunBadge.PRUNED)
        if self.preemptions or self.restarts:
            found.append(RunBadge.PREEMPTED if self.status == RunStatus.QUEUED else RunBadge.RESUMED)
        if self.parent_id is not None:
            found.append(RunBadge.CONTINUED if self.continues_parent else RunBadge.FORKED)
        return tuple(found)

    @property
    def shown_status(self) -> str:
        """Its status with its badges, as every page and listing shows it: 'completed · pruned',
        'queued · preempted, resumes', 'running · resumed · forked'."""
        words = [str(self.status)]
        words += ["preempted, resumes" if badge == RunBadge.PREEMPTED else str(badge) for badge in self.badges]
        return " · ".join(words)

    @property
    def pruned(self) -> bool:
        """Whether a search's pruner stopped it: completed, but a shorter run than asked for."""
        return RunBadge.PRUNED in self.badges

    @classmethod
    def from_row(cls, row) -> RunInfo:
        m = row._mapping
        return cls(
            id=m["id"],
            config=_config_from_json(m["config"]),
            status=RunStatus(m["status"]),
            tag=m["tag"] or "",
            created_at=m["created_at"],
            started_at=m["started_at"],
            finished_at=m["finished_at"],
            worker_id=m["worker_id"],
            claim_token=m["claim_token"],
            device_used=m["device_used"],
            heartbeat_at=m["heartbeat_at"],
            cancel_requested=bool(m["cancel_requested"]),
            error=m["error"],
            epochs_done=m["epochs_done"],
            epochs_total=m["epochs_total"],
            batch_done=m["batch_done"],
            batch_total=m["batch_total"],
            latest={name: m[name] for name in LATEST_METRICS},
            sweep_id=m.get("sweep_id"),
            restarts=m.get("restarts") or 0,
            preemptions=m.get("preemptions") or 0,
            max_restarts=m.get("max_restarts") if m.get("max_restarts") is not None else DEFAULT_MAX_RESTARTS,
            parent_id=m.get("parent_id"),
            parent_epoch=m.get("parent_epoch"),
            environments=_environments(m.get("environments")),
            rerun_of=m.get("rerun_of"),
            submitted_by=m.get("submitted_by"),
        )


@dataclass(frozen=True)
class WorkerInfo:
    """A row of the workers table as a plain object (schema.WorkerRow documents each field)."""

    id: str
    host: str
    pid: int
    device: str
    serves: str
    threads: int
    origin: str | None
    started_at: float
    heartbeat_at: float
    lease_seconds: float
    run_id: int | None = None
    runs_done: int = 0
    stopped_at: float | None = None

    @property
    def devices(self) -> tuple[str, ...]:
        """The devices whose runs it claims ('auto' runs as well, always)."""
        return tuple(name for name in self.serves.split(",") if name)

    def state(self, now: float | None = None) -> WorkerPresence:
        """'live'; 'stopped' (it said so on exit); or 'vanished' (no heartbeat for longer than
        its lease: killed, its machine lost, or cut off from the database)."""
        if self.stopped_at is not None:
            return WorkerPresence.STOPPED
        now = time.time() if now is None else now
        return WorkerPresence.VANISHED if now - self.heartbeat_at > self.lease_seconds else WorkerPresence.LIVE


def run_note(run: RunInfo) -> str:
    """What the listing shows beside a run that is neither failed nor cancelled (whose reason is
    its error): a queued run's 'preempted at epoch k; resumes' or restart, a completed run's
    'target reached at epoch E'; '' otherwise."""
    if run.status in (RunStatus.QUEUED, RunStatus.COMPLETED) and run.error:
        return run.error.splitlines()[0][:120]
    return ""


def heartbeat_interval(lease: float) -> float:
    """Seconds between a worker's heartbeats: four to a lease (of at least MIN_LEASE), and at
    least every 5 s."""
    return min(5.0, max(lease, MIN_LEASE) / 4)


def lease_problem(lease: float) -> str | None:
    """Why ``lease`` is too short, or None: it must leave room for several heartbeats (a shorter
    lease lets a worker's own healthy runs be taken back between two of them)."""
    if not lease >= MIN_LEASE:  # also NaN
        return (f"at least {MIN_LEASE:g} s (four heartbeats, {heartbeat_interval(MIN_LEASE):g} s apart), "
                f"got {lease}")
    return None


def sweep_name_problem(name: str) -> str | None:
    """Why a sweep cannot have this name, or None: a name follows a tag's rules. The one check of a
    sweep's name; the page and the command line say which field it came from."""
    return SETTINGS["tag"].problem(name)


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


def new_claim_token() -> str:
    """A random token that marks one claim of a run (runs.claim_token)."""
    return uuid.uuid4().hex


def describe_error(error: Exception, url: str) -> str:
    """The database driver's message on one line, with any secret of ``url`` masked: how every
    database error is shown or logged."""
    original = getattr(error, "orig", None) or error
    text = " ".join(str(original).split())
    return scrub(text[:300] or type(original).__name__, url)


def make_engine(url: str) -> Engine:
    """An engine for ``url`` configured for concurrent use; StoreError for a bad URL."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as error:  # ValueError: a port that is not a number, say
        reason = f" ({scrub(str(error), url)})" if isinstance(error, ValueError) and "://" in url else ""
        raise StoreError(
            f"not a database URL: {display_url(url)!r}{reason} (try sqlite:///runs.db or postgresql://user@host/db)"
        ) from None
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
            # TCP keepalives: a connection whose peer vanished (a cut cable, a dropped NAT entry)
            # fails within about 30 s instead of waiting on a reply for ever.
            engine = create_engine(
                parsed, pool_pre_ping=True,
                connect_args={"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 15,
                              "keepalives_interval": 5, "keepalives_count": 3},
            )
    except (NoSuchModuleError, ImportError, ArgumentError) as error:
        raise StoreError(f"cannot use {parsed.drivername}: {describe_error(error, url)}") from None
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


def first_own_epoch(row) -> int:
    """The epoch a run's own training starts after: its parent's for a continuation (whose first
    resume state is the parent's), else 0. ``row``: a runs row or a RunInfo (parent_id,
    parent_epoch, sweep_id)."""
    continues = row.parent_id is not None and row.sweep_id is None
    return (row.parent_epoch or 0) if continues else 0


def _float_or_none(value) -> float | None:
    """A diagnostic as the epochs table keeps it: a finite float, or NULL (not measured)."""
    return None if value is None or not math.isfinite(float(value)) else float(value)


def upgrade_schema(conn: Connection) -> None:
    """Bring a store written by an older seqcopy up to this one's schema, inside the caller's
    transaction (which holds the schema lock): create the tables and indexes it lacks, add the
    columns it lacks with their foreign keys, as a fresh store has them (each new column is
    nullable or has a server default, so the rows already there get a value), and record the
    new version. Additive only: nothing is dropped or
    rewritten, so workers of the older version still running keep working."""
    inspector = inspect(conn)
    existing = set(inspector.get_table_names())
    quote = conn.dialect.identifier_preparer
    for table in Base.metadata.sorted_tables:
        if table.name not in existing:
            table.create(conn, checkfirst=True)
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable and column.server_default is None:
                # A programming error in schema.py, caught by the upgrade test.
                raise RuntimeError(f"new column {table.name}.{column.name} needs nullable=True or a server_default")
            definition = str(CreateColumn(column).compile(dialect=conn.dialect))
            # CreateColumn leaves out a foreign key, which a fresh store's table has: both
            # databases take it inline (SQLite, for a column whose default is NULL).
            for key in column.foreign_keys:
                definition += f" REFERENCES {quote.format_table(key.column.table)} ({quote.quote(key.column.name)})"
                definition += f" ON DELETE {key.ondelete}" if key.ondelete else ""
            conn.execute(text(f"ALTER TABLE {quote.format_table(table)} ADD COLUMN {definition}"))
        indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(conn, checkfirst=True)
    conn.execute(update(meta_t).where(meta_t.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))


class Store(SearchTables):
    """All reads and writes of runs. Safe to share between threads; one per process is enough."""

    def __init__(self, url: str | None = None, engine: Engine | None = None, create: bool = True):
        self.url = database_url(url)
        self.engine = engine or make_engine(self.url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        # runs.id and sweeps.id are INTEGERs: 64-bit in SQLite, 32-bit in PostgreSQL.
        self.largest_id = MAX_ID if self.is_sqlite else 2**31 - 1
        try:
            self._prepare(create)
        except DBAPIError as error:
            self.engine.dispose()
            raise StoreError(f"cannot open the database {self.safe_url}: {self.describe(error)}") from None

    @property
    def safe_url(self) -> str:
        """The URL to show: every password masked (seqcopy.runs.redact)."""
        return display_url(self.engine.url.render_as_string(hide_password=False))

    def describe(self, error: Exception) -> str:
        """A database error on one line, as it may be shown or logged (secrets masked)."""
        return describe_error(error, self.engine.url.render_as_string(hide_password=False))

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
            version = int(found) if found is not None and str(found).isdecimal() else None
            if version is None or version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.safe_url} was written with store schema version {found}, and this seqcopy "
                    f"reads versions 1 to {SCHEMA_VERSION}: upgrade seqcopy here, or open another store"
                )
            if version < SCHEMA_VERSION:
                upgrade_schema(conn)

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

    def _check_id(self, value: object, kind: str = "run") -> None:
        """UnknownRun (UnknownSweep for ``kind='sweep'``) for anything that cannot be a run (or
        sweep) id here, before it reaches the database: SQLite overflows past 2**63 - 1, and
        PostgreSQL's integer column ends at 2**31 - 1 ('integer out of range'), where no row can be."""
        unknown = UnknownSweep if kind == "sweep" else UnknownRun
        if not self._storable(value, MAX_ID):
            shown = str(value) if isinstance(value, int) and value.bit_length() <= 128 else "that large"
            raise unknown(f"no {kind} with id {shown} ({kind} ids are whole numbers from 1 to {MAX_ID})")
        if value > self.largest_id:
            raise unknown(f"no {kind} with id {value}")

    def _storable(self, value: object, largest: int | None = None) -> bool:
        """Whether ``value`` is an id a row of this store could have (up to ``largest``)."""
        largest = self.largest_id if largest is None else largest
        return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= largest

    def _known_ids(self, run_ids: Sequence[int]) -> list[int]:
        """The ids of ``run_ids`` that a run of this store could have."""
        return [i for i in run_ids if self._storable(i)]

    @staticmethod
    def _status(conn: Connection, run_id: int) -> RunStatus:
        """The run's status, inside the caller's transaction; UnknownRun if there is none."""
        status = conn.execute(select(runs_t.c.status).where(runs_t.c.id == run_id)).scalar()
        if status is None:
            raise UnknownRun(f"no run with id {run_id}")
        return RunStatus(status)

    def _any(self, *conditions) -> bool:
        with self._read() as conn:
            return conn.execute(select(runs_t.c.id).where(*conditions).limit(1)).first() is not None

    # ------------------------------------------------------------------ queueing
    def submit(self, config: RunConfig, status: RunStatus = RunStatus.QUEUED, worker_id: str | None = None,
               device_used: str | None = None, max_restarts: int | None = None, rerun_of: int | None = None,
               submitted_by: str | None = None) -> int:
        """One run (see submit_many); ``rerun_of``: the run whose config it trains again."""
        if rerun_of is not None:
            self._check_id(rerun_of)
        return self._submit([config], status, worker_id, device_used, max_restarts=max_restarts,
                            rerun_of=rerun_of, submitted_by=submitted_by)[1][0]

    def submit_many(
        self, configs: Sequence[RunConfig], status: RunStatus = RunStatus.QUEUED, worker_id: str | None = None,
        device_used: str | None = None, max_restarts: int | None = None, submitted_by: str | None = None,
    ) -> list[int]:
        """Queue runs (all or none): every config is validated before anything is written.
        ``status='running'`` records a run trained here and now by ``worker_id`` on ``device_used``.
        ``max_restarts``: lapsed leases after a first epoch each run survives (default 3).
        ``submitted_by``: who queues them (default: this process's operating-system user)."""
        return self._submit(configs, status, worker_id, device_used, max_restarts=max_restarts,
                            submitted_by=submitted_by)[1]

    def submit_sweep(self, configs: Sequence[RunConfig], name: str, spec: dict, lineage: dict | None = None,
                     max_restarts: int | None = None, submitted_by: str | None = None) -> tuple[int, list[int]]:
        """Queue a grid as one sweep, all or nothing; returns (sweep id, run ids). ``lineage``:
        every run starts from that parent (see _submit); ``max_restarts``: each run's cap."""
        if not configs:
            raise ValueError("a sweep needs at least one run")
        return self._submit(configs, sweep={"name": name, "spec": spec}, lineage=lineage, max_restarts=max_restarts,
                            submitted_by=submitted_by)

    def submit_child(self, config: RunConfig, parent_id: int, parent_epoch: int, state: bytes,
                     epochs_done: int = 0, max_restarts: int | None = None, submitted_by: str | None = None) -> int:
        """Queue one run that starts from ``state`` of run ``parent_id`` after ``parent_epoch``:
        a continuation (the parent's resume state, ``epochs_done`` = parent_epoch) or a fork (a
        checkpoint's weights, epochs_done 0)."""
        self._check_id(parent_id)
        lineage = dict(parent_id=parent_id, parent_epoch=parent_epoch, state=state, epochs_done=epochs_done)
        return self._submit([config], lineage=lineage, max_restarts=max_restarts, submitted_by=submitted_by)[1][0]

    def _submit(
        self, configs: Sequence[RunConfig], status: RunStatus = RunStatus.QUEUED, worker_id: str | None = None,
        device_used: str | None = None, sweep: dict | None = None, existing_sweep: int | None = None, then=None,
        lineage: dict | None = None, max_restarts: int | None = None, rerun_of: int | None = None,
        submitted_by: str | None = None,
    ) -> tuple[int | None, list[int]]:
        """(sweep id or None, run ids) of the runs written in one transaction; ``sweep``
        ({name, spec}) records them as one sweep. ``lineage`` ({parent_id, parent_epoch, state,
        epochs_done}) records each as started from a parent, ``state`` (bytes: a resume state, or a
        checkpoint's weights) as its first resume state and ``epochs_done`` as already done (a
        continuation numbers its epochs on from its parent's). ``submitted_by``: who queues them
        (default: this process's operating-system user, seqcopy.runs.access.os_user)."""
        for config in configs:
            errors = config.validate(check_device=False)  # the worker checks the device
            if errors:
                raise ConfigError(errors)
        now = time.time()
        ids = []
        submitter = storable(submitted_by or os_user())[:200]
        with self._write() as conn:
            if existing_sweep is not None and submitted_by is None:
                # A search's trials (and a fidelity step's forks) are queued by whichever worker
                # is free: they are the sweep's submitter's runs.
                submitter = conn.execute(select(sweeps_t.c.submitted_by)
                                         .where(sweeps_t.c.id == existing_sweep)).scalar() or submitter
            if sweep is not None:
                sweep_id = self._insert_sweep(conn, sweep, configs, now, submitted_by=submitter)
            else:
                sweep_id = existing_sweep
            for config in configs:
                values = dict(
                    config=config.to_json(), cell=config.cell, seed=config.seed, tag=config.tag,
                    device=config.device, status=status, created_at=now, epochs_total=config.epochs,
                    lease_seconds=DEFAULT_LEASE, cancel_requested=False, epochs_done=0,
                    batch_done=0, batch_total=config.batches_per_epoch, sweep_id=sweep_id,
                    submitted_by=submitter,
                )
                if status == RunStatus.RUNNING:  # trained here and now (``train``): claimed at once
                    values.update(started_at=now, heartbeat_at=now, worker_id=worker_id,
                                  claim_token=new_claim_token(), device_used=device_used,
                                  # Its one requeue spent up front: a lapsed lease fails it rather
                                  # than hand it to a background worker, which would train it
                                  # without the outputs (logs/NAME/) its command promised.
                                  requeues=1, max_restarts=0)
                if lineage is not None:
                    values.update(parent_id=lineage["parent_id"], parent_epoch=lineage["parent_epoch"],
                                  epochs_done=lineage.get("epochs_done", 0))
                if rerun_of is not None:
                    values.update(rerun_of=rerun_of)
                if max_restarts is not None and status != RunStatus.RUNNING:
                    values.update(max_restarts=max_restarts)
                run_id = conn.execute(insert(runs_t).values(**values).returning(runs_t.c.id)).scalar_one()
                # SQLite hands a deleted newest id out again: a trial row left by a run deleted
                # before deletion kept a search's runs must not claim this new run.
                conn.execute(delete(trial_runs_t).where(trial_runs_t.c.run_id == run_id))
                ids.append(run_id)
                if lineage is not None and lineage.get("state") is not None:
                    conn.execute(insert(states_t).values(run_id=run_id, epoch=lineage.get("epochs_done", 0),
                                                         data=lineage["state"], size=len(lineage["state"]),
                                                         updated_at=now))
            if then is not None:
                then(conn, ids)
        return sweep_id, ids

    @staticmethod
    def _insert_sweep(conn: Connection, sweep: dict, configs: Sequence[RunConfig], now: float,
                      varied: Sequence[str] | None = None, submitted_by: str | None = None) -> int:
        """The sweeps row; ``varied``: the settings its runs vary, when no config is queued yet (a search's)."""
        problem = sweep_name_problem(sweep["name"])
        if problem:
            raise ConfigError({"sweep_name": f"the sweep's name: {problem}"})
        varied = varied_keys(configs) if varied is None else list(varied)
        return conn.execute(
            insert(sweeps_t).values(name=sweep["name"], created_at=now, spec=json.dumps(sweep["spec"]),
                                    varied=json.dumps(varied), submitted_by=submitted_by or os_user())
            .returning(sweeps_t.c.id)
        ).scalar_one()

    def claim(
        self, worker_id: str, lease: float = DEFAULT_LEASE, token: str | None = None,
        serves: Sequence[str] | None = None, device: str | None = None,
    ) -> RunInfo | None:
        """Atomically take the oldest queued run for ``worker_id`` that it can serve; None when
        there is none.

        ``serves`` names the devices whose runs this worker trains (None: any run); an 'auto'
        run is served by every worker and trains on ``device``, the worker's best, which the
        claim records in ``device_used``. A run that no worker serves stays queued.

        ``token`` (random when not given) marks the claim. A worker whose claim raised (the
        COMMIT may have landed, its reply lost) asks :meth:`held` with that token before it
        claims again, so it never takes a second run and leaves the first to lapse untrained."""
        now = time.time()
        token = token or new_claim_token()
        wanted = None if serves is None else (*serves, "auto")
        servable = [runs_t.c.status == RunStatus.QUEUED]
        if wanted is not None:
            # NULL: a row written before schema version 4, whose device only its config knows.
            servable.append(or_(runs_t.c.device.in_(wanted), runs_t.c.device.is_(None)))
        # An idle worker polls often: look with a read first, take the write lock only for work.
        if not self._any(*servable):
            return None
        with self._write() as conn:
            query = (
                select(runs_t.c.id, runs_t.c.device, runs_t.c.config).where(*servable).order_by(runs_t.c.id).limit(1)
            )
            if not self.is_sqlite:
                # Other workers skip the row this one holds instead of waiting for it.
                query = query.with_for_update(skip_locked=True)
            while True:
                found = conn.execute(query).first()
                if found is None:
                    return None
                run_id, requested = found.id, found.device
                if requested is None:
                    # Filled in once, by the first worker that looks: the next look (this
                    # worker's below, or another's) finds it in the column.
                    requested = _config_from_json(found.config).device
                    conn.execute(update(runs_t).where(runs_t.c.id == run_id).values(device=requested))
                if wanted is None or requested in wanted:
                    break
            conn.execute(
                update(runs_t)
                .where(runs_t.c.id == run_id, runs_t.c.status == RunStatus.QUEUED)
                .values(status=RunStatus.RUNNING, worker_id=worker_id, claim_token=token, started_at=now,
                        heartbeat_at=now, lease_seconds=lease, batch_done=0,
                        device_used=device if requested == "auto" else requested)
            )
            return RunInfo.from_row(conn.execute(select(runs_t).where(runs_t.c.id == run_id)).one())

    def held(self, worker_id: str, token: str) -> RunInfo | None:
        """The running run that the claim ``token`` of ``worker_id`` took, if that claim landed."""
        with self._read() as conn:
            row = conn.execute(
                select(runs_t).where(runs_t.c.claim_token == token, runs_t.c.worker_id == worker_id,
                                     runs_t.c.status == RunStatus.RUNNING)
            ).first()
        return None if row is None else RunInfo.from_row(row)

    @staticmethod
    def _owned(run_id: int, worker_id: str, token: str | None = None):
        """The run, while ``worker_id`` holds it (by the claim ``token``, when given)."""
        held = (runs_t.c.id == run_id, runs_t.c.worker_id == worker_id, runs_t.c.status == RunStatus.RUNNING)
        return held if token is None else (*held, runs_t.c.claim_token == token)

    def heartbeat(
        self, run_id: int, worker_id: str, batch_done: int | None = None, batch_total: int | None = None,
        token: str | None = None,
    ) -> bool:
        """Record a sign of life (and progress within the epoch) of the run and, in the same
        transaction, of its worker's row in the workers table (one write lock, not two: a busy
        worker's row beats here); returns cancel_requested. Raises LeaseLost if the run is no
        longer this worker's."""
        now = time.time()
        values = {"heartbeat_at": now}
        if batch_done is not None:
            values.update(batch_done=batch_done, batch_total=batch_total)
        with self._write() as conn:
            cancel = conn.execute(
                update(runs_t).where(*self._owned(run_id, worker_id, token)).values(**values)
                .returning(runs_t.c.cancel_requested)
            ).first()
            if cancel is None:
                raise LeaseLost(f"run {run_id} is no longer held by {worker_id}")
            # No row (``seqcopy train``, or a registration lost in an outage): nothing to beat.
            conn.execute(update(workers_t).where(workers_t.c.id == worker_id).values(heartbeat_at=now, run_id=run_id))
            return bool(cancel[0])

    def record_epoch(self, run_id: int, worker_id: str, epoch: dict, token: str | None = None,
                     state: bytes | None = None, snapshot: bytes | None = None,
                     keep: dict[int, str] | None = None) -> bool:
        """Write one epoch's row, the run's latest metrics, the heartbeat and (when given) the
        resume state after it, replacing the last, in one transaction: the state never runs ahead
        of, or lags behind, the epochs recorded with it. ``keep`` (epoch → reason, from
        seqcopy.runs.snapshots.retained) updates the run's snapshots in the same transaction: this
        epoch's ``snapshot`` bytes are added when it is kept, and the snapshots no longer kept are
        deleted. Returns cancel_requested. Safe to repeat: a retry of an epoch that already landed
        (its reply lost) finds the rows and writes nothing twice (the state and snapshot it
        writes again are the same)."""
        now = time.time()
        number = int(epoch["epoch"])
        row = {name: float(epoch[name]) for name in EPOCH_METRICS}
        measured = {name: _float_or_none(epoch.get(name)) for name in (*DIAGNOSTIC_METRICS, *PROGRESS_METRICS)}
        with self._write() as conn:
            # This UPDATE also locks the run's row, so the check below cannot race with
            # another writer of the same run.
            cancel = conn.execute(
                update(runs_t)
                .where(*self._owned(run_id, worker_id, token))
                .values(heartbeat_at=now, epochs_done=number, batch_done=0,
                        **{name: row[name] for name in LATEST_METRICS})
                .returning(runs_t.c.cancel_requested)
            ).first()
            if cancel is None:
                raise LeaseLost(f"run {run_id} is no longer held by {worker_id}")
            landed = conn.execute(
                select(epochs_t.c.epoch).where(epochs_t.c.run_id == run_id, epochs_t.c.epoch == number)
            ).first()
            if landed is None:
                conn.execute(
                    insert(epochs_t).values(
                        run_id=run_id, epoch=number, wall_time=now,
                        stage_output_len=int(epoch["stage_output_len"]),
                        stage_seq_len=int(epoch["stage_seq_len"]), **row, **measured,
                    )
                )
            if state is not None:
                self._put_state(conn, run_id, number, state, now)
            if keep is not None:
                self._keep_snapshots(conn, run_id, number, snapshot, keep)
            return bool(cancel[0])

    @staticmethod
    def _keep_snapshots(conn: Connection, run_id: int, number: int, snapshot: bytes | None,
                        keep: dict[int, str]) -> None:
        """The run's snapshots as ``keep`` says: the dropped ones deleted, the kept ones' reasons
        brought up to date, epoch ``number``'s added once (a repeat finds it there)."""
        conn.execute(delete(snapshots_t).where(snapshots_t.c.run_id == run_id,
                                               snapshots_t.c.epoch.not_in(list(keep))))
        present = dict(conn.execute(select(snapshots_t.c.epoch, snapshots_t.c.reason)
                                    .where(snapshots_t.c.run_id == run_id)).all())
        for kept, reason in keep.items():
            if kept in present and present[kept] != reason:
                conn.execute(update(snapshots_t).where(snapshots_t.c.run_id == run_id, snapshots_t.c.epoch == kept)
                             .values(reason=reason))
        if snapshot is not None and number in keep and number not in present:
            conn.execute(insert(snapshots_t).values(run_id=run_id, epoch=number, data=snapshot, size=len(snapshot),
                                                    reason=keep[number]))

    @staticmethod
    def _put_state(conn: Connection, run_id: int, epoch: int, state: bytes, now: float) -> None:
        """The run's one resume state, replaced (an UPDATE, else an INSERT: both databases)."""
        values = dict(epoch=epoch, data=state, size=len(state), updated_at=now)
        if conn.execute(update(states_t).where(states_t.c.run_id == run_id).values(**values)).rowcount == 0:
            conn.execute(insert(states_t).values(run_id=run_id, **values))

    def add_environment(self, run_id: int, worker_id: str, segment: dict, token: str | None = None) -> None:
        """Append the environment of the segment a held run starts (seqcopy.runs.provenance) to
        its runs.environments. Safe to repeat: an entry of the same worker from the same epoch
        replaces the last. LeaseLost when the run is no longer held by this claim."""
        with self._write() as conn:
            found = conn.execute(select(runs_t.c.environments).where(*self._owned(run_id, worker_id, token))
                                 .with_for_update()).first()
            if found is None:
                raise LeaseLost(f"run {run_id} is no longer held by {worker_id}")
            segments = list(_environments(found.environments))
            same = ("from_epoch", "worker")
            if segments and all(segments[-1].get(key) == segment.get(key) for key in same):
                segments.pop()
            conn.execute(update(runs_t).where(runs_t.c.id == run_id)
                         .values(environments=json.dumps([*segments, segment])))

    def resume_state(self, run_id: int) -> tuple[int, bytes] | None:
        """(epoch, bytes) of the run's resume state, or None when it has none."""
        if not self._known_ids([run_id]):
            return None
        with self._read() as conn:
            row = conn.execute(select(states_t.c.epoch, states_t.c.data).where(states_t.c.run_id == run_id)).first()
        return None if row is None else (row.epoch, row.data)

    def state_sizes(self) -> dict[int, int]:
        """run id → bytes of its resume state (the store's growth per run)."""
        with self._read() as conn:
            return dict(conn.execute(select(states_t.c.run_id, states_t.c.size)).all())

    def preempt(self, run_id: int, worker_id: str, reason: str, token: str | None = None) -> None:
        """Put a held run back in the queue, its epochs and resume state kept, with ``reason``
        ("preempted at epoch k; resumes") shown beside it: the next free worker goes on from
        there. A cancel requested meanwhile wins: the run is cancelled instead. Safe to repeat
        with the claim ``token``: a retry finds the run queued (or taken by a next worker) and
        returns; LeaseLost when the run was taken back from this claim before."""
        with self._write() as conn:
            changed = conn.execute(
                update(runs_t).where(*self._owned(run_id, worker_id, token), runs_t.c.cancel_requested == False)  # noqa: E712
                .values(status=RunStatus.QUEUED, worker_id=None, claim_token=None, heartbeat_at=None, batch_done=0,
                        device_used=None, error=storable(reason), preemptions=runs_t.c.preemptions + 1)
            )
            if changed.rowcount == 1:
                return
            row = conn.execute(select(runs_t.c.status, runs_t.c.error, runs_t.c.cancel_requested,
                                      runs_t.c.worker_id, runs_t.c.claim_token)
                               .where(runs_t.c.id == run_id)).first()
            if row is None:
                raise LeaseLost(f"run {run_id} no longer exists")
            ours = row.worker_id == worker_id and (token is None or row.claim_token == token)
            if row.status == RunStatus.RUNNING and ours:
                # Cancelled meanwhile: the user's word stands.
                conn.execute(update(runs_t).where(*self._owned(run_id, worker_id, token))
                             .values(status=RunStatus.CANCELLED, finished_at=time.time(),
                                     error=f"cancelled by request ({reason.split(';')[0]})"))
                return
            if token is not None and row.error == storable(reason):
                return  # our first attempt landed, its reply lost
            raise LeaseLost(f"run {run_id} is no longer held by {worker_id}")

    def finish(
        self,
        run_id: int,
        worker_id: str,
        status: RunStatus,
        error: str | None = None,
        checkpoint: bytes | None = None,
        position_acc: Sequence[float] = (),
        length_acc: Iterable[dict] = (),
        token: str | None = None,
    ) -> None:
        """Mark a held run completed, failed or cancelled, with its checkpoint and results, in
        one transaction. Safe to repeat with the claim ``token``: a retry whose first attempt
        landed (its reply lost) finds the run finished by this very claim and returns."""
        if status not in FINISHED:
            raise ValueError(f"a run finishes as one of {', '.join(map(str, FINISHED))}, not {str(status)!r}")
        error = None if error is None else storable(error)
        with self._write() as conn:
            changed = conn.execute(
                update(runs_t)
                .where(*self._owned(run_id, worker_id, token))
                .values(status=status, error=error, finished_at=time.time(), heartbeat_at=time.time())
            )
            if changed.rowcount != 1:
                if token is not None and self._finished_by(conn, run_id, worker_id, token, status):
                    return
                raise LeaseLost(f"run {run_id} is no longer held by {worker_id}")
            # Nothing of an earlier claim may linger (a requeued run); the final write replaces.
            for table in (checkpoints_t, positions_t, lengths_t):
                conn.execute(delete(table).where(table.c.run_id == run_id))
            if checkpoint is not None:
                epochs_done = conn.execute(select(runs_t.c.epochs_done).where(runs_t.c.id == run_id)).scalar()
                conn.execute(
                    insert(checkpoints_t).values(
                        run_id=run_id, data=checkpoint, size=len(checkpoint), epoch=epochs_done
                    )
                )
            if position_acc:
                conn.execute(
                    insert(positions_t),
                    [{"run_id": run_id, "position": i + 1, "copy_acc": float(a)} for i, a in enumerate(position_acc)],
                )
            lengths = [dict(run_id=run_id, **item) for item in length_acc]
            if lengths:
                conn.execute(insert(lengths_t), lengths)

    @staticmethod
    def _finished_by(conn: Connection, run_id: int, worker_id: str, token: str, status: str) -> bool:
        row = conn.execute(
            select(runs_t.c.status, runs_t.c.worker_id, runs_t.c.claim_token).where(runs_t.c.id == run_id)
        ).first()
        return row is not None and tuple(row) == (status, worker_id, token)

    def keep_checkpoint(self, run_id: int, epoch: int, data: bytes) -> bool:
        """Record ``data`` as the checkpoint of a finished run that has none (one stopped between
        epochs: its last resume state's weights, seqcopy.runs.lineage.kept_weights); False, and
        nothing written, when it has one or is not finished. Safe to repeat."""
        self._check_id(run_id)
        with self._write() as conn:
            if self._status(conn, run_id) not in FINISHED:
                return False
            if conn.execute(select(checkpoints_t.c.run_id).where(checkpoints_t.c.run_id == run_id)).first():
                return False
            conn.execute(insert(checkpoints_t).values(run_id=run_id, data=data, size=len(data), epoch=epoch))
            return True

    def request_cancel(self, run_id: int) -> RunStatus:
        """Cancel a queued run at once, or ask a running one to stop; returns its status after.
        A queued run that trained before (preempted, or its worker lost) says after which epoch
        it was waiting to resume: its state there is kept, and its weights with it."""
        self._check_id(run_id)
        with self._write() as conn:
            status = self._status(conn, run_id)
            if status == RunStatus.QUEUED:
                resumes = conn.execute(select(states_t.c.epoch).where(states_t.c.run_id == run_id)).scalar()
                row = conn.execute(select(runs_t.c.parent_id, runs_t.c.parent_epoch, runs_t.c.sweep_id)
                                   .where(runs_t.c.id == run_id)).first()
                started = resumes is not None and resumes > first_own_epoch(row)
                reason = f"cancelled while queued to resume after epoch {resumes}" if started \
                    else "cancelled before it started"
                changed = conn.execute(
                    update(runs_t).where(runs_t.c.id == run_id, runs_t.c.status == RunStatus.QUEUED)
                    .values(status=RunStatus.CANCELLED, cancel_requested=True, finished_at=time.time(),
                            error=reason)
                )
                if changed.rowcount == 1:
                    return RunStatus.CANCELLED
                # A worker claimed it meanwhile (PostgreSQL): ask the running run to stop.
                status = RunStatus(conn.execute(select(runs_t.c.status).where(runs_t.c.id == run_id)).scalar())
            if status == RunStatus.RUNNING:
                conn.execute(update(runs_t).where(runs_t.c.id == run_id).values(cancel_requested=True))
            return status

    def reclaim_expired(self, now: float | None = None) -> list[int]:
        """Take back running runs whose worker stopped sending heartbeats past the lease. A run
        with no epoch done goes back to the queue, once (its worker may have died before it
        began, or lost the reply to its claim), unless ``seqcopy train`` trains it here and now
        (submitted with its requeue spent). A run with epochs done goes back to the queue to
        resume from its resume state, up to its ``max_restarts`` (0 for ``seqcopy train``'s), then
        fails with the reason, so a run that kills its worker every time cannot loop for ever.
        A run whose cancel was asked fails, as before. Finished epochs are always kept. Returns
        the ids taken back."""
        now = time.time() if now is None else now
        lapsed = (runs_t.c.status == RunStatus.RUNNING, runs_t.c.heartbeat_at + runs_t.c.lease_seconds < now)
        if not self._any(*lapsed):
            return []
        with self._write() as conn:
            expired = conn.execute(
                select(runs_t.c.id, runs_t.c.worker_id, runs_t.c.heartbeat_at, runs_t.c.epochs_done,
                       runs_t.c.requeues, runs_t.c.cancel_requested, runs_t.c.restarts,
                       runs_t.c.max_restarts).where(*lapsed)
            ).all()
            taken = []
            for run_id, worker, beat, epochs_done, requeues, cancel_requested, restarts, cap in expired:
                silence = f"worker {worker} stopped responding: no heartbeat for {now - beat:.0f} s"
                restarts, cap = restarts or 0, DEFAULT_MAX_RESTARTS if cap is None else cap
                back = dict(status=RunStatus.QUEUED, worker_id=None, claim_token=None, heartbeat_at=None, batch_done=0,
                            device_used=None)
                if cancel_requested:
                    values = dict(status=RunStatus.FAILED, finished_at=now, error=silence)
                elif epochs_done == 0 and not (requeues or 0):
                    values = dict(back, started_at=None, requeues=(requeues or 0) + 1,
                                  error=f"{silence} before its first epoch; queued again")
                elif epochs_done > 0 and restarts < cap:
                    # The epoch it truly goes on after: its last resume state's (--state-every
                    # may leave it behind the epochs recorded, which are trained again).
                    resumes = conn.execute(select(states_t.c.epoch).where(states_t.c.run_id == run_id)).scalar()
                    resumes = epochs_done if resumes is None else resumes
                    again = f"; epochs {resumes + 1}–{epochs_done} are trained again" if resumes < epochs_done else ""
                    values = dict(back, restarts=restarts + 1,
                                  error=f"{silence}; resumes after epoch {resumes}{again} "
                                        f"(restart {restarts + 1} of at most {cap})")
                elif epochs_done > 0 and cap > 0:
                    values = dict(status=RunStatus.FAILED, finished_at=now,
                                  error=f"{silence}; gave up after {restarts} restart(s) (at most {cap} allowed)")
                else:
                    values = dict(status=RunStatus.FAILED, finished_at=now, error=silence)
                changed = conn.execute(
                    update(runs_t).where(runs_t.c.id == run_id, runs_t.c.status == RunStatus.RUNNING,
                                         runs_t.c.heartbeat_at == beat)
                    .values(**values)
                )
                if changed.rowcount == 1:  # not finished, beaten or taken back meanwhile
                    taken.append(run_id)
        return taken

    # ------------------------------------------------------------------ workers
    def register_worker(self, worker: WorkerInfo) -> None:
        """Record a worker that starts (replacing the row of a vanished one whose id, host:pid,
        this one reuses)."""
        values = dataclasses.asdict(worker)
        with self._write() as conn:
            conn.execute(delete(workers_t).where(workers_t.c.id == worker.id))
            conn.execute(insert(workers_t).values(**values))

    def worker_beat(self, worker_id: str, run_id: int | None, runs_done: int) -> bool:
        """A worker's sign of life, with the run it trains now (None when idle); False when it
        has no row (never registered, or its registration was lost in an outage)."""
        with self._write() as conn:
            changed = conn.execute(
                update(workers_t).where(workers_t.c.id == worker_id)
                .values(heartbeat_at=time.time(), run_id=run_id, runs_done=runs_done)
            )
            return changed.rowcount == 1

    def worker_stopped(self, worker_id: str, runs_done: int) -> None:
        """A worker that exits cleanly says so: it is listed as stopped, not vanished."""
        now = time.time()
        with self._write() as conn:
            conn.execute(update(workers_t).where(workers_t.c.id == worker_id)
                         .values(stopped_at=now, heartbeat_at=now, run_id=None, runs_done=runs_done))

    def list_workers(self, since: float | None = None) -> list[WorkerInfo]:
        """Registered workers, the most recently started first; with ``since``, only those
        with a sign of life since that Unix time (every live one has)."""
        query = select(workers_t).order_by(workers_t.c.started_at.desc(), workers_t.c.id)
        if since is not None:
            query = query.where(workers_t.c.heartbeat_at >= since)
        return [WorkerInfo(**row) for row in self._dicts(query)]

    # ------------------------------------------------------------------ editing
    def set_tag(self, run_id: int, tag: str) -> None:
        """Replace a run's tag; ValueError (one line) for a tag RunConfig would refuse too."""
        problem = check_tag(tag)
        if problem:
            raise ValueError(f"tag: {problem}")
        self._check_id(run_id)
        with self._write() as conn:
            if conn.execute(update(runs_t).where(runs_t.c.id == run_id).values(tag=tag)).rowcount != 1:
                raise UnknownRun(f"no run with id {run_id}")

    def delete_run(self, run_id: int) -> None:
        """Delete a run that is not running, with everything recorded for it. A search's run is
        refused: its trial's value (here and in the Optuna study) was computed from its epochs,
        and a trial whose runs went missing would report a value nothing shows, as a sweep is
        never deleted for the same reason."""
        self._check_id(run_id)
        with self._write() as conn:
            status = self._status(conn, run_id)
            if status == RunStatus.RUNNING:
                raise ValueError(f"run {run_id} is running: cancel it first")
            trial = conn.execute(select(trial_runs_t.c.sweep_id, trial_runs_t.c.number)
                                 .where(trial_runs_t.c.run_id == run_id)).first()
            if trial is not None:
                raise ValueError(f"run {run_id} is a run of trial {trial.number} of search {trial.sweep_id}: its value "
                                 "was computed from it, so it is kept (cancel it to stop it)")
            for table in (epochs_t, checkpoints_t, positions_t, lengths_t, states_t, snapshots_t):
                conn.execute(delete(table).where(table.c.run_id == run_id))
            # Its children keep their weights and epochs; only the link to it goes.
            conn.execute(update(runs_t).where(runs_t.c.parent_id == run_id).values(parent_id=None))
            conn.execute(delete(runs_t).where(runs_t.c.id == run_id))

    # ------------------------------------------------------------------ reading
    def get_run(self, run_id: int) -> RunInfo:
        self._check_id(run_id)
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
            if not self._storable(sweep_id):
                return []  # no sweep can have that id here
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
        self._check_id(sweep_id, "sweep")
        with self._read() as conn:
            row = conn.execute(select(sweeps_t).where(sweeps_t.c.id == sweep_id)).one_or_none()
        if row is None:
            raise UnknownSweep(f"no sweep with id {sweep_id}")
        return SweepInfo.from_row(row)

    def epochs(self, run_ids: Sequence[int]) -> list[dict]:
        """Every epoch row of the given runs, ordered by run and epoch."""
        run_ids = self._known_ids(run_ids)
        if not run_ids:
            return []
        query = select(epochs_t).where(epochs_t.c.run_id.in_(run_ids)).order_by(epochs_t.c.run_id, epochs_t.c.epoch)
        return self._dicts(query)

    def _dicts(self, query) -> list[dict]:
        """The query's rows as dicts (zip over the keys: half the time of row._mapping on the
        10,000 epochs of 200 runs)."""
        with self._read() as conn:
            result = conn.execute(query)
            keys = list(result.keys())
            return [dict(zip(keys, row, strict=True)) for row in result]

    def position_results(self, run_ids: Sequence[int]) -> list[dict]:
        query = (
            select(positions_t)
            .where(positions_t.c.run_id.in_(self._known_ids(run_ids)))
            .order_by(positions_t.c.run_id, positions_t.c.position)
        )
        return self._dicts(query)

    def length_results(self, run_ids: Sequence[int]) -> list[dict]:
        query = (
            select(lengths_t)
            .where(lengths_t.c.run_id.in_(self._known_ids(run_ids)))
            .order_by(lengths_t.c.run_id, lengths_t.c.seq_len)
        )
        return self._dicts(query)

    def checkpoint(self, run_id: int) -> bytes | None:
        if not self._known_ids([run_id]):
            return None
        with self._read() as conn:
            return conn.execute(select(checkpoints_t.c.data).where(checkpoints_t.c.run_id == run_id)).scalar()

    def final_weights(self, run_id: int) -> tuple[int, bytes] | None:
        """(epoch, checkpoint bytes) of a finished run's weights, or None: what a fork starts from."""
        if not self._known_ids([run_id]):
            return None
        with self._read() as conn:
            row = conn.execute(select(checkpoints_t.c.epoch, checkpoints_t.c.data)
                               .where(checkpoints_t.c.run_id == run_id)).first()
        return None if row is None else (row.epoch, row.data)

    def snapshots(self, run_id: int) -> list[SnapshotInfo]:
        """The run's kept snapshots, by epoch, without their bytes; [] for a run with none (one
        trained before schema version 7, or an unknown id)."""
        if not self._known_ids([run_id]):
            return []
        query = (select(snapshots_t.c.epoch, snapshots_t.c.size, snapshots_t.c.reason)
                 .where(snapshots_t.c.run_id == run_id).order_by(snapshots_t.c.epoch))
        return [SnapshotInfo(**row) for row in self._dicts(query)]

    def snapshot(self, run_id: int, epoch: int) -> bytes | None:
        """The checkpoint bytes of the run's weights after ``epoch``, or None when not kept."""
        if not self._known_ids([run_id]) or not self._storable(epoch):
            return None
        with self._read() as conn:
            return conn.execute(select(snapshots_t.c.data)
                                .where(snapshots_t.c.run_id == run_id, snapshots_t.c.epoch == epoch)).scalar()

    def snapshot_sizes(self) -> dict[int, int]:
        """run id → bytes of its kept snapshots (the store's growth per run, at most
        MAX_SNAPSHOTS checkpoints: seqcopy.runs.snapshots)."""
        with self._read() as conn:
            return dict(conn.execute(select(snapshots_t.c.run_id, func.sum(snapshots_t.c.size))
                                     .group_by(snapshots_t.c.run_id)).all())

    def checkpoint_ids(self) -> set[int]:
        with self._read() as conn:
            return set(conn.execute(select(checkpoints_t.c.run_id)).scalars())


def _refuse_missing_sqlite_file(url: str | None) -> None:
    try:
        parsed = make_url(database_url(url))
    except (ArgumentError, ValueError):
        return  # Store() reports a malformed URL in its own words
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not os.path.exists(parsed.database):
            raise StoreError(f"no runs store at {parsed.database} (nothing has been run here yet?)")
        # SQLite takes an empty file for a new database and would write a header into it.
        if os.path.isfile(parsed.database) and os.path.getsize(parsed.database) == 0:
            raise StoreError(f"{parsed.database} is an empty file, not a runs store")


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
        raise StoreError(f"cannot open the database: {describe_error(error, database_url(url))}") from None
