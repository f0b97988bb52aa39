"""Searches (issue 22): the space and its validation, trials asked by free workers, pruning, seeds.

Integration tests run on SQLite and PostgreSQL (the ``db_url`` fixture). Workers are real
``seqcopy worker`` processes where several must race for trials, in-process ``Worker`` objects
where a test swaps the pruner for one whose decision it knows in advance.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import signal
import time

import optuna
import pytest
from conftest import TINY, assert_one_line_error, run_cli
from sqlalchemy import inspect, text
from test_worker import SLOW, finish, start_worker, wait_for

from seqcopy.results import search
from seqcopy.runs import trials
from seqcopy.runs.schema import SCHEMA_VERSION
from seqcopy.runs.search_tables import mean_and_se
from seqcopy.runs.store import Store
from seqcopy.runs.worker import Worker

TINY_FLAGS = ["-hs", "8", "-em", "4", "-iseq", "4", "-oseq", "4", "-tseq", "8", "-toseq", "4", "-trs", "64",
              "-ts", "16", "-b", "16", "-ep", "3"]


@pytest.fixture
def store(db_url):
    store = Store(db_url)
    yield store
    store.close()


def start(store: Store, trials_count: int = 4, seeds=(0,), sampler: str = "random", pruner: str = "none",
          sampler_seed: int | None = 7, base=TINY, space_texts=("hidden_size=int(4,16)", "lr=log(1e-3,1e-1)")) -> int:
    plan = search.SearchPlan(base=base, space=search.parse_space(space_texts), trials=trials_count,
                             objective="test_copy_acc", sampler=sampler, pruner=pruner, seeds=tuple(seeds),
                             sampler_seed=sampler_seed, space_texts=tuple(space_texts))
    return search.start_search(store, plan)


def drain(store: Store, lease: float = 30) -> int:
    """One in-process worker until the queue and every search are empty."""
    return Worker(store, worker_id="test:1", lease=lease, poll=0.02).run(idle_exit=0.3)


def trial_rows(store: Store, sweep_id: int) -> list[dict]:
    """The search's trials in the order asked, as dicts (run_ids a list), for terse assertions."""
    return [dataclasses.asdict(t) | {"run_ids": list(t.run_ids)} for t in store.search_trials(sweep_id)]


def optuna_trials(store: Store, sweep_id: int) -> list:
    return search.load_optuna_study(store, sweep_id).get_trials(deepcopy=False)


# ---------------------------------------------------------------------------- the space
def test_specs_become_optuna_distributions():
    d = optuna.distributions
    assert search.parse_spec("hidden_size", "int(8,64)") == d.IntDistribution(8, 64)
    assert search.parse_spec("lr", "float(0.1,3)") == d.FloatDistribution(0.1, 3.0)
    assert search.parse_spec("lr", "log(1e-4,1e-2)") == d.FloatDistribution(1e-4, 1e-2, log=True)
    assert search.parse_spec("hidden_size", "log(8,64)") == d.IntDistribution(8, 64, log=True)
    assert search.parse_spec("hidden_size", "16,32,64") == d.CategoricalDistribution([16, 32, 64])
    assert search.parse_spec("cell", "lstm,gru") == d.CategoricalDistribution(["lstm", "gru"])
    assert search.parse_spec("curriculum", "true,false") == d.CategoricalDistribution([True, False])
    space = search.parse_space(["-hs=int(8,64)", "learning_rate=log(1e-4,1e-2)"])
    assert list(space) == ["hidden_size", "lr"]


def test_validation_tries_each_choice_and_a_range_s_bounds_and_interior():
    values = search.sample_values(optuna.distributions.IntDistribution(8, 64))
    assert values[0] == 8 and values[-1] == 64 and len(values) == 5 and all(isinstance(v, int) for v in values)
    logs = search.sample_values(optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True))
    assert logs[2] == pytest.approx(1e-3)  # the geometric middle
    assert search.sample_values(optuna.distributions.CategoricalDistribution(["a", "b"])) == ["a", "b"]


