"""The queue side of a search: Optuna trials asked when a worker is free, told when their runs end.

A search (seqcopy.results.search builds one) is a sweep with a row in ``searches`` (its tables are
the store's: seqcopy.runs.schema, seqcopy.runs.search_tables): the space as Optuna distributions,
the number of trials, the objective, the sampler and pruner by name, and the seeds. Nothing is
queued up front. A worker that finds no run to claim calls :func:`refill`, which takes the next
trial number atomically in the runs store (bounded by the search's trials, so N workers never ask
more), asks the study for that trial, and queues one run per seed in the same transaction that
records the trial's parameters. Each epoch a run of a trial calls :func:`after_epoch`, which
reports the seeds' mean at that epoch to the trial and asks the pruner; the run that ends a
trial's last seed tells the study the seeds' mean (:func:`after_run`, or :func:`settle` for runs
a dead worker left behind).

Storage: the Optuna study lives in the runs database itself (its own tables, ``studies``,
``trials`` …, beside ours; no name is shared), so a search needs no second URL and travels with
the runs to any worker on any machine. Optuna's writes are a few per trial and one per epoch,
beside the runs' one write per epoch, and every Optuna call here is retried through a locked
database. The storage's own methods (``set_trial_intermediate_value``, ``get_trial`` …) are
Optuna's public storage API; this module keeps the storage object it made rather than reach
into a study for it.

Samplers keep their random stream in the process, not in the storage, so each worker would replay
the same stream: every trial gets a fresh sampler seeded by (sampler seed, trial number), which
makes the same ``--sampler-seed`` give the same trials whichever worker asks them.

Grids pruned with ``submit --prune`` use the same tables: one trial per run, all asked at
submission (the grid is queued up front), no sampling, the pruner comparing runs at one epoch.

Runs here never import seqcopy.results; optuna is imported only when a search exists.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import time
import uuid
from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy.exc import DBAPIError

from seqcopy.config import RunConfig
from seqcopy.errors import InputError
from seqcopy.runs.retry import logger, retry
from seqcopy.runs.search_tables import SearchInfo, SearchKind, SearchSpec, TrialInfo, TrialTakenOver
from seqcopy.runs.states import PRUNED_PREFIX, TrialState
from seqcopy.runs.store import Store, sweep_name_problem

log = logger("search")


class Decision(StrEnum):
    """What the pruner says of a run after an epoch (Ray Tune's schedulers say the same)."""

    CONTINUE = "continue"
    STOP = "stop"


@dataclasses.dataclass(frozen=True)
class PruneVerdict:
    """:func:`after_epoch`'s answer: go on, or stop with the reason shown beside the run."""

    decision: Decision = Decision.CONTINUE
    reason: str = ""

    @property
    def stop(self) -> bool:
        return self.decision == Decision.STOP


GO_ON = PruneVerdict()


class SearchInputError(InputError, ValueError):
    """A search that cannot run: a bad spec, setting, objective, sampler or pruner; one line."""


# ---------------------------------------------------------------------------- storage
@functools.lru_cache(maxsize=16)
def _storage(url: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a worker's stderr is for its own lines
    kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def storage_for(store: Store):
    """Optuna's storage over the runs database (psycopg 3 for PostgreSQL, as the store's engine)."""
    return _storage(store.engine.url.render_as_string(hide_password=False))


def _busy(error: BaseException) -> bool:
    import optuna

    return isinstance(error, optuna.exceptions.StorageInternalError)


def _say_busy(error: BaseException, _seconds: float) -> None:
    log.warning("optuna storage busy (%s); retrying", type(error).__name__)


def _retry(call):
    """``call()``, retried while the database is locked or busy (SQLite under several workers)."""
    return retry(call, when=_busy, first=0.05, longest=1.0, attempts=20, before_wait=_say_busy)


# ---------------------------------------------------------------------------- samplers and pruners
def _trial_seed(seed: int | None, number: int) -> int | None:
    """A trial's sampler seed mixes the search's seed with the number, so a trial's draw does not
    depend on which worker (with what history of draws) asks it."""
    return None if seed is None else (seed * 1_000_003 + number) % 2**32


def _tpe(seed, number, trials, _space):
    import optuna

    # A small search still models most of its trials: a third of them random first, at most 10.
    return optuna.samplers.TPESampler(seed=_trial_seed(seed, number), n_startup_trials=max(1, min(10, trials // 3)))


def _random(seed, number, _trials, _space):
    import optuna

    return optuna.samplers.RandomSampler(seed=_trial_seed(seed, number))


def _grid(_seed, number, _trials, space):
    import optuna

    # Trial n takes the grid's n-th point, so every point is asked once however many workers ask
    # at once (a grid sampler made afresh per trial cannot see what the others drew, and repeats
    # points once they run out); create_search caps the trials at the grid's size.
    point = grid_point(space, number)
    return optuna.samplers.GridSampler({name: [value] for name, value in point.items()})


def grid_points(space: dict) -> list[dict]:
    """Every point of a grid search's space, in one fixed order (the settings' product)."""
    values = grid_values(space)
    return [dict(zip(values, combo, strict=True)) for combo in itertools.product(*values.values())]


def grid_point(space: dict, number: int) -> dict:
    """The point trial ``number`` (1-based) of a grid search trains."""
    points = grid_points(space)
    return points[(number - 1) % len(points)]


def _cmaes(seed, number, _trials, _space):
    import optuna

    return optuna.samplers.CmaEsSampler(seed=_trial_seed(seed, number), warn_independent_sampling=False)


def _qmc(seed, _number, _trials, _space):
    import optuna

    # One seed for every trial: QMC's sequence is indexed by the trials already in the storage.
    return optuna.samplers.QMCSampler(seed=seed, warn_asynchronous_seeding=False, warn_independent_sampling=False)


# name → factory(search seed, trial number, trials, space): a fresh sampler for one trial.
SAMPLER_FACTORIES = {"tpe": _tpe, "random": _random, "grid": _grid, "cmaes": _cmaes, "qmc": _qmc}
SAMPLERS = tuple(SAMPLER_FACTORIES)


def _no_pruner(_epochs):
    import optuna

    return optuna.pruners.NopPruner()


def _median(_epochs):
    import optuna

    # Two finished trials before any is compared, and never on the first epoch.
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)


def _asha(epochs):
    import optuna

    # The first rung at a quarter of the run: copy accuracy after an epoch or two is mostly noise
    # on this task (bench/bench_search.py: rungs from epoch 1 pruned the eventual best).
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, epochs // 4), reduction_factor=3)


def _hyperband(epochs):
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, epochs), reduction_factor=3)


# name → factory(epochs of a trial's runs): the pruner a study is loaded with.
PRUNER_FACTORIES = {"none": _no_pruner, "median": _median, "asha": _asha, "hyperband": _hyperband}
PRUNERS = tuple(PRUNER_FACTORIES)
GRID_PRUNERS = ("median", "asha")  # submit --prune: no sampler, the grid's runs compared


def make_sampler(name: str, seed: int | None, number: int, trials: int, space: dict):
    """A fresh sampler for trial ``number``; SearchInputError for an unknown name."""
    if name not in SAMPLER_FACTORIES:
        raise SearchInputError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}")
    return SAMPLER_FACTORIES[name](seed, number, trials, space)


def make_pruner(name: str, epochs: int):
    """The pruner ``name`` for trials of ``epochs`` epochs; SearchInputError for an unknown name."""
    if name not in PRUNER_FACTORIES:
        raise SearchInputError(f"unknown pruner {name!r}: choose one of {', '.join(PRUNERS)}")
    return PRUNER_FACTORIES[name](epochs)


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


def decode_space(text: str) -> dict:
    import optuna

    return {name: optuna.distributions.json_to_distribution(item) for name, item in json.loads(text).items()}


def encode_space(space: dict) -> str:
    import optuna

    return json.dumps({name: optuna.distributions.distribution_to_json(d) for name, d in space.items()})


# ---------------------------------------------------------------------------- creating
def _new_study(store: Store, kind: SearchKind, direction: str):
    import optuna

    name = f"seqcopy-{kind}-{uuid.uuid4().hex[:12]}"
    return _retry(lambda: optuna.create_study(storage=storage_for(store), study_name=name, direction=direction))


def create_search(store: Store, spec: SearchSpec) -> int:
    """Create the Optuna study, then the sweeps and searches rows; returns the sweep id. Nothing is
    queued: workers ask the trials (:func:`refill`). ``spec.study_name`` is chosen here.
    SearchInputError for a name the store would refuse, before any study is made."""
    problem = sweep_name_problem(spec.name)
    if problem:
        raise SearchInputError(f"the search's name: {problem}")
    if spec.kind == SearchKind.SEARCH and spec.sampler == "grid":
        # A grid ends when every point is asked: a trial more would train a point again.
        spec = dataclasses.replace(spec, trials=min(spec.trials, len(grid_points(decode_space(spec.space)))))
    study = _new_study(store, spec.kind, spec.direction)
    return store.create_search(dataclasses.replace(spec, study_name=study.study_name))


def create_pruned_grid(store: Store, sweep_id: int, run_ids: Sequence[int], objective: str, direction: str,
                       pruner: str) -> None:
    """``submit --prune``: the grid's runs, already queued as ``sweep_id``, become one trial each of
    a study whose pruner compares them at the same epoch."""
    study = _new_study(store, SearchKind.GRID, direction)
    trial_ids = [_trial_id(store, study, _retry(study.ask).number) for _ in run_ids]
    spec = SearchSpec(name="", spec={}, study_name=study.study_name, trials=len(run_ids), objective=objective,
                      direction=direction, sampler="none", pruner=pruner, kind=SearchKind.GRID)
    store.attach_pruned_grid(sweep_id, spec, list(zip(run_ids, trial_ids, strict=True)))


def load_study(store: Store, search: SearchInfo, number: int = 0):
    """The search's study, with the sampler trial ``number`` is asked with and the search's pruner."""
    import optuna

    if search.kind == SearchKind.SEARCH:
        sampler = make_sampler(search.sampler, search.sampler_seed, number, search.trials, decode_space(search.space))
    else:
        sampler = optuna.samplers.RandomSampler()
    return _retry(lambda: optuna.load_study(study_name=search.study_name, storage=storage_for(store),
                                            sampler=sampler, pruner=make_pruner(search.pruner, search.epochs)))


# ---------------------------------------------------------------------------- asking
def refill(store: Store, worker_id: str, lease: float) -> int:
    """Called by a worker that found nothing to claim: settle trials whose runs all ended, then
    ask one trial of an open search and queue its runs (one per seed). Returns the runs queued
    (0 when no search needs a trial). Cheap when there is no search: two reads."""
    settle(store)
    stale_before = time.time() - lease
    if not store.searches_waiting(stale_before):
        return 0
    taken = store.take_trial_number(worker_id, stale_before)
    if taken is None:
        return 0
    sweep_id, number = taken
    return _ask_and_queue(store, worker_id, sweep_id, number)


def _ask_and_queue(store: Store, worker_id: str, sweep_id: int, number: int) -> int:
    import optuna

    search = store.search(sweep_id)
    space = decode_space(search.space)
    try:
        study = load_study(store, search, number)
        _fail_orphans(study, number)
        trial = _retry(lambda: study.ask(space))
    except (DBAPIError, optuna.exceptions.StorageInternalError):
        raise  # the database: the number stays 'asking', and is asked again once the lease lapses
    except Exception:
        # The sampler itself cannot ask (a missing package on this worker, say): the trial is failed
        # and counted, rather than asked again and again by every worker.
        store.fail_trial(sweep_id, number)
        raise
    params = {name: trial.params[name] for name in space}
    _retry(lambda: trial.set_user_attr("seqcopy_number", number))
    trial_id = _trial_id(store, study, trial.number)
    config = RunConfig.from_dict(search.base).replace(**params)
    configs = [config.replace(seed=seed) for seed in search.seeds]
    if configs[0].validate(check_device=False):
        # Refused before the search started; a value the checks missed fails the trial, not the worker.
        _retry(lambda: study.tell(trial, state=optuna.trial.TrialState.FAIL))
        store.fail_trial(sweep_id, number, trial_id, params)
        return 0
    try:
        return len(store.queue_trial(configs, sweep_id, number, worker_id, trial_id, params))
    except TrialTakenOver:  # we were too slow and another worker asked this number again: ours is surplus
        _retry(lambda: study.tell(trial, state=optuna.trial.TrialState.FAIL))
        return 0


def _trial_id(store: Store, study, optuna_number: int) -> int:
    """The storage's id of the study's trial ``optuna_number`` (what search_trials.trial_id keeps)."""
    storage = storage_for(store)
    study_id = _retry(lambda: storage.get_study_id_from_name(study.study_name))
    return _retry(lambda: storage.get_trial_id_from_study_id_trial_number(study_id, optuna_number))


def _fail_orphans(study, number: int) -> None:
    """A number asked again: an Optuna trial its dead asker left running (asked, never queued) is
    failed, so the study holds no trial without runs (found by the number it was tagged with)."""
    import optuna

    for frozen in _retry(lambda: study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))):
        if frozen.user_attrs.get("seqcopy_number") == number:
            _retry(lambda frozen=frozen: study.tell(frozen.number, state=optuna.trial.TrialState.FAIL,
                                                    skip_if_finished=True))


