"""Training-step benchmark: each cell's default path against an original-style loop and torch's module.

One step = CopyModel forward on a (B, T) batch, cross-entropy over all steps, backward,
``clip_grad_value_(params, 1.0)`` and an Adam step. Within one process the implementations are
timed round-robin at every thread count of the grid (each repeat times every implementation once
per thread count, so background load hits them alike) after warm-up, and the median of the
repeats is reported, with ratios at the same thread count:

* ``vs original``: our path / the original-style per-gate loop of the same cell and form
  (bench/original_reference.py);
* ``vs torch``: our path / torch.nn.RNN, LSTM or GRU in the same model (nn.LSTM for mLSTM,
  nn.GRU for mGRU, in both forms);
* GFLOP/s of the matrix products (forward + backward ≈ 3 × forward) and their share of this
  machine's single-precision matmul peak at that thread count, measured with a large ``torch.mm``.

mLSTM and mGRU are timed in each multiplicative form asked for (``--forms``). The load average
before and after is recorded: on a shared machine absolute times move with the load, while the
ratios, measured interleaved, move far less.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from seqcopy.config import CELL_NAMES, MULT_FORMS
from seqcopy.core.cells import INPUT_FORM_CELLS
from seqcopy.core.model import CopyModel
from seqcopy.costs import step_macs
from seqcopy.vocab import VOCAB_SIZE

# name: (batch, embedding, hidden, length); length = symbols + delimiters + blanks
BENCH_SIZES = {
    "defaults": (32, 16, 128, 20 + 3 + 10),
    "original": (32, 11, 128, 100 + 10 + 50),  # the original assignment's defaults: K 100, P 10, N 50
    "final": (64, 16, 256, 100 + 3 + 100),
    "quick": (4, 4, 8, 5),
}
OLD_SIZE_NAMES = {"seed": "original"}  # --settings keeps taking the name a size had before
TORCH_MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU, "mlstm": nn.LSTM, "mgru": nn.GRU}


def _original_reference():
    """bench/original_reference.py, which lives beside the package rather than in it."""
    path = Path(__file__).resolve().parents[2] / "bench" / "original_reference.py"
    spec = importlib.util.spec_from_file_location("original_reference", path)
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
    """Best single-precision GFLOP/s of a large square ``torch.mm`` at the current thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_seconds(lambda: torch.mm(a, b), 1) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def step_flops(cell: str, batch: int, embedding: int, hidden: int, length: int, mult_form: str = "krause") -> float:
    """Matrix-product FLOPs of one training step of our model (forward + backward = 3 × forward)."""
    forward = 2 * batch * length * step_macs(cell, embedding, hidden, mult_form)
    return 3 * forward


def _seconds(fn, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) / count


def row_keys(cells, forms) -> list[tuple[str, str]]:
    """(cell, form) for every row: the multiplicative cells once per form, the others once."""
    return [(cell, form) for cell in cells for form in (forms if cell in INPUT_FORM_CELLS else forms[:1])]


