"""A trained model's training step with float32 denormals computed, and flushed to 0, on the CPU.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/bench_denormals.py --db URL --run ID [--batches 5]

Loads the run's final checkpoint (weights_only) and times seqcopy bench's training step
(forward, backward, clipping, Adam) on a batch of 32 sequences of its own training length,
alternately with torch.set_flush_denormal off and on
(each twice, after a warm-up batch), on one thread. A cell whose gates have saturated computes
many values below float32's normal range (under 1.2e-38), which the CPU takes far longer over;
a fresh model has few. Prints ms per batch and the ratio. seqcopy flushes them
(seqcopy.core.train.flush_denormals).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from seqcopy.core import checkpoint
from seqcopy.core.benchmark import training_step
from seqcopy.core.data import Layout, random_sequences
from seqcopy.runs.store import Store


def ms_per_batch(step, batches: int) -> float:
    step()
    started = time.perf_counter()
    for _ in range(batches):
        step()
    return (time.perf_counter() - started) / batches * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="SQLAlchemy URL of the runs store")
    parser.add_argument("--run", type=int, required=True, help="a run with a checkpoint")
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    store = Store(args.db)
    blob, run = store.checkpoint(args.run), store.get_run(args.run)
    store.close()
    if blob is None or run is None:
        raise SystemExit(f"run {args.run} has no checkpoint in {args.db}")
    model, _ = checkpoint.from_bytes(blob)
    config = run.config
    layout = Layout(config.train_seq_len, config.padding, config.train_output_len)
    inputs, targets = random_sequences(np.random.default_rng(0), 32, layout)
    step = training_step(model, inputs, targets)  # forward, loss, backward, clipping, Adam: as seqcopy bench
    figures = {False: [], True: []}
    for flush in (False, True, False, True):
        torch.set_flush_denormal(flush)
        figures[flush].append(ms_per_batch(step, args.batches))
    computed, flushed = min(figures[False]), min(figures[True])
    print(f"run {args.run} ({config.cell}, hidden {config.hidden_size}, K={config.train_seq_len} "
          f"N={config.train_output_len}), batch 32, 1 thread, load {os.getloadavg()[0]:.1f}")
    print(f"denormals computed {computed:7.1f} ms/batch")
    print(f"denormals flushed  {flushed:7.1f} ms/batch   ratio {computed / flushed:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
