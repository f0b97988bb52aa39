"""Continue and fork: the runs that start from another run, for the command line and the pages.

A continuation is a new run, not the same run extended: the parent's record (its epochs, final
evaluation, checkpoint, and the report rows that cite it) stays exactly as it was, and the child
says where it came from ('from #12 @ epoch 30'). It takes the parent's whole resume state and
numbers its epochs on from the parent's. A fork takes only the parent's final weights, with new
settings, and trains its own epochs from 1 with a fresh optimiser.
"""

from __future__ import annotations

from seqcopy.config import RunConfig, weights_problem
from seqcopy.errors import InputError
from seqcopy.runs.states import RunStatus
from seqcopy.runs.store import RunInfo, Store


class LineageError(InputError):
    """A run that cannot be continued or forked as asked (one line)."""


def continue_run(store: Store, run_id: int, epochs: int, max_restarts: int | None = None) -> tuple[int, RunInfo, int]:
    """Queue a run that continues the completed run ``run_id`` for ``epochs`` more; returns
    (child id, parent, the epoch it goes on from)."""
    if not isinstance(epochs, int) or epochs < 1:
        raise LineageError(f"--epochs: at least 1 more epoch, got {epochs}")
    parent = store.get_run(run_id)
    if parent.status != RunStatus.COMPLETED:
        raise LineageError(f"run {parent.id} is {parent.status}: only a completed run is continued "
                           f"(fork it with submit --from {parent.id}, or wait for it to end)")
    found = store.resume_state(parent.id)
    if found is None:
        raise LineageError(f"run {parent.id} has no resume state (trained before seqcopy kept one): "
                           f"fork it from its weights with submit --from {parent.id}")
    epoch, state = found
    config = parent.config.replace(epochs=epoch + epochs)
    problems = config.validate(check_device=False)
    if problems:
        raise LineageError(f"--epochs: {next(iter(problems.values()))}")
    return store.submit_child(config, parent.id, epoch, state, epochs_done=epoch, max_restarts=max_restarts), \
        parent, epoch


def fork_start(store: Store, run_id: int) -> tuple[RunInfo, int, bytes]:
    """(parent, the epoch of its final weights, their checkpoint bytes) for a fork of ``run_id``."""
    parent = store.get_run(run_id)
    found = store.final_weights(run_id)
    if found is None:
        raise LineageError(f"--from {run_id}: the run is {parent.status} and has no final weights to start from"
                           + (" yet (fork it once it ends)" if not parent.status.finished else ""))
    return parent, *found


def check_fork(parent: RunInfo, configs: list[RunConfig]) -> None:
    """LineageError (one line) for the first config that the parent's weights do not fit."""
    for config in configs:
        problem = weights_problem(parent.config, config)
        if problem:
            raise LineageError(f"--from {parent.id}: {problem}")


def lineage_of(fork: tuple[RunInfo, int, bytes]) -> dict:
    """The ``lineage`` argument of Store.submit_sweep for a fork."""
    parent, epoch, weights = fork
    return dict(parent_id=parent.id, parent_epoch=epoch, state=weights)
