"""A search over declared settings: SPEC parsing, the space, its validation, the study, the best trials.

``SETTING=SPEC`` names any declared setting (by field or flag, as ``--sweep`` does) and a SPEC:
``int(8,64)``, ``float(0.1,3)``, ``log(1e-4,1e-2)`` (log-uniform; whole numbers for an int setting)
or a list of choices (``16,32,64``; ``true,false``; ``lstm,gru``). Each becomes an Optuna
distribution. Before anything is written, every value the space can produce is checked by
``RunConfig.validate()``: each choice, and for a range its bounds and interior points, each with
the other settings at the base; then their combinations (see :func:`space_configs`).
A bad space is refused with one line (:class:`SearchError`).

The search itself (asking trials when workers are free, pruning, telling) is the queue's:
seqcopy.runs.trials. This module builds it and reads it back for reports and pages.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from seqcopy.config import SETTINGS, TARGET_METRICS, RunConfig
from seqcopy.results.sweeps import SEED_FIELD, SweepError, parse_value, setting_named
from seqcopy.runs import trials
from seqcopy.runs.search_tables import SearchInfo, SearchKind, SearchSpec
from seqcopy.runs.states import TrialState
from seqcopy.runs.store import Store
from seqcopy.text import shorten

MAX_TRIALS = 500  # as a grid's cap: a typo must not ask for thousands of trials
DIRECTIONS = {"max": "maximize", "min": "minimize"}
_RANGE = re.compile(r"(int|float|log)\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)", re.IGNORECASE)
INTERIOR = (0.25, 0.5, 0.75)  # the fractions of a range checked besides its bounds


class SearchError(trials.SearchInputError):
    """A search that cannot be started; the message is one line."""


def default_direction(objective: str) -> str:
    """max for accuracies, min for losses."""
    return "min" if objective.endswith("loss") else "max"


def check_objective(objective: str) -> str:
    if objective not in TARGET_METRICS:
        raise SearchError(f"--objective: unknown metric {shorten(objective)!r}: "
                          f"choose one of {', '.join(TARGET_METRICS)}")
    return objective


def parse_spec(name: str, text: str):
    """The Optuna distribution of ``SPEC`` for the setting ``name``; SearchError naming the spec."""
    import optuna.distributions as d

    declaration = SETTINGS[name]
    text = text.strip()
    match = _RANGE.fullmatch(text)
    if match:
        kind, low_text, high_text = match[1].lower(), match[2], match[3]
        if declaration.kind not in ("int", "float"):
            raise SearchError(f"{declaration.spelling}={text}: a range needs a number setting; give a list of choices")
        if kind == "int" and declaration.kind != "int":
            raise SearchError(f"{declaration.spelling}={text}: int(A,B) is for whole-number settings; use float(A,B)")
        if kind == "float" and declaration.kind == "int":
            raise SearchError(f"{declaration.spelling}={text}: a whole-number setting takes int(A,B) or log(A,B)")
        try:
            low, high = parse_value(name, low_text), parse_value(name, high_text)
        except SweepError as error:
            raise SearchError(f"{declaration.spelling}={text}: {error}") from None
        if not low < high:
            raise SearchError(f"{declaration.spelling}={text}: the low end must be below the high end")
        if kind == "log" and low <= 0:
            raise SearchError(f"{declaration.spelling}={text}: a log range must start above 0")
        if declaration.kind == "int":
            return d.IntDistribution(int(low), int(high), log=kind == "log")
        return d.FloatDistribution(float(low), float(high), log=kind == "log")
    if "(" in text or ")" in text:
        raise SearchError(f"{declaration.spelling}={shorten(text)}: write int(A,B), float(A,B), log(A,B) or a list "
                          "of choices A,B,C")
    try:
        values = list(dict.fromkeys(parse_value(name, part) for part in text.split(",") if part.strip()))
    except SweepError as error:
        raise SearchError(f"{declaration.spelling}: {error}") from None
    if not values:
        raise SearchError(f"{declaration.spelling}: give a range like int(8,64) or choices like 16,32,64")
    return d.CategoricalDistribution(values)


def parse_space(texts: Sequence[str]) -> dict:
    """``--space`` arguments → {setting: distribution}, in the order given; SearchError for an
    empty space, an unknown or repeated setting, the seed (it is --seeds), free text or a bad SPEC."""
    space: dict = {}
    for text in texts:
        name_text, equals, spec = text.partition("=")
        if not equals or not name_text.strip() or not spec.strip():
            raise SearchError(f"--space {shorten(text)!r}: write SETTING=SPEC, e.g. hidden_size=int(8,64)")
        try:
            name = setting_named(name_text)
        except SweepError as error:
            raise SearchError(f"--space: {error}") from None
        if name == SEED_FIELD:
            raise SearchError("--space: the seed is not searched: give the seeds of every trial with --seeds")
        if not SETTINGS[name].sweepable:
            raise SearchError(f"--space: {SETTINGS[name].spelling} is free text and cannot be searched")
        if name in space:
            raise SearchError(f"--space: {SETTINGS[name].spelling} is given twice")
        space[name] = parse_spec(name, spec)
    if not space:
        raise SearchError("--space: the space is empty: give at least one SETTING=SPEC, e.g. lr=log(1e-4,1e-2)")
    return space


def sample_values(distribution) -> list:
    """The values of one distribution that validation checks: every choice; a range's bounds and
    interior points (geometric for a log range), whole numbers for an int one."""
    import optuna.distributions as d

    if isinstance(distribution, d.CategoricalDistribution):
        return list(distribution.choices)
    low, high = distribution.low, distribution.high
    if distribution.log:
        points = [math.exp(math.log(low) + f * (math.log(high) - math.log(low))) for f in INTERIOR]
    else:
        points = [low + f * (high - low) for f in INTERIOR]
    if isinstance(distribution, d.IntDistribution):
        points = [int(round(p)) for p in points]
    return list(dict.fromkeys([low, *points, high]))


MAX_CHECKED = 4096  # configs validation tries: a product of every sampled value while it stays this small


def space_configs(base: RunConfig, space: dict) -> list[tuple[str, RunConfig]]:
    """(what is checked, config) for every point validation tries: each value alone; then every
    combination of the sampled values (settings interact: a warm-up must stay shorter than the
    epochs), or, past MAX_CHECKED, every combination of each setting's ends."""
    checked = []
    for name, distribution in space.items():
        for value in sample_values(distribution):
            checked.append((f"{SETTINGS[name].spelling}={_text(value)}", base.replace(**{name: value})))
    if len(space) < 2:
        return checked
    values = [sample_values(distribution) for distribution in space.values()]
    if math.prod(len(v) for v in values) > MAX_CHECKED:
        values = [list(dict.fromkeys((v[0], v[-1]))) for v in values]
    if math.prod(len(v) for v in values) > MAX_CHECKED:
        values = [[v[0]] for v in values], [[v[-1]] for v in values]  # the two corners only
        points = [tuple(v[0] for v in corner) for corner in values]
    else:
        points = list(itertools.product(*values))
    for point in points:
        changes = dict(zip(space, point, strict=True))
        shown = ", ".join(f"{name}={_text(value)}" for name, value in changes.items())
        checked.append((shown, base.replace(**changes)))
    return checked


