"""``seqcopy evaluate``: test a saved model at any length, as the original assignment reloaded its ``.pth``.

The model comes from a run in the store or from a checkpoint file. The test pass is training's
own: the test stream of its seed (seqcopy.core.data), fed by ``seqcopy.core.train.evaluate`` in chunks of the
model's training length with the state carried across calls. With the run's own test lengths,
samples and seed it therefore gives that run's final test metrics exactly (on the CPU).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from seqcopy.config import RunConfig, cell_label, mult_form_of
from seqcopy.core import checkpoint, data
from seqcopy.core.data import Layout
from seqcopy.core.metrics import blank_baseline_accuracy
from seqcopy.core.model import CopyModel
from seqcopy.core.train import evaluate, flush_denormals
from seqcopy.devices import device_problem, resolve_device
from seqcopy.errors import InputError
from seqcopy.text import shorten
from seqcopy.vocab import CHANCE_LEVEL

POSITIONS_PER_ROW = 10


class EvaluationError(InputError):
    """A model that cannot be evaluated: no such file, a run without a checkpoint."""


@dataclass(frozen=True)
class LoadedModel:
    model: CopyModel
    config: RunConfig  # as trained
    source: str  # "run 12" or the file's path
    run_id: int | None


def model_from_file(source: str) -> LoadedModel:
    """The model of a ``.pth``/``.pt`` checkpoint file (a run id is the command line's to look up)."""
    path = Path(source)
    if not source:  # Path("") is the working folder
        raise EvaluationError("the model is an empty name: give a run id or a .pth/.pt file")
    try:
        is_dir = stat.S_ISDIR(path.stat().st_mode)
    except FileNotFoundError:  # also a link to nowhere
        raise EvaluationError(f"{source}: no such file (give a run id or a .pth/.pt file)") from None
    except (OSError, ValueError) as error:  # a name too long to be a path, a loop of links, a NUL
        raise EvaluationError(f"{shorten(source)!r}: {getattr(error, 'strerror', None) or error}") from None
    if is_dir:
        raise EvaluationError(f"{source} is a folder: give a run id or a .pth/.pt file")
    model, config = checkpoint.load_file(path)  # which reads only a regular file, of a checkpoint's size
    return LoadedModel(model, config, str(path), None)


def model_from_run(run_id: int, blob: bytes) -> LoadedModel:
    """The model of run ``run_id`` from its checkpoint's bytes."""
    model, config = checkpoint.from_bytes(blob)
    return LoadedModel(model, config, f"run {run_id}", run_id)


def names_a_file(source: str) -> bool:
    """Whether ``source`` is an existing file's path, so a file named '12' is never taken for run 12."""
    return _is_file(Path(source))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long to be a file
        return False


def with_test_settings(trained: RunConfig, **settings) -> RunConfig:
    """The model's config with the given test settings (RunConfig fields; None keeps the model's
    own). The device defaults to the model's when this machine has it, else the CPU. Validate the
    result before use: it carries the caps on lengths and samples."""
    changes = {name: value for name, value in settings.items() if value is not None}
    if "device" not in changes and device_problem(trained.device):
        changes["device"] = "cpu"
    return trained.replace(**changes)


@dataclass(frozen=True)
class Evaluation:
    source: str
    run_id: int | None
    config: RunConfig  # the model's config with this test's settings
    device: str
    chunk: int  # steps fed per forward call: the model's training length
    loss: float
    accuracy: float
    copy_accuracy: float
    sequence_accuracy: float
    position_acc: list[float]  # copy accuracy at output positions 1..N

    @property
    def never_copying_accuracy(self) -> float:
        c = self.config
        return blank_baseline_accuracy(c.test_seq_len, c.padding, c.test_output_len)

    def summary(self) -> dict:
        """The last line of ``seqcopy evaluate``; names as in ``train``'s summary."""
        c = self.config
        return {
            "model": self.source,
            "run_id": self.run_id,
            "cell": c.cell,
            "mult_form": mult_form_of(c),  # which form ran (null: no such choice)
            "test_seq_len": c.test_seq_len,
            "test_output_len": c.test_output_len,
            "padding": c.padding,
            "test_samples": c.test_samples,
            "seed": c.seed,
            "device": self.device,
            "test_loss": round(self.loss, 6),
            "test_acc": round(self.accuracy, 6),
            "never_copying_acc": round(self.never_copying_accuracy, 6),
            "test_copy_acc": round(self.copy_accuracy, 6),
            "chance": round(CHANCE_LEVEL, 6),
            "test_seq_acc": round(self.sequence_accuracy, 6),
            "position_acc": [round(value, 6) for value in self.position_acc],
        }

    def report_lines(self) -> list[str]:
        c = self.config
        lines = [
            f"model: {self.source}, {cell_label(c)}, hidden {c.hidden_size}, "
            f"trained at K={c.train_seq_len} N={c.train_output_len}",
            f"test: K={c.test_seq_len} P={c.padding} N={c.test_output_len}, {c.test_samples:,} sequences, "
            f"seed {c.seed}, "
            f"on {self.device}, fed {self.chunk} steps at a time with the state carried",
            f"loss                          {self.loss:.4f}",
            f"accuracy (all positions)      {self.accuracy:.3f}   (never copying: {self.never_copying_accuracy:.3f})",
            f"copy accuracy                 {self.copy_accuracy:.3f}   (chance: 1/9 = {CHANCE_LEVEL:.3f})",
            f"sequence accuracy             {self.sequence_accuracy:.3f}   (every copied symbol right)",
            "copy accuracy by output position:",
        ]
        for start in range(0, len(self.position_acc), POSITIONS_PER_ROW):
            row = self.position_acc[start : start + POSITIONS_PER_ROW]
            label = f"{start + 1}-{start + len(row)}"
            lines.append(f"  {label:>11}  " + " ".join(f"{value:.3f}" for value in row))
        return lines


def evaluate_model(loaded: LoadedModel, config: RunConfig) -> Evaluation:
    """Test ``loaded`` on ``config``'s test set (a validated config from :func:`with_test_settings`)."""
    device = resolve_device(config.device)
    flush_denormals()
    model = loaded.model.to(device)
    layout = Layout(config.test_seq_len, config.padding, config.test_output_len)
    inputs, targets = data.random_sequences(data.generator(config.seed, data.TEST_STREAM), config.test_samples, layout)
    chunk = loaded.config.train_length  # as in training, whatever padding this test uses
    counts, per_position = evaluate(model, inputs, targets, layout, chunk, device, positions=True)
    return Evaluation(
        source=loaded.source,
        run_id=loaded.run_id,
        config=config,
        device=device,
        chunk=chunk,
        loss=counts.loss,
        accuracy=counts.accuracy,
        copy_accuracy=counts.copy_accuracy,
        sequence_accuracy=counts.sequence_accuracy,
        position_acc=per_position,
    )