@pytest.mark.parametrize("argv, needle", [
    (["--space", "hidden_size=int(8,x)"], "not a whole number"),
    (["--space", "hidden_size=range(8,64)"], "write int(A,B)"),
    (["--space", "hidden_size=float(8,64)"], "int(A,B) or log(A,B)"),
    (["--space", "lr=int(1,3)"], "int(A,B) is for whole-number settings"),
    (["--space", "hidden_size=int(64,8)"], "low end must be below"),
    (["--space", "lr=log(0,1)"], "at least"),
    (["--space", "hidden_size=int(8,99999)"], "at most"),
    (["--space", "no_such_setting=1,2"], "unknown setting"),
    (["--space", "seed=1,2"], "--seeds"),
    (["--space", "tag=a,b"], "free text"),
    ([], "the space is empty"),
    (["--space", "hidden_size=int(8,16)", "--space=-hs=8,9"], "given twice"),
    # The input is 4 long: an output of up to 10 gives invalid runs (the bounds are checked).
    (["--space", "train_output_len=int(1,10)"], "can produce an invalid run"),
    # Each alone is fine; the corner with both at their high end is not (warm-up ≥ epochs).
    (["--space", "warmup_epochs=int(0,2)", "--space", "epochs=int(1,3)"], "can produce an invalid run"),
    (["--space", "hidden_size=int(8,16)", "--objective-override", "no_metric"], "unknown metric"),
    (["--space", "lr=float(0.01,0.1)", "--sampler", "grid"], "--sampler grid"),
])
def test_a_bad_search_is_one_line_exit_2_and_nothing_is_written(capsys, sqlite_url, argv, needle):
    objective = "test_copy_acc"
    if "--objective-override" in argv:
        index = argv.index("--objective-override")
        objective = argv[index + 1]
        argv = argv[:index] + argv[index + 2:]
    code, out, err = run_cli(capsys, "search", *TINY_FLAGS, *argv, "--trials", "3", "--objective", objective,
                             "--db", sqlite_url)
    assert_one_line_error(code, err, needle)
    store = Store(sqlite_url)
    assert store.list_runs() == [] and store.list_sweeps() == [] and out == ""
    assert "studies" not in inspect(store.engine).get_table_names()  # not even an Optuna study
    store.close()


def test_the_search_command_records_a_sweep_and_queues_nothing(capsys, sqlite_url):
    code, out, err = run_cli(capsys, "search", *TINY_FLAGS, "--space", "hidden_size=int(4,16)", "--space",
                             "lr=log(1e-3,1e-1)", "--trials", "5", "--objective", "test_loss", "--seeds", "0-2",
                             "--db", sqlite_url)
    assert code == 0, err
    sweep_id = int(out.strip())
    assert "5 trials × 3 seed(s) = at most 15 runs" in err and "min test_loss" in err
    store = Store(sqlite_url)
    assert store.list_runs() == []  # trials are asked by free workers, never queued up front
    (sweep,) = store.list_sweeps()
    assert sweep.id == sweep_id and sweep.spec["search"] and sweep.spec["trials"] == 5
    row = store.search(sweep_id)
    assert (row.trials, row.asked, row.direction, row.seeds) == (5, 0, "minimize", (0, 1, 2))
    assert optuna_trials(store, sweep_id) == []
    store.close()


# ---------------------------------------------------------------------------- trials
def test_a_trial_is_one_run_per_seed_and_its_value_the_seeds_mean(store, one_thread):
    sweep_id = start(store, trials_count=2, seeds=(0, 1, 2))
    drain(store)
    rows = search.trials_table(store, sweep_id)
    assert [r["state"] for r in rows] == ["completed", "completed"]
    for row in rows:
        runs = [store.get_run(run_id) for run_id in row["run_ids"]]
        assert sorted(r.config.seed for r in runs) == [0, 1, 2] and {r.sweep_id for r in runs} == {sweep_id}
        assert all(getattr(r.config, name) == value for r in runs for name, value in row["params"].items())
        finals = [store.epochs([r.id])[-1]["test_copy_acc"] for r in runs]
        mean, se = mean_and_se(finals)
        assert row["value"] == pytest.approx(mean) and row["se"] == pytest.approx(se) and row["n"] == 3
    told = {t.number: t for t in optuna_trials(store, sweep_id)}
    assert sorted(t.value for t in told.values()) == pytest.approx(sorted(r["value"] for r in rows))
    assert all(t.user_attrs["se"] is not None for t in told.values())


def test_a_seeded_sampler_gives_the_same_trials_twice(store, one_thread):
    first = start(store, trials_count=3, sampler="random", sampler_seed=11)
    second = start(store, trials_count=3, sampler="random", sampler_seed=11)
    other = start(store, trials_count=3, sampler="random", sampler_seed=12)
    drain(store)

    def params(sweep_id):
        return [row["params"] for row in sorted(trial_rows(store, sweep_id), key=lambda r: r["number"])]

    assert params(first) == params(second) and len(params(first)) == 3
    assert params(first) != params(other)