def check_space(base: RunConfig, space: dict) -> None:
    """SearchError, one line, for the first value of the space that gives an invalid config."""
    for shown, config in space_configs(base, space):
        errors = config.validate(check_device=False)  # the worker that trains checks the device
        if errors:
            name, message = next(iter(errors.items()))
            raise SearchError(f"--space: the space can produce an invalid run ({shown}): "
                              f"{SETTINGS[name].spelling}: {message}")


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class SearchPlan:
    """Everything a search is, checked: the base config, the space, and how trials are chosen."""

    base: RunConfig
    space: dict
    trials: int
    objective: str
    direction: str = "max"
    sampler: str = "tpe"
    pruner: str = "median"
    seeds: tuple[int, ...] = (42,)
    sampler_seed: int | None = None
    name: str = ""
    space_texts: tuple[str, ...] = field(default=())

    def check(self) -> SearchPlan:
        """Self if it can run; SearchError (one line) for the first problem."""
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or not 1 <= self.trials <= MAX_TRIALS:
            raise SearchError(f"--trials: a whole number from 1 to {MAX_TRIALS}, got {self.trials}")
        check_objective(self.objective)
        if self.direction not in DIRECTIONS:
            raise SearchError(f"--direction: max or min, got {self.direction!r}")
        if self.sampler not in trials.SAMPLERS:
            raise SearchError(f"--sampler: choose one of {', '.join(trials.SAMPLERS)}, got {self.sampler!r}")
        if self.pruner not in trials.PRUNERS:
            raise SearchError(f"--pruner: choose one of {', '.join(trials.PRUNERS)}, got {self.pruner!r}")
        if not self.seeds:
            raise SearchError("--seeds: give at least one seed")
        if self.sampler_seed is not None and not 0 <= self.sampler_seed < 2**31:
            raise SearchError(f"--sampler-seed: from 0 to {2**31 - 1}, got {self.sampler_seed}")
        if self.sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:
            raise SearchError("--sampler cmaes needs the cmaes package (pip install cmaes); or choose tpe or qmc")
        if self.sampler == "grid":
            try:
                trials.grid_values(self.space)
            except trials.SearchInputError as error:
                raise SearchError(str(error)) from None
        base_errors = self.base.validate(check_device=False)
        for seed in self.seeds:
            base_errors = base_errors or self.base.replace(seed=seed).validate(check_device=False)
        if base_errors:
            name, message = next(iter(base_errors.items()))
            raise SearchError(f"{SETTINGS[name].spelling}: {message}")
        check_space(self.base, self.space)
        return self

    @property
    def runs_upper_bound(self) -> int:
        """Runs without pruning: one per seed and trial."""
        return self.trials * len(self.seeds)

    def describe(self) -> str:
        return (f"{self.trials} trials × {len(self.seeds)} seed(s) = at most {self.runs_upper_bound} runs; "
                f"{self.sampler} sampler, {self.pruner} pruner, {self.direction} {self.objective}")

    def default_name(self) -> str:
        return f"search {', '.join(self.space)} ({self.sampler}, {self.trials} trials)"[:200]

    def spec(self) -> dict:
        """What the sweeps row keeps, for people: the search as the command line gives it."""
        return {"search": True, "space": list(self.space_texts) or [f"{n}={d}" for n, d in self.space.items()],
                "trials": self.trials, "objective": self.objective, "direction": self.direction,
                "sampler": self.sampler, "pruner": self.pruner, "seeds": list(self.seeds),
                "sampler_seed": self.sampler_seed, "cells": [self.base.cell]}


