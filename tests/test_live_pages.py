"""What the pages say while runs train is what the store says (issue #29), under AppTest: the
Runs table is a live fragment that shows new progress and runs queued after the page opened;
badges for pruned, preempted, resumed and forked runs; the sidebar's worker state from the
heartbeats; restarts of the local worker, bounded; a fork drawn from its parent's epoch."""

from __future__ import annotations

import base64
import json
import sys
import time

import numpy as np
import pytest
import streamlit as st
import ui_store
from test_ui_pages import open_page, point_the_app_at, texts

from seqcopy.runs.store import Store, WorkerInfo
from seqcopy.ui import state
from seqcopy.ui.local_worker import LocalWorker

W = ui_store.WORKER


@pytest.fixture
def empty_db(tmp_path, monkeypatch):
    return point_the_app_at(f"sqlite:///{tmp_path / 'runs.db'}", monkeypatch)


def runs_table(at):
    return next(df.value for df in at.dataframe if "epochs" in df.value.columns).set_index("id")


@pytest.fixture
def live_fragments(monkeypatch):
    """The functions the pages make fragments of, with their timers (st.fragment, recorded)."""
    real, made = st.fragment, {}

    def fragment(func=None, *, run_every=None):
        if func is None:
            return lambda inner: fragment(inner, run_every=run_every)
        made[func.__name__] = run_every
        return real(func, run_every=run_every)

    monkeypatch.setattr(st, "fragment", fragment)
    return made


def test_the_runs_table_is_live_new_progress_and_new_runs_show_and_the_selection_stays(
        empty_db, live_fragments):
    store = Store(empty_db)
    done = ui_store.add_run(store, ui_store.TINY, "completed")
    going = ui_store.add_run(store, ui_store.TINY.replace(seed=1, epochs=5), "running", epochs=2)
    at = open_page("views/runs.py", {"runs": str(going)})
    assert live_fragments["render_table"] == state.LIVE_REFRESH_S  # the table reads the store on the curves' timer
    table = runs_table(at)
    assert table.loc[going, "epochs"] == "2/5" and table.loc[going, "status"] == "running"
    store.record_epoch(going, W, ui_store.epoch_row(3, 1, ui_store.TINY.cell))
    queued = store.submit(ui_store.TINY.replace(seed=2))  # queued after the page opened
    state.clear_reads()  # as the 2 s cache would lapse
    at.run()
    assert not at.exception
    table = runs_table(at)
    assert table.loc[going, "epochs"] == "3/5" and table.loc[queued, "status"] == "queued"
    assert set(table.index) == {done, going, queued}
    assert "1 selected run(s)" in texts(at.subheader) and at.session_state["runs_selected"] == [going]


def preempted_and_pruned(url: str) -> dict[str, int]:
    store = Store(url)
    pruned = ui_store.add_run(store, ui_store.TINY, "running", epochs=1)
    store.finish(pruned, W, "completed", error="pruned at epoch 1 by the median pruner (trial 3)")
    waiting = store.submit(ui_store.TINY.replace(seed=1, epochs=3))
    store.claim(W)
    store.record_epoch(waiting, W, ui_store.epoch_row(1, 1, ui_store.TINY.cell), state=b"state")
    store.preempt(waiting, W, "preempted at epoch 1; resumes")
    return {"pruned": pruned, "waiting": waiting}


def test_badges_on_runs_and_launch(empty_db):
    ids = preempted_and_pruned(empty_db)
    at = open_page("views/runs.py", {"runs": str(ids["waiting"])})
    table = runs_table(at)
    assert table.loc[ids["pruned"], "status"] == "completed · pruned"
    assert table.loc[ids["waiting"], "status"] == "queued · preempted, resumes"
    assert "queued · preempted, resumes" in texts(at.markdown)  # the details' Continue or fork
    at.multiselect(key="runs_filter_badge").set_value(["pruned"]).run()
    assert list(runs_table(at).index) == [ids["pruned"]]
    at.multiselect(key="runs_filter_badge").set_value([]).run()
    at.multiselect(key="runs_filter_status").set_value(["completed"]).run()  # the plain status still filters
    assert list(runs_table(at).index) == [ids["pruned"]]
    launch = open_page("views/launch.py")
    assert "queued · preempted, resumes" in texts(launch.markdown)
    assert r"preempted at epoch 1\; resumes" in texts(launch.caption)  # markdown-escaped


