"""Queueing a grid, for the Launch form and ``seqcopy submit`` alike: plain runs, a sweep, or a fork.

A grid that is a sweep (several runs that differ in a setting, or a name given) is recorded as one,
so Runs and Compare can pick it out; a fork is always a sweep, even of one run, because its runs
share a parent; any other grid is queued as plain runs. The page and the command line decide this
in one place: here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from seqcopy.config import RunConfig
from seqcopy.runs.lineage import check_fork, lineage_of
from seqcopy.runs.store import RunInfo, Store


@dataclass(frozen=True)
class Queued:
    """What was queued: the sweep (None for plain runs) and the runs' ids."""

    sweep_id: int | None
    run_ids: list[int]


def queue_grid(store: Store, configs: Sequence[RunConfig], *, name: str, spec: dict, is_sweep: bool,
               fork: tuple[RunInfo, int, bytes] | None = None, max_restarts: int | None = None) -> Queued:
    """Queue the grid's ``configs``, all or nothing: as a sweep named ``name`` (``spec``: the grid
    as --sweep and --tie take it) when ``is_sweep`` or when they fork ``fork`` (the parent's
    weights, from seqcopy.runs.lineage.fork_start, checked to fit every config first), else as
    plain runs. ConfigError for a config or a name the store refuses; LineageError for a fork."""
    if fork is not None:
        check_fork(fork[0], list(configs))
    if fork is None and not is_sweep:
        return Queued(None, store.submit_many(configs, max_restarts=max_restarts))
    lineage = None if fork is None else lineage_of(fork)
    sweep_id, ids = store.submit_sweep(configs, name, spec, lineage=lineage, max_restarts=max_restarts)
    return Queued(sweep_id, ids)
