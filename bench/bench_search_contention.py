"""Three workers on one search whose Optuna study shares the runs' SQLite file: any write trouble?

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/bench_search_contention.py

Counts the lines in which a worker reports a busy, locked or unavailable database (each retry of
an Optuna call prints one, seqcopy.runs.trials._retry; each failed ask or tell prints one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seqcopy.config import RunConfig
from seqcopy.results import search
from seqcopy.runs.store import Store

REPO = Path(__file__).resolve().parents[1]
TINY = RunConfig(hidden_size=8, embedding_size=4, train_seq_len=4, train_output_len=4, test_seq_len=8,
                 test_output_len=4, train_samples=64, test_samples=16, batch_size=16, epochs=4)
TROUBLE = ("busy", "could not", "locked", "unavailable")


def main() -> int:
    folder = tempfile.mkdtemp(prefix="seqcopy-bench-contention-")
    url = f"sqlite:///{folder}/runs.db"
    store = Store(url)
    plan = search.SearchPlan(base=TINY, space=search.parse_space(["hidden_size=int(4,16)", "lr=log(1e-3,1e-1)"]),
                             trials=12, objective="test_copy_acc", sampler="tpe", pruner="median", seeds=(0, 1),
                             sampler_seed=0)
    sweep_id = search.start_search(store, plan)
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    started = time.time()
    workers = [subprocess.Popen([sys.executable, "-m", "seqcopy", "worker", "--db", url, "--idle-exit", "3",
                                 "--lease", "10"], env=env, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [worker.communicate()[1] for worker in workers]
    wall = time.time() - started
    trouble = [line for text in errors for line in text.splitlines()
               if line.startswith("worker") and any(word in line for word in TROUBLE) or "optuna storage busy" in line]
    runs = store.list_runs(sweep_id=sweep_id)
    print(f"3 workers, {plan.trials} trials × 2 seeds, {TINY.epochs} epochs, one SQLite file: "
          f"{len(store.search_trials(sweep_id))} trials, {len(runs)} runs, {sum(r.epochs_done for r in runs)} "
          f"epochs in {wall:.1f} s; lines reporting database trouble: {len(trouble)}")
    for line in trouble[:10]:
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