class SleepingWorker(LocalWorker):
    """The local worker's place taken by a sleep: the heartbeats are written by the test."""

    def command(self) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def local(empty_db, monkeypatch):
    worker = SleepingWorker(empty_db, limit=2, delay=0.0)
    worker.start()
    monkeypatch.setattr(state, "ensure_local_worker", lambda: worker)
    yield Store(empty_db), worker
    worker.stop(wait=1.0)


def beat(store: Store, worker: LocalWorker, ago: float, stopped: bool = False) -> None:
    now = time.time()
    host, _, pid = worker.worker_id.rpartition(":")
    store.register_worker(WorkerInfo(id=worker.worker_id, host=host, pid=int(pid), device="cpu", serves="cpu",
                                     threads=1, origin="dashboard", started_at=now - 600, heartbeat_at=now - ago,
                                     lease_seconds=60.0, stopped_at=now - ago if stopped else None))
    state.clear_reads()


def test_the_sidebar_says_what_the_heartbeats_say(local):
    store, worker = local
    at = open_page("views/launch.py")
    assert f"Local worker: starting (pid {worker.pid})" in texts(at.sidebar.caption)
    beat(store, worker, ago=1.0)
    at.run()
    assert f"Local worker: live (pid {worker.pid}) · idle" in texts(at.sidebar.caption)
    assert "1 live worker" in texts(at.markdown)  # Launch's queue reads the same rows
    beat(store, worker, ago=400.0)  # the process runs, yet it has not beaten for longer than its lease
    at.run()
    assert f"Local worker: vanished (pid {worker.pid}): no heartbeat for 7 min" in texts(at.sidebar.warning)
    assert "0 live workers · 1 vanished" in texts(at.markdown)
    beat(store, worker, ago=3.0, stopped=True)
    at.run()
    assert f"Local worker: stopped (pid {worker.pid})" in texts(at.sidebar.warning)


def test_the_dashboard_restarts_its_worker_while_runs_wait_up_to_a_bound(local):
    store, worker = local
    store.submit(ui_store.TINY)
    at = open_page("views/launch.py")
    first = worker.pid
    for restarts in (1, 2):
        worker.process.kill()
        worker.process.wait(10)
        at.run()
        assert not at.exception
        assert worker.alive() and worker.pid != first and worker.starts == restarts + 1
        assert f"The local worker exited; restarted it ({restarts} of at most 2)." in texts(at.sidebar.caption)
    worker.process.kill()
    worker.process.wait(10)
    at.run()
    assert not worker.alive() and worker.starts == 3  # past the bound: not again
    assert "the most it is restarted on its own" in texts(at.sidebar.warning)
    at.sidebar.button(key="restart_local_worker").click().run()
    assert not at.exception and worker.alive() and worker.starts == 4
    assert f"Local worker: starting (pid {worker.pid})" in texts(at.sidebar.caption)


def numbers(array) -> list:
    """A plotly JSON array: a list, or a typed array as base64 bytes and a dtype."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def test_a_fork_is_drawn_from_its_parents_epoch(empty_db):
    store = Store(empty_db)
    parent = ui_store.add_run(store, ui_store.TINY.replace(epochs=3), "completed")
    config = ui_store.TINY.replace(epochs=2, lr=0.02)
    _, (fork,) = store.submit_sweep([config], "fork", {},
                                    lineage=dict(parent_id=parent, parent_epoch=3, state=store.checkpoint(parent)))
    ui_store.record(store, fork, config, "completed")
    at = open_page("views/runs.py", {"runs": f"{parent},{fork}"})
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    xs = {trace["legendgroup"]: numbers(trace["x"]) for trace in traces if trace.get("name", "").endswith("train")}
    assert xs[str(parent)] == [1, 2, 3] and xs[str(fork)] == [4, 5]  # on from the parent's epoch 3
    own = next(trace for trace in traces if trace.get("legendgroup") == str(fork))
    assert numbers(own["customdata"]) == [1, 2] and "its epoch" in own["hovertemplate"]  # its own, on hover
    assert f"#{fork} from epoch 3 of #{parent}" in texts(at.caption)


def test_the_runs_table_says_the_database_is_down_once(empty_db, monkeypatch):
    from sqlalchemy.exc import OperationalError

    store = Store(empty_db)
    ui_store.add_run(store, ui_store.TINY, "completed")
    at = open_page("views/runs.py")

    def gone(*args, **kwargs):
        raise OperationalError("SELECT runs", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(Store, "list_runs", gone)
    state.clear_reads()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [str(e.value)[:35] for e in at.error] == ["The runs database does not answer: "]
