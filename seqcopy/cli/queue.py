"""The commands that queue runs: ``submit`` (a grid, a fork, a pruned grid), ``search`` (an Optuna
search that free workers ask trials of) and ``continue`` (more epochs for a finished run)."""

from __future__ import annotations

import sys

from seqcopy.cli.flags import config_from_args
from seqcopy.cli.parser import UsageError, parse_list
from seqcopy.config import SETTINGS, RunConfig
from seqcopy.presets import BY_SLUG
from seqcopy.results.sweeps import (
    Grid,
    SweepError,
    TieError,
    first_error_line,
    grid_errors,
    parse_axis,
    parse_seeds,
    parse_tie,
)
from seqcopy.runs.lineage import continue_run, fork_start
from seqcopy.runs.queueing import queue_grid
from seqcopy.runs.store import open_store, sweep_name_problem


def submit_grid(args, parent: RunConfig | None = None) -> Grid:
    """The grid the flags describe: --cells/--seeds/--sweep/--tie, else the preset's, else -c/-s;
    on the settings of ``parent`` (a fork's) when given."""
    base = config_from_args(args, base=parent)
    preset = BY_SLUG[args.preset] if args.preset else None
    given = {name for name in SETTINGS if hasattr(args, name)}
    cells = parse_list(args.cells, "cells") or (
        [base.cell] if "cell" in given or not (preset and preset.cells) else list(preset.cells))
    try:
        seeds = parse_seeds(args.seeds) if args.seeds is not None else (
            [base.seed] if "seed" in given or not (preset and preset.seeds) else list(preset.seeds))
    except ValueError as error:
        raise UsageError(f"--seeds: {error}") from None
    sweeps = args.sweep if args.sweep is not None else list(preset.sweep if preset else ())
    ties = args.tie if args.tie is not None else list(preset.ties if preset else ())
    try:
        axes = tuple(parse_axis(text) for text in sweeps)
        grid = Grid(base, tuple(cells), tuple(seeds), axes, tuple(parse_tie(text) for text in ties))
    except SweepError as error:
        raise UsageError(f"--sweep/--tie: {error}") from None
    whose = "" if args.sweep is not None else f" by the preset {args.preset}"
    for axis in axes:
        for name in set(axis.fields) & given:
            raise UsageError(f"{SETTINGS[name].spelling} is given and also swept{whose}: drop one, or give --sweep")
    for tie in grid.ties:
        if tie.target in given:
            raise UsageError(
                f"{SETTINGS[tie.target].spelling} is given and also tied to {SETTINGS[tie.source].spelling}: "
                "drop one, or give --tie"
            )
    return grid


def _check_restarts(args) -> None:
    if not 0 <= args.max_restarts <= 1000:
        raise UsageError(f"--max-restarts: a whole number from 0 to 1000, got {args.max_restarts}")


def cmd_submit(args) -> int:
    _check_restarts(args)
    fork = None
    if args.from_run is not None:
        fork = fork_start(open_store(args.db, create=False), args.from_run)
    grid = submit_grid(args, parent=fork[0].config if fork else None)
    try:
        configs = grid.configs()
    except TieError as error:  # a tie past its target's limits
        raise UsageError(f"--tie: {error}") from None
    except SweepError as error:
        raise UsageError(str(error)) from None
    # The device is checked by the worker that trains the run: this machine may have no GPU.
    errors = grid_errors(configs, check_device=False)
    if errors:
        raise UsageError(first_error_line(errors))
    name = (args.sweep_name or "").strip() or grid.default_name()
    _check_sweep_name(name)
    if args.objective is not None and args.prune is None:
        raise UsageError("--objective goes with --prune (a search takes it with seqcopy search)")
    objective = args.objective or "test_copy_acc"
    if args.prune is not None:
        from seqcopy.results.search import SearchError, check_objective

        try:
            check_objective(objective)
        except SearchError as error:
            raise UsageError(str(error)) from None
    store = open_store(args.db)
    pruned = args.prune is not None
    queued = queue_grid(store, configs, name=name, spec=grid.spec(), fork=fork, max_restarts=args.max_restarts,
                        is_sweep=grid.is_sweep(name_given=bool((args.sweep_name or "").strip()) or pruned))
    if queued.sweep_id is not None:
        if pruned:
            _prune_grid(args.prune, objective, store, queued.sweep_id, queued.run_ids)
        print(f"sweep {queued.sweep_id} ({name}): {grid.describe_size()}"
              + (f", from #{fork[0].id} @ epoch {fork[1]}" if fork else ""), file=sys.stderr)
    for run_id in queued.run_ids:
        print(run_id)
    return 0


def _check_sweep_name(name: str) -> None:
    problem = sweep_name_problem(name)  # the store's own check, before anything is written
    if problem:
        raise UsageError(f"--sweep-name: {problem}")


def cmd_continue(args) -> int:
    """A new run continuing a completed one for --epochs more (its whole resume state); prints its id."""
    _check_restarts(args)
    store = open_store(args.db, create=False)
    run_id, parent, epoch = continue_run(store, args.run_id, args.epochs, args.max_restarts)
    config = store.get_run(run_id).config
    print(f"run {run_id}: continues #{parent.id} from epoch {epoch} to epoch {config.epochs}", file=sys.stderr)
    print(run_id)
    return 0


def cmd_search(args) -> int:
    """Record a search; nothing is queued here: free workers ask its trials (seqcopy.runs.trials)."""
    from seqcopy.results.search import SearchError, SearchPlan, default_direction, parse_space, start_search

    base = config_from_args(args)
    try:
        seeds = parse_seeds(args.seeds) if args.seeds is not None else [base.seed]
    except ValueError as error:
        raise UsageError(f"--seeds: {error}") from None
    try:
        space = parse_space(args.space)
        plan = SearchPlan(
            base=base, space=space, trials=args.trials, objective=args.objective,
            direction=args.direction or default_direction(args.objective), sampler=args.sampler,
            pruner=args.pruner, seeds=tuple(seeds), sampler_seed=args.sampler_seed,
            name=(args.sweep_name or "").strip(), space_texts=tuple(args.space),
        ).check()
    except SearchError as error:
        raise UsageError(str(error)) from None
    if plan.name:
        _check_sweep_name(plan.name)
    store = open_store(args.db)
    sweep_id = start_search(store, plan)
    print(f"search {sweep_id} ({plan.name or plan.default_name()}): {plan.describe()}", file=sys.stderr)
    kept = store.search(sweep_id).trials
    if kept < plan.trials:
        print(f"search {sweep_id}: the grid has {kept} point(s), each trained once: {kept} trial(s), not "
              f"{plan.trials}", file=sys.stderr)
    print(sweep_id)
    return 0


def _prune_grid(pruner: str, objective: str, store, sweep_id: int, ids: list[int]) -> None:
    """``submit --prune``: the grid's runs compared epoch by epoch by Optuna's pruner (the objective
    checked by cmd_submit before anything was queued)."""
    from seqcopy.results.search import DIRECTIONS, default_direction
    from seqcopy.runs.trials import create_pruned_grid

    create_pruned_grid(store, sweep_id, ids, objective, DIRECTIONS[default_direction(objective)], pruner)
