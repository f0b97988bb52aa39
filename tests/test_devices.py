"""Device-aware claiming, on SQLite and the real PostgreSQL server: a worker claims only the runs
whose device it serves, an 'auto' run records the device it ran on, a run no worker serves stays
queued, and rows written before schema version 4 (no device column) are served by what their
config says."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import TINY as BASE_TINY
from sqlalchemy import create_engine, insert, text, update
from test_worker import ENV, REPO, finish, start_worker

from seqcopy import devices
from seqcopy.runs.store import Store, runs_t
from seqcopy.runs.worker import Worker

TINY = BASE_TINY.replace(epochs=2)


@pytest.fixture
def store(db_url):
    store = Store(db_url)
    yield store
    store.close()


@pytest.fixture
def fake_cuda(monkeypatch):
    """This machine as one with a CUDA device (none is here): device_problem says it is present."""
    monkeypatch.setattr(devices, "device_problem", lambda device: "absent" if device == "mps" else None)


# ---------------------------------------------------------------------------- what a worker serves
def test_a_worker_serves_what_the_machine_has_and_auto_runs_go_to_the_best():
    assert devices.serving("auto") == ("cpu", ("cpu",))  # this machine: no GPU
    assert devices.serving("cpu") == ("cpu", ("cpu",))
    with pytest.raises(devices.DeviceUnavailable, match="no CUDA device"):
        devices.serving("cuda")


def test_on_a_cuda_machine_auto_serves_cuda_and_cpu_and_cpu_or_cuda_only_themselves(fake_cuda):
    assert devices.serving("auto") == ("cuda", ("cuda", "cpu"))
    assert devices.serving("cuda") == ("cuda", ("cuda",))
    assert devices.serving("cpu") == ("cpu", ("cpu",))
    assert devices.can_serve("auto", ("cpu",)) and not devices.can_serve("cuda", ("cpu",))


# ---------------------------------------------------------------------------- the claim
def test_a_cpu_worker_never_claims_a_cuda_run_and_a_cuda_worker_takes_it(store):
    cuda, cpu, auto, mps = store.submit_many([TINY.replace(device=d) for d in ("cuda", "cpu", "auto", "mps")])
    first = store.claim("cpu:1", serves=("cpu",), device="cpu")
    second = store.claim("cpu:1", serves=("cpu",), device="cpu")
    assert (first.id, first.device_used) == (cpu, "cpu")  # the oldest it can serve, past the cuda run
    assert (second.id, second.device_used) == (auto, "cpu")  # an auto run trains on the worker's device
    assert store.claim("cpu:1", serves=("cpu",), device="cpu") is None
    assert [store.get_run(i).status for i in (cuda, mps)] == ["queued", "queued"]
    taken = store.claim("gpu:1", serves=("cuda",), device="cuda")
    assert (taken.id, taken.device_used, taken.worker_id) == (cuda, "cuda", "gpu:1")
    assert store.claim("gpu:1", serves=("cuda",), device="cuda") is None  # the mps run waits for an mps worker
    assert store.get_run(mps).status == "queued"


def test_an_auto_run_on_a_cuda_worker_records_cuda(store, fake_cuda):
    run_id = store.submit(TINY.replace(device="auto"))
    device, serves = devices.serving("auto")
    assert store.claim("gpu:2", serves=serves, device=device).device_used == "cuda"
    assert store.get_run(run_id).device_used == "cuda"


def test_a_claim_without_devices_takes_any_run_as_before(store):
    run_id = store.submit(TINY.replace(device="cuda"))
    assert store.claim("any:1").id == run_id


def test_rows_without_a_device_column_are_served_by_their_config(store):
    """A run queued by an older seqcopy (device NULL): a worker that cannot serve its config's
    device skips it and fills the column in; one that can takes it."""
    cuda, cpu = store.submit_many([TINY.replace(device="cuda"), TINY.replace(device="cpu")])
    with store.engine.begin() as conn:
        conn.execute(update(runs_t).values(device=None))
    assert store.claim("cpu:2", serves=("cpu",), device="cpu").id == cpu
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT device FROM runs ORDER BY id")).scalars().all() == ["cuda", "cpu"]
    assert store.claim("cpu:2", serves=("cpu",), device="cpu") is None
    assert store.claim("gpu:3", serves=("cuda",), device="cuda").id == cuda


def test_a_v1_store_upgraded_keeps_its_queued_gpu_run_away_from_cpu_workers(db_url):
    """A genuine pre-v4 store (tests/schema_v1.py) with a queued cuda run and a queued cpu run:
    after the in-place upgrade a CPU worker takes the cpu run only."""
    import schema_v1

    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    tables = schema_v1.metadata.tables
    with engine.begin() as conn:
        schema_v1.metadata.create_all(conn)
        conn.execute(insert(tables["meta"]).values(key="schema_version", value="1"))
        for device in ("cuda", "cpu"):
            conn.execute(insert(tables["runs"]).values(
                cell="lstm", seed=0, tag="", created_at=1.0, lease_seconds=120.0, cancel_requested=False,
                epochs_total=2, batch_done=0, batch_total=4, status="queued", epochs_done=0,
                config=json.dumps(TINY.replace(device=device).to_dict())))
    engine.dispose()
    store = Store(db_url)
    try:
        assert store.claim("cpu:3", serves=("cpu",), device="cpu").id == 2
        assert store.claim("cpu:3", serves=("cpu",), device="cpu") is None
        assert store.get_run(1).status == "queued"
        assert store.list_workers() == []  # the workers table is there, empty
    finally:
        store.close()


# ---------------------------------------------------------------------------- the worker
def test_the_worker_trains_an_auto_run_on_its_device_and_records_it(store, one_thread, monkeypatch):
    import seqcopy.runs.worker as worker_module

    seen = []
    real_train = worker_module.train

    def train(config, **callbacks):
        seen.append(config.device)
        return real_train(config, **callbacks)

    monkeypatch.setattr(worker_module, "train", train)
    run_id = store.submit(TINY.replace(device="auto"))
    assert Worker(store, worker_id="dev:1", lease=5, device="cpu").run(once=True) == 1
    run = store.get_run(run_id)
    assert (run.status, run.device_used, seen) == ("completed", "cpu", ["cpu"])
    assert run.config.device == "auto"  # what was asked stays as it was


def test_a_real_cpu_worker_runs_the_cpu_run_and_leaves_the_cuda_run_queued(pg_url):
    store = Store(pg_url)
    cuda, cpu = store.submit_many([TINY.replace(device="cuda"), TINY.replace(device="cpu")])
    code, err = finish(start_worker(pg_url, "--device", "cpu", idle_exit=1))
    assert code == 0, err
    assert (store.get_run(cpu).status, store.get_run(cuda).status) == ("completed", "queued")
    assert "serving cpu runs" in err
    store.close()


def test_worker_device_cuda_on_a_machine_without_one_is_one_line(sqlite_url):
    done = subprocess.run([sys.executable, "-m", "seqcopy", "worker", "--device", "cuda", "--db", sqlite_url],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "seqcopy: error: --device: no CUDA device is available on this machine"
