"""Training-step benchmark: each cell's default path against a seed-style loop and torch's module.

One step = CopyModel forward on a (B, T) batch, cross-entropy over all steps, backward,
``clip_grad_value_(params, 1.0)`` and an Adam step. Within one process the implementations are
timed round-robin (each repeat times every implementation once, so background load hits them
alike) after warm-up, and the median of the repeats is reported, with ratios:

* ``vs seed``: our path / the seed-style per-gate loop of the same cell (bench/seed_reference.py);
* ``vs torch``: our path / torch.nn.RNN, LSTM or GRU in the same model (nn.LSTM for mLSTM,
  nn.GRU for mGRU);
* GFLOP/s of the matrix products (forward + backward ≈ 3 × forward) and their share of this
  machine's single-precision matmul peak, measured with a large ``torch.mm`` at start-up.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from .config import CELL_NAMES
from .costs import step_macs
from .model import CopyModel
from .vocab import VOCAB_SIZE

# name: (batch, embedding, hidden, length); length = symbols + delimiters + blanks
SETTINGS = {
    "defaults": (32, 16, 128, 20 + 3 + 10),
    "final": (64, 16, 256, 100 + 3 + 100),
    "quick": (4, 4, 8, 5),
}
TORCH_MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU, "mlstm": nn.LSTM, "mgru": nn.GRU}


def _seed_reference():
    """bench/seed_reference.py, which lives beside the package rather than in it."""
    path = Path(__file__).resolve().parent.parent / "bench" / "seed_reference.py"
    spec = importlib.util.spec_from_file_location("seed_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TorchModel(nn.Module):
    """CopyModel's shape with torch's own recurrent module in the middle."""

    def __init__(self, cell: str, vocab_size: int, embedding_size: int, hidden_size: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.recurrent = TORCH_MODULES[cell](embedding_size, hidden_size, batch_first=True)
        self.decoder = nn.Linear(hidden_size, vocab_size)

    def forward(self, x):
        return self.decoder(self.recurrent(self.embedding(x))[0]), None


def training_step(model: nn.Module, inputs, targets):
    """A closure running one full training step of ``model`` on the batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    params = list(model.parameters())

    def step():
        logits, _ = model(inputs)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_value_(params, 1.0)
        optimizer.step()

    return step


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """Best single-precision GFLOP/s of a large square ``torch.mm``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_seconds(lambda: torch.mm(a, b), 1) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def step_flops(cell: str, batch: int, embedding: int, hidden: int, length: int) -> float:
    """Matrix-product FLOPs of one training step of our model (forward + backward = 3 × forward)."""
    forward = 2 * batch * length * step_macs(cell, embedding, hidden)
    return 3 * forward


def _seconds(fn, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) / count


def bench_setting(name: str, cells, repeats: int, warmup: int, peak: float, seed: int = 0) -> dict:
    batch, embedding, hidden, length = SETTINGS[name]
    reference = _seed_reference()
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, VOCAB_SIZE, (batch, length), generator=generator)
    targets = torch.randint(0, VOCAB_SIZE, (batch, length), generator=generator)
    steps = {}
    for cell in cells:
        torch.manual_seed(seed)
        models = {
            "ours": CopyModel(cell, VOCAB_SIZE, embedding, hidden),
            "seed": reference.SeedModel(cell, VOCAB_SIZE, embedding, hidden),
            "torch": TorchModel(cell, VOCAB_SIZE, embedding, hidden),
        }
        for impl, model in models.items():
            steps[cell, impl] = training_step(model, inputs, targets)
    for step in steps.values():  # warm-up, and enough steps per timing for ~20 ms
        step()
    counts = {}
    for key, step in steps.items():
        once = min(_seconds(step, 1) for _ in range(max(warmup, 1)))
        counts[key] = max(1, min(20, int(0.02 / once)))
    times = {key: [] for key in steps}
    for _ in range(repeats):
        for key, step in steps.items():
            times[key].append(_seconds(step, counts[key]))
    result = {"batch": batch, "embedding": embedding, "hidden": hidden, "length": length, "cells": {}}
    for cell in cells:
        ms = {impl: 1e3 * statistics.median(times[cell, impl]) for impl in ("ours", "seed", "torch")}
        gflops = step_flops(cell, batch, embedding, hidden, length) / (ms["ours"] / 1e3) / 1e9
        result["cells"][cell] = {
            "ms_per_step": ms["ours"],
            "seed_ms": ms["seed"],
            "torch_ms": ms["torch"],
            "vs_seed": ms["ours"] / ms["seed"],
            "vs_torch": ms["ours"] / ms["torch"],
            "torch_module": TORCH_MODULES[cell].__name__,
            "gflops": gflops,
            "peak_share": gflops / peak,
        }
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", default="defaults,final",
                        help=f"comma-separated, from: {', '.join(SETTINGS)}")  # fmt: skip
    parser.add_argument("--cells", default=",".join(CELL_NAMES), help="comma-separated cell names")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds; the median is kept")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per implementation")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, 1 repeat: a smoke test, not a measurement")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def check_arguments(args: argparse.Namespace) -> str | None:
    """One line saying what is wrong with the arguments, before anything is measured."""
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    unknown = [c for c in cells if c not in CELL_NAMES]
    if not cells or unknown:
        return f"--cells: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(CELL_NAMES)}"
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    bad = [s for s in settings if s not in SETTINGS]
    if not settings or bad:
        return f"--settings: unknown {', '.join(bad) or '(empty)'}; choose from {', '.join(SETTINGS)}"
    if args.repeats < 1:
        return f"--repeats: at least 1, got {args.repeats}"
    if args.warmup < 0:
        return f"--warmup: 0 or more, got {args.warmup}"
    if args.threads < 0:
        return f"--threads: 0 (leave as is) or more, got {args.threads}"
    return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args: argparse.Namespace) -> int:
    problem = check_arguments(args)
    if problem:
        raise SystemExit(problem)
    if args.threads:
        torch.set_num_threads(args.threads)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    settings = ["quick"] if args.quick else [s.strip() for s in args.settings.split(",")]
    repeats, warmup = (1, 1) if args.quick else (args.repeats, args.warmup)
    from . import fast

    peak = matmul_peak(256 if args.quick else 2048, 2 if args.quick else 5)
    report = {
        "cpu": _cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "fast_backend": fast.backend() if fast.backend() != "cpp" or fast.compiled_kernels() else "python",
        "matmul_peak_gflops": peak,
        "repeats": repeats,
        "settings": {s: bench_setting(s, cells, repeats, warmup, peak) for s in settings},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def format_report(report: dict) -> str:
    lines = [
        f"CPU {report['cpu']}, torch {report['torch']}, {report['threads']} thread(s), "
        f"mLSTM/mGRU backend {report['fast_backend']}, matmul peak "
        f"{report['matmul_peak_gflops']:.1f} GFLOP/s, median of {report['repeats']}",
    ]
    for name, setting in report["settings"].items():
        lines += [
            "",
            f"{name}: batch {setting['batch']}, embedding {setting['embedding']}, "
            f"hidden {setting['hidden']}, length {setting['length']}",
            f"{'cell':6} {'ms/step':>9} {'vs seed':>8} {'vs torch':>14} {'GFLOP/s':>8} {'of peak':>8}",
        ]
        for cell, r in setting["cells"].items():
            lines.append(
                f"{cell:6} {r['ms_per_step']:9.2f} {r['vs_seed']:7.2f}x "
                f"{r['vs_torch']:6.2f}x {r['torch_module']:>6} {r['gflops']:8.2f} {r['peak_share']:7.1%}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
