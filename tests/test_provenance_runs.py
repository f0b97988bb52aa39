"""Provenance: each segment a run trains records its code, libraries, thread count and hardware;
old runs read 'unknown'; a resumed run trains with the thread count it started with (restored
after) and is bit for bit the run left alone; runs that differ in code are flagged."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY
from test_resume_defects import Killed

from seqcopy.core import checkpoint
from seqcopy.core.train import train
from seqcopy.runs import provenance
from seqcopy.runs.store import Store
from seqcopy.runs.worker import RunExecution, StopSignals, Worker

BASE = TINY.replace(cell="lstm", epochs=3)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every run here starts on one thread."""


@pytest.fixture
def store(db_url):
    store = Store(db_url)
    yield store
    store.close()


def test_a_finished_run_records_its_one_segment_and_shows_it(store):
    run_id = store.submit(BASE)
    assert provenance.provenance_lines(store.get_run(run_id))[0].startswith("environment: unknown")
    assert Worker(store, worker_id="w:1", lease=30).run(once=True) == 1
    run = store.get_run(run_id)
    (segment,) = run.environments
    assert segment["from_epoch"] == 0 and segment["threads"] == 1 and segment["torch"] == torch.__version__
    assert segment["python"] and segment["host"] and segment["numpy"] and "git_commit" in segment
    (line,) = provenance.provenance_lines(run)
    assert line.startswith("epochs 1–3: seqcopy ") and "1 thread," in line and f"torch {torch.__version__}" in line


def test_a_resume_on_another_thread_count_trains_with_the_runs_own_and_equals_the_run_left_alone(store):
    run_id = store.submit(BASE)
    run = store.claim("w:1", lease=30)

    def kill_after_one(result):
        if result.epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        RunExecution(store, run, "w:1", 30, StopSignals(), on_epoch=kill_after_one).execute()
    store.reclaim_expired(now=run.started_at + 1e6)
    seen = set()
    torch.set_num_threads(2)  # this worker's own count (the fixture restores it)
    run = store.claim("w:2", lease=30)
    execution = RunExecution(store, run, "w:2", 30, StopSignals(),
                             on_batch=lambda *_: seen.add(torch.get_num_threads()))
    assert execution.execute() == "completed"
    assert seen == {1} and torch.get_num_threads() == 2  # the run's count while it trained, this worker's after
    segments = store.get_run(run_id).environments
    assert [s["from_epoch"] for s in segments] == [0, 1] and all(s["threads"] == 1 for s in segments)
    assert "exact" not in segments[1]
    torch.set_num_threads(1)
    alone = train(BASE)
    model, _ = checkpoint.from_bytes(store.checkpoint(run_id))
    for name, tensor in alone.model.state_dict().items():
        assert model.state_dict()[name].equal(tensor), name
    lines = provenance.provenance_lines(store.get_run(run_id))
    assert lines[0].startswith("epoch 1: ") and lines[1].startswith("epochs 2–3: ")


def test_a_segment_on_another_torch_says_it_agrees_to_rounding_only(store):
    run_id = store.submit(BASE)
    run = store.claim("w:1", lease=30)
    with pytest.raises(Killed):
        RunExecution(store, run, "w:1", 30, StopSignals(),
                     on_epoch=lambda r: (_ for _ in ()).throw(Killed)).execute()
    with store._write() as conn:  # as if the first segment ran another torch
        from seqcopy.runs.store import runs_t

        first = dict(store.get_run(run_id).environments[0], torch="1.0.0")
        conn.execute(runs_t.update().where(runs_t.c.id == run_id).values(environments=json.dumps([first])))
    store.reclaim_expired(now=run.started_at + 1e6)
    assert Worker(store, worker_id="w:2", lease=30).run(once=True) == 1
    last = store.get_run(run_id).environments[-1]
    assert last["exact"] is False and "rounding only" in last["exact_note"] and "1.0.0 before" in last["exact_note"]
    assert "rounding only" in provenance.provenance_lines(store.get_run(run_id))[-1]


def test_runs_that_differ_in_code_or_library_are_flagged():
    from types import SimpleNamespace

    one = dict(seqcopy="0.1.0", git_commit="a" * 40, git_dirty=False, torch="2.5", numpy="2.1", python="3.12")
    same = SimpleNamespace(environments=(one,))
    assert provenance.differs([same, same]) is None
    other = SimpleNamespace(environments=(dict(one, git_commit="b" * 40, git_dirty=True, torch="2.6"),))
    assert provenance.differs([same, other]) == "runs differ in code, torch"
    assert provenance.differs([same, SimpleNamespace(environments=())]) is None


def test_git_is_read_safely_and_none_outside_a_checkout(monkeypatch, tmp_path):
    monkeypatch.setattr(provenance, "__file__", str(tmp_path / "provenance.py"))
    assert provenance._git("rev-parse", "HEAD") is None


# ---------------------------------------------------------------------------- seqcopy rerun
def test_rerun_of_a_finished_run_is_identical_in_every_epoch_and_names_the_first_that_differs(tmp_path, capsys):
    from conftest import run_cli

    db_url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(db_url)
    # Hidden 64: big enough that torch splits its sums by thread, so another count moves the last bits.
    run_id = store.submit(BASE.replace(hidden_size=64, epochs=2))
    assert Worker(store, worker_id="w:1", lease=30).run(once=True) == 1
    code, out, err = run_cli(capsys, "rerun", str(run_id), "--db", db_url)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"run {run_id + 1}: rerun of #{run_id}") and "1 thread(s)" in lines[0]
    assert lines[1:] == ["epoch 1: identical", "epoch 2: identical",
                         f"rerun #{run_id + 1} of #{run_id}: identical in every epoch (2)"]
    assert store.get_run(run_id + 1).rerun_of == run_id
    code, out, err = run_cli(capsys, "rerun", str(run_id), "--threads", "2", "--db", db_url)
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    if "identical in every epoch" in last:  # a machine whose torch keeps one thread's order: nothing to name
        pytest.skip("this torch computes the same sums on 1 and 2 threads")
    assert last.startswith(f"rerun #{run_id + 2} of #{run_id}: first differs at epoch ") and " by " in last
    store.close()
