"""The store's side of searches: the SQL of the ``searches``, ``search_trials`` and ``search_runs``
tables (seqcopy.runs.schema), as methods of :class:`seqcopy.runs.store.Store`.

Callers get plain objects (:class:`SearchInfo`, :class:`TrialInfo`), never a row. The Optuna logic
that decides what these rows say (asking, pruning, telling) is seqcopy.runs.trials; this module
knows no Optuna: a search's space arrives already encoded as JSON.

Each write is one short transaction and safe under many workers: a trial number is taken by a
bounded increment of ``searches.asked``; a move that workers can race to make (queueing a trial,
pruning it, settling it) happens only from the state the caller saw (``WHERE state = …``), so
exactly one caller wins it. A trial is failed by the one worker that holds its number.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, insert, select, update

from seqcopy.config import RunConfig
from seqcopy.runs.schema import Epoch, Run, Search, SearchRun, SearchTrial
from seqcopy.runs.states import FINISHED, PRUNED_PREFIX, RunStatus, TrialState

searches_t = Search.__table__
trials_t = SearchTrial.__table__
trial_runs_t = SearchRun.__table__
_runs_t = Run.__table__
_epochs_t = Epoch.__table__


class SearchKind(StrEnum):
    """A sampled search, or a grid queued up front whose runs a pruner compares (submit --prune)."""

    SEARCH = "search"
    GRID = "grid"


@dataclass(frozen=True)
class SearchSpec:
    """What a search is, as its searches row keeps it: everything ``Store.create_search`` writes."""

    name: str  # the sweep's name
    spec: dict  # for people: the search as the command line gives it (the sweeps row's spec)
    study_name: str  # the Optuna study, made first by seqcopy.runs.trials
    trials: int
    objective: str
    direction: str  # maximize or minimize
    sampler: str
    pruner: str
    space: str = "{}"  # JSON: setting → Optuna distribution JSON
    base: RunConfig | None = None  # None for a pruned grid, whose runs are queued up front
    seeds: tuple[int, ...] = ()
    sampler_seed: int | None = None
    kind: SearchKind = SearchKind.SEARCH
    submitted_by: str | None = None  # who queues it (default: the operating-system user)
    fidelity: dict | None = None  # {setting: [value, ...]}: the task lengths its trials train up
    confirm_seeds: tuple[int, ...] = ()  # the best configuration is queued on these once it ends


@dataclass(frozen=True)
class SearchInfo:
    """A searches row as a plain object."""

    sweep_id: int
    kind: SearchKind
    study_name: str
    trials: int
    asked: int
    objective: str
    direction: str
    sampler: str
    sampler_seed: int | None
    pruner: str
    seeds: tuple[int, ...]
    space: str
    base: dict  # the base RunConfig's fields ({} for a pruned grid)
    created_at: float
    fidelity: dict = dataclasses.field(default_factory=dict)  # {} for a search without fidelity
    confirm_seeds: tuple[int, ...] = ()

    @property
    def epochs(self) -> int:
        """The epochs each trial's runs train (1 when the base does not say: a pruned grid's)."""
        return int(self.base.get("epochs", 1))

    @classmethod
    def from_row(cls, row) -> SearchInfo:
        m = dict(row._mapping)
        return cls(**{**m, "kind": SearchKind(m["kind"]), "seeds": tuple(json.loads(m["seeds"])),
                      "base": json.loads(m["base"]), "fidelity": json.loads(m.get("fidelity") or "{}"),
                      "confirm_seeds": tuple(json.loads(m.get("confirm_seeds") or "[]"))})


@dataclass(frozen=True)
class TrialInfo:
    """A search_trials row as a plain object, with the runs of its seeds."""

    sweep_id: int
    number: int
    trial_id: int | None
    params: dict
    state: TrialState
    value: float | None
    se: float | None
    n: int | None
    pruned_epoch: int | None
    worker_id: str | None
    updated_at: float
    run_ids: tuple[int, ...] = ()

    @classmethod
    def from_row(cls, row, run_ids: Sequence[int] = ()) -> TrialInfo:
        m = dict(row._mapping)
        return cls(**{**m, "state": TrialState(m["state"]), "params": json.loads(m["params"]) if m["params"] else {},
                      "run_ids": tuple(sorted(run_ids))})


@dataclass(frozen=True)
class TrialEnd:
    """How a trial ended, as :meth:`SearchTables.settle_trial` wrote it."""

    state: TrialState  # completed or failed
    values: tuple[float, ...]  # the objective of each seed at its last epoch
    mean: float | None
    se: float | None


class TrialTakenOver(Exception):
    """Another worker took over this trial number (ours looked dead); nothing was written."""


def mean_and_se(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The mean and its standard error (None for fewer than two values)."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var / len(values))


def _trial_is(sweep_id: int, number: int, *more):
    return (trials_t.c.sweep_id == sweep_id, trials_t.c.number == number, *more)


class SearchTables:
    """The searches' reads and writes; mixed into Store, whose transactions they use."""

    # ---------------------------------------------------------------- creating
    def create_search(self, spec: SearchSpec) -> int:
        """The sweeps and searches rows of a new search, in one transaction; returns the sweep id.
        Nothing is queued: workers ask the trials. ConfigError for a name the store refuses."""
        now = time.time()
        with self._write() as conn:
            sweep_id = self._insert_sweep(conn, {"name": spec.name, "spec": spec.spec}, (), now,
                                          varied=sorted(json.loads(spec.space)), submitted_by=spec.submitted_by)
            self._insert_search(conn, sweep_id, spec, asked=0, now=now)
        return sweep_id

    def attach_pruned_grid(self, sweep_id: int, spec: SearchSpec, trial_ids: Sequence[tuple[int, int]]) -> None:
        """``submit --prune``: the sweep's runs, already queued, become one running trial each of the
        study ``spec.study_name``; ``trial_ids`` pairs each run id with its Optuna trial id."""
        now = time.time()
        with self._write() as conn:
            self._insert_search(conn, sweep_id, spec, asked=len(trial_ids), now=now)
            for number, (run_id, trial_id) in enumerate(trial_ids, start=1):
                conn.execute(insert(trials_t).values(sweep_id=sweep_id, number=number, trial_id=trial_id,
                                                     params="{}", state=TrialState.RUNNING, updated_at=now))
                conn.execute(insert(trial_runs_t).values(run_id=run_id, sweep_id=sweep_id, number=number))

    @staticmethod
    def _insert_search(conn: Connection, sweep_id: int, spec: SearchSpec, asked: int, now: float) -> None:
        conn.execute(insert(searches_t).values(
            sweep_id=sweep_id, kind=spec.kind, study_name=spec.study_name, trials=spec.trials, asked=asked,
            objective=spec.objective, direction=spec.direction, sampler=spec.sampler,
            sampler_seed=spec.sampler_seed, pruner=spec.pruner, seeds=json.dumps(list(spec.seeds)),
            space=spec.space, base=spec.base.to_json() if spec.base is not None else "{}", created_at=now,
            fidelity=json.dumps(spec.fidelity) if spec.fidelity else None,
            confirm_seeds=json.dumps(list(spec.confirm_seeds)) if spec.confirm_seeds else None,
        ))

    # ---------------------------------------------------------------- reading
    def search(self, sweep_id: int) -> SearchInfo | None:
        """The sweep's search, or None when it is not one."""
        if not self._storable(sweep_id):
            return None
        with self._read() as conn:
            row = conn.execute(select(searches_t).where(searches_t.c.sweep_id == sweep_id)).first()
        return None if row is None else SearchInfo.from_row(row)

    def search_trials(self, sweep_id: int) -> list[TrialInfo]:
        """Every trial of the search, in the order asked."""
        if not self._storable(sweep_id):
            return []
        with self._read() as conn:
            rows = conn.execute(select(trials_t).where(trials_t.c.sweep_id == sweep_id).order_by(trials_t.c.number))
            found = rows.all()
            runs = conn.execute(select(trial_runs_t).where(trial_runs_t.c.sweep_id == sweep_id)).all()
        by_number: dict[int, list[int]] = {}
        for run in runs:
            by_number.setdefault(run.number, []).append(run.run_id)
        return [TrialInfo.from_row(row, by_number.get(row.number, ())) for row in found]

    def trial_of_run(self, run_id: int) -> TrialInfo | None:
        """The trial a run belongs to (its run ids not filled in), or None."""
        if not self._storable(run_id):
            return None
        with self._read() as conn:
            row = conn.execute(
                select(trials_t).join(trial_runs_t, (trial_runs_t.c.sweep_id == trials_t.c.sweep_id)
                                      & (trial_runs_t.c.number == trials_t.c.number))
                .where(trial_runs_t.c.run_id == run_id)
            ).first()
        return None if row is None else TrialInfo.from_row(row)

    def seed_values(self, sweep_id: int, number: int, objective: str, epoch: int | None = None) -> list[float]:
        """The objective of each of the trial's runs at ``epoch`` (None: at each run's last epoch)."""
        with self._read() as conn:
            return self._seed_values(conn, sweep_id, number, objective, epoch)

    @staticmethod
    def _seed_values(conn: Connection, sweep_id: int, number: int, objective: str, epoch: int | None) -> list[float]:
        at = _epochs_t.c.epoch == (epoch if epoch is not None else _runs_t.c.epochs_done)
        found = conn.execute(
            select(_epochs_t.c[objective])
            .join(trial_runs_t, trial_runs_t.c.run_id == _epochs_t.c.run_id)
            .join(_runs_t, _runs_t.c.id == _epochs_t.c.run_id)
            .where(trial_runs_t.c.sweep_id == sweep_id, trial_runs_t.c.number == number, at)
            .order_by(_epochs_t.c.run_id)
        ).scalars()
        return [float(value) for value in found if value is not None and math.isfinite(value)]

    # ---------------------------------------------------------------- asking
    def searches_waiting(self, stale_before: float) -> bool:
        """Whether a search has a trial to ask: an open one, or a number whose asker died before
        queueing it (left 'asking' since before ``stale_before``). One cheap read."""
        with self._read() as conn:
            if conn.execute(self._open_searches().limit(1)).first() is not None:
                return True
            return conn.execute(select(trials_t.c.number).where(
                trials_t.c.state == TrialState.ASKING, trials_t.c.updated_at < stale_before).limit(1)).first() \
                is not None

    @staticmethod
    def _open_searches():
        return (select(searches_t.c.sweep_id)
                .where(searches_t.c.kind == SearchKind.SEARCH, searches_t.c.asked < searches_t.c.trials)
                .order_by(searches_t.c.sweep_id))

    def take_trial_number(self, worker_id: str, stale_before: float) -> tuple[int, int] | None:
        """(sweep id, trial number) this worker now owns: a trial whose asker died before queueing
        it (left 'asking' since before ``stale_before``), else the next number of an open search;
        None if none is left."""
        now = time.time()
        with self._write() as conn:
            stale = conn.execute(
                select(trials_t.c.sweep_id, trials_t.c.number)
                .where(trials_t.c.state == TrialState.ASKING, trials_t.c.updated_at < stale_before).limit(1)
            ).first()
            if stale is not None:
                taken = conn.execute(
                    update(trials_t).where(*_trial_is(stale.sweep_id, stale.number,
                                                      trials_t.c.state == TrialState.ASKING,
                                                      trials_t.c.updated_at < stale_before))
                    .values(worker_id=worker_id, updated_at=now))
                if taken.rowcount == 1:
                    return stale.sweep_id, stale.number
            for sweep_id in conn.execute(self._open_searches()).scalars().all():
                # The bounded increment is the whole guard: N workers hand out at most ``trials`` numbers.
                bumped = conn.execute(
                    update(searches_t)
                    .where(searches_t.c.sweep_id == sweep_id, searches_t.c.asked < searches_t.c.trials)
                    .values(asked=searches_t.c.asked + 1).returning(searches_t.c.asked)
                ).first()
                if bumped is None:
                    continue
                conn.execute(insert(trials_t).values(sweep_id=sweep_id, number=bumped[0], state=TrialState.ASKING,
                                                     worker_id=worker_id, updated_at=now))
                return sweep_id, bumped[0]
        return None

    def fail_trial(self, sweep_id: int, number: int, trial_id: int | None = None, params: dict | None = None) -> None:
        """Mark a trial failed (its sampler could not ask it, or its point is invalid)."""
        values = dict(state=TrialState.FAILED, updated_at=time.time())
        if trial_id is not None:
            values.update(trial_id=trial_id, params=json.dumps(params or {}))
        with self._write() as conn:
            conn.execute(update(trials_t).where(*_trial_is(sweep_id, number)).values(**values))

    def queue_trial(self, configs: Sequence[RunConfig], sweep_id: int, number: int, worker_id: str,
                    trial_id: int, params: dict) -> list[int]:
        """Queue one run per seed of the asked trial and record its parameters, all or nothing;
        TrialTakenOver when another worker took the number over meanwhile (ours looked dead)."""
        def record(conn: Connection, ids: list[int]) -> None:
            owned = conn.execute(
                update(trials_t).where(*_trial_is(sweep_id, number, trials_t.c.state == TrialState.ASKING,
                                                  trials_t.c.worker_id == worker_id))
                .values(trial_id=trial_id, params=json.dumps(params), state=TrialState.RUNNING, updated_at=time.time())
            )
            if owned.rowcount != 1:
                raise TrialTakenOver
            for run_id in ids:
                conn.execute(insert(trial_runs_t).values(run_id=run_id, sweep_id=sweep_id, number=number))

        return self._submit(configs, existing_sweep=sweep_id, then=record)[1]

    # ---------------------------------------------------------------- ending
    def prune_trial(self, sweep_id: int, number: int, epoch: int, value: float, n: int) -> bool:
        """Mark a running trial pruned at ``epoch`` and cancel its seeds still queued, in one
        transaction; False when it was no longer running (another seed's worker pruned it first)."""
        now = time.time()
        with self._write() as conn:
            won = conn.execute(
                update(trials_t).where(*_trial_is(sweep_id, number, trials_t.c.state == TrialState.RUNNING))
                .values(state=TrialState.PRUNED, pruned_epoch=epoch, value=value, n=n, updated_at=now)
            ).rowcount == 1
            if won:
                siblings = select(trial_runs_t.c.run_id).where(trial_runs_t.c.sweep_id == sweep_id,
                                                               trial_runs_t.c.number == number)
                conn.execute(update(_runs_t).where(_runs_t.c.id.in_(siblings), _runs_t.c.status == RunStatus.QUEUED)
                             .values(status=RunStatus.CANCELLED, finished_at=now,
                                     error=f"{PRUNED_PREFIX}: trial {number} was pruned at epoch {epoch} "
                                           "before this seed started"))
        return won

    def ended_trials(self, sweep_id: int | None = None) -> list[tuple[TrialInfo, bool]]:
        """Each running trial whose runs have all ended, with whether every one completed."""
        where = [trials_t.c.state == TrialState.RUNNING]
        if sweep_id is not None:
            where.append(trials_t.c.sweep_id == sweep_id)
        done = []
        with self._read() as conn:
            for row in conn.execute(select(trials_t).where(*where)).all():
                statuses = conn.execute(
                    select(_runs_t.c.status).join(trial_runs_t, trial_runs_t.c.run_id == _runs_t.c.id)
                    .where(trial_runs_t.c.sweep_id == row.sweep_id, trial_runs_t.c.number == row.number)
                ).scalars().all()
                if statuses and all(status in FINISHED for status in statuses):
                    done.append((TrialInfo.from_row(row), all(s == RunStatus.COMPLETED for s in statuses)))
        return done

    def settle_trial(self, sweep_id: int, number: int, objective: str, completed: bool) -> TrialEnd | None:
        """Write a running trial's end: completed with the seeds' mean of the objective at their
        last epoch, or failed (a seed failed or was cancelled, or none has a value). None when it
        was no longer running: another caller settled it, and only one may tell the study."""
        with self._write() as conn:
            values = self._seed_values(conn, sweep_id, number, objective, None) if completed else []
            mean, se = mean_and_se(values)
            state = TrialState.COMPLETED if mean is not None else TrialState.FAILED
            won = conn.execute(
                update(trials_t).where(*_trial_is(sweep_id, number, trials_t.c.state == TrialState.RUNNING))
                .values(state=state, value=mean, se=se, n=len(values), updated_at=time.time())
            ).rowcount == 1
        return TrialEnd(state, tuple(values), mean, se) if won else None
