"""Where a training step's time goes: torch.profiler's op table and a forward/backward split.

    python bench/profile_cells.py --setting original --threads 2 --cells mlstm/krause,mlstm/input,lstm
    python bench/profile_cells.py --products blas ...   # the loops' products through MKL instead

For each cell: the median time of the forward (model + loss), the backward and the optimiser step
(clip + Adam), measured round-robin like the benchmark, then the profiler's top ops by self CPU time
over a few steps. ``lstm``/``gru`` here are torch's own modules (the benchmark's "torch" column);
``mlstm``/``mgru`` name their form after a slash. ``--products`` forces the library that multiplies
inside the C++ loops (brgemm, blas, aten; default: the automatic choice).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from torch import nn

from seqcopy.core.benchmark import BENCH_SIZES, TorchModel
from seqcopy.core.model import CopyModel
from seqcopy.vocab import VOCAB_SIZE


def phases(model, inputs, targets):
    """Closures for the three phases of one training step, run in order."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    params = list(model.parameters())
    holder = {}

    def forward():
        logits, _ = model(inputs)
        holder["loss"] = nn.functional.cross_entropy(logits.reshape(-1, VOCAB_SIZE), targets.reshape(-1))

    def backward():
        optimizer.zero_grad(set_to_none=True)
        holder.pop("loss").backward()

    def update():
        nn.utils.clip_grad_value_(params, 1.0)
        optimizer.step()

    return forward, backward, update


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--setting", default="original", choices=list(BENCH_SIZES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cells", default="mlstm/krause,lstm")
    parser.add_argument("--products", default="auto", help="brgemm, blas, aten or auto")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--rows", type=int, default=14, help="profiler rows per cell")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from seqcopy.core import fast

    fast.compiled_kernels().use_products(args.products)
    batch, embedding, hidden, length = BENCH_SIZES[args.setting]
    inputs = torch.randint(0, VOCAB_SIZE, (batch, length), generator=torch.Generator().manual_seed(0))
    targets = torch.randint(0, VOCAB_SIZE, (batch, length), generator=torch.Generator().manual_seed(1))
    runs = {}
    for cell in args.cells.split(","):
        torch.manual_seed(0)
        if "/" in cell:
            name, form = cell.split("/")
            model = CopyModel(name, VOCAB_SIZE, embedding, hidden, mult_form=form)
        else:
            model = TorchModel(cell, VOCAB_SIZE, embedding, hidden)
        runs[cell] = phases(model, inputs, targets)
    for parts in runs.values():
        for _ in range(2):
            for part in parts:
                part()
    times = {cell: [[], [], []] for cell in runs}
    for _ in range(args.repeats):
        for cell, parts in runs.items():
            for index, part in enumerate(parts):
                start = time.perf_counter()
                part()
                times[cell][index].append(1e3 * (time.perf_counter() - start))
    print(f"{args.setting} (B{batch} E{embedding} H{hidden} T{length}), {args.threads} thread(s), "
          f"loop products {fast.compiled_kernels().products()}: median ms of {args.repeats}")
    for cell, (fw, bw, up) in times.items():
        f, b, u = (statistics.median(x) for x in (fw, bw, up))
        print(f"  {cell:13} forward {f:7.2f}  backward {b:7.2f}  update {u:6.2f}  total {f + b + u:7.2f}")
    for cell, parts in runs.items():
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            for _ in range(3):
                for part in parts:
                    part()
        print(f"\n{cell}: top ops by self CPU time over 3 steps")
        print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
