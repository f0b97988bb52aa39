"""The workers table on the real PostgreSQL server (and SQLite): workers register themselves,
beat while idle or busy, say when they stop, and turn 'vanished' once killed; `seqcopy workers
[--json]` and the Launch page list them and say why a queued run waits."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from conftest import TINY as BASE_TINY
from streamlit.testing.v1 import AppTest
from test_browser import ARTIFACTS, CHROMIUM, chromium_page, serve, settle
from test_ui_pages import APP, texts
from test_worker import ENV, REPO, SLOW, finish, start_worker, wait_for

from seqcopy.runs import capacity
from seqcopy.runs.store import Store, WorkerInfo
from seqcopy.runs.worker import Worker
from seqcopy.ui.workers import workers_view

TINY = BASE_TINY.replace(epochs=2)
NOW = 1_800_000_000.0


def worker(name: str, serves: str = "cpu", beat_ago: float = 1.0, stopped: bool = False, run_id: int | None = None,
           lease: float = 120.0, origin: str | None = None) -> WorkerInfo:
    return WorkerInfo(
        id=name, host=name.split(":")[0], pid=int(name.split(":")[1]), device=serves.split(",")[0], serves=serves,
        threads=1, origin=origin, started_at=NOW - 3600, heartbeat_at=NOW - beat_ago, lease_seconds=lease,
        run_id=run_id, runs_done=2, stopped_at=NOW - beat_ago if stopped else None,
    )


# A store's worth of workers: two live CPU ones (one busy), one vanished GPU one, one stopped.
CREW = [
    worker("cpu-a:11", run_id=7, origin="ray node 10.0.0.5 (ab12cd34)"),
    worker("cpu-b:12"),
    worker("gpu-a:21", serves="cuda", beat_ago=300.0, run_id=9, origin="slurm job 77_3"),
    worker("old:31", beat_ago=50.0, stopped=True),
]


@pytest.fixture
def crew_store(pg_url):
    """A PostgreSQL store holding CREW (times relative to now) and two queued runs: cuda and cpu."""
    store = Store(pg_url)
    now = time.time()
    for info in CREW:
        shift = now - NOW
        store.register_worker(info.__class__(**{
            **info.__dict__, "started_at": info.started_at + shift, "heartbeat_at": info.heartbeat_at + shift,
            "stopped_at": None if info.stopped_at is None else info.stopped_at + shift,
        }))
    ids = store.submit_many([TINY.replace(device="cuda", tag="gpu please"), TINY.replace(device="cpu")])
    yield store, ids
    store.close()


# ---------------------------------------------------------------------------- pure parts
def test_states_summary_and_rows():
    assert [w.state(NOW) for w in CREW] == ["live", "live", "vanished", "stopped"]
    assert capacity.summary(CREW, NOW) == "2 live workers (2 CPU), 1 busy · 1 vanished · 1 stopped"
    rows = capacity.worker_rows(CREW, NOW)
    assert [row["worker"] for row in rows] == ["cpu-a:11", "cpu-b:12", "gpu-a:21", "old:31"]
    assert rows[2]["run"] == 9 and rows[2]["last_seen_s"] == 300.0  # a vanished worker keeps the run it had


def test_why_a_queued_run_waits():
    assert capacity.waiting_reason("cuda", CREW, NOW) == "waiting for a CUDA worker (the 2 live ones serve cpu)"
    assert capacity.waiting_reason("cpu", CREW, NOW) == "next in line for a free worker"
    assert capacity.waiting_reason("auto", CREW[:1], NOW) == "waiting for a free worker (1 that can run it, all busy)"
    assert capacity.waiting_reason("cpu", CREW[2:], NOW) == "waiting for a worker: none is live"


def test_the_pages_view_splits_present_and_stopped_workers():
    view = workers_view(CREW, NOW)
    assert list(view.present["Worker"]) == ["cpu-a:11", "cpu-b:12", "gpu-a:21"]
    assert list(view.present["State"]) == ["live", "live", "vanished"]
    assert list(view.stopped["Worker"]) == ["old:31"]
    assert view.present["Run"].tolist() == ["#7", "", "#9"]


def test_a_worker_names_who_started_it(monkeypatch):
    from seqcopy.runs.worker import worker_origin

    for name in ("SEQCOPY_WORKER_ORIGIN", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    assert worker_origin() is None
    monkeypatch.setenv("SLURM_JOB_ID", "88")
    assert worker_origin() == "slurm job 88"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "80")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "8")
    assert worker_origin() == "slurm job 80_8"
    monkeypatch.setenv("SEQCOPY_WORKER_ORIGIN", "systemd on box3")
    assert worker_origin() == "systemd on box3"


# ---------------------------------------------------------------------------- the store
def test_a_worker_registers_beats_and_says_it_stopped(db_url, one_thread):
    store = Store(db_url)
    run_id = store.submit(TINY)
    seen = []
    real_beat = store.worker_beat

    def beat(worker_id, current, done):
        seen.append(current)
        return real_beat(worker_id, current, done)

    store.worker_beat = beat
    assert Worker(store, worker_id="reg:1", lease=5, device="cpu", origin="test").run(once=True) == 1
    (info,) = store.list_workers()
    assert (info.id, info.host, info.pid, info.device, info.serves, info.threads, info.origin) == (
        "reg:1", "reg", 1, "cpu", "cpu", 1, "test")
    assert info.state() == "stopped" and info.runs_done == 1 and info.run_id is None
    assert run_id in seen  # while it trained, its row named the run
    assert store.list_workers(since=time.time() + 60) == []
    store.close()


def test_a_busy_workers_row_beats_with_its_runs_heartbeat_and_the_presence_loop_only_while_idle(db_url):
    store = Store(db_url)
    run_id = store.submit(TINY)
    store.register_worker(WorkerInfo(**{**worker("beat:1").__dict__, "heartbeat_at": 1.0, "run_id": None}))
    token = store.claim("beat:1", lease=5).claim_token
    before = time.time()
    assert store.heartbeat(run_id, "beat:1", 1, 4, token=token) is False  # one transaction beats both rows
    (info,) = store.list_workers()
    assert info.heartbeat_at >= before and info.run_id == run_id
    store.request_cancel(run_id)
    assert store.heartbeat(run_id, "beat:1", token=token) is True
    present = Worker(store, worker_id="beat:1", lease=5, device="cpu")
    beats = []
    store.worker_beat = lambda *args: beats.append(args) or True
    present.current_run = run_id
    present._beat_while_idle()
    assert beats == []  # busy: no second write transaction
    present.current_run = None
    present._beat_while_idle()
    assert beats == [("beat:1", None, 0)]
    store.close()


def test_a_killed_worker_shows_as_vanished_with_its_run_and_the_run_is_taken_back(pg_url):
    store = Store(pg_url)
    run_id = store.submit(SLOW)
    process = start_worker(pg_url, lease=2, idle_exit=None)
    try:
        wait_for(lambda: store.get_run(run_id).epochs_done >= 1, 60, "a first epoch")
        (live,) = [w for w in store.list_workers() if w.state() == "live"]
        assert (live.pid, live.run_id) == (process.pid, run_id)
    finally:
        process.kill()
        process.communicate()
    wait_for(lambda: store.list_workers()[0].state() == "vanished", 10, "the worker to vanish")
    (gone,) = store.list_workers()
    assert gone.run_id == run_id and gone.stopped_at is None
    wait_for(lambda: store.reclaim_expired() == [run_id], 10, "the run's lease to lapse")
    run = store.get_run(run_id)
    # Taken back after a first epoch: queued again to resume from its state, the restart counted.
    assert run.status == "queued" and "stopped responding" in run.error and run.epochs_done >= 1
    assert run.restarts == 1 and "resumes after epoch" in run.error
    store.close()


def test_a_stopped_worker_says_so(pg_url):
    store = Store(pg_url)
    code, err = finish(start_worker(pg_url, idle_exit=0.5))
    assert code == 0, err
    (info,) = store.list_workers()
    assert info.state() == "stopped" and info.threads == 1
    store.close()


# ---------------------------------------------------------------------------- the command line
def workers_command(url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqcopy", "workers", "--db", url, *extra],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)


def test_seqcopy_workers_lists_live_vanished_and_stopped(crew_store, pg_url):
    done = workers_command(pg_url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "2 live workers (2 CPU), 1 busy · 1 vanished · 1 stopped"
    body = "\n".join(lines[2:])
    assert [line.split()[:2] for line in lines[2:]] == [
        ["cpu-a:11", "live"], ["cpu-b:12", "live"], ["gpu-a:21", "vanished"], ["old:31", "stopped"]]
    assert "slurm job 77_3" in body and "ray node 10.0.0.5" in body and "#9" in body
    as_json = json.loads(workers_command(pg_url, "--json").stdout)
    assert [(row["worker"], row["state"], row["serves"]) for row in as_json] == [
        ("cpu-a:11", "live", "cpu"), ("cpu-b:12", "live", "cpu"), ("gpu-a:21", "vanished", "cuda"),
        ("old:31", "stopped", "cpu")]


def test_seqcopy_workers_leaves_out_workers_gone_for_a_day_unless_all(pg_url):
    store = Store(pg_url)
    old = worker("ancient:1", beat_ago=0, stopped=True)
    store.register_worker(old.__class__(**{**old.__dict__, "started_at": 1.0, "heartbeat_at": 2.0, "stopped_at": 2.0}))
    store.close()
    assert "no workers registered in the last 24 hours" in workers_command(pg_url).stdout
    assert [row["worker"] for row in json.loads(workers_command(pg_url, "--json", "--all").stdout)] == ["ancient:1"]


# ---------------------------------------------------------------------------- the Launch page
def test_the_launch_page_lists_workers_and_says_why_a_gpu_run_waits(crew_store, pg_url, monkeypatch):
    monkeypatch.setenv("SEQCOPY_DB", pg_url)
    monkeypatch.setenv("SEQCOPY_WORKER", "external")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = texts(at.markdown).replace("\\", "")  # the page escapes markdown punctuation
    assert "**Workers** · 2 live workers (2 CPU), 1 busy · 1 vanished · 1 stopped" in shown
    present = at.dataframe[0].value
    assert list(zip(present["Worker"], present["State"], strict=True)) == [
        ("cpu-a:11", "live"), ("cpu-b:12", "live"), ("gpu-a:21", "vanished")]
    assert list(at.dataframe[1].value["Worker"]) == ["old:31"]
    captions = texts(at.caption).replace("\\", "")
    assert "waiting for a CUDA worker (the 2 live ones serve cpu)" in captions
    assert "next in line for a free worker" in captions


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed at /usr/bin/chromium")
def test_the_launch_page_in_a_browser_shows_the_workers(crew_store, pg_url, tmp_path):
    """A screenshot to look at (test-artifacts/launch-workers.png), and the summary and the
    waiting reason as a person sees them."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    with closing(serve(tmp_path, pg_url, with_worker=False)) as served:  # the server stops, whatever happens
        base, _, _ = next(served)
        with chromium_page() as page:
            page.goto(base)
            # The sidebar and the queue read the same heartbeats, and say the same.
            expect(page.get_by_text("2 live workers (2 CPU), 1 busy · 1 vanished · 1 stopped")).to_have_count(2)
            expect(page.get_by_text("waiting for a CUDA worker (the 2 live ones serve cpu)")).to_be_visible()
            expect(page.get_by_text("1 stopped in the last day")).to_be_visible()
            expect(page.get_by_text("no worker runs them")).to_have_count(0)  # live ones are there
            settle(page)
            page.get_by_text("waiting for a CUDA worker").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "launch-workers.png"))