def test_tpe_with_a_sampler_seed_repeats_its_trials_run_after_run(store, one_thread):
    first = start(store, trials_count=4, sampler="tpe", sampler_seed=3)
    drain(store)
    second = start(store, trials_count=4, sampler="tpe", sampler_seed=3)
    drain(store)
    assert [r["params"] for r in trial_rows(store, first)] == [
        r["params"] for r in trial_rows(store, second)]


@pytest.fixture
def prune_at_epoch_2(monkeypatch):
    """Optuna's ThresholdPruner with a bar no accuracy reaches, past a warm-up of 2 steps: it
    prunes every trial at epoch 2, so the test knows where each run must stop."""
    monkeypatch.setattr(trials, "make_pruner", lambda name, epochs: optuna.pruners.ThresholdPruner(
        lower=2.0, n_warmup_steps=2))


def test_a_pruned_run_stops_at_the_epoch_the_pruner_decided_and_says_so(store, one_thread, prune_at_epoch_2):
    sweep_id = start(store, trials_count=2, seeds=(0, 1), pruner="median", base=TINY.replace(epochs=5))
    drain(store)
    rows = search.trials_table(store, sweep_id)
    assert [(r["state"], r["pruned_epoch"]) for r in rows] == [("pruned", 2), ("pruned", 2)]
    for row in rows:
        first, second = (store.get_run(run_id) for run_id in row["run_ids"])
        # The seed that decided ran to epoch 2 and stopped; it is a completed run with the reason.
        assert first.status == "completed" and first.epochs_done == 2
        assert first.error.startswith("pruned at epoch 2 by the median pruner")
        assert [e["epoch"] for e in store.epochs([first.id])] == [1, 2]
        # The other seed, still queued, never trains a pruned trial: cancelled, and saying why.
        assert second.status == "cancelled" and second.epochs_done == 0 and "pruned at epoch 2" in second.error
    frozen = optuna_trials(store, sweep_id)
    assert [t.state for t in frozen] == [optuna.trial.TrialState.PRUNED] * 2
    assert all(max(t.intermediate_values) == 2 for t in frozen)
    code_report = search.search_report(store, sweep_id)
    assert "2 pruned" in code_report and "trial 1 at epoch 2" in code_report


def test_without_a_pruner_runs_finish_their_epochs(store, one_thread):
    sweep_id = start(store, trials_count=1, pruner="none")
    drain(store)
    (row,) = trial_rows(store, sweep_id)
    (run,) = [store.get_run(i) for i in row["run_ids"]]
    assert row["state"] == "completed" and run.epochs_done == TINY.epochs and run.error is None


def test_three_workers_run_exactly_n_trials_none_twice(store, db_url):
    n = 6
    sweep_id = start(store, trials_count=n, seeds=(0, 1), pruner="median", base=TINY.replace(epochs=2))
    workers = [start_worker(db_url, idle_exit=3) for _ in range(3)]
    for worker in workers:
        code, err = finish(worker, timeout=240)
        assert code == 0, err
    rows = trial_rows(store, sweep_id)
    assert sorted(r["number"] for r in rows) == list(range(1, n + 1))
    assert {r["state"] for r in rows} <= {"completed", "pruned"}
    assert len({r["trial_id"] for r in rows}) == n
    assert len({json.dumps(r["params"], sort_keys=True) for r in rows}) == n  # a seeded random draw each
    assert store.search(sweep_id).asked == n
    frozen = optuna_trials(store, sweep_id)
    assert len(frozen) == n and all(t.state.is_finished() for t in frozen)
    runs = store.list_runs(sweep_id=sweep_id)
    assert sorted(run_id for r in rows for run_id in r["run_ids"]) == sorted(r.id for r in runs)
    assert len(runs) <= 2 * n and all(len(r["run_ids"]) == 2 for r in rows)
    # Every run trained by one worker only, each trained run's epochs written once.
    for run in runs:
        assert [e["epoch"] for e in store.epochs([run.id])] == list(range(1, run.epochs_done + 1))
    assert {r.worker_id for r in runs if r.worker_id} - {None}, "no worker trained anything"


