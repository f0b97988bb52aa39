"""The queue side of a search: Optuna trials asked when a worker is free, told when their runs end.

A search (seqcopy.results.search builds one) is a sweep with a row in ``searches``: the space as
Optuna distributions, the number of trials, the objective, the sampler and pruner by name, and the
seeds. Nothing is queued up front. A worker that finds no run to claim calls :func:`refill`, which
takes the next trial number atomically in the runs store (``searches.asked``, bounded by
``trials``, so N workers never ask more than N trials), asks the study for that trial, and queues
one run per seed in the same transaction that records the trial's parameters. Each epoch a run of
a trial calls :func:`after_epoch`, which reports the seeds' mean at that epoch to the trial and
asks the pruner; the run that ends a trial's last seed tells the study the seeds' mean
(:func:`after_run`, or :func:`settle` for runs a dead worker left behind).

Storage: the Optuna study lives in the runs database itself (its own tables, ``studies``,
``trials`` …, beside ours; no name is shared), so a search needs no second URL and travels with
the runs to any worker on any machine. SQLite readers and writers already wait on each other (WAL,
a busy timeout); Optuna's writes are a few per trial and one per epoch, beside the runs' one
write per epoch, and every Optuna call here is retried through a locked database.

Samplers keep their random stream in the process, not in the storage, so each worker would replay
the same stream: every trial gets a fresh sampler seeded by (sampler seed, trial number), which
makes the same ``--sampler-seed`` give the same trials whichever worker asks them.

Grids pruned with ``submit --prune`` use the same tables: one trial per run, all asked at
submission (the grid is queued up front), no sampling, the pruner comparing runs at one epoch.

Runs here never import seqcopy.results; optuna is imported only when a search exists.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from collections.abc import Sequence

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.exc import DBAPIError

from seqcopy.config import RunConfig
from seqcopy.errors import InputError
from seqcopy.runs.store import Store

SAMPLERS = ("tpe", "random", "grid", "cmaes", "qmc")
PRUNERS = ("none", "median", "asha", "hyperband")
GRID_PRUNERS = ("median", "asha")  # submit --prune: no sampler, the grid's runs compared
TRIAL_STATES = ("asking", "running", "completed", "pruned", "failed")

metadata = MetaData()
searches_t = Table(
    "searches", metadata,
    Column("sweep_id", Integer, primary_key=True, comment="the sweep the search is"),
    Column("kind", String(16), nullable=False, comment="search (sampled trials) or grid (submit --prune)"),
    Column("study_name", String(200), nullable=False, comment="the Optuna study in this database"),
    Column("trials", Integer, nullable=False, comment="trials to run in all"),
    Column("asked", Integer, nullable=False, default=0, comment="trial numbers handed out so far"),
    Column("objective", String(32), nullable=False, comment="an epochs metric: the seeds' mean is the value"),
    Column("direction", String(8), nullable=False, comment="maximize or minimize"),
    Column("sampler", String(16), nullable=False),
    Column("sampler_seed", Integer, nullable=True),
    Column("pruner", String(16), nullable=False),
    Column("seeds", Text, nullable=False, comment="JSON list: one run per seed and trial"),
    Column("space", Text, nullable=False, comment="JSON: setting → Optuna distribution JSON"),
    Column("base", Text, nullable=False, comment="the base RunConfig as JSON"),
    Column("created_at", Float, nullable=False),
)
trials_t = Table(
    "search_trials", metadata,
    Column("sweep_id", Integer, primary_key=True),
    Column("number", Integer, primary_key=True, comment="1-based, in the order asked"),
    Column("trial_id", Integer, nullable=True, comment="Optuna's trial id, once asked"),
    Column("params", Text, nullable=True, comment="JSON: setting → value"),
    Column("state", String(16), nullable=False, comment="asking, running, completed, pruned or failed"),
    Column("value", Float, nullable=True, comment="the seeds' mean of the objective"),
    Column("se", Float, nullable=True, comment="its standard error over the seeds (None for one seed)"),
    Column("n", Integer, nullable=True, comment="seeds in the mean"),
    Column("pruned_epoch", Integer, nullable=True, comment="the epoch the pruner stopped the trial at"),
    Column("worker_id", String(128), nullable=True, comment="who asked it"),
    Column("updated_at", Float, nullable=False),
)
trial_runs_t = Table(
    "search_runs", metadata,
    Column("run_id", Integer, primary_key=True),
    Column("sweep_id", Integer, nullable=False, index=True),
    Column("number", Integer, nullable=False),
)


class SearchInputError(InputError, ValueError):
    """A search that cannot run: a bad spec, setting, objective, sampler or pruner; one line."""


# ---------------------------------------------------------------------------- storage
def ensure_tables(store: Store) -> None:
    """Create this module's tables if missing; called by whoever creates a search (one process)."""
    metadata.create_all(store.engine, checkfirst=True)
    _ready.add(_key(store))


