"""Grid vs TPE + ASHA on the same space: do they reach the same best, and at what CPU cost?

A quick-demo-sized task (K = N = 6, padding 3, 1,000 training sequences) and a 4 × 4 space of
hidden size and learning rate. The grid trains all 16 points for every epoch; the search asks
``--trials`` of them through TPE (seeded) and lets ASHA stop the laggards. Both run in this
process, on one in-process worker and one thread, against a fresh SQLite store each, so the CPU
time (time.process_time) is the training's plus the store's and Optuna's.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/bench_search.py [--trials 6] [--epochs 8] [--pruner asha]
        [--objective test_copy_acc|test_loss]

Prints one line per arm, the ratio of their CPU times, and, for each arm's best point, its test copy
accuracy (the objective the user cares about when the search minimises the loss).
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time

import torch

from seqcopy.config import RunConfig
from seqcopy.results import search
from seqcopy.runs import trials
from seqcopy.runs.states import TrialState
from seqcopy.runs.store import Store
from seqcopy.runs.worker import Worker

SPACE = ("hidden_size=16,32,64,128", "lr=0.001,0.003,0.01,0.03")


def base(epochs: int) -> RunConfig:
    return RunConfig(cell="lstm", seed=0, train_seq_len=6, train_output_len=6, test_seq_len=6, test_output_len=6,
                     padding=3, embedding_size=16, hidden_size=32, lr=0.003, epochs=epochs, train_samples=1000,
                     test_samples=200, tag="bench search")


def drain(store: Store) -> float:
    """CPU seconds for one worker to empty the queue and every open search."""
    started = time.process_time()
    Worker(store, worker_id="bench:1", lease=600, poll=0.01).run(idle_exit=0.2)
    return time.process_time() - started


def last_epochs(store: Store, run_ids) -> list[dict]:
    """The last epoch's metrics of each run that trained to its end (not pruned)."""
    out = []
    for run_id in run_ids:
        run = store.get_run(run_id)
        rows = store.epochs([run_id])
        if rows and run.status == "completed" and not (run.error or "").startswith("pruned"):
            out.append(rows[-1])
    return out


def best_of(rows: list[dict], objective: str) -> dict:
    """The row with the best objective: the lowest loss or the highest accuracy."""
    sign = -1 if search.default_direction(objective) == "min" else 1
    return max(rows, key=lambda row: sign * row[objective])


def run_grid(folder: str, epochs: int, objective: str) -> dict:
    store = Store(f"sqlite:///{os.path.join(folder, 'grid.db')}")
    space = search.parse_space(SPACE)
    points = [dict(zip(space, values, strict=True))
              for values in itertools.product(*(d.choices for d in space.values()))]
    configs = [base(epochs).replace(**point) for point in points]
    _, ids = store.submit_sweep(configs, "bench grid", {})
    cpu = drain(store)
    best = best_of(last_epochs(store, ids), objective)
    store.close()
    return {"arm": "grid", "runs": len(ids), "epochs": len(ids) * epochs, "cpu": cpu,
            "best": best[objective], "copy": best["test_copy_acc"]}


def run_search(folder: str, epochs: int, trial_count: int, seed: int, pruner: str, objective: str) -> dict:
    store = Store(f"sqlite:///{os.path.join(folder, 'search.db')}")
    plan = search.SearchPlan(base=base(epochs), space=search.parse_space(SPACE), trials=trial_count,
                             objective=objective, direction=search.default_direction(objective), sampler="tpe",
                             pruner=pruner, seeds=(0,), sampler_seed=seed,
                             space_texts=SPACE)
    sweep_id = search.start_search(store, plan)
    cpu = drain(store)
    rows = store.search_trials(sweep_id)
    ids = [run_id for row in rows for run_id in row.run_ids]
    epochs_run = sum(store.get_run(i).epochs_done for i in ids)
    pruned = sum(row.state == TrialState.PRUNED for row in rows)
    completed = [run_id for row in rows if row.state == TrialState.COMPLETED for run_id in row.run_ids]
    best = best_of(last_epochs(store, completed), objective)
    store.close()
    return {"arm": f"TPE+{pruner} ({trial_count} trials, {pruned} pruned)", "runs": len(ids), "epochs": epochs_run,
            "cpu": cpu, "best": best[objective], "copy": best["test_copy_acc"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--sampler-seed", type=int, default=0)
    parser.add_argument("--pruner", default="asha", choices=trials.PRUNERS, help="the search's pruner (default asha)")
    parser.add_argument("--objective", default="test_copy_acc", choices=("test_copy_acc", "test_loss"),
                        help="what the search optimises and the pruner compares (default test_copy_acc)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="seqcopy-bench-search-") as folder:
        grid = run_grid(folder, args.epochs, args.objective)
        found = run_search(folder, args.epochs, args.trials, args.sampler_seed, args.pruner, args.objective)
    print(f"space {' × '.join(SPACE)}, lstm K=N=6, {args.epochs} epochs, 1 thread, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    for arm in (grid, found):
        print(f"{arm['arm']:34} {arm['runs']:2d} runs {arm['epochs']:3d} epochs  CPU {arm['cpu']:7.1f} s  "
              f"best {args.objective} {arm['best']:.4f} (its test copy acc {arm['copy']:.4f})")
    same = found["copy"] >= grid["copy"] - 0.005
    print(f"CPU ratio search/grid {found['cpu'] / grid['cpu']:.2f}; "
          f"{'reached' if same else 'did not reach'} the grid's best copy accuracy (within 0.005)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