# ---------------------------------------------------------------------------- reporting
def after_epoch(store: Store, run_id: int, sweep_id: int | None, epoch: int) -> PruneVerdict:
    """Report the trial's seeds' mean at ``epoch`` and ask the pruner: go on, or stop with the
    reason ('pruned at epoch E …'). A run of a trial pruned by a sibling seed stops too."""
    if sweep_id is None:
        return GO_ON
    trial = store.trial_of_run(run_id)
    if trial is None:
        return GO_ON
    if trial.state == TrialState.PRUNED:
        return PruneVerdict(Decision.STOP,
                            f"{PRUNED_PREFIX}: trial {trial.number} was pruned at epoch {trial.pruned_epoch}")
    search = store.search(trial.sweep_id)
    if trial.state != TrialState.RUNNING or search.pruner == "none":
        return GO_ON
    values = store.seed_values(trial.sweep_id, trial.number, search.objective, epoch)
    if not values:
        return GO_ON
    import optuna

    study = load_study(store, search, trial.number)
    storage = storage_for(store)
    mean = sum(values) / len(values)
    # Upserted through the storage (Trial.report keeps the first value of a step): each seed that
    # reaches the epoch brings the mean up to date.
    _retry(lambda: storage.set_trial_intermediate_value(trial.trial_id, epoch, mean))
    frozen = _retry(lambda: storage.get_trial(trial.trial_id))
    if not _retry(lambda: study.pruner.prune(study, frozen)):
        return GO_ON
    if store.prune_trial(trial.sweep_id, trial.number, epoch, mean, len(values)):
        _retry(lambda: study.tell(frozen.number, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True))
    return PruneVerdict(Decision.STOP, f"{PRUNED_PREFIX} at epoch {epoch} by the {search.pruner} pruner "
                                       f"(trial {trial.number}, objective {mean:.4g})")


