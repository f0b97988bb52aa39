"""mLSTM and mGRU fast paths of an earlier revision against today's, interleaved in one process.

    python bench/before_after.py --rev af6fb32 --settings defaults,original,final --threads 1,2

Takes ``seqcopy/core/fast.py`` and ``seqcopy/csrc/cells.cpp`` from git revision ``--rev`` (one whose
``fast.mlstm_sequence(x, state, cell)`` / ``mgru_sequence(x, h, cell)`` run today's Krause cells,
as af6fb32's do), builds that extension under its own name, and times full training steps
(benchmark.training_step) of: Krause's form through the old path, through today's path, the
input form, and torch's fused twin (nn.LSTM, nn.GRU). Every repeat times each of them once per
thread count, so load on a shared machine hits them alike; medians and ratios to the twin print.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402 - after the sys.path insert above

from seqcopy.core.benchmark import BENCH_SIZES, TorchModel, training_step  # noqa: E402 - after the sys.path insert above
from seqcopy.core.model import CopyModel  # noqa: E402 - after the sys.path insert above
from seqcopy.vocab import VOCAB_SIZE  # noqa: E402 - after the sys.path insert above


def old_fast(rev: str, folder: Path):
    """The revision's fast module, its extension renamed so that it loads beside today's."""
    (folder / "csrc").mkdir(parents=True)
    # The files sit in seqcopy/ before the layers moved them into seqcopy/core/.
    moved = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{rev}:seqcopy/core/fast.py"],
                           capture_output=True).returncode == 0
    prefix = "seqcopy/core/" if moved else "seqcopy/"
    for name in ("fast.py", "csrc/cells.cpp"):
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{prefix}{name}"], check=True,
                              capture_output=True, text=True).stdout
        if name.endswith(".py"):
            text = text.replace('load("seqcopy_cells"', f'load("seqcopy_cells_{rev}"')
            text = text.replace('name = f"seqcopy_cells_', f'name = f"seqcopy_cells_{rev}_')
        (folder / name).write_text(text)
    spec = importlib.util.spec_from_file_location(f"fast_{rev}", folder / "fast.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if module.compiled_kernels() is None:
        raise SystemExit(f"revision {rev}: its C++ kernels did not build")
    return module


def old_model(fast, cell: str, embedding: int, hidden: int) -> CopyModel:
    torch.manual_seed(0)
    model = CopyModel(cell, VOCAB_SIZE, embedding, hidden)
    sequence = fast.mlstm_sequence if cell == "mlstm" else fast.mgru_sequence
    layer_cell = model.recurrent.cell
    layer_cell.fused_forward = types.MethodType(lambda self, x, state: sequence(x, state, self), layer_cell)
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", default="af6fb32", help="git revision of the 'before' path")
    parser.add_argument("--settings", default="defaults,original,final")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    threads = [int(n) for n in args.threads.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        fast = old_fast(args.rev, Path(folder))
        for name in args.settings.split(","):
            batch, embedding, hidden, length = BENCH_SIZES[name]
            generator = torch.Generator().manual_seed(0)
            inputs = torch.randint(0, VOCAB_SIZE, (batch, length), generator=generator)
            targets = torch.randint(0, VOCAB_SIZE, (batch, length), generator=generator)
            steps = {}
            for cell in ("mlstm", "mgru"):
                steps[cell, "before"] = training_step(old_model(fast, cell, embedding, hidden), inputs, targets)
                for form in ("krause", "input"):
                    torch.manual_seed(0)
                    model = CopyModel(cell, VOCAB_SIZE, embedding, hidden, mult_form=form)
                    steps[cell, form] = training_step(model, inputs, targets)
                torch.manual_seed(0)
                steps[cell, "torch"] = training_step(TorchModel(cell, VOCAB_SIZE, embedding, hidden), inputs, targets)
            times = {(count, key): [] for count in threads for key in steps}
            for count in threads:
                torch.set_num_threads(count)
                for step in steps.values():
                    step(), step()
            for _ in range(args.repeats):
                for count in threads:
                    torch.set_num_threads(count)
                    for key, step in steps.items():
                        start = time.perf_counter()
                        step()
                        times[count, key].append(time.perf_counter() - start)
            for count in threads:
                ms = {key: 1e3 * statistics.median(times[count, key]) for key in steps}
                for cell in ("mlstm", "mgru"):
                    twin = ms[cell, "torch"]
                    parts = [f"{label} {ms[cell, key]:.1f} ms ({ms[cell, key] / twin:.2f}×)"
                             for label, key in (("before", "before"), ("after", "krause"),
                                                ("input form", "input"))]
                    print(f"{name}, {count} thread(s), {cell}: torch {twin:.1f} ms | " + " | ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