def bench_setting(name: str, cells, forms, threads, repeats: int, warmup: int, peaks: dict, seed: int = 0) -> dict:
    batch, embedding, hidden, length = BENCH_SIZES[name]
    reference = _original_reference()
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, VOCAB_SIZE, (batch, length), generator=generator)
    targets = torch.randint(0, VOCAB_SIZE, (batch, length), generator=generator)
    rows = row_keys(cells, forms)
    steps = {}  # (cell, form or None for torch's module, implementation) → step
    for cell, form in rows:
        torch.manual_seed(seed)
        steps[cell, form, "ours"] = training_step(
            CopyModel(cell, VOCAB_SIZE, embedding, hidden, mult_form=form), inputs, targets
        )
        model = reference.SeedModel(cell, VOCAB_SIZE, embedding, hidden, mult_form=form)
        steps[cell, form, "original"] = training_step(model, inputs, targets)
        if (cell, None, "torch") not in steps:  # one torch module serves both forms
            steps[cell, None, "torch"] = training_step(TorchModel(cell, VOCAB_SIZE, embedding, hidden), inputs, targets)
    counts, times = {}, {}
    for count in threads:  # warm-up, and enough steps per timing for ~20 ms
        torch.set_num_threads(count)
        for key, step in steps.items():
            step()
            once = min(_seconds(step, 1) for _ in range(max(warmup, 1)))
            counts[count, key] = max(1, min(20, int(0.02 / once)))
            times[count, key] = []
    for _ in range(repeats):
        for count in threads:
            torch.set_num_threads(count)
            for key, step in steps.items():
                times[count, key].append(_seconds(step, counts[count, key]))
    result = {"batch": batch, "embedding": embedding, "hidden": hidden, "length": length, "rows": []}
    for count in threads:
        for cell, form in rows:
            ms = {impl: 1e3 * statistics.median(times[count, (cell, form if impl != "torch" else None, impl)])
                  for impl in ("ours", "original", "torch")}
            gflops = step_flops(cell, batch, embedding, hidden, length, form) / (ms["ours"] / 1e3) / 1e9
            result["rows"].append({
                "cell": cell,
                "mult_form": form if cell in INPUT_FORM_CELLS else None,
                "threads": count,
                "ms_per_step": ms["ours"],
                "original_ms": ms["original"],
                "torch_ms": ms["torch"],
                "vs_original": ms["ours"] / ms["original"],
                "vs_torch": ms["ours"] / ms["torch"],
                "torch_module": TORCH_MODULES[cell].__name__,
                "gflops": gflops,
                "peak_share": gflops / peaks[count],
            })
    return result


def _default_threads() -> str:
    return ",".join(str(n) for n in sorted({1, torch.get_num_threads()}))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--settings", default="defaults,original,final",
                        help=f"comma-separated, from: {', '.join(BENCH_SIZES)}")
    parser.add_argument("--cells", default=",".join(CELL_NAMES), help="comma-separated cell names")
    parser.add_argument("--forms", default=",".join(MULT_FORMS),
                        help=f"multiplicative forms of mlstm/mgru to time, from: {', '.join(MULT_FORMS)}")
    parser.add_argument("--threads", default=_default_threads(),
                        help="comma-separated torch thread counts, each timed (default: 1 and all)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds; the median is kept")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per implementation")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, 1 repeat: a smoke test, not a measurement")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--markdown", action="store_true",
                        help="print Markdown tables, one per setting, the thread counts side by side")
    parser.add_argument("--from-json", metavar="FILE",
                        help="format the report saved in FILE (by --json) instead of measuring")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _thread_counts(text: str) -> list[int] | None:
    try:
        counts = [int(part) for part in _names(text)]
    except ValueError:
        return None
    return sorted(set(counts)) if counts and all(0 < n <= 1024 for n in counts) else None


def _size_names(text: str) -> list[str]:
    return [OLD_SIZE_NAMES.get(name, name) for name in _names(text)]


def check_arguments(args: argparse.Namespace) -> str | None:
    """One line saying what is wrong with the arguments, before anything is measured."""
    cells = _names(args.cells)
    unknown = [c for c in cells if c not in CELL_NAMES]
    if not cells or unknown:
        return f"--cells: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(CELL_NAMES)}"
    settings = _size_names(args.settings)
    bad = [s for s in settings if s not in BENCH_SIZES]
    if not settings or bad:
        return f"--settings: unknown {', '.join(bad) or '(empty)'}; choose from {', '.join(BENCH_SIZES)}"
    forms = _names(args.forms)
    bad = [f for f in forms if f not in MULT_FORMS]
    if not forms or bad:
        return f"--forms: unknown {', '.join(bad) or '(empty)'}; choose from {', '.join(MULT_FORMS)}"
    if _thread_counts(str(args.threads)) is None:
        return f"--threads: comma-separated counts from 1 to 1024, got {args.threads!r}"
    if args.from_json:
        try:
            json.loads(Path(args.from_json).read_text())["settings"]
        except (OSError, ValueError, KeyError, TypeError):
            return f"--from-json: no benchmark report (--json output) in {args.from_json}"
    if args.repeats < 1:
        return f"--repeats: at least 1, got {args.repeats}"
    if args.warmup < 0:
        return f"--warmup: 0 or more, got {args.warmup}"
    return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # not on every platform
        return None