def test_a_worker_killed_mid_trial_loses_no_trial_and_doubles_none(store, db_url):
    n = 2
    sweep_id = start(store, trials_count=n, seeds=(0,), base=SLOW.replace(epochs=6))
    killed = start_worker(db_url, lease=2, idle_exit=None)
    wait_for(lambda: any(r.epochs_done >= 1 for r in store.list_runs(sweep_id=sweep_id)), 60, "a first epoch")
    killed.send_signal(signal.SIGKILL)
    finish(killed)
    time.sleep(2.5)  # past the lease
    survivor = start_worker(db_url, lease=2, idle_exit=3)
    code, err = finish(survivor, timeout=240)
    assert code == 0, err
    rows = trial_rows(store, sweep_id)
    assert sorted(r["number"] for r in rows) == [1, 2] and all(len(r["run_ids"]) == 1 for r in rows)
    # The killed worker's run was taken back (failed with its epochs kept, until the resume issue
    # resumes it): its trial is settled as failed, not lost and not asked again.
    assert {r["state"] for r in rows} <= {"completed", "failed"} and "completed" in {r["state"] for r in rows}
    frozen = optuna_trials(store, sweep_id)
    assert len(frozen) == n and all(t.state.is_finished() for t in frozen)


def test_a_trial_whose_asker_died_before_queueing_it_is_asked_again_once(store, one_thread):
    sweep_id = start(store, trials_count=2)
    assert store.take_trial_number("dead:1", stale_before=0) == (sweep_id, 1)  # then it died
    time.sleep(0.05)
    drain(store, lease=1.0)  # number 2 at once; number 1 once its asker's lease (1 s) has lapsed
    deadline = time.monotonic() + 10
    while {r["state"] for r in trial_rows(store, sweep_id)} != {"completed"} and time.monotonic() < deadline:
        drain(store, lease=1.0)
    rows = trial_rows(store, sweep_id)
    assert [(r["number"], r["state"], len(r["run_ids"])) for r in rows] == [(1, "completed", 1), (2, "completed", 1)]
    assert store.search(sweep_id).asked == 2 and len(optuna_trials(store, sweep_id)) == 2


# ---------------------------------------------------------------------------- report and grids
def test_report_search_gives_the_best_trials_as_a_markdown_table(capsys, sqlite_url, one_thread):
    store = Store(sqlite_url)
    sweep_id = start(store, trials_count=3, seeds=(0, 1))
    drain(store)
    code, out, err = run_cli(capsys, "report", "--search", str(sweep_id), "--db", sqlite_url)
    assert code == 0, err
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("| rank"))
    assert "hidden_size" in header and "lr" in header and "test_copy_acc (mean ± SE)" in header
    body = [line for line in lines if line.startswith("| ") and not line.startswith("| rank")]
    assert len(body) == 3 and all(" ± " in line for line in body)
    values = [float(line.split("|")[5].split("±")[0]) for line in body]
    assert values == sorted(values, reverse=True)  # best first
    grid_id, _ = store.submit_sweep([TINY, TINY.replace(seed=1)], "a grid", {})
    code, out, err = run_cli(capsys, "report", "--search", str(grid_id), "--db", sqlite_url)
    assert_one_line_error(code, err, "not a search")
    store.close()


def test_submit_prune_prunes_a_plain_grid_across_its_runs_at_the_same_epoch(capsys, store, db_url, one_thread,
                                                                          prune_at_epoch_2):
    code, out, err = run_cli(capsys, "submit", *TINY_FLAGS[:-2], "-ep", "4", "--sweep", "lr=0.01,0.1",
                             "--seeds", "0,1", "--prune", "median", "--db", db_url)
    assert code == 0, err
    ids = [int(line) for line in out.split()]
    assert len(ids) == 4
    drain(store)
    runs = [store.get_run(i) for i in ids]
    assert all(r.status == "completed" and r.epochs_done == 2 and r.error.startswith("pruned at epoch 2")
               for r in runs)
    sweep_id = runs[0].sweep_id
    assert store.search(sweep_id).kind == "grid"
    assert len(optuna_trials(store, sweep_id)) == 4


def test_submit_prune_checks_its_objective(capsys, sqlite_url):
    code, _, err = run_cli(capsys, "submit", *TINY_FLAGS, "--prune", "median", "--objective", "nope",
                           "--db", sqlite_url)
    assert_one_line_error(code, err, "unknown metric")
    code, _, err = run_cli(capsys, "submit", *TINY_FLAGS, "--objective", "test_loss", "--db", sqlite_url)
    assert_one_line_error(code, err, "--objective goes with --prune")


