"""Resumes that land at a run's edges, and what a stopped run keeps: a worker killed right after
the last epoch's write (or the epoch that met --stop-at) leaves a run whose resume must still write
every final result and train no further epoch; a preempted run cancelled while queued, or one
failed by --max-restarts, keeps its last state's weights to fork, continue and evaluate.

The kill is simulated in-process: an exception no handler catches, raised just after the epoch's
write landed, leaves the run as SIGKILL would (running, its heartbeat stopping); its lease then
lapses (``reclaim_expired`` with a far ``now``).
"""

from __future__ import annotations

import pytest
from conftest import TINY, assert_one_line_error, run_cli

from seqcopy.core import checkpoint
from seqcopy.core.train import train
from seqcopy.runs.store import Store
from seqcopy.runs.worker import RunExecution, StopSignals, Worker

BASE = TINY.replace(cell="lstm", epochs=3)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Bit-identical results need the same torch thread count: one, everywhere here."""


@pytest.fixture
def store(db_url):
    store = Store(db_url)
    yield store
    store.close()


class Killed(BaseException):
    """What SIGKILL does to a worker: nothing after it runs, nothing catches it."""


def killed_after(store: Store, run_id: int, epoch: int, worker_id: str = "w:1") -> None:
    """Train the run as a worker would, killed as soon as ``epoch``'s row (and state) landed; then
    its lease lapses and the run goes back to the queue."""
    def on_epoch(result):
        if result.epoch == epoch:
            raise Killed

    run = store.claim(worker_id, lease=30)
    assert run.id == run_id
    with pytest.raises(Killed):
        RunExecution(store, run, worker_id, 30, StopSignals(), on_epoch=on_epoch).execute()
    assert store.reclaim_expired(now=run.started_at + 1e6) == [run_id]
    assert store.get_run(run_id).status == "queued"


def test_a_kill_after_the_last_epochs_write_still_writes_every_final_result(store):
    run_id = store.submit(BASE)
    killed_after(store, run_id, BASE.epochs)
    assert Worker(store, worker_id="w:2", lease=30).run(once=True) == 1
    run = store.get_run(run_id)
    assert run.status == "completed", run.error
    alone = train(BASE)
    positions = [row["copy_acc"] for row in store.position_results([run_id])]
    assert len(positions) == BASE.test_output_len and positions == pytest.approx(alone.position_acc, abs=0)
    assert [row["copy_acc"] for row in store.length_results([run_id])] == [r["copy_acc"] for r in alone.length_acc]
    assert [row["epoch"] for row in store.epochs([run_id])] == [1, 2, 3]
    model, _ = checkpoint.from_bytes(store.checkpoint(run_id))
    for name, tensor in alone.model.state_dict().items():
        assert model.state_dict()[name].equal(tensor), name


def _target_met_at(config, epoch: int) -> str:
    """A --stop-at target that the run left alone first meets at ``epoch`` (its train loss falls)."""
    losses = [e.train_loss for e in train(config).epochs]
    assert min(losses[:epoch - 1]) > losses[epoch - 1], losses
    return f"train_loss<={losses[epoch - 1]!r}"


def test_a_kill_as_the_target_epoch_lands_trains_no_epoch_more(store):
    config = BASE.replace(epochs=6)
    config = config.replace(stop_at=_target_met_at(config, 3))
    alone = train(config)
    assert alone.target_epoch == 3
    run_id = store.submit(config)
    killed_after(store, run_id, 3)
    assert Worker(store, worker_id="w:2", lease=30).run(once=True) == 1
    run = store.get_run(run_id)
    assert run.status == "completed" and run.error == "target reached at epoch 3"
    assert [row["epoch"] for row in store.epochs([run_id])] == [1, 2, 3]
    assert [row["copy_acc"] for row in store.position_results([run_id])] == alone.position_acc


# ---------------------------------------------------------------------------- what a stopped run keeps
def preempted_at(store: Store, run_id: int, epoch: int) -> None:
    """A worker stopped by SIGTERM during epoch ``epoch``, which it finishes: the run is queued to resume after it."""
    signals = StopSignals()

    def on_batch(done, total):
        if done == 1 and store.get_run(run_id).epochs_done == epoch - 1:
            signals.stop()

    run = store.claim("w:1", lease=30)
    assert RunExecution(store, run, "w:1", 30, signals, on_batch=on_batch).execute() == "preempted"


def test_a_preempted_run_cancelled_while_queued_keeps_its_weights_to_fork_continue_and_evaluate(db_url, capsys):
    store = Store(db_url)
    run_id = store.submit(BASE.replace(epochs=4))
    preempted_at(store, run_id, 2)
    code, out, err = run_cli(capsys, "cancel", str(run_id), "--db", db_url)
    assert code == 0, err
    assert out.strip() == (f"run {run_id} cancelled while queued to resume after epoch 2; its weights after epoch 2 "
                           "are kept (evaluate, submit --from, continue)")
    assert store.get_run(run_id).error == "cancelled while queued to resume after epoch 2"
    assert store.final_weights(run_id)[0] == 2
    code, out, err = run_cli(capsys, "evaluate", str(run_id), "--db", db_url)
    assert code == 0, err
    code, out, err = run_cli(capsys, "submit", "--from", str(run_id), "-ep", "1", "--db", db_url)
    assert code == 0, err
    code, out, err = run_cli(capsys, "continue", str(run_id), "--epochs", "2", "--db", db_url)
    assert code == 0, err
    assert f"continues #{run_id} from epoch 2 to epoch 4" in err
    store.close()


def test_a_run_failed_by_max_restarts_keeps_its_last_states_weights(store):
    from seqcopy.runs.lineage import fork_start

    run_id = store.submit(BASE, max_restarts=0)
    run = store.claim("w:1", lease=30)
    with pytest.raises(Killed):
        RunExecution(store, run, "w:1", 30, StopSignals(), on_epoch=lambda r: (_ for _ in ()).throw(Killed)).execute()
    assert store.reclaim_expired(now=run.started_at + 1e6) == [run_id]
    assert store.get_run(run_id).status == "failed" and store.checkpoint(run_id) is None
    parent, epoch, blob = fork_start(store, run_id)
    assert epoch == 1 and store.checkpoint(run_id) == blob


def test_a_run_cancelled_before_it_started_says_so_and_has_no_weights(db_url, capsys):
    store = Store(db_url)
    run_id = store.submit(BASE)
    code, out, _ = run_cli(capsys, "cancel", str(run_id), "--db", db_url)
    assert out.strip() == f"run {run_id} cancelled before it started"
    code, _, err = run_cli(capsys, "continue", str(run_id), "--epochs", "2", "--db", db_url)
    assert_one_line_error(code, err, "before its first epoch")
    assert "wait for it to end" not in err
    code, _, err = run_cli(capsys, "submit", "--from", str(run_id), "--db", db_url)
    assert_one_line_error(code, err, "no weights")
    store.close()


# ---------------------------------------------------------------------------- messages that say what is true
def test_continue_past_the_epoch_cap_names_the_epochs_typed(db_url, capsys):
    store = Store(db_url)
    run_id = store.submit(BASE)
    assert Worker(store, worker_id="w:1", lease=30).run(once=True) == 1
    code, _, err = run_cli(capsys, "continue", str(run_id), "--epochs", "100000000", "--db", db_url)
    assert_one_line_error(code, err, "at most 9,997 more", "got 100,000,000")
    store.close()


@pytest.mark.parametrize("target, needle", [("test_copy_acc>=2", "can never hold"),
                                            ("test_copy_acc>=-1", "holds at every epoch"),
                                            ("train_loss<=-0.5", "can never hold"),
                                            ("test_acc<=1", "holds at every epoch")])
def test_a_stop_at_that_cannot_mean_anything_is_refused(tmp_path, capsys, target, needle):
    db_url = f"sqlite:///{tmp_path / 'runs.db'}"
    code, _, err = run_cli(capsys, "submit", "--stop-at", target, "--db", db_url)
    assert_one_line_error(code, err, "--stop-at", needle)
    assert not (tmp_path / "runs.db").exists()


def test_report_of_a_search_that_does_not_exist_says_so(sqlite_url, capsys):
    Store(sqlite_url).close()
    code, _, err = run_cli(capsys, "report", "--search", "99", "--db", sqlite_url)
    assert_one_line_error(code, err, "--search: no sweep with id 99")


def test_a_lapsed_lease_says_the_epoch_it_truly_resumes_after(store):
    from seqcopy.runs.worker import StateEvery

    run_id = store.submit(BASE.replace(epochs=6))
    run = store.claim("w:1", lease=30)

    def on_epoch(result):
        if result.epoch == 5:
            raise Killed

    with pytest.raises(Killed):
        RunExecution(store, run, "w:1", 30, StopSignals(), on_epoch=on_epoch,
                     state_every=StateEvery(epochs=3)).execute()
    store.reclaim_expired(now=run.started_at + 1e6)
    assert "resumes after epoch 3; epochs 4–5 are trained again" in store.get_run(run_id).error


# ---------------------------------------------------------------------------- deleting a search's run
def test_a_search_run_is_not_deleted_and_a_new_run_never_inherits_a_trial(db_url, capsys):
    from seqcopy.runs.search_tables import trial_runs_t

    store = Store(db_url)
    code, out, err = run_cli(capsys, "submit", "--seeds", "1,2", "--prune", "median", "-ep", "1", "--db", db_url)
    assert code == 0, err
    first, second = (int(line) for line in out.split())
    with pytest.raises(ValueError, match=f"run {second} is a run of trial"):
        store.delete_run(second)
    # A row left by an older seqcopy's delete: the id handed out again must not inherit it.
    with store._write() as conn:
        conn.execute(trial_runs_t.delete().where(trial_runs_t.c.run_id == second))
        conn.execute(trial_runs_t.insert().values(run_id=second + 1, sweep_id=1, number=9))
    later = store.submit(BASE)
    assert later == second + 1 and store.trial_of_run(later) is None
    store.close()


# ---------------------------------------------------------------------------- a grid search asks each point once
@pytest.mark.parametrize("space, points", [(["hidden_size=8"], 1), (["hidden_size=4,8"], 2)])
def test_a_grid_search_trains_each_point_once_and_ends_with_the_grid(sqlite_url, capsys, space, points):
    flags = ["-hs", "8", "-em", "4", "-iseq", "4", "-oseq", "4", "-tseq", "8", "-toseq", "4", "-trs", "64",
             "-ts", "16", "-b", "16", "-ep", "1"]
    code, out, err = run_cli(capsys, "search", *flags, *sum((["--space", text] for text in space), []),
                             "--sampler", "grid", "--trials", "5", "--objective", "test_copy_acc", "--db", sqlite_url)
    assert code == 0, err
    assert f"the grid has {points} point(s), each trained once: {points} trial(s), not 5" in err
    store = Store(sqlite_url)
    Worker(store, worker_id="w:1", lease=30, poll=0.01).run(idle_exit=0.2)
    runs = store.list_runs()
    assert len(runs) == points and len({run.config.hidden_size for run in runs}) == points
    store.close()
