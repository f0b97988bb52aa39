"""What the per-epoch memory probe costs (seqcopy.core.diagnostics): milliseconds per epoch, and
the share of the epoch's own time (training and the test pass).

    python bench/bench_probe.py                          # the original assignment's sizes, 2,000 sequences
    python bench/bench_probe.py --samples 10000 --cells lstm,mgru

Each cell trains ``--epochs`` epochs of the original setting (K = 100, N = 50, P = 10, hidden 128,
batch 32, lr 0.003) with ``--samples`` training sequences; the probe is timed inside train() by wrapping
diagnostics.measure. The probe's cost does not grow with the training set, so the share is also
given for the seed's full epoch of 10,000 sequences, scaling the training part of the epoch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from seqcopy.config import RunConfig  # noqa: E402
from seqcopy.core import diagnostics, train  # noqa: E402

FULL_EPOCH = 10_000  # the seed's training sequences per epoch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="rnn,lstm,gru,mlstm,mgru")
    parser.add_argument("--samples", type=int, default=2000, help="training sequences per epoch")
    parser.add_argument("--test-samples", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    timed: list[float] = []
    measure = diagnostics.measure

    def timed_measure(*a):
        started = time.perf_counter()
        result = measure(*a)
        timed.append(time.perf_counter() - started)
        return result

    diagnostics.measure = timed_measure  # train() looks it up on the module each epoch
    print(f"probe: {diagnostics.PROBE_SIZE} sequences; {args.samples} training sequences per epoch, "
          f"{args.test_samples} test, {args.threads} thread(s)")
    for cell in args.cells.split(","):
        config = RunConfig(cell=cell, epochs=args.epochs, train_samples=args.samples, test_samples=args.test_samples,
                           hidden_size=128, seed=0, lr=0.003)  # the recipes' rate: the default 0.1 diverges mLSTM
        timed.clear()
        result = train.train(config)
        if not timed:
            print(f"{cell:6} stopped before its first epoch: {result.diverged}", flush=True)
            continue
        probe = statistics.median(timed)
        epoch = statistics.median(e.seconds for e in result.epochs)
        train_part = statistics.median(args.samples / e.samples_per_sec for e in result.epochs)
        full = epoch + train_part * (FULL_EPOCH / args.samples - 1)
        print(f"{cell:6} probe {probe * 1000:7.1f} ms/epoch | epoch {epoch:6.2f} s: {100 * probe / epoch:5.2f}% "
              f"| scaled to {FULL_EPOCH} sequences ({full:6.1f} s): {100 * probe / full:5.2f}%", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
