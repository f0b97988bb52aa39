"""The Streamlit side: one cached Store and local worker per server process, and short-lived
caches of reads so that a page rerun (every widget change, every live refresh) stays cheap.

Reads are cached for a couple of seconds: long enough that the several parts of one page share
one query, short enough that live views stay live. Writes clear the caches they make stale.

A database that stops answering after the app opened it (a server restart, a network cut) turns
each page, and each live fragment, into one message with a Retry button (:func:`outage_safe`),
never a traceback.
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from typing import TYPE_CHECKING

import streamlit as st
from sqlalchemy.exc import DBAPIError

from seqcopy.config import RunConfig
from seqcopy.runs.capacity import RECENT_S
from seqcopy.runs.states import RunStatus
from seqcopy.runs.store import (
    RunInfo,
    SnapshotInfo,
    Store,
    SweepInfo,
    WorkerInfo,
    database_url,
    is_transient,
    open_store,
)
from seqcopy.ui import escape
from seqcopy.ui.local_worker import LocalWorker, Supervision

if TYPE_CHECKING:  # torch loads only on the page that plays a model, not on every page
    from seqcopy.core.model import CopyModel

LIVE_REFRESH_S = 2


def url() -> str:
    return database_url()


@st.cache_resource(show_spinner=False)
def _store(database: str) -> Store:
    return open_store(database)


def get_store() -> Store:
    """The process-wide Store of SEQCOPY_DB (or runs.db). Raises StoreError when unusable."""
    return _store(url())


def external_workers() -> bool:
    return os.environ.get("SEQCOPY_WORKER", "").strip().lower() == "external"


@st.cache_resource(show_spinner=False)
def _local_worker(database: str) -> LocalWorker:
    worker = LocalWorker(database)
    worker.start()
    return worker


def ensure_local_worker() -> LocalWorker | None:
    """Start the local worker once per server process, unless SEQCOPY_WORKER=external."""
    if external_workers():
        return None
    return _local_worker(url())


def supervise_local_worker() -> tuple[LocalWorker | None, Supervision | None]:
    """The local worker (None: workers are external), started again if it exited while runs
    wait for it: queued ones, or one it held when it died (a worker killed outright leaves its
    run 'running' until a next worker takes it back after its lease). A database error is raised."""
    worker = ensure_local_worker()
    if worker is None:
        return None, None
    waiting = any(run.status == RunStatus.QUEUED or run.worker_id == worker.worker_id
                  for run in active_runs(url()))
    return worker, worker.supervise(waiting)


# ----------------------------------------------------------------------------- cached reads
@st.cache_data(ttl=LIVE_REFRESH_S, show_spinner=False)
def runs(database: str) -> list[RunInfo]:
    """Every run row (no epochs), newest first."""
    return _store(database).list_runs()


def runs_or_stop(empty_message: str) -> list[RunInfo]:
    """Every run; on an empty store, the page's pointer to Launch, and the page stops there."""
    found = runs(url())
    if not found:
        st.info(empty_message)
        st.page_link("views/launch.py", label="Open Launch", icon=":material/rocket_launch:")
        st.stop()
    return found


@st.cache_data(ttl=LIVE_REFRESH_S, show_spinner=False)
def sweeps(database: str) -> list[SweepInfo]:
    """Every sweep, newest first."""
    return _store(database).list_sweeps()


@st.cache_data(ttl=LIVE_REFRESH_S, show_spinner=False)
def active_runs(database: str) -> list[RunInfo]:
    return _store(database).list_runs(statuses=(RunStatus.QUEUED, RunStatus.RUNNING))


@st.cache_data(ttl=LIVE_REFRESH_S, show_spinner=False)
def workers(database: str) -> list[WorkerInfo]:
    """The live workers, and those that stopped or vanished in the last day."""
    return _store(database).list_workers(since=time.time() - RECENT_S)