def test_an_optuna_trial_its_dead_asker_left_running_is_failed_when_the_number_is_asked_again(sqlite_url, one_thread):
    store = Store(sqlite_url)
    sweep_id = start(store, trials_count=1)
    assert store.take_trial_number("dead:1", stale_before=0) == (sweep_id, 1)
    study = search.load_optuna_study(store, sweep_id)
    orphan = study.ask()  # the dead worker asked Optuna, then died before queueing the runs
    orphan.set_user_attr("seqcopy_number", 1)
    time.sleep(1.1)
    drain(store, lease=1.0)
    states = sorted(t.state.name for t in optuna_trials(store, sweep_id))
    assert states == ["COMPLETE", "FAIL"]
    assert [(r["number"], r["state"]) for r in trial_rows(store, sweep_id)] == [(1, "completed")]
    store.close()


def test_a_sampler_whose_package_is_missing_is_refused_before_anything_is_written(capsys, sqlite_url, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cmaes" else real(name, *a))
    code, out, err = run_cli(capsys, "search", *TINY_FLAGS, "--space", "lr=float(0.01,0.1)", "--trials", "2",
                             "--objective", "test_loss", "--sampler", "cmaes", "--db", sqlite_url)
    assert_one_line_error(code, err, "needs the cmaes package")


def test_a_trial_the_sampler_cannot_ask_is_failed_once_not_asked_for_ever(sqlite_url, one_thread, monkeypatch):
    store = Store(sqlite_url)
    sweep_id = start(store, trials_count=2)
    broken = trials.make_sampler

    def sampler(name, seed, number, count, space):
        if number == 1:
            raise ModuleNotFoundError("No module named 'cmaes'")
        return broken(name, seed, number, count, space)

    monkeypatch.setattr(trials, "make_sampler", sampler)
    drain(store, lease=1.0)
    assert [(r["number"], r["state"]) for r in trial_rows(store, sweep_id)] == [(1, "failed"), (2, "completed")]
    store.close()


@pytest.mark.parametrize("sampler", [name for name in trials.SAMPLERS
                                     if name != "cmaes" or importlib.util.find_spec("cmaes")])
@pytest.mark.parametrize("pruner", ["hyperband", "asha"])
def test_every_sampler_and_pruner_runs_a_search(sqlite_url, one_thread, sampler, pruner):
    store = Store(sqlite_url)
    space = ("hidden_size=4,8", "lr=0.01,0.05") if sampler == "grid" else ("hidden_size=int(4,16)",
                                                                          "lr=log(1e-3,1e-1)")
    sweep_id = start(store, trials_count=3, sampler=sampler, pruner=pruner, space_texts=space)
    drain(store)
    rows = trial_rows(store, sweep_id)
    assert len(rows) == 3 and {r["state"] for r in rows} <= {"completed", "pruned"}
    assert len(optuna_trials(store, sweep_id)) == 3
    store.close()


# ---------------------------------------------------------------------------- older stores
def _as_version_7(store: Store, drop_search_tables: bool = False) -> None:
    """Make ``store`` look as seqcopy's schema version 7 left it: the searches' tables, which that
    version's search module made itself with these same columns, kept or (never searched) absent."""
    with store.engine.begin() as conn:
        if drop_search_tables:
            for table in ("search_runs", "search_trials", "searches"):
                conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text("UPDATE meta SET value = '7' WHERE key = 'schema_version'"))


def test_a_version_7_store_that_holds_a_search_opens_with_its_search_whole(db_url, one_thread, capsys):
    store = Store(db_url)
    sweep_id = start(store, trials_count=3)
    drain(store)
    before = search.trials_table(store, sweep_id)
    report_before = search.search_report(store, sweep_id)
    _as_version_7(store)
    store.close()

    upgraded = Store(db_url)
    with upgraded.engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar() == str(SCHEMA_VERSION)
    assert search.trials_table(upgraded, sweep_id) == before and len(before) == 3
    assert search.search_report(upgraded, sweep_id) == report_before
    code, out, err = run_cli(capsys, "report", "--search", str(sweep_id), "--db", db_url)
    assert code == 0, err
    assert "3 of 3 trials asked: 3 completed" in out
    upgraded.close()


def test_a_version_7_store_that_never_searched_gets_the_tables_and_can_search(db_url, one_thread):
    store = Store(db_url)
    store.submit(TINY)
    _as_version_7(store, drop_search_tables=True)
    store.close()

    upgraded = Store(db_url)
    assert {"searches", "search_trials", "search_runs"} <= set(inspect(upgraded.engine).get_table_names())
    sweep_id = start(upgraded, trials_count=1)
    drain(upgraded)
    assert [(r["number"], r["state"]) for r in trial_rows(upgraded, sweep_id)] == [(1, "completed")]
    upgraded.close()
