"""The Launch page's view of the workers: who is there to train, and why a queued run waits.

Pure functions of :class:`seqcopy.runs.store.WorkerInfo` lists (seqcopy.runs.capacity computes the rows
that ``seqcopy workers`` prints as well); the page only draws what they return.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from seqcopy.runs.capacity import ago, summary, waiting_reason, worker_rows
from seqcopy.runs.states import RunStatus, WorkerPresence
from seqcopy.runs.store import RunInfo, WorkerInfo

SHOWN_COLUMNS = ["Worker", "State", "Serves", "Threads", "Run", "Runs done", "Last seen", "Started by"]


@dataclass(frozen=True)
class WorkersView:
    """What the page shows: a one-line summary, the live and vanished workers, and the stopped
    ones (in an expander: idle-exit workers pile up)."""

    summary: str
    present: pd.DataFrame
    stopped: pd.DataFrame


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Worker": row["worker"], "State": row["state"], "Serves": row["serves"], "Threads": row["threads"],
                "Run": "" if row["run"] is None else f"#{row['run']}", "Runs done": row["runs_done"],
                "Last seen": f"{ago(row['last_seen_s'])} ago", "Started by": row["origin"],
            }
            for row in rows
        ],
        columns=SHOWN_COLUMNS,
    )


def workers_view(workers: Sequence[WorkerInfo], now: float | None = None) -> WorkersView:
    now = time.time() if now is None else now
    rows = worker_rows(workers, now)
    return WorkersView(
        summary=summary(workers, now),
        present=_frame([row for row in rows if row["state"] != WorkerPresence.STOPPED]),
        stopped=_frame([row for row in rows if row["state"] == WorkerPresence.STOPPED]),
    )


def queued_reasons(runs: Sequence[RunInfo], workers: Sequence[WorkerInfo], now: float | None = None) -> dict[int, str]:
    """Why each queued run of ``runs`` waits, by run id ('waiting for a CUDA worker …')."""
    now = time.time() if now is None else now
    return {run.id: waiting_reason(run.config.device, workers, now) for run in runs if run.status == RunStatus.QUEUED}


@dataclass(frozen=True)
class LocalWorkerLine:
    """The sidebar's line about the dashboard's own worker: ``ok`` (a caption) or not (a warning)."""

    ok: bool
    text: str


def local_worker_line(worker_id: str | None, pid: int | None, process_alive: bool, workers: Sequence[WorkerInfo],
                      now: float | None = None) -> LocalWorkerLine:
    """What the store's heartbeats say of the local worker (its row in ``workers``, found by
    ``worker_id``): live, vanished or stopped; 'starting' before its first heartbeat. Its process
    having exited is said as well, since a worker killed outright stays 'live' until its lease lapses."""
    now = time.time() if now is None else now
    row = next((w for w in workers if w.id == worker_id), None)
    who = f"pid {pid}"
    if row is None:
        if process_alive:
            return LocalWorkerLine(True, f"Local worker: starting ({who})")
        return LocalWorkerLine(False, f"Local worker: exited ({who}) before its first heartbeat")
    presence = row.state(now)
    seen = f"last heartbeat {ago(now - row.heartbeat_at)} ago"
    if presence == WorkerPresence.LIVE and process_alive:
        doing = f"training #{row.run_id}" if row.run_id is not None else "idle"
        return LocalWorkerLine(True, f"Local worker: live ({who}) · {doing} · {seen}")
    if presence == WorkerPresence.LIVE:
        return LocalWorkerLine(False, f"Local worker: exited ({who}) · {seen}")
    if presence == WorkerPresence.VANISHED:
        gone = "" if process_alive else "; its process has exited"
        return LocalWorkerLine(False, f"Local worker: vanished ({who}): no heartbeat for "
                                      f"{ago(now - row.heartbeat_at)}{gone}")
    return LocalWorkerLine(False, f"Local worker: stopped ({who}) {ago(now - row.heartbeat_at)} ago")