@st.cache_data(ttl=LIVE_REFRESH_S, show_spinner=False)
def epochs(database: str, run_ids: tuple[int, ...]) -> list[dict]:
    return _store(database).epochs(list(run_ids))


@st.cache_data(ttl=30, show_spinner=False)
def position_results(database: str, run_ids: tuple[int, ...]) -> list[dict]:
    return _store(database).position_results(list(run_ids))


@st.cache_data(ttl=30, show_spinner=False)
def length_results(database: str, run_ids: tuple[int, ...]) -> list[dict]:
    return _store(database).length_results(list(run_ids))


@st.cache_data(ttl=5, show_spinner=False)
def checkpoint_ids(database: str) -> set[int]:
    return _store(database).checkpoint_ids()


@st.cache_data(ttl=60, show_spinner=False)
def speed_history(database: str, limit: int = 20) -> list[tuple[RunConfig, float]]:
    """(config, median seconds per epoch) of the latest completed runs: calibrates estimates."""
    store = _store(database)
    done = store.list_runs(statuses=(RunStatus.COMPLETED,), limit=limit)
    rows = store.epochs([run.id for run in done])
    seconds: dict[int, list[float]] = {}
    for row in rows:
        seconds.setdefault(row["run_id"], []).append(row["seconds"])
    return [(run.config, statistics.median(seconds[run.id])) for run in done if run.id in seconds]


@st.cache_data(ttl=60, show_spinner=False)
def snapshots(database: str, run_id: int, finished_at: float | None) -> list[SnapshotInfo]:
    """The finished run's kept snapshots, by epoch (finished_at keys the cache as model_for's)."""
    return _store(database).snapshots(run_id)


# Keyed by (run, epoch): scrubbing the Epoch slider back and forth loads each snapshot once.
@st.cache_resource(show_spinner=False, max_entries=8)
def model_for(database: str, run_id: int, finished_at: float | None,
              epoch: int | None = None) -> tuple[CopyModel, RunConfig]:
    """The run's weights as a model in eval mode: its final checkpoint, or with ``epoch`` its
    snapshot after that epoch (finished_at keys the cache to this very run, should an id be
    reused after a delete). Raises CheckpointError, also for a snapshot not kept."""
    from seqcopy.core.checkpoint import CheckpointError, from_bytes

    store = _store(database)
    data = store.checkpoint(run_id) if epoch is None else store.snapshot(run_id, epoch)
    if data is None:
        what = "checkpoint" if epoch is None else f"snapshot of epoch {epoch}"
        raise CheckpointError(f"run {run_id} has no {what}")
    return from_bytes(data)


def clear_reads() -> None:
    """After a write: the next read sees it."""
    for cached in (runs, sweeps, active_runs, epochs, checkpoint_ids, workers):
        cached.clear()


# ----------------------------------------------------------------------------- a database gone
def show_database_trouble(error: DBAPIError, key: str = "page") -> None:
    """One clear message, and a Retry button, in place of what could not be read or written."""
    reason = escape.markdown(get_store().describe(error))
    if is_transient(error):
        st.error(f"The runs database does not answer: {reason}", icon=":material/cloud_off:")
        st.caption("Queued and running runs are safe in the database, and workers retry on their own. "
                   "Live parts of this page retry every few seconds; Retry reloads the whole page.")
    else:
        st.error(f"The runs database refused a request: {reason}", icon=":material/error:")
    if st.button("Retry", key=f"database_retry_{key}", icon=":material/refresh:"):
        clear_reads()
        st.rerun()


def outage_safe(render):
    """Wraps a fragment (or any part of a page) so that a database error shows
    :func:`show_database_trouble` there instead of a traceback, and stops the run: the rest of
    the page, which would fail the same way, adds no second message."""

    @functools.wraps(render)
    def guarded(*args, **kwargs):
        try:
            return render(*args, **kwargs)
        except DBAPIError as error:
            show_database_trouble(error, key=render.__name__)
            st.stop()

    return guarded