def run(args: argparse.Namespace) -> int:
    problem = check_arguments(args)
    if problem:
        raise SystemExit(problem)
    if args.from_json:
        return _print(json.loads(Path(args.from_json).read_text()), args)
    cells, forms = _names(args.cells), _names(args.forms)
    threads = _thread_counts(str(args.threads))
    settings = ["quick"] if args.quick else _size_names(args.settings)
    repeats, warmup = (1, 1) if args.quick else (args.repeats, args.warmup)
    from seqcopy.core import fast

    kernels = fast.kernels() if fast.backend() != "off" else None
    load_before = _load_average()
    peaks = {}
    for count in threads:
        torch.set_num_threads(count)
        peaks[count] = matmul_peak(256 if args.quick else 2048, 2 if args.quick else 5)
    report = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": threads,
        "fast_backend": fast.backend() if kernels is not fast.PYTHON_KERNELS else "python",
        "loop_products": kernels.products() if kernels else "autograd",
        "matmul_peak_gflops": {str(count): peak for count, peak in peaks.items()},
        "repeats": repeats,
        "settings": {s: bench_setting(s, cells, forms, threads, repeats, warmup, peaks) for s in settings},
    }
    report["load_average"] = {"before": load_before, "after": _load_average()}
    return _print(report, args)


def _print(report: dict, args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.markdown:
        print(format_markdown(report))
    else:
        print(format_report(report))
    return 0


def _one_decimal(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f}"


def _label(row: dict) -> str:
    return row["cell"] + (f" ({row['mult_form']})" if row["mult_form"] else "")


def format_report(report: dict) -> str:
    load = report["load_average"]
    peaks = ", ".join(f"{gflops:.1f} at {count}" for count, gflops in report["matmul_peak_gflops"].items())
    lines = [
        f"CPU {report['cpu']} ({report['cores']} cores), torch {report['torch']}, mLSTM/mGRU backend "
        f"{report['fast_backend']} (products in the loops: {report['loop_products']}), "
        f"matmul peak GFLOP/s {peaks} thread(s), median of {report['repeats']}; "
        f"load average {_one_decimal(load['before'])} before, {_one_decimal(load['after'])} after",
    ]
    for name, setting in report["settings"].items():
        for count in report["threads"]:
            lines += [
                "",
                f"{name}: batch {setting['batch']}, embedding {setting['embedding']}, "
                f"hidden {setting['hidden']}, length {setting['length']}; {count} thread(s)",
                f"{'cell':15} {'ms/step':>9} {'vs orig':>8} {'vs torch':>14} {'GFLOP/s':>8} {'of peak':>8}",
            ]
            for r in (r for r in setting["rows"] if r["threads"] == count):
                lines.append(
                    f"{_label(r):15} {r['ms_per_step']:9.2f} {r['vs_original']:7.2f}x "
                    f"{r['vs_torch']:6.2f}x {r['torch_module']:>6} {r['gflops']:8.2f} {r['peak_share']:7.1%}"
                )
    return "\n".join(lines)


def format_markdown(report: dict) -> str:
    """One table per setting: each row a cell (and form), each thread count its ms per step and
    its ratios to the original-style loop and to torch's fused module."""
    threads = report["threads"]
    head = "| cell | " + " | ".join(
        f"{n} thread{'s' * (n > 1)}: ms/step | vs original-style | vs torch's fused" for n in threads
    )
    head += " |"
    rule = "|---|" + "---:|---:|---:|" * len(threads)
    lines = []
    for name, setting in report["settings"].items():
        lines += [f"{name}: batch {setting['batch']}, embedding {setting['embedding']}, hidden {setting['hidden']}, "
                  f"length {setting['length']}", "", head, rule]
        rows = {}
        for r in setting["rows"]:
            rows.setdefault(_label(r), {})[r["threads"]] = r
        for label, by_threads in rows.items():
            cells = []
            for n in threads:
                r = by_threads[n]
                cells += [
                    f"{r['ms_per_step']:.1f}",
                    f"{r['vs_original']:.2f}×",
                    f"{r['vs_torch']:.2f}× ({r['torch_module']})",
                ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
