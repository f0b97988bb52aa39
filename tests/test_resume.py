"""Resume: train() stopped after epoch k and resumed from its serialized state equals the run left
alone, bit for bit (every cell × curriculum, fresh data, cosine, plateau); a worker stopped by a
signal puts its run back in the queue with its state and the next worker finishes it; a lapsed
lease after a first epoch resumes the run up to --max-restarts; a lost reply to a state write
on PostgreSQL (tests/faultproxy.py) neither corrupts nor duplicates; --stop-at ends a run early.

In-process training on one thread keeps the cells × options matrix cheap (TINY models); the real
processes (SIGTERM, SIGKILL) are in tests/test_worker.py.
"""

from __future__ import annotations

import pytest
import torch
from conftest import TINY

from seqcopy.config import ConfigError, parse_stop_at
from seqcopy.core import checkpoint
from seqcopy.core import resume as resume_state
from seqcopy.core.train import Stopped, train
from seqcopy.runs.store import Store
from seqcopy.runs.worker import RunExecution, StateEvery, StopSignals, Worker

CELLS = ("rnn", "lstm", "gru", "mlstm", "mgru")
TIMING = ("seconds", "samples_per_sec")  # wall-clock figures: the only ones that may differ
OPTIONS = {
    "curriculum-fresh-cosine": dict(curriculum=True, curriculum_start=2, train_seq_len=8, train_output_len=8,
                                    fresh_data=True, lr_schedule="cosine", lr=0.01, curriculum_threshold=0.2),
    "plateau-warmup": dict(lr_schedule="plateau", warmup_epochs=1, lr=0.02),
    "linear-norm-clip": dict(lr_schedule="linear", clip="norm", fresh_data=True),
}
BASE = TINY.replace(epochs=4)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Bit-identical results need the same torch thread count: one, everywhere here."""


def metrics(epochs) -> list[dict]:
    return [{k: v for k, v in (e if isinstance(e, dict) else e.to_dict()).items() if k not in TIMING}
            for e in epochs]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def stopped_after(config, k: int) -> bytes:
    """The resume state of ``config`` trained in-process and stopped right after epoch k."""
    states = {}

    def grab(result, state, final):
        states[result.epoch] = state()
        if result.epoch == k:
            raise Stopped

    train(config, on_epoch_state=grab)
    return states[k]


# ---------------------------------------------------------------------------- train() itself
@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("cell", CELLS)
def test_a_run_resumed_after_epoch_k_equals_the_run_left_alone(cell, option):
    config = BASE.replace(cell=cell, **OPTIONS[option])
    alone = train(config)
    for k in (1, 3):
        resumed = train(config, resume=stopped_after(config, k))
        assert metrics(resumed.epochs) == metrics(alone.epochs)
        assert_same_weights(resumed.model.state_dict(), alone.model.state_dict())
        assert resumed.position_acc == alone.position_acc and resumed.length_acc == alone.length_acc


def test_the_state_survives_a_round_trip_and_refuses_foreign_bytes():
    state = resume_state.from_bytes(stopped_after(BASE, 2))
    assert state.epoch == 2 and state.planned_epochs == BASE.epochs and len(state.epochs) == 2
    with pytest.raises(checkpoint.CheckpointError, match="not a readable resume state"):
        resume_state.from_bytes(b"not a state")


def test_a_continuation_at_constant_rate_equals_the_longer_run_and_cosine_restarts_from_lr():
    # Constant: the 3-epoch run given 2 more epochs is the 5-epoch run, bit for bit.
    short, longer = BASE.replace(epochs=3), BASE.replace(epochs=5)
    continued = train(longer, resume=stopped_after(short, 3))
    assert metrics(continued.epochs) == metrics(train(longer).epochs)
    # Cosine: its decay ended near 0, so the new epochs decay again from --lr (a warm restart).
    cosine = short.replace(lr_schedule="cosine")
    last_lr = train(cosine).epochs[-1].lr
    after = train(cosine.replace(epochs=5), resume=stopped_after(cosine, 3)).epochs
    assert [e.epoch for e in after] == [1, 2, 3, 4, 5]
    assert after[3].lr > 10 * last_lr and after[4].lr < after[3].lr


def test_a_fork_starts_from_the_weights_only_at_epoch_one():
    parent = train(BASE.replace(epochs=2))
    blob = checkpoint.to_bytes(parent.model, parent.config)
    child = BASE.replace(epochs=1, train_seq_len=6, train_output_len=6, lr=0.01)
    start = resume_state.from_bytes(blob)
    assert isinstance(start, resume_state.WeightsStart)
    forked = train(child, resume=blob)
    assert [e.epoch for e in forked.epochs] == [1]
    scratch = train(child)
    assert metrics(forked.epochs) != metrics(scratch.epochs)  # the weights came from the parent


# ---------------------------------------------------------------------------- --stop-at
def test_stop_at_ends_the_run_as_completed_at_the_target_with_its_patience():
    reached = train(BASE.replace(epochs=5, stop_at="test_loss<=100"))
    assert reached.target_epoch == 1 and len(reached.epochs) == 1 and not reached.stopped
    assert reached.position_acc and reached.length_acc  # the final results of the weights it ends with
    patient = train(BASE.replace(epochs=5, stop_at="test_loss<=100", stop_patience=3))
    assert patient.target_epoch == 3 and len(patient.epochs) == 3
    never = train(BASE.replace(epochs=2, stop_at="test_copy_acc>=1.01"))
    assert never.target_epoch is None and len(never.epochs) == 2


@pytest.mark.parametrize("text, needle", [
    ("test_copy_acc>0.9", "METRIC>=VALUE"), ("speed>=1", "unknown metric"), ("test_loss<=abc", "a number"),
    ("test_loss<=nan", "finite"),
])
def test_a_bad_stop_at_is_refused_in_one_line(text, needle):
    with pytest.raises(ConfigError, match=needle):
        BASE.replace(stop_at=text).check()


def test_stop_at_parses_both_directions():
    assert str(parse_stop_at("test_copy_acc >= 0.99")) == "test_copy_acc>=0.99"
    assert parse_stop_at("train_loss<=0.5").op == "<=" and parse_stop_at("") is None


# ---------------------------------------------------------------------------- the worker
@pytest.fixture
def store(db_url):
    store = Store(db_url)
    yield store
    store.close()


def preempted_execution(store: Store, run_id: int, at_epoch: int, worker_id: str = "w:1") -> str:
    """Train the run in-process as a worker would, with a SIGTERM arriving during epoch ``at_epoch``."""
    signals = StopSignals()

    def on_batch(done, total):
        if done == 1 and store.get_run(run_id).epochs_done == at_epoch - 1:
            signals.stop()  # what the SIGTERM handler does

    run = store.claim(worker_id, lease=30)
    assert run.id == run_id
    return RunExecution(store, run, worker_id, 30, signals, on_batch=on_batch).execute()


@pytest.mark.parametrize("cell", ("lstm", "mgru"))
def test_a_stopped_workers_run_is_queued_with_its_state_and_the_next_worker_finishes_it_exactly(store, cell):
    config = BASE.replace(cell=cell, **OPTIONS["curriculum-fresh-cosine"])
    run_id = store.submit(config)
    assert preempted_execution(store, run_id, at_epoch=2) == "preempted"
    run = store.get_run(run_id)
    assert run.status == "queued" and run.epochs_done == 2 and run.error == "preempted at epoch 2; resumes"
    assert store.resume_state(run_id)[0] == 2
    assert Worker(store, worker_id="w:2", lease=30).run(once=True) == 1
    run = store.get_run(run_id)
    assert run.status == "completed" and run.error is None and run.worker_id == "w:2"
    rows = store.epochs([run_id])
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]  # each once
    alone = train(config)
    for row, epoch in zip(rows, alone.epochs, strict=True):
        for name in ("train_loss", "test_loss", "test_copy_acc", "train_copy_acc", "lr"):
            assert row[name] == getattr(epoch, name), (row["epoch"], name)
    model, _ = checkpoint.from_bytes(store.checkpoint(run_id))
    assert_same_weights(model.state_dict(), alone.model.state_dict())
    assert store.resume_state(run_id)[0] == 4  # kept: continue and fork start from it


def test_a_cancel_still_cancels_and_a_cancel_during_preemption_wins(store):
    run_id = store.submit(BASE)
    run = store.claim("w:1", lease=30)
    store.record_epoch(run_id, "w:1", train(BASE.replace(epochs=1)).epochs[0].to_dict(), token=run.claim_token,
                       state=b"x")
    store.request_cancel(run_id)
    store.preempt(run_id, "w:1", "preempted at epoch 1; resumes", token=run.claim_token)
    after = store.get_run(run_id)
    assert after.status == "cancelled" and "cancelled by request" in after.error


def test_a_lapsed_lease_after_an_epoch_resumes_up_to_the_cap_then_fails_with_the_reason(store):
    run_id = store.submit(BASE)
    epoch = train(BASE.replace(epochs=1)).epochs[0].to_dict()
    for attempt in range(1, 5):
        run = store.claim(f"w:{attempt}", lease=1)
        assert run is not None and run.id == run_id, attempt
        store.record_epoch(run_id, f"w:{attempt}", epoch, token=run.claim_token, state=b"state")
        assert store.reclaim_expired(now=run.started_at + 1e6) == [run_id]  # its worker died
        after = store.get_run(run_id)
        if attempt <= 3:
            assert after.status == "queued" and after.restarts == attempt
            assert f"restart {attempt} of at most 3" in after.error and "resumes after epoch 1" in after.error
        else:
            assert after.status == "failed" and "gave up after 3 restart(s)" in after.error
            assert "no heartbeat" in after.error
    assert [row["epoch"] for row in store.epochs([run_id])] == [1]


def test_a_run_trained_here_and_now_is_never_restarted_elsewhere(store):
    run_id = store.submit(BASE, status="running", worker_id="cli:x")
    store.record_epoch(run_id, "cli:x", train(BASE.replace(epochs=1)).epochs[0].to_dict())
    assert store.reclaim_expired(now=1e12) == [run_id]
    assert store.get_run(run_id).status == "failed"


@pytest.mark.parametrize("text, expected", [("1", (1, 0.0)), ("5", (5, 0.0)), ("300s", (0, 300.0))])
def test_state_every_takes_epochs_or_seconds(text, expected):
    every = StateEvery.parse(text)
    assert (every.epochs, every.seconds) == expected


@pytest.mark.parametrize("text", ["0", "-1", "abc", "0s", "infs"])
def test_state_every_refuses_nonsense(text):
    with pytest.raises(ValueError, match="--state-every"):
        StateEvery.parse(text)


def test_a_state_every_few_epochs_resumes_from_the_last_state_written_with_each_epoch_once(store):
    config = BASE.replace(epochs=5)
    run_id = store.submit(config)
    signals = StopSignals()
    run = store.claim("w:1", lease=30)

    def on_batch(done, total):
        if store.get_run(run_id).epochs_done == 3:
            signals.stop()
            signals.stop()  # a second signal: stop at the next batch, epoch 4 dropped

    execution = RunExecution(store, run, "w:1", 30, signals, on_batch=on_batch, state_every=StateEvery(epochs=2))
    assert execution.execute() == "preempted"
    run = store.get_run(run_id)
    assert run.status == "queued" and run.epochs_done == 3 and "resumes from epoch 3" in run.error
    assert store.resume_state(run_id)[0] == 2
    assert Worker(store, worker_id="w:2", lease=30).run(once=True) == 1
    assert [row["epoch"] for row in store.epochs([run_id])] == [1, 2, 3, 4, 5]
    model, _ = checkpoint.from_bytes(store.checkpoint(run_id))
    assert_same_weights(model.state_dict(), train(config).model.state_dict())


# ---------------------------------------------------------------------------- PostgreSQL faults
@pytest.mark.postgres
def test_a_lost_reply_to_a_state_write_neither_corrupts_nor_duplicates(pg_proxy, capsys):
    from faultproxy import FaultProxy
    from test_faults import nth

    proxy, url = pg_proxy
    store = Store(url)
    config = BASE.replace(epochs=4, cell="gru")
    run_id = store.submit(config)
    # An epoch's transaction (epoch row + state) commits on the server; its reply is lost.
    proxy.lose_commit_reply(nth(FaultProxy.ran("run_states"), 2))
    assert preempted_execution(store, run_id, at_epoch=3) == "preempted"
    assert proxy.lost_replies == 1
    assert "database unavailable while recording epoch" in capsys.readouterr().err  # and retried
    state_epoch = store.resume_state(run_id)[0]
    assert state_epoch in (2, 3)
    assert Worker(store, worker_id="w:2", lease=30).run(once=True) == 1
    assert [row["epoch"] for row in store.epochs([run_id])] == [1, 2, 3, 4]
    model, _ = checkpoint.from_bytes(store.checkpoint(run_id))
    assert_same_weights(model.state_dict(), train(config).model.state_dict())
    store.close()


def test_epochs_to_target_reads_the_stop_at_setting_from_the_epochs():
    from seqcopy.results.report import epochs_to_target

    rows = [{"epoch": e, "test_copy_acc": acc} for e, acc in enumerate((0.5, 0.99, 0.98, 0.995, 0.999), 1)]
    config = BASE.replace(stop_at="test_copy_acc>=0.99")
    assert epochs_to_target(config, rows) == 2
    assert epochs_to_target(config.replace(stop_patience=2), rows) == 5
    assert epochs_to_target(BASE, rows) is None
    assert epochs_to_target(config.replace(stop_at="test_copy_acc>=0.9999"), rows) is None
