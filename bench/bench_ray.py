"""Plain workers against Ray workers: a benchmark, not a test.

Twelve tiny queued runs (LSTM, hidden 8, K=N=4, 300 training sequences, 2 epochs) in a fresh
PostgreSQL database on 127.0.0.1:5432, trained by two workers, each with one thread:

- plain: two ``python -m seqcopy worker --idle-exit 1`` processes started together;
- ray:   ``python -m seqcopy ray --workers 2 --idle-exit 1`` on a local two-CPU Ray cluster
         that is already up (its own start is printed apart: a real cluster is up beforehand).

Printed per round: the wall time from starting the workers to the last run finished (the store's
finished_at), and when each worker was ready (its started_at in the workers table, which a worker
writes once it has imported torch and opened the store, just before its first claim). Ray's
start-up cost per worker is the mean ready time of the Ray workers minus that of the plain ones.
Rounds alternate plain and Ray, so a neighbour's load falls on both.

    OMP_NUM_THREADS=1 python bench/bench_ray.py [--rounds 3] [--runs 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_store import postgres_database  # noqa: E402 - after the sys.path inserts above

ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
                    # a local cluster on the loopback address, no token written to ~/.ray (as tests/test_ray.py)
                    "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                    "RAY_USAGE_STATS_ENABLED": "0"}


def tiny_configs(count: int):
    from seqcopy.config import RunConfig

    base = RunConfig(cell="lstm", hidden_size=8, embedding_size=4, train_seq_len=4, train_output_len=4,
                     test_seq_len=8, test_output_len=4, train_samples=300, test_samples=32, batch_size=32, epochs=2)
    return [base.replace(seed=seed) for seed in range(count)]


def start_cluster() -> tuple[subprocess.Popen, str, float]:
    started = time.monotonic()
    head = subprocess.Popen([sys.executable, str(REPO / "tests" / "ray_head.py"), "2"], cwd=REPO, env=ENV,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    address = head.stdout.readline().strip()
    if not address:
        raise SystemExit("the local Ray cluster did not start")
    return head, address, time.monotonic() - started


def one_round(mode: str, url: str, address: str, runs: int) -> dict:
    from seqcopy.runs.store import Store

    store = Store(url)
    ids = store.submit_many(tiny_configs(runs))
    t0 = time.time()
    if mode == "plain":
        command = [sys.executable, "-m", "seqcopy", "worker", "--db", url, "--idle-exit", "1", "--lease", "20"]
        processes = [subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                     for _ in range(2)]
    else:
        command = [sys.executable, "-m", "seqcopy", "ray", "--address", address, "--db", url, "--workers", "2",
                   "--idle-exit", "1", "--lease", "20"]
        processes = [subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)]
    for process in processes:
        _, err = process.communicate(timeout=600)
        if process.returncode != 0:
            raise SystemExit(f"{mode} workers failed: {err.decode()[-2000:]}")
    finished = [store.get_run(i) for i in ids]
    if any(run.status != "completed" for run in finished):
        raise SystemExit(f"{mode}: not every run completed")
    workers = [w for w in store.list_workers() if w.started_at >= t0]
    result = {
        "wall": max(run.finished_at for run in finished) - t0,
        "ready": sorted(w.started_at - t0 for w in workers),
        "per_worker": sorted(w.runs_done for w in workers),
    }
    # The next round starts on an empty store: these runs and workers are done with.
    for run_id in ids:
        store.delete_run(run_id)
    with store.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("DELETE FROM workers"))
    store.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=12)
    args = parser.parse_args()
    found = postgres_database()
    if found is None:
        raise SystemExit("no PostgreSQL server answers on 127.0.0.1:5432")
    url, drop = found
    head, address, cluster_start = start_cluster()
    results: dict[str, list[dict]] = {"plain": [], "ray": []}
    try:
        print(f"{args.runs} tiny runs (lstm, hidden 8, K=N=4, 300 sequences, 2 epochs), PostgreSQL, "
              f"2 workers of 1 thread, {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; "
              f"local Ray cluster up in {cluster_start:.1f} s (not counted below)", flush=True)
        for number in range(1, args.rounds + 1):
            for mode in ("plain", "ray"):
                found = one_round(mode, url, address, args.runs)
                results[mode].append(found)
                ready = ", ".join(f"{t:.1f}" for t in found["ready"])
                print(f"round {number} {mode:5}: {found['wall']:5.1f} s to the last run finished; workers ready after "
                      f"{ready} s; runs per worker {found['per_worker']}; load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        head.stdin.close()
        head.wait(60)
        drop()
    wall = {mode: statistics.median(r["wall"] for r in rounds) for mode, rounds in results.items()}
    ready = {mode: statistics.median(statistics.mean(r["ready"]) for r in rounds) for mode, rounds in results.items()}
    print(f"median over {args.rounds} rounds: plain {wall['plain']:.1f} s, ray {wall['ray']:.1f} s "
          f"(ray / plain = {wall['ray'] / wall['plain']:.2f}); a worker ready after {ready['plain']:.1f} s plain, "
          f"{ready['ray']:.1f} s on Ray: Ray's start-up cost {ready['ray'] - ready['plain']:+.1f} s per worker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