def start_search(store: Store, plan: SearchPlan) -> int:
    """Record the search (its study in the runs database, its sweep); returns the sweep id.
    Nothing is queued: free workers ask its trials."""
    plan.check()
    return trials.create_search(store, SearchSpec(
        name=plan.name or plan.default_name(), spec=plan.spec(), study_name="", trials=plan.trials,
        objective=plan.objective, direction=DIRECTIONS[plan.direction], sampler=plan.sampler, pruner=plan.pruner,
        space=trials.encode_space(plan.space), base=plan.base, seeds=plan.seeds, sampler_seed=plan.sampler_seed,
    ))


# ---------------------------------------------------------------------------- reading back
# Best first: completed trials by value, then pruned, running, asking and failed ones.
_STATE_ORDER = (TrialState.COMPLETED, TrialState.PRUNED, TrialState.RUNNING, TrialState.ASKING, TrialState.FAILED)


def trials_table(store: Store, sweep_id: int) -> list[dict]:
    """Every trial of a search, best first (completed ones by value in the search's direction,
    then pruned, running, asking and failed): number, state, value, se, n, pruned_epoch, params,
    run_ids, as dicts for the pages' tables."""
    search = store.search(sweep_id)
    if search is None:
        return []
    sign = -1 if search.direction == "maximize" else 1
    rows = [dataclasses.asdict(trial) | {"state": trial.state.value, "run_ids": list(trial.run_ids)}
            for trial in store.search_trials(sweep_id)]
    return sorted(rows, key=lambda r: (_STATE_ORDER.index(r["state"]),
                                       sign * r["value"] if r["value"] is not None else math.inf, r["number"]))


def best_trials(store: Store, sweep_id: int, top: int = 5) -> list[dict]:
    return [row for row in trials_table(store, sweep_id) if row["state"] == TrialState.COMPLETED][:top]


def _search_of(store: Store, sweep_id: int, asked_by: str = "") -> SearchInfo:
    """The sweep's search; SearchError, prefixed with ``asked_by`` (a flag), when it is not one."""
    search = store.search(sweep_id)
    if search is None:
        raise SearchError(f"{asked_by}sweep {sweep_id} is not a search")
    return search


def search_report(store: Store, sweep_id: int, top: int = 10) -> str:
    """``report --search ID``: the best trials as a markdown table, and every trial counted by state."""
    search = _search_of(store, sweep_id, asked_by="--search: ")
    rows = trials_table(store, sweep_id)
    params = list(trials.decode_space(search.space)) if search.kind == SearchKind.SEARCH else []
    counts = {state: sum(r["state"] == state for r in rows) for state in TrialState}
    lines = [
        f"## Search {sweep_id}: {search.direction} {search.objective} "
        f"({search.sampler} sampler, {search.pruner} pruner, seeds {list(search.seeds)})",
        "",
        f"{len(rows)} of {search.trials} trials asked: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n),
        "",
        "| rank | trial | " + " | ".join(params) + (" | " if params else "") + f"{search.objective} (mean ± SE) "
        "| seeds | runs |",
        "|" + "---|" * (len(params) + 5),
    ]
    best = [r for r in rows if r["state"] == TrialState.COMPLETED][:top]
    for rank, row in enumerate(best, start=1):
        se = f" ± {row['se']:.4f}" if row["se"] is not None else ""
        values = " | ".join(_text(row["params"].get(name)) for name in params)
        lines.append(f"| {rank} | {row['number']} | {values}{' | ' if params else ''}{row['value']:.4f}{se} "
                     f"| {row['n']} | {', '.join(map(str, row['run_ids']))} |")
    pruned = [r for r in rows if r["state"] == TrialState.PRUNED]
    if pruned:
        lines += ["", "Pruned: " + "; ".join(f"trial {r['number']} at epoch {r['pruned_epoch']}" for r in pruned)]
    return "\n".join(lines)


def load_optuna_study(store: Store, sweep_id: int):
    """The search's Optuna study, for optuna.visualization (seqcopy.ui.search_figures)."""
    return trials.load_study(store, _search_of(store, sweep_id))
