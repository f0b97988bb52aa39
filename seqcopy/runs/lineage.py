"""Continue and fork: the runs that start from another run, for the command line and the pages.

A continuation is a new run, not the same run extended: the parent's record (its epochs, final
evaluation, checkpoint, and the report rows that cite it) stays exactly as it was, and the child
says where it came from ('from #12 @ epoch 30'). It takes the parent's whole resume state and
numbers its epochs on from the parent's. A fork takes only the parent's final weights, with new
settings, and trains its own epochs from 1 with a fresh optimiser.
"""

from __future__ import annotations

from seqcopy.config import MAX_EPOCHS, RunConfig, weights_problem
from seqcopy.errors import InputError
from seqcopy.runs.states import RunStatus
from seqcopy.runs.store import RunInfo, Store, first_own_epoch


class LineageError(InputError):
    """A run that cannot be continued or forked as asked (one line)."""


# A run stopped between epochs ends with its last resume state and no checkpoint: these keep it.
ENDED_WITH_STATE = (RunStatus.CANCELLED, RunStatus.FAILED)


def continue_run(store: Store, run_id: int, epochs: int, max_restarts: int | None = None) -> tuple[int, RunInfo, int]:
    """Queue a run that continues the ended run ``run_id`` for ``epochs`` more; returns (child
    id, parent, the epoch it goes on from). A completed run goes on from its last epoch; a
    cancelled or failed one from its last resume state (a preempted run cancelled while queued,
    one failed by --max-restarts: the state is exact, so its epochs go on as if never stopped)."""
    if not isinstance(epochs, int) or epochs < 1:
        raise LineageError(f"--epochs: at least 1 more epoch, got {epochs}")
    parent = store.get_run(run_id)
    if not parent.status.finished:
        raise LineageError(f"run {parent.id} is {parent.status}: continue it once it ends")
    found = store.resume_state(parent.id)
    if found is None or found[0] == 0 or (parent.status != RunStatus.COMPLETED and found[0] <= first_own_epoch(parent)):
        if parent.status != RunStatus.COMPLETED:
            raise LineageError(f"run {parent.id} is {parent.status} before its first epoch: it has no state to go on "
                               "from (queue it again with submit)")
        raise LineageError(f"run {parent.id} has no resume state (trained before seqcopy kept one): "
                           f"fork it from its weights with submit --from {parent.id}")
    epoch, state = found
    room = MAX_EPOCHS - epoch
    if epochs > room:
        raise LineageError(f"--epochs: at most {room:,} more for run {parent.id} (it ends at epoch {epoch}, and a run "
                           f"has at most {MAX_EPOCHS:,}), got {epochs:,}")
    config = parent.config.replace(epochs=epoch + epochs)
    problems = config.validate(check_device=False)
    if problems:
        raise LineageError(f"--epochs: {next(iter(problems.values()))}")
    return store.submit_child(config, parent.id, epoch, state, epochs_done=epoch, max_restarts=max_restarts), \
        parent, epoch


def kept_weights(store: Store, run_id: int) -> tuple[int, bytes] | None:
    """(epoch, checkpoint bytes) of a run's weights: its checkpoint, or for a run that ended
    between epochs (cancelled while queued to resume, failed by --max-restarts or a lost worker)
    the weights of its last resume state, recorded as its checkpoint so that every page and
    command finds them; None when it trained no epoch of its own, or has not ended."""
    found = store.final_weights(run_id)
    if found is not None:
        return found
    run = store.get_run(run_id)
    if run.status not in ENDED_WITH_STATE:
        return None
    state = store.resume_state(run_id)
    if state is None or state[0] <= first_own_epoch(run):
        return None
    from seqcopy.core.resume import checkpoint_of  # torch: only where a state is turned into weights

    epoch, blob = checkpoint_of(state[1], run.config)
    store.keep_checkpoint(run_id, epoch, blob)
    return store.final_weights(run_id) or (epoch, blob)


def fork_start(store: Store, run_id: int) -> tuple[RunInfo, int, bytes]:
    """(parent, the epoch of its final weights, their checkpoint bytes) for a fork of ``run_id``."""
    parent = store.get_run(run_id)
    found = kept_weights(store, run_id)
    if found is None:
        raise LineageError(f"--from {run_id}: the run is {parent.status} and has no weights to start from"
                           + (" yet (fork it once it ends)" if not parent.status.finished else
                              " (it ended before its first epoch)"))
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