def has_tables(store: Store) -> bool:
    """Whether this database has ever held a search (cached once true): workers look before they
    read, so a store without searches costs them one inspection per process."""
    key = _key(store)
    if key not in _ready:
        from sqlalchemy import inspect

        if time.monotonic() < _absent_until.get(key, 0.0):
            return False  # looked a moment ago: an idle worker polls every second
        if not all(inspect(store.engine).has_table(table.name) for table in metadata.sorted_tables):
            _absent_until[key] = time.monotonic() + ABSENT_RECHECK_S
            return False
        _ready.add(key)
    return True


def _key(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


_ready: set[str] = set()
_absent_until: dict[str, float] = {}
ABSENT_RECHECK_S = 5.0  # a search created elsewhere is seen within this long


def optuna_url(store: Store) -> str:
    """The runs database's URL as Optuna's own engine takes it (psycopg 3 for PostgreSQL)."""
    return store.engine.url.render_as_string(hide_password=False)


@functools.lru_cache(maxsize=16)
def _storage(url: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a worker's stderr is for its own lines
    kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def storage_for(store: Store):
    return _storage(optuna_url(store))


def _retry(call, attempts: int = 20):
    """``call()``, retried while the database is locked or busy (SQLite under several workers)."""
    import optuna

    delay = 0.05
    for attempt in range(attempts):
        try:
            return call()
        except optuna.exceptions.StorageInternalError as error:
            if attempt == attempts - 1:
                raise
            print(f"optuna storage busy ({type(error).__name__}); retrying", file=sys.stderr, flush=True)
            time.sleep(delay)
            delay = min(1.0, delay * 2)
    raise AssertionError("unreachable")


def make_sampler(name: str, seed: int | None, number: int, trials: int, space: dict):
    """A fresh sampler for trial ``number``. Its seed mixes the search's seed with the number, so a
    trial's draw does not depend on which worker (with what history of draws) asks it; QMC keeps
    one seed, as its sequence is indexed by the trials in the storage."""
    import optuna

    trial_seed = None if seed is None else (seed * 1_000_003 + number) % 2**32
    if name == "random":
        return optuna.samplers.RandomSampler(seed=trial_seed)
    if name == "tpe":
        # A small search still models most of its trials: a third of them random first, at most 10.
        return optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=max(1, min(10, trials // 3)))
    if name == "grid":
        return optuna.samplers.GridSampler(grid_values(space), seed=trial_seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=trial_seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_asynchronous_seeding=False,
                                          warn_independent_sampling=False)
    raise SearchInputError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}")


def grid_values(space: dict) -> dict[str, list]:
    """Every value of each setting, for the grid sampler: choices, or the whole numbers of a range."""
    import optuna

    values = {}
    for name, distribution in space.items():
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            values[name] = list(distribution.choices)
        elif isinstance(distribution, optuna.distributions.IntDistribution) and not distribution.log:
            values[name] = list(range(distribution.low, distribution.high + 1, distribution.step))
        else:
            raise SearchInputError(f"--sampler grid: {name} needs a list of values or int(A,B), not a continuous range")
    return values


def make_pruner(name: str, epochs: int):
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        # Two finished trials before any is compared, and never on the first epoch.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    if name == "asha":
        # The first rung at a quarter of the run: copy accuracy after an epoch or two is mostly noise
        # on this task (bench/bench_search.py: rungs from epoch 1 pruned the eventual best).
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, epochs // 4), reduction_factor=3)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, epochs), reduction_factor=3)
    raise SearchInputError(f"unknown pruner {name!r}: choose one of {', '.join(PRUNERS)}")


def decode_space(text: str) -> dict:
    import optuna

    return {name: optuna.distributions.json_to_distribution(item) for name, item in json.loads(text).items()}


def encode_space(space: dict) -> str:
    import optuna

    return json.dumps({name: optuna.distributions.distribution_to_json(d) for name, d in space.items()})


# ---------------------------------------------------------------------------- creating
def create_search(
    store: Store, *, name: str, spec: dict, base: RunConfig, space: dict, trials: int, objective: str,
    direction: str, sampler: str, sampler_seed: int | None, pruner: str, seeds: Sequence[int],
    kind: str = "search",
) -> int:
    """Create the Optuna study and the sweeps and searches rows; returns the sweep id. Nothing is
    queued: workers ask the trials (:func:`refill`)."""
    import uuid

    import optuna

    from seqcopy.runs.store import sweeps_t  # the sweeps table the Runs and Compare filters read

    ensure_tables(store)
    study_name = f"seqcopy-{kind}-{uuid.uuid4().hex[:12]}"
    _retry(lambda: optuna.create_study(storage=storage_for(store), study_name=study_name, direction=direction))
    now = time.time()
    with store._write() as conn:
        sweep_id = conn.execute(
            insert(sweeps_t).values(name=name, created_at=now, spec=json.dumps(spec),
                                    varied=json.dumps(sorted(space))).returning(sweeps_t.c.id)
        ).scalar_one()
        conn.execute(insert(searches_t).values(
            sweep_id=sweep_id, kind=kind, study_name=study_name, trials=trials, asked=0, objective=objective,
            direction=direction, sampler=sampler, sampler_seed=sampler_seed, pruner=pruner,
            seeds=json.dumps(list(seeds)), space=encode_space(space), base=base.to_json(), created_at=now,
        ))
    return sweep_id


def create_pruned_grid(store: Store, sweep_id: int, run_ids: Sequence[int], objective: str, direction: str,
                       pruner: str, epochs: int) -> None:
    """``submit --prune``: the grid's runs, already queued as ``sweep_id``, become one trial each of
    a study whose pruner compares them at the same epoch."""
    import uuid

    import optuna

    ensure_tables(store)
    study_name = f"seqcopy-grid-{uuid.uuid4().hex[:12]}"
    study = _retry(lambda: optuna.create_study(storage=storage_for(store), study_name=study_name,
                                               direction=direction))
    trial_ids = [_retry(study.ask)._trial_id for _ in run_ids]
    now = time.time()
    with store._write() as conn:
        conn.execute(insert(searches_t).values(
            sweep_id=sweep_id, kind="grid", study_name=study_name, trials=len(run_ids), asked=len(run_ids),
            objective=objective, direction=direction, sampler="none", sampler_seed=None, pruner=pruner,
            seeds="[]", space="{}", base="{}", created_at=now,
        ))
        for number, (run_id, trial_id) in enumerate(zip(run_ids, trial_ids, strict=True), start=1):
            conn.execute(insert(trials_t).values(sweep_id=sweep_id, number=number, trial_id=trial_id, params="{}",
                                                 state="running", updated_at=now))
            conn.execute(insert(trial_runs_t).values(run_id=run_id, sweep_id=sweep_id, number=number))


def search_row(store: Store, sweep_id: int) -> dict | None:
    if not has_tables(store):
        return None
    with store._read() as conn:
        row = conn.execute(select(searches_t).where(searches_t.c.sweep_id == sweep_id)).first()
    return None if row is None else dict(row._mapping)


def trial_rows(store: Store, sweep_id: int) -> list[dict]:
    """Every trial of the search, in the order asked, params decoded."""
    if not has_tables(store):
        return []
    with store._read() as conn:
        rows = conn.execute(select(trials_t).where(trials_t.c.sweep_id == sweep_id).order_by(trials_t.c.number))
        found = [dict(row._mapping) for row in rows]
        runs = conn.execute(select(trial_runs_t).where(trial_runs_t.c.sweep_id == sweep_id)).all()
    by_number: dict[int, list[int]] = {}
    for run in runs:
        by_number.setdefault(run.number, []).append(run.run_id)
    for row in found:
        row["params"] = json.loads(row["params"]) if row["params"] else {}
        row["run_ids"] = sorted(by_number.get(row["number"], []))
    return found


def load_study(store: Store, search: dict, number: int = 0):
    import optuna

    space = decode_space(search["space"]) if search["space"] != "{}" else {}
    epochs = json.loads(search["base"]).get("epochs", 1) if search["base"] != "{}" else 1
    sampler = make_sampler(search["sampler"], search["sampler_seed"], number, search["trials"], space) \
        if search["kind"] == "search" else optuna.samplers.RandomSampler()
    return _retry(lambda: optuna.load_study(study_name=search["study_name"], storage=storage_for(store),
                                            sampler=sampler, pruner=make_pruner(search["pruner"], epochs)))


# ---------------------------------------------------------------------------- asking
def _open_searches(store: Store) -> list[int]:
    with store._read() as conn:
        return [row.sweep_id for row in conn.execute(
            select(searches_t.c.sweep_id).where(searches_t.c.kind == "search", searches_t.c.asked < searches_t.c.trials)
            .order_by(searches_t.c.sweep_id))]


def _take_number(store: Store, worker_id: str, stale_before: float) -> tuple[int, int] | None:
    """(sweep id, trial number) this worker now owns: a trial whose asker died before queueing
    it (older than its lease), else the next number of an open search; None if none is left."""
    now = time.time()
    with store._write() as conn:
        stale = conn.execute(
            select(trials_t.c.sweep_id, trials_t.c.number)
            .where(trials_t.c.state == "asking", trials_t.c.updated_at < stale_before).limit(1)
        ).first()
        if stale is not None:
            taken = conn.execute(
                update(trials_t).where(trials_t.c.sweep_id == stale.sweep_id, trials_t.c.number == stale.number,
                                       trials_t.c.state == "asking", trials_t.c.updated_at < stale_before)
                .values(worker_id=worker_id, updated_at=now)
            )
            if taken.rowcount == 1:
                return stale.sweep_id, stale.number
        for sweep_id in _open_searches_in(conn):
            # The bounded increment is the whole guard: N workers hand out at most ``trials`` numbers.
            bumped = conn.execute(
                update(searches_t).where(searches_t.c.sweep_id == sweep_id, searches_t.c.asked < searches_t.c.trials)
                .values(asked=searches_t.c.asked + 1).returning(searches_t.c.asked)
            ).first()
            if bumped is None:
                continue
            number = bumped[0]
            conn.execute(insert(trials_t).values(sweep_id=sweep_id, number=number, state="asking",
                                                 worker_id=worker_id, updated_at=now))
            return sweep_id, number
    return None


def _open_searches_in(conn) -> list[int]:
    return [row.sweep_id for row in conn.execute(
        select(searches_t.c.sweep_id).where(searches_t.c.kind == "search", searches_t.c.asked < searches_t.c.trials)
        .order_by(searches_t.c.sweep_id))]


def _has_stale(store: Store, stale_before: float) -> bool:
    with store._read() as conn:
        return conn.execute(select(trials_t.c.number).where(
            trials_t.c.state == "asking", trials_t.c.updated_at < stale_before).limit(1)).first() is not None


def refill(store: Store, worker_id: str, lease: float) -> int:
    """Called by a worker that found nothing to claim: settle trials whose runs all ended, then
    ask one trial of an open search and queue its runs (one per seed). Returns the runs queued
    (0 when no search needs a trial). Cheap when there is no search: two reads."""
    if not has_tables(store):
        return 0
    settle(store)
    stale_before = time.time() - lease
    if not _open_searches(store) and not _has_stale(store, stale_before):
        return 0
    taken = _take_number(store, worker_id, stale_before)
    if taken is None:
        return 0
    sweep_id, number = taken
    return _ask_and_queue(store, worker_id, sweep_id, number)


def _ask_and_queue(store: Store, worker_id: str, sweep_id: int, number: int) -> int:
    import optuna

    search = search_row(store, sweep_id)
    space = decode_space(search["space"])
    try:
        study = load_study(store, search, number)
        _fail_orphans(study, number)
        trial = _retry(lambda: study.ask(space))
    except (DBAPIError, optuna.exceptions.StorageInternalError):
        raise  # the database: the number stays 'asking', and is asked again once the lease lapses
    except Exception:
        # The sampler itself cannot ask (a missing package on this worker, say): the trial is failed
        # and counted, rather than asked again and again by every worker.
        with store._write() as conn:
            conn.execute(update(trials_t).where(trials_t.c.sweep_id == sweep_id, trials_t.c.number == number)
                         .values(state="failed", updated_at=time.time()))
        raise
    params = {name: trial.params[name] for name in space}
    _retry(lambda: study._storage.set_trial_user_attr(trial._trial_id, "seqcopy_number", number))
    base = RunConfig.from_dict(json.loads(search["base"]))
    config = base.replace(**params)
    configs = [config.replace(seed=seed) for seed in json.loads(search["seeds"])]
    problems = configs[0].validate(check_device=False)
    if problems:  # refused before the search started; a value the checks missed fails the trial, not the worker
        _retry(lambda: study.tell(trial, state=optuna.trial.TrialState.FAIL))
        with store._write() as conn:
            conn.execute(update(trials_t).where(trials_t.c.sweep_id == sweep_id, trials_t.c.number == number)
                         .values(trial_id=trial._trial_id, params=json.dumps(params), state="failed",
                                 updated_at=time.time()))
        return 0

    def record(conn, ids: list[int]) -> None:
        owned = conn.execute(
            update(trials_t).where(trials_t.c.sweep_id == sweep_id, trials_t.c.number == number,
                                   trials_t.c.state == "asking", trials_t.c.worker_id == worker_id)
            .values(trial_id=trial._trial_id, params=json.dumps(params), state="running", updated_at=time.time())
        )
        if owned.rowcount != 1:
            raise _TakenOver
        for run_id in ids:
            conn.execute(insert(trial_runs_t).values(run_id=run_id, sweep_id=sweep_id, number=number))

    try:
        return len(store.submit_to_sweep(configs, sweep_id, then=record))
    except _TakenOver:  # we were too slow and another worker asked this number again: ours is surplus
        _retry(lambda: study.tell(trial, state=optuna.trial.TrialState.FAIL))
        return 0


def _fail_orphans(study, number: int) -> None:
    """A number asked again: an Optuna trial its dead asker left running (asked, never queued) is
    failed, so the study holds no trial without runs (found by the number it was tagged with)."""
    import optuna

    for frozen in _retry(lambda: study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))):
        if frozen.user_attrs.get("seqcopy_number") == number:
            _retry(lambda frozen=frozen: study.tell(_trial(study, frozen._trial_id),
                                                    state=optuna.trial.TrialState.FAIL, skip_if_finished=True))


class _TakenOver(Exception):
    """Another worker took over this trial number (ours looked dead); nothing is written."""


# ---------------------------------------------------------------------------- reporting
def _trial_of_run(conn, run_id: int):
    return conn.execute(
        select(trials_t, searches_t.c.objective, searches_t.c.study_name, searches_t.c.pruner)
        .join(trial_runs_t, (trial_runs_t.c.sweep_id == trials_t.c.sweep_id)
              & (trial_runs_t.c.number == trials_t.c.number))
        .join(searches_t, searches_t.c.sweep_id == trials_t.c.sweep_id)
        .where(trial_runs_t.c.run_id == run_id)
    ).first()


def _seed_values(conn, sweep_id: int, number: int, objective: str, epoch: int | None) -> list[float]:
    """The objective of each of the trial's runs at ``epoch`` (None: at each run's last epoch)."""
    from seqcopy.runs.store import epochs_t, runs_t

    run_ids = [row.run_id for row in conn.execute(select(trial_runs_t.c.run_id).where(
        trial_runs_t.c.sweep_id == sweep_id, trial_runs_t.c.number == number))]
    values = []
    for run_id in run_ids:
        at = epoch
        if at is None:
            at = conn.execute(select(runs_t.c.epochs_done).where(runs_t.c.id == run_id)).scalar() or 0
        found = conn.execute(select(epochs_t.c[objective]).where(epochs_t.c.run_id == run_id,
                                                                 epochs_t.c.epoch == at)).scalar()
        if found is not None and math.isfinite(found):
            values.append(float(found))
    return values


def mean_and_se(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var / len(values))


def after_epoch(store: Store, run_id: int, sweep_id: int | None, epoch: int) -> str | None:
    """Report the trial's seeds' mean at ``epoch`` and ask the pruner; the reason to stop the run
    now ('pruned at epoch E …') or None. A run of a trial pruned by a sibling seed stops too."""
    if sweep_id is None or not has_tables(store):
        return None
    with store._read() as conn:
        trial = _trial_of_run(conn, run_id)
        if trial is None:
            return None
        if trial.state == "pruned":
            return f"pruned: trial {trial.number} was pruned at epoch {trial.pruned_epoch}"
        if trial.state != "running" or trial.pruner == "none":
            return None
        values = _seed_values(conn, trial.sweep_id, trial.number, trial.objective, epoch)
    if not values:
        return None
    import optuna

    search = search_row(store, trial.sweep_id)
    study = load_study(store, search, trial.number)
    storage = study._storage
    mean = sum(values) / len(values)
    # Upserted: each seed that reaches the epoch brings the mean up to date.
    _retry(lambda: storage.set_trial_intermediate_value(trial.trial_id, epoch, mean))
    frozen = _retry(lambda: storage.get_trial(trial.trial_id))
    if not _retry(lambda: study.pruner.prune(study, frozen)):
        return None
    with store._write() as conn:
        won = conn.execute(
            update(trials_t).where(trials_t.c.sweep_id == trial.sweep_id, trials_t.c.number == trial.number,
                                   trials_t.c.state == "running")
            .values(state="pruned", pruned_epoch=epoch, value=mean, n=len(values), updated_at=time.time())
        ).rowcount == 1
        if won:
            _cancel_queued_siblings(conn, trial.sweep_id, trial.number, epoch)
    if won:
        _retry(lambda: study.tell(_trial(study, trial.trial_id), state=optuna.trial.TrialState.PRUNED,
                                  skip_if_finished=True))
    return f"pruned at epoch {epoch} by the {search['pruner']} pruner (trial {trial.number}, objective {mean:.4g})"


def _cancel_queued_siblings(conn, sweep_id: int, number: int, epoch: int) -> None:
    from seqcopy.runs.store import runs_t

    siblings = select(trial_runs_t.c.run_id).where(trial_runs_t.c.sweep_id == sweep_id,
                                                   trial_runs_t.c.number == number)
    conn.execute(update(runs_t).where(runs_t.c.id.in_(siblings), runs_t.c.status == "queued").values(
        status="cancelled", finished_at=time.time(),
        error=f"pruned: trial {number} was pruned at epoch {epoch} before this seed started"))


def after_run(store: Store, run_id: int, sweep_id: int | None) -> None:
    """A run of a trial ended: if it was the trial's last, tell the study the seeds' mean."""
    if sweep_id is None or not has_tables(store):
        return
    settle(store, sweep_id)


def settle(store: Store, sweep_id: int | None = None) -> None:
    """Tell the study about each running trial whose runs have all ended: the seeds' mean of the
    objective at their last epoch (completed), or failed if a seed failed or was cancelled.
    Exactly one caller tells (the state changes under the write lock first)."""
    from seqcopy.runs.store import runs_t

    where = [trials_t.c.state == "running"]
    if sweep_id is not None:
        where.append(trials_t.c.sweep_id == sweep_id)
    with store._read() as conn:
        running = conn.execute(select(trials_t.c.sweep_id, trials_t.c.number, trials_t.c.trial_id).where(*where)).all()
        if not running:
            return
        done = []
        for row in running:
            statuses = [r.status for r in conn.execute(
                select(runs_t.c.status).join(trial_runs_t, trial_runs_t.c.run_id == runs_t.c.id)
                .where(trial_runs_t.c.sweep_id == row.sweep_id, trial_runs_t.c.number == row.number))]
            if statuses and all(s in ("completed", "failed", "cancelled") for s in statuses):
                done.append((row, all(s == "completed" for s in statuses)))
    for row, ok in done:
        search = search_row(store, row.sweep_id)
        with store._write() as conn:
            values = _seed_values(conn, row.sweep_id, row.number, search["objective"], None) if ok else []
            mean, se = mean_and_se(values)
            state = "completed" if ok and mean is not None else "failed"
            won = conn.execute(
                update(trials_t).where(trials_t.c.sweep_id == row.sweep_id, trials_t.c.number == row.number,
                                       trials_t.c.state == "running")
                .values(state=state, value=mean, se=se, n=len(values), updated_at=time.time())
            ).rowcount == 1
        if not won:
            continue
        import optuna as import_optuna

        study = load_study(store, search, row.number)
        if state == "completed":
            _retry(lambda study=study, row=row, mean=mean, se=se, values=values: (
                study._storage.set_trial_user_attr(row.trial_id, "se", se),
                study._storage.set_trial_user_attr(row.trial_id, "seed_values", values),
                study.tell(_trial(study, row.trial_id), mean, skip_if_finished=True)))
        else:
            _retry(lambda study=study, row=row: study.tell(
                _trial(study, row.trial_id), state=import_optuna.trial.TrialState.FAIL, skip_if_finished=True))


def _trial(study, trial_id: int):
    """The live Trial of a storage id (Study.tell takes a Trial or a study-local number, not an id)."""
    import optuna

    return optuna.trial.Trial(study, trial_id)
