"""The states a run, a search's trial and a worker's run can be in: types, not loose strings.

Each is a ``StrEnum``, so a member is the very string the store keeps (``RunStatus.QUEUED ==
"queued"``) and every stored value reads as before. MLflow's ``RunStatus`` and Ray Tune's
``CONTINUE``/``STOP`` are the same idea.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A run's life in the queue: queued → running → completed | failed | cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the run has reached a final status."""
        return self in FINISHED


FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)

# How a pruned run's reason begins (seqcopy.runs.trials writes it): a pruned run is completed, its
# epochs a true but shorter run, and this word is what tells it from a full one.
PRUNED_PREFIX = "pruned"


class RunBadge(StrEnum):
    """What a run's status does not say by itself (RunInfo.badges): a pruned run is completed, a
    preempted one queued, a resumed, continued or forked one whatever it is now."""

    PRUNED = "pruned"
    PREEMPTED = "preempted"  # queued with its resume state: the next worker goes on from it
    RESUMED = "resumed"  # went on from its state after a worker stopped or vanished
    CONTINUED = "continued"
    FORKED = "forked"


class TrialState(StrEnum):
    """A search trial's life: its number taken (asking), its runs queued (running), then an end."""

    ASKING = "asking"
    RUNNING = "running"
    COMPLETED = "completed"
    PRUNED = "pruned"
    FAILED = "failed"


class Outcome(StrEnum):
    """How a worker's turn with one run ended: a final status it wrote, or the run handed on.

    PREEMPTED: put back in the queue with its state, to resume. LOST: taken back from this worker
    (its lease lapsed, or the final write could not land), so another worker's verdict stands."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"
    LOST = "lost"

    @property
    def counts_as_done(self) -> bool:
        """Whether this worker finished the run (a run handed on is not one of its runs done)."""
        return self not in (Outcome.PREEMPTED, Outcome.LOST)


class WorkerPresence(StrEnum):
    """A worker as the workers table shows it: beating, stopped cleanly, or gone silent past its lease."""

    LIVE = "live"
    VANISHED = "vanished"
    STOPPED = "stopped"
