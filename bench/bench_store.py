"""How much of a worker's time goes to the database: a benchmark, not a test.

For SQLite (a temporary file) and PostgreSQL (a fresh database on 127.0.0.1:5432, dropped after),
with 1 and with 3 worker processes, each worker (``Worker.run``, as ``seqcopy worker`` runs it)
trains one run of the default config (the original assignment's: RNN, embedding 11, hidden 128, K=100, P=10,
N=50, 10,000 training sequences; about 5 s an epoch on one core) and exits when the queue is empty. Inside each worker
every Store call it makes — claim, reclaim_expired, heartbeat, record_epoch, finish, and its row in
the workers table (register_worker, worker_beat) — is timed, and counted on the training thread
(which waits for it) or beside it (the run's heartbeat thread, the worker's presence thread). The
shares printed are those times, for calls made between the first claim and the last finish, over
that wall time; the target is under 2 %.

    OMP_NUM_THREADS=1 python bench/bench_store.py [--epochs 3] [--samples 10000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TIMED = ("claim", "reclaim_expired", "heartbeat", "record_epoch", "finish", "register_worker", "worker_beat")


# ---------------------------------------------------------------------------- the worker side
def child(url: str, lease: float) -> None:
    """Run one instrumented worker until the queue is empty; print its timings as JSON."""
    import threading

    from seqcopy.runs import store as store_module
    from seqcopy.runs import worker as worker_module

    calls: list[tuple[str, float, float, bool]] = []  # (name, start, seconds, on the training thread)
    lock = threading.Lock()
    training_thread = threading.main_thread()

    def timed(name, original):
        def wrapper(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                with lock:
                    calls.append((name, started, elapsed, threading.current_thread() is training_thread))

        return wrapper

    for name in TIMED:
        setattr(store_module.Store, name, timed(name, getattr(store_module.Store, name)))

    store = store_module.Store(url)
    worker = worker_module.Worker(store, lease=lease, poll=0.2)
    window: list[float] = []  # from the start of the first run_one that trained to the end of the last
    run_one = worker.run_one

    def timed_run_one():
        started = time.perf_counter()
        status = run_one()
        if status is not None:
            window[:] = [window[0] if window else started, time.perf_counter()]
        return status

    worker.run_one = timed_run_one
    worker.run(idle_exit=0)  # the presence thread too; stops once the queue is seen empty
    first, last = window or (0.0, 0.0)
    inside = [(name, seconds, training) for name, start, seconds, training in calls if first <= start <= last]
    print(json.dumps({"worker": worker.worker_id, "busy": last - first, "calls": inside}))


# ---------------------------------------------------------------------------- the driver
def postgres_database():
    """(url, drop) for a fresh PostgreSQL database, or None when no server answers."""
    import psycopg

    for user in ("postgres", "root"):
        try:
            admin = psycopg.connect(host="127.0.0.1", port=5432, dbname="test", user=user, autocommit=True,
                                    connect_timeout=3)
            break
        except psycopg.OperationalError:
            continue
    else:
        return None
    name = f"seqcopy_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop():
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"postgresql://{user}@127.0.0.1:5432/{name}", drop


def measure(url: str, workers: int, config, lease: float) -> dict:
    from seqcopy.runs.store import Store

    store = Store(url)
    store.submit_many([config.replace(seed=seed) for seed in range(workers)])
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    processes = [
        subprocess.Popen([sys.executable, __file__, "--child", url, "--lease", str(lease)],
                         env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    reports = []
    for process in processes:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"a benchmark worker failed with status {process.returncode}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    runs = store.list_runs()
    assert all(run.status == "completed" for run in runs), [(run.id, run.status, run.error) for run in runs]
    epoch_seconds = [row["seconds"] for row in store.epochs([run.id for run in runs])]
    store.close()

    every = [call for report in reports for call in report["calls"]]
    merged = {name: [seconds for called, seconds, _ in every if called == name] for name in TIMED}
    busy = sum(report["busy"] for report in reports)
    blocking = sum(seconds for _, seconds, training in every if training)
    beats = [seconds for _, seconds, training in every if not training]  # the run's heartbeat, the presence loop's
    return {
        "workers": workers,
        "epochs": len(merged["record_epoch"]),
        "epoch_s": sum(epoch_seconds) / max(len(epoch_seconds), 1),
        "record_ms": 1000 * sum(merged["record_epoch"]) / max(len(merged["record_epoch"]), 1),
        "record_max_ms": 1000 * max(merged["record_epoch"], default=0),
        "beat_ms": 1000 * sum(beats) / max(len(beats), 1),
        "beats": len(beats),
        # claim, reclaim, finish and the worker's row: the training thread's calls besides the epochs
        "once_ms": 1000 * sum(seconds for called, seconds, training in every
                              if training and called != "record_epoch") / workers,
        "blocking_share": blocking / busy,
        "total_share": (blocking + sum(beats)) / busy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--lease", type=float, default=20.0, help="worker lease (heartbeat every lease/4, at most 5 s)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=10_000, help="training sequences per epoch")
    parser.add_argument("--workers", default="1,3")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.lease)
        return
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: run with OMP_NUM_THREADS=1 (the workers always use one thread each)", file=sys.stderr)

    from seqcopy.config import RunConfig

    config = RunConfig(epochs=args.epochs, train_samples=args.samples)
    print(f"config: {config.cell}, embedding {config.embedding_size}, hidden {config.hidden_size}, "
          f"K={config.train_seq_len} P={config.padding} N={config.train_output_len}, "
          f"{config.train_samples} train / {config.test_samples} test sequences, {config.epochs} epochs; "
          f"lease {args.lease:g} s (heartbeat every {max(0.2, min(5.0, args.lease / 4)):g} s); {os.cpu_count()} cores")
    header = (f"{'backend':10} {'workers':>7} {'epochs':>6} {'epoch s':>8} {'record_epoch ms':>16} "
              f"{'heartbeat ms':>13} {'once a run ms':>16} {'DB share (training thread)':>27} {'incl. heartbeats':>17}")
    print(header)
    print("-" * len(header))
    for backend in args.backends.split(","):
        for workers in (int(n) for n in args.workers.split(",")):
            drop = None
            if backend == "sqlite":
                folder = tempfile.mkdtemp(prefix="seqcopy-bench-")
                url = f"sqlite:///{folder}/runs.db"
            else:
                found = postgres_database()
                if found is None:
                    print(f"{backend:10} no server on 127.0.0.1:5432, skipped")
                    break
                url, drop = found
            try:
                r = measure(url, workers, config, args.lease)
            finally:
                if drop:
                    drop()
            print(f"{backend:10} {r['workers']:>7} {r['epochs']:>6} {r['epoch_s']:>8.2f} "
                  f"{r['record_ms']:>9.2f} (max {r['record_max_ms']:>4.0f}) {r['beat_ms']:>7.2f} ×{r['beats']:<4} "
                  f"{r['once_ms']:>16.1f} {100 * r['blocking_share']:>26.3f}% {100 * r['total_share']:>16.3f}%",
                  flush=True)


if __name__ == "__main__":
    main()
