"""Queueing a grid, for the Launch form and ``seqcopy submit`` alike: plain runs, a sweep, or a fork.

A grid that is a sweep (several runs that differ in a setting, or a name given) is recorded as one,
so Runs and Compare can pick it out; a fork is always a sweep, even of one run, because its runs
share a parent; any other grid is queued as plain runs. The page and the command line decide this
in one place: here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from seqcopy.config import ConfigError, RunConfig, parse_stop_at
from seqcopy.runs.lineage import check_fork, lineage_of
from seqcopy.runs.store import RunInfo, Store


def stop_at_problem(text: str) -> str | None:
    """Why a --stop-at target cannot mean what it says, in one line: one no epoch can meet (an
    accuracy above 1 or below 0, a loss below 0) or one every epoch meets (an accuracy at least 0
    or at most 1, a loss at least 0), so the run would train every epoch or stop after its first
    without a word; None for a target that can go either way (or one parse_stop_at refuses: the
    config says why)."""
    try:
        target = parse_stop_at(text)
    except ValueError:
        return None
    if target is None:
        return None
    low, high = (0.0, float("inf")) if target.metric.endswith("_loss") else (0.0, 1.0)
    value, at_least = target.value, target.op == ">="
    never = value > high if at_least else value < low
    always = value <= low if at_least else value >= high
    if never:
        return f"{target} can never hold ({target.metric} lies from {low:g} to {high:g}): the run would not stop early"
    if always:
        return f"{target} holds at every epoch ({target.metric} lies from {low:g} to {high:g}): the run would stop " \
               "after its first"
    return None


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
    for config in configs:
        problem = stop_at_problem(config.stop_at)
        if problem:
            raise ConfigError({"stop_at": problem})
    if fork is not None:
        check_fork(fork[0], list(configs))
    if fork is None and not is_sweep:
        return Queued(None, store.submit_many(configs, max_restarts=max_restarts))
    lineage = None if fork is None else lineage_of(fork)
    sweep_id, ids = store.submit_sweep(configs, name, spec, lineage=lineage, max_restarts=max_restarts)
    return Queued(sweep_id, ids)