def after_run(store: Store, run_id: int, sweep_id: int | None) -> None:
    """A run of a trial ended: if it was the trial's last, tell the study the seeds' mean."""
    if sweep_id is not None:
        settle(store, sweep_id)


def settle(store: Store, sweep_id: int | None = None) -> None:
    """Tell the study about each running trial whose runs have all ended: the seeds' mean of the
    objective at their last epoch (completed), or failed if a seed failed or was cancelled.
    Exactly one caller tells (the state changes under the write lock first)."""
    for trial, completed in store.ended_trials(sweep_id):
        search = store.search(trial.sweep_id)
        end = store.settle_trial(trial.sweep_id, trial.number, search.objective, completed)
        if end is not None:
            _tell(store, search, trial, end)


def _tell(store: Store, search: SearchInfo, trial: TrialInfo, end) -> None:
    import optuna

    study = load_study(store, search, trial.number)
    storage = storage_for(store)
    number = _retry(lambda: storage.get_trial_number_from_id(trial.trial_id))
    if end.state == TrialState.COMPLETED:
        _retry(lambda: (storage.set_trial_user_attr(trial.trial_id, "se", end.se),
                        storage.set_trial_user_attr(trial.trial_id, "seed_values", list(end.values)),
                        study.tell(number, end.mean, skip_if_finished=True)))
    else:
        _retry(lambda: study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True))
