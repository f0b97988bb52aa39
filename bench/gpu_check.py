"""The GPU readiness check behind bench/gpu_check.sh: on one device, every cell and form trains;
one run is stopped and resumed from its state; and the original final configuration's epoch is
timed for each cell, here and on the CPU, as a table.

    python bench/gpu_check.py --device cuda            # on a CUDA machine (what gpu_check.sh runs)
    python bench/gpu_check.py --device cpu --quick     # the dry run: the same steps, small, on the CPU

Each step prints one line and a verdict; the exit status is 1 if any step failed. Epoch times are
estimated from a few batches (the training throughput times the training-set size, plus the test
pass of the same few sequences scaled), so the whole check stays within minutes.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from seqcopy.config import CELL_NAMES, MULT_CELLS, MULT_FORMS, RunConfig
from seqcopy.core.train import Stopped, train
from seqcopy.presets import BY_SLUG

SMALL = RunConfig(hidden_size=32, embedding_size=8, train_seq_len=8, train_output_len=8, test_seq_len=12,
                  test_output_len=8, padding=3, train_samples=256, test_samples=64, batch_size=32, epochs=2, lr=0.01)
TIMED_BATCHES = 4


def cells_and_forms() -> list[tuple[str, str]]:
    """(cell, form) of every model seqcopy trains: each multiplicative cell in both forms."""
    return [(cell, form) for cell in CELL_NAMES for form in (MULT_FORMS if cell in MULT_CELLS else MULT_FORMS[:1])]


def check_training(device: str) -> bool:
    """Every cell and form trains two small epochs on ``device`` with finite losses."""
    ok = True
    for cell, form in cells_and_forms():
        started = time.perf_counter()
        result = train(SMALL.replace(cell=cell, mult_form=form, device=device))
        finite = all(math.isfinite(e.train_loss) and math.isfinite(e.test_loss) for e in result.epochs)
        ok &= finite and len(result.epochs) == 2
        print(f"  train {cell:5} {form:6} on {device}: test copy acc {result.epochs[-1].test_copy_acc:.3f}, "
              f"{time.perf_counter() - started:.1f} s {'ok' if finite else 'NOT FINITE'}", flush=True)
    return ok


def check_resume(device: str) -> bool:
    """A run stopped after epoch 1 and resumed from its state matches the run left alone: bit for bit
    on the CPU; on a GPU to within the kernels' run-to-run rounding (reported)."""
    config = SMALL.replace(cell="lstm", epochs=3, curriculum=True, curriculum_start=2, fresh_data=True,
                           lr_schedule="cosine", device=device)
    alone = train(config)
    states = {}

    def grab(result, state, final):
        states[result.epoch] = state()
        raise Stopped

    train(config, on_epoch_state=grab)
    resumed = train(config, resume=states[1])
    gap = max(abs(a.test_loss - b.test_loss) for a, b in zip(alone.epochs, resumed.epochs, strict=True))
    weights = max((a - b).abs().max().item() for a, b in
                  zip(alone.model.state_dict().values(), resumed.model.state_dict().values(), strict=True))
    exact = gap == 0 and weights == 0
    ok = exact if device == "cpu" else gap < 1e-3
    print(f"  resume after epoch 1 on {device}: largest test-loss difference {gap:.2e}, weights {weights:.2e} "
          f"({'bit for bit' if exact else 'to rounding'}) {'ok' if ok else 'MISMATCH'}", flush=True)
    return ok


def epoch_seconds(cell: str, device: str, quick: bool) -> float:
    """Estimated seconds of one epoch of the original final configuration for ``cell`` on ``device``."""
    final = BY_SLUG["original-final"].config.replace(cell=cell, device=device)
    if quick:  # the dry run: a tenth of the lengths
        final = final.replace(train_seq_len=10, train_output_len=10, test_seq_len=50, test_output_len=20)
    short = final.replace(train_samples=final.batch_size * TIMED_BATCHES, test_samples=final.batch_size, epochs=1)
    train(short.replace(train_samples=final.batch_size, epochs=1))  # warm-up: kernels, caches, the allocator
    result = train(short)
    epoch = result.epochs[0]
    train_s = final.train_samples / epoch.samples_per_sec
    test_s = max(epoch.seconds - short.train_samples / epoch.samples_per_sec, 0.0)
    return train_s + test_s * final.test_samples / short.test_samples


def time_cells(device: str, quick: bool) -> bool:
    """The CPU-against-device table of the original final configuration's epoch."""
    print(f"\n| cell | CPU epoch (est.) | {device} epoch (est.) | speed-up |\n|---|---|---|---|")
    for cell in CELL_NAMES:
        cpu = epoch_seconds(cell, "cpu", quick)
        here = cpu if device == "cpu" else epoch_seconds(cell, device, quick)
        print(f"| {cell} | {cpu:.1f} s | {here:.1f} s | {cpu / here:.1f}× |", flush=True)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu", "mps"))
    parser.add_argument("--quick", action="store_true", help="short lengths for the timing (the dry run)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (use --cpu-only for the dry run)", file=sys.stderr)
        return 2
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else ""), flush=True)
    steps = [("every cell and form trains", lambda: check_training(args.device)),
             ("a run resumes from its state", lambda: check_resume(args.device)),
             ("the original final configuration's epoch, per cell", lambda: time_cells(args.device, args.quick))]
    failed = []
    for name, step in steps:
        print(f"\n== {name}", flush=True)
        try:
            if not step():
                failed.append(name)
        except Exception as error:  # noqa: BLE001 - report every step, then the verdict
            print(f"  FAILED: {type(error).__name__}: {error}", flush=True)
            failed.append(name)
    print("\n" + ("gpu_check: all steps passed" if not failed else f"gpu_check: FAILED: {'; '.join(failed)}"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
