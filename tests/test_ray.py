"""`seqcopy ray` on a real local Ray cluster (tests/ray_head.py, one per module) against the
real PostgreSQL server: six queued runs with two Ray workers, each run exactly once and no epoch
twice; Ctrl-C stops the workers cleanly (runs back in the queue with their state); an actor
killed mid-run leaves its run to the lease, and another actor resumes it; a SQLite URL, an
unreachable cluster or bad flags are one line and exit 2, before any cluster is touched.

Ray is installed by bin/test (requirements-ray.txt): these tests never skip.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import TINY as BASE_TINY
from test_worker import ENV, REPO, SLOW, wait_for

from seqcopy.runs.store import Store

# A local Ray cluster takes both cores: bin/test runs these alone, after the tests it runs two at a time.
pytestmark = pytest.mark.alone

# The cluster stays on the loopback address (Ray would otherwise advertise the machine's
# network address), and without token authentication, so that no token is written into ~/.ray.
RAY_ENV = ENV | {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                 "RAY_USAGE_STATS_ENABLED": "0"}
TINY = BASE_TINY.replace(train_samples=256, test_samples=32, batch_size=32, epochs=2)


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray cluster of 2 CPUs for this module; shut down by its end."""
    head = subprocess.Popen([sys.executable, str(REPO / "tests" / "ray_head.py"), "2"], cwd=REPO, env=RAY_ENV,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    address = head.stdout.readline().strip()
    if not address:
        head.kill()
        pytest.fail(f"the Ray cluster did not start: {head.stderr.read()[-2000:]}")
    yield address
    head.stdin.close()  # the helper shuts the cluster down
    try:
        head.wait(60)
    except subprocess.TimeoutExpired:
        head.terminate()
        head.wait(30)


def seqcopy_ray(address: str, url: str, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "seqcopy", "ray", "--address", address, "--db", url, *extra]
    return subprocess.Popen(command, cwd=REPO, env=RAY_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def outcome(process: subprocess.Popen, timeout: float = 180) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        raise AssertionError(f"seqcopy ray did not end:\n{out}\n{err[-3000:]}") from None
    return process.returncode, out, err


def one_line_error(*args: str, env: dict | None = None) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "seqcopy", "ray", *args], cwd=REPO, env=env or RAY_ENV,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stderr, time.monotonic() - started


@pytest.fixture
def store(pg_url):
    store = Store(pg_url)
    yield store
    store.close()


# ---------------------------------------------------------------------------- on the cluster
def test_two_ray_workers_run_six_queued_runs_each_exactly_once(ray_address, store, pg_url):
    ids = store.submit_many([TINY.replace(seed=seed) for seed in range(6)])
    with_password = pg_url.replace("@", ":s3cret-ray@", 1)  # the server trusts us; the password only has to stay hidden
    code, out, err = outcome(seqcopy_ray(ray_address, with_password, "--workers", "2", "--idle-exit", "2",
                                         "--lease", "5"))
    assert code == 0, out + err
    assert "s3cret-ray" not in out + err and ":***@" in out
    placed = [line for line in out.splitlines() if " on " in line and "node 127.0.0.1" in line]
    assert len(placed) == 2, out  # where each worker went
    workers = store.list_workers()
    assert len(workers) == 2 and all(w.state() == "stopped" and w.origin.startswith("ray node 127.0.0.1")
                                     for w in workers)
    assert sum(w.runs_done for w in workers) == 6
    names = {w.id for w in workers}
    for run_id in ids:
        run = store.get_run(run_id)
        assert (run.status, run.worker_id in names, run.device_used) == ("completed", True, "cpu"), run
        assert [row["epoch"] for row in store.epochs([run_id])] == [1, 2]  # no epoch twice, none missing
    with store.engine.connect() as conn:
        from sqlalchemy import text

        assert conn.execute(text("SELECT max(requeues) FROM runs")).scalar() == 0  # none taken twice
    assert "stopped after" in out


def test_ctrl_c_stops_the_ray_workers_cleanly_and_their_runs_go_back_to_the_queue(ray_address, store, pg_url):
    ids = store.submit_many([SLOW.replace(seed=seed) for seed in (1, 2)])
    driver = seqcopy_ray(ray_address, pg_url, "--workers", "2", "--idle-exit", "30", "--lease", "10")
    try:
        wait_for(lambda: all(store.get_run(i).epochs_done >= 1 for i in ids), 120, "both runs under way")
    finally:
        driver.send_signal(signal.SIGINT)
    code, out, err = outcome(driver, timeout=90)
    assert code == 0, out + err
    assert "stopping the workers" in out
    for run_id in ids:
        run = store.get_run(run_id)
        # Preempted, not cancelled: queued with its resume state, for the next worker to go on.
        assert run.status == "queued" and run.error == f"preempted at epoch {run.epochs_done}; resumes", run
        assert [row["epoch"] for row in store.epochs([run_id])] == list(range(1, run.epochs_done + 1))
        assert store.resume_state(run_id)[0] == run.epochs_done
    assert [w.state() for w in store.list_workers()] == ["stopped", "stopped"]


def test_a_ray_worker_killed_mid_run_leaves_its_run_resumed_by_another_actor(ray_address, store, pg_url):
    run_id = store.submit(SLOW.replace(epochs=8))
    driver = seqcopy_ray(ray_address, pg_url, "--workers", "2", "--idle-exit", "8", "--lease", "2")
    try:
        wait_for(lambda: store.get_run(run_id).epochs_done >= 1, 120, "a first epoch")
        holder = store.get_run(run_id).worker_id
        (actor,) = [w for w in store.list_workers() if w.id == holder]
        os.kill(actor.pid, signal.SIGKILL)  # as the cluster would: a lost node, an OOM kill
        code, out, err = outcome(driver, timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert code == 1 and re.search(r"worker \d \(\S+\): lost \(\w+Error: ", out), out + err
    run = store.get_run(run_id)
    assert run.status == "completed" and run.restarts == 1 and run.worker_id != holder, run
    assert [row["epoch"] for row in store.epochs([run_id])] == list(range(1, 9))  # each once


def test_a_gpu_worker_is_not_placed_on_a_cpu_only_cluster_and_ctrl_c_gives_it_up(ray_address, store, pg_url):
    """Ray puts a worker that asks for a GPU only on a node that has one: on this CPU-only
    cluster it waits, the cuda run stays queued, and Ctrl-C gives the unplaced worker up."""
    run_id = store.submit(TINY.replace(device="cuda"))
    driver = seqcopy_ray(ray_address, pg_url, "--workers", "1", "--gpus-per-worker", "1", "--idle-exit", "5")
    try:
        first = driver.stdout.readline()
        assert "1 worker(s) asked of the cluster, 1 CPU, 1 GPU each, serving cuda runs of postgresql" in first, first
        time.sleep(2)
    finally:
        driver.send_signal(signal.SIGINT)
    code, out, err = outcome(driver, timeout=60)
    assert code == 0, out + err
    assert "worker 1: never placed, given up" in out and " placed after" not in out
    assert store.get_run(run_id).status == "queued" and store.list_workers() == []


# ---------------------------------------------------------------------------- refused at once
def test_a_sqlite_url_is_refused_in_one_line(tmp_path):
    code, err, _ = one_line_error("--address", "127.0.0.1:1", "--db", f"sqlite:///{tmp_path / 'runs.db'}")
    assert code == 2 and len(err.splitlines()) == 1
    assert "is a SQLite file" in err and "postgresql://" in err
    assert not (tmp_path / "runs.db").exists()


def test_an_unreachable_cluster_is_one_line_within_seconds(pg_url):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, err, seconds = one_line_error("--address", f"127.0.0.1:{port}", "--db", pg_url)
    assert code == 2 and err.splitlines() == [err.strip()], err
    assert err.startswith(f"seqcopy: error: no Ray cluster answers at 127.0.0.1:{port}")
    assert seconds < 30


@pytest.mark.parametrize("flags, message", [
    (["--workers", "0"], "--workers: from 1 to"),
    (["--cpus-per-worker", "0"], "--cpus-per-worker"),
    (["--device", "cuda"], "give --gpus-per-worker"),
    (["--lease", "0.1"], "--lease: at least 1"),
    (["--address", "nowhere"], "expected HOST:PORT"),
])
def test_bad_flags_are_one_line(pg_url, flags, message):
    code, err, _ = one_line_error("--address", "127.0.0.1:1", "--db", pg_url, *flags)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_without_ray_installed_the_command_says_how_to_get_it(pg_url):
    script = ("import sys; sys.modules['ray'] = None; from seqcopy.cli import main; "
              f"sys.exit(main(['ray', '--db', {pg_url!r}]))")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=RAY_ENV, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "pip install 'seqcopy[ray]'" in done.stderr


@pytest.mark.parametrize("flags, message", [
    (["--workers", "0"], "--workers: from 1 to"),
    (["--db", "sqlite:///nowhere.db"], "is a SQLite file"),
])
@pytest.mark.parametrize("ray_there", [True, False])
def test_bad_flags_are_refused_before_ray_is_imported(pg_url, flags, message, ray_there):
    """Bad flags need no Ray: they are named as they are (not "Ray is not installed" on a machine
    without it), and cost no import of Ray."""
    block = "" if ray_there else "sys.modules['ray'] = None; "
    script = (f"import sys; {block}from seqcopy.cli import main; "
              f"code = main(['ray', '--db', {pg_url!r}, *{flags!r}]); print(code, sys.modules.get('ray') is not None)")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=RAY_ENV, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr
    assert message in done.stderr and "not installed" not in done.stderr


def test_ctrl_c_while_connecting_starts_no_worker(monkeypatch):
    from seqcopy.runs import ray_workers
    from seqcopy.runs.ray_plan import RayPlan

    plan = RayPlan(address="auto", url="postgresql://u@h/db", shown_url="postgresql://u@h/db", workers=2,
                   cpus_per_worker=1.0, gpus_per_worker=0.0, device="cpu", lease=10.0, idle_exit=1.0)
    monkeypatch.setattr(ray_workers, "connect", lambda address: os.kill(os.getpid(), signal.SIGINT))
    monkeypatch.setattr(ray_workers.ray, "shutdown", lambda: None)
    monkeypatch.setattr(ray_workers, "Supervisor", lambda *args: pytest.fail("a worker was started after Ctrl-C"))
    out, before = io.StringIO(), signal.getsignal(signal.SIGINT)
    assert ray_workers.launch(plan, out) == 0
    assert "stopped before any worker started" in out.getvalue()
    assert signal.getsignal(signal.SIGINT) is before  # the handler before is back


def test_ctrl_c_kills_only_the_workers_not_placed_yet_and_stops_a_placed_one_whose_answer_was_unread(monkeypatch):
    """A worker whose placement answer has arrived, but which the driver has not read yet, may
    already hold a run: Ctrl-C stops it like a placed one (its run ends cancelled), never kills it."""
    from unittest import mock

    from seqcopy.runs import ray_workers

    where = {"worker_id": "n1:7", "host": "n1", "node_ip": "10.0.0.1", "node_id": "abcdef123456", "gpus": [],
             "serves": ["cpu"]}
    fake = mock.Mock()
    fake.wait.side_effect = lambda refs, num_returns, timeout: ([r for r in refs if r == "answered"],
                                                                [r for r in refs if r != "answered"])
    fake.get.return_value = where
    monkeypatch.setattr(ray_workers, "ray", fake)
    placed, waiting = mock.Mock(), mock.Mock()
    supervisor = ray_workers.Supervisor.__new__(ray_workers.Supervisor)
    supervisor.__dict__.update(
        out=io.StringIO(), started=time.monotonic(), actors=[placed, waiting], placing={"answered": 1, "unanswered": 2},
        running={"run-1": 1, "run-2": 2}, names={1: "worker 1", 2: "worker 2"}, never_placed=set(), lost=0,
        resources="1 CPU")
    supervisor._stop(first=True, times=1)
    fake.kill.assert_called_once_with(waiting)
    placed.stop.remote.assert_called_once()
    waiting.stop.remote.assert_not_called()
    assert supervisor.never_placed == {2} and "worker 1 (n1:7): on n1" in supervisor.out.getvalue()


def test_a_lost_worker_is_reported_by_the_cause_at_the_end_of_rays_traceback():
    from seqcopy.runs.ray_workers import _reason

    class ActorDiedError(Exception):
        pass

    died = ActorDiedError("The actor died because of an error raised in its creation task, "
                          "ray::WorkerActor.__init__()\n"
                          "    ^^^^\nRuntimeError: The actor with name WorkerActor failed to import on the worker. "
                          "This\n"
                          "ModuleNotFoundError: No module named 'seqcopy'\n")
    assert _reason(died) == "ActorDiedError: ModuleNotFoundError: No module named 'seqcopy'"
    assert _reason(ActorDiedError("The actor died unexpectedly.\n\tclass_name: WorkerActor")) == (
        "ActorDiedError: The actor died unexpectedly.")


def test_only_the_ray_command_imports_ray():
    script = ("import sys, seqcopy.cli, seqcopy.runs.worker, seqcopy.runs.store, seqcopy.runs.capacity, "
              "seqcopy.ui.workers; print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=RAY_ENV, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "False", done.stderr
