"""RunConfig: one frozen dataclass for the form, the command line, the worker and the store.

Every field is a plain value, so a config round-trips through JSON (the ``runs`` table stores it
that way) and two configs can be diffed key by key. ``validate()`` returns one message per bad
field; ``check()`` raises them together.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

from seqcopy.devices import device_problem
from seqcopy.errors import InputError
from seqcopy.settings import Setting, declared, setting
from seqcopy.text import MAX_TAG  # Store.set_tag checks an edited tag the same way

CELL_NAMES = ("rnn", "lstm", "gru", "mlstm", "mgru")  # seqcopy.core.cells implements each
# The two published forms of the multiplicative cells (seqcopy.core.cells): Krause et al. 2016's, the
# default (runs recorded before the choice ran it), and the input form of some course versions.
MULT_FORMS = ("krause", "input")
MULT_CELLS = ("mlstm", "mgru")  # the cells a form applies to
FORGET_BIAS = 1.0  # the forget-gate bias of --init scaled unless told otherwise (seqcopy.core.init)
LR_SCHEDULES = ("constant", "cosine", "linear", "plateau")
CLIP_MODES = ("value", "norm")
INIT_SCHEMES = ("uniform", "scaled", "chrono")  # seqcopy.core.init implements each

# Caps that keep one run within a 24 GiB, 2-core machine (and one form from exhausting it).
MAX_HIDDEN = 2048
MAX_EMBEDDING = 1024
MAX_BATCH = 4096
MAX_TRAIN_SEQ = 2000
MAX_TEST_SEQ = 10_000
MAX_SAMPLES = 1_000_000
MAX_EPOCHS = 10_000
MAX_PADDING = 1000
MAX_MEMORY_BYTES = 8 * 2**30  # the estimate of a run's peak memory must stay below this
DEVICES = ("cpu", "cuda", "mps", "auto")
# The per-epoch metrics a run can aim at (seqcopy.core.train.EpochResult's fields, the epochs table's
# columns): a --stop-at target names one, and a search's objective (seqcopy.results.search) too, so
# both accept the same names. Test metrics first, copy accuracy first: the order the help lists them.
TARGET_METRICS = ("test_copy_acc", "test_seq_acc", "test_acc", "test_loss",
                  "train_copy_acc", "train_seq_acc", "train_acc", "train_loss")


class ConfigError(InputError, ValueError):
    """A RunConfig that failed validation; ``errors`` maps field → message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{key}: {message}" for key, message in errors.items()))


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one training run. Each field declares, once, its flags, its label and help,
    its place in the Launch form and its limits (seqcopy.settings). Defaults are the original assignment's: its
    sixteen flags keep the defaults of the original assignment; the options beyond it default to
    what the seed did."""

    # ---- the grid: the form asks for several cells and seeds at once
    cell: str = setting(
        "rnn", label="Cell", help="recurrent cell", group="Grid",
        flags=("-c", "--cell"), choices=CELL_NAMES, original=True,
    )
    seed: int = setting(
        42, label="Seed", help="seed of the data and of the initial weights", group="Grid",
        # 2**31 - 1: the runs table keeps the seed in PostgreSQL's 32-bit INTEGER.
        flags=("-s", "--seed"), low=0, high=2**31 - 1, original=True,
    )
    # ---- the task
    train_seq_len: int = setting(
        100, label="Input length K (train)", help="K: symbols read while training", group="Task",
        flags=("-iseq", "--train_seq_len", "--train-seq-len"), low=1, high=MAX_TRAIN_SEQ, original=True,
    )
    train_output_len: int = setting(
        50, label="Output length N (train)", help="N: symbols to copy back while training (at most K)",
        group="Task", flags=("-oseq", "--train_output_len", "--train-output-len"), low=1, high=MAX_TRAIN_SEQ,
        original=True,
    )
    padding: int = setting(
        10, label="Padding P ('$' delimiters)", help="P: delimiters '$' between the input and the copy",
        group="Task", flags=("-p", "--padding"), low=1, high=MAX_PADDING, original=True,
    )
    test_seq_len: int = setting(
        100, label="Input length K (test)", help="K at test time (longer than training tests generalisation)",
        group="Task", flags=("-tseq", "--test_seq_len", "--test-seq-len"), low=1, high=MAX_TEST_SEQ, original=True,
    )
    test_output_len: int = setting(
        50, label="Output length N (test)", help="N at test time (at most the test K)", group="Task",
        flags=("-toseq", "--test_output_len", "--test-output-len"), low=1, high=MAX_TEST_SEQ, original=True,
    )
    curriculum: bool = setting(
        False, label="Curriculum", help="start with short outputs and lengthen them as copying is learnt",
        group="Task", flags=("--curriculum",),
    )
    curriculum_start: int = setting(
        2, label="Curriculum: first output length", help="output length of the curriculum's first stage",
        group="Task", flags=("--curriculum-start",), low=1, high=MAX_TRAIN_SEQ,
    )
    curriculum_threshold: float = setting(
        0.9, label="Curriculum: copy accuracy to advance",
        help="training copy accuracy that moves the curriculum to the next stage", group="Task",
        flags=("--curriculum-threshold",), low=0.01, high=1.0, step=0.01,
    )
    curriculum_step: int = setting(
        0, label="Curriculum: lengthen by (0 = double)",
        help="each stage's output is this many symbols longer than the last; 0 doubles it", group="Task",
        flags=("--curriculum-step",), low=0, high=MAX_TRAIN_SEQ,
    )
    # ---- the model
    embedding_size: int = setting(
        11, label="Embedding size", help="size of the symbol embedding", group="Model",
        flags=("-em", "--embedding_size", "--embedding-size"), low=1, high=MAX_EMBEDDING, original=True,
    )
    hidden_size: int = setting(
        128, label="Hidden size", help="size of the recurrent state", group="Model",
        flags=("-hs", "--hidden_size", "--hidden-size"), low=1, high=MAX_HIDDEN, original=True,
    )
    init: str = setting(
        "uniform", label="Initialisation",
        help="uniform: torch's default, as the seed; scaled: orthogonal recurrent weights, forget bias set; "
             "chrono: scaled, with forget (GRU: update) biases log U(1, T-1) (Tallec & Ollivier 2018)",
        group="Model", flags=("--init",), choices=INIT_SCHEMES,
    )
    forget_bias: float = setting(
        FORGET_BIAS, label="Forget-gate bias",
        help="--init scaled: the bias the LSTM and mLSTM forget gates start at (Krause et al. use 3)",
        group="Model", flags=("--forget-bias",), low=-10.0, high=10.0, step=0.5,
    )
    delay_factor: float = setting(
        0.0, label="Delay factor",
        help="Krause's mLSTM and mGRU (other cells ignore it); 0: off; else W_mx starts so that the blank's "
             "and $'s factor W_mx x_t is this value in every unit, the recurrent gain through the delay",
        group="Model", flags=("--delay-factor",), low=0.0, high=10.0, step=0.25,
    )
    norm_m: bool = setting(
        False, label="Layer-norm m_t",
        help="Krause's mLSTM and mGRU (other cells ignore it): normalise m_t over its units at every step, "
             "with a learnt gain and shift (on the slower reference cells)",
        group="Model", flags=("--norm-m",),
    )
    mult_form: str = setting(
        "krause", label="Multiplicative form",
        help="mLSTM and mGRU only. krause: m_t = (W_mx x_t) ⊙ (W_mh h_{t-1}) stands in for h_{t-1} in the "
             "gates (Krause et al. 2016); input: m_t = W_m x_t + U_m h_{t-1} + b_m scales the input, and the "
             "plain LSTM or GRU runs on m_t ⊙ x_t",
        group="Model", flags=("--mult-form",), choices=MULT_FORMS,
    )
    fused: bool = setting(
        True, label="Fast fused kernels", help="off trains the readable reference cells (slower, same maths)",
        group="Model", flags=("--fused",),
    )
    # ---- training
    epochs: int = setting(
        10, label="Epochs", help="passes over the training set", group="Training",
        flags=("-ep", "--epochs"), low=1, high=MAX_EPOCHS, original=True,
    )
    batch_size: int = setting(
        32, label="Batch size", help="sequences per mini-batch", group="Training",
        flags=("-b", "--batch_size", "--batch-size"), low=1, high=MAX_BATCH, original=True,
    )
    lr: float = setting(
        0.1, label="Learning rate", help="Adam's learning rate", group="Training",
        flags=("-lr", "--learning_rate", "--lr", "--learning-rate"), low=1e-7, high=10.0, step=0.0005, original=True,
    )
    lr_schedule: str = setting(
        "constant", label="Learning-rate schedule",
        help="constant; cosine or linear decay to 0; or halve on a plateau of test copy accuracy", group="Training",
        flags=("--lr-schedule",), choices=LR_SCHEDULES,
    )
    warmup_epochs: int = setting(
        0, label="Warm-up epochs", help="epochs of linear learning-rate warm-up", group="Training",
        flags=("--warmup-epochs",), low=0, high=MAX_EPOCHS,
    )
    clip: str = setting(
        "value", label="Gradient clipping",
        help="value: clamp each gradient to [-1, 1], as the seed; norm: total gradient norm at most 1",
        group="Training", flags=("--clip",), choices=CLIP_MODES,
    )
    device: str = setting(
        "cpu", label="Device", help="cpu, cuda, mps, or auto (the best one present)", group="Training",
        flags=("-d", "--device"), choices=DEVICES, original=True,
    )
    # ---- data
    train_samples: int = setting(
        10_000, label="Training sequences", help="sequences in the training set", group="Data",
        flags=("-trs", "--train_samples", "--train-samples"), low=1, high=MAX_SAMPLES, original=True,
    )
    test_samples: int = setting(
        1_000, label="Test sequences", help="sequences in the test set", group="Data",
        flags=("-ts", "--test_samples", "--test-samples"), low=1, high=MAX_SAMPLES, original=True,
    )
    fresh_data: bool = setting(
        False, label="Fresh data each epoch",
        help="draw new training sequences every epoch, so the model cannot memorise a fixed set", group="Data",
        flags=("--fresh-data",),
    )
    # ---- stopping
    stop_at: str = setting(
        "", label="Stop at (METRIC>=VALUE)",
        help="end the run early, as completed, once this holds for --stop-patience epochs in a row, e.g. "
             f"test_copy_acc>=0.99 (or test_loss<=0.01); metrics: {', '.join(TARGET_METRICS)}; "
             "empty: train every epoch",
        group="Training", flags=("--stop-at",), high=64,
    )
    stop_patience: int = setting(
        1, label="Stop-at patience (epochs)", help="epochs in a row the --stop-at target must hold",
        group="Training", flags=("--stop-patience",), low=1, high=MAX_EPOCHS,
    )
    tag: str = setting(
        "", label="Tag", help="a short note stored with the runs, to find and group them later", group="Data",
        flags=("--tag",), high=MAX_TAG,
    )

    # ----------------------------------------------------------------- conversion
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        """Build from a dict, ignoring unknown keys (configs stored by other versions)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------- derived sizes
    @property
    def train_length(self) -> int:
        return self.train_seq_len + self.padding + self.train_output_len

    @property
    def test_length(self) -> int:
        return self.test_seq_len + self.padding + self.test_output_len

    @property
    def batches_per_epoch(self) -> int:
        return -(-self.train_samples // self.batch_size)

    def estimate_memory_bytes(self) -> int:
        """A generous estimate of peak memory: data sets, parameters with Adam, activations (for a
        valid cell: ``validate`` asks only then)."""
        from seqcopy.costs import parameter_count, saved_values

        data = 2 * 8 * (self.train_samples * self.train_length + self.test_samples * self.test_length)
        params = parameter_count(self.cell, self.embedding_size, self.hidden_size, self.mult_form)
        optimiser = 4 * 4 * params  # weights, gradients and Adam's two moments, float32
        # Saved activations of one training step, per step and sample, and the logits;
        # evaluation of a chunk needs no graph.
        activations = (
            4
            * self.batch_size
            * self.train_length
            * (saved_values(self.cell, self.embedding_size, self.hidden_size, self.mult_form) + 3 * 11)
        )
        return data + optimiser + 3 * activations

    def _test_set_bytes(self) -> int:
        """The test set's share of :meth:`estimate_memory_bytes`: its inputs and targets, int64."""
        return 2 * 8 * self.test_samples * self.test_length

    def estimate_flops_per_epoch(self) -> float:
        """Matrix-product FLOPs of one epoch's training (forward + backward ≈ 3× forward)."""
        from seqcopy.costs import step_macs

        per_step = 2 * step_macs(self.cell, self.embedding_size, self.hidden_size, self.mult_form)
        train = 3 * per_step * self.train_samples * self.train_length
        test = per_step * self.test_samples * self.test_length
        return float(train + test)

    # ----------------------------------------------------------------- validation
    def validate(self, check_device: bool = True) -> dict[str, str]:
        """One message per bad field; empty when the config can run here. With
        ``check_device=False`` the device need only be a known name: a CPU-only machine may queue
        a run for a GPU worker, which checks availability when it trains."""
        errors: dict[str, str] = {}
        for name, declaration in SETTINGS.items():
            problem = declaration.problem(getattr(self, name))
            if problem:
                errors[name] = problem
        if "train_output_len" not in errors and "train_seq_len" not in errors:
            if self.train_output_len > self.train_seq_len:
                errors["train_output_len"] = (
                    f"the output ({self.train_output_len}) cannot be longer than the input "
                    f"sequence ({self.train_seq_len})"
                )
        if "test_output_len" not in errors and "test_seq_len" not in errors:
            if self.test_output_len > self.test_seq_len:
                errors["test_output_len"] = (
                    f"the test output ({self.test_output_len}) cannot be longer than the test "
                    f"sequence ({self.test_seq_len})"
                )
        if "warmup_epochs" not in errors and "epochs" not in errors and self.warmup_epochs >= self.epochs:
            errors["warmup_epochs"] = (
                f"the warm-up ({self.warmup_epochs}) must be shorter than the run ({self.epochs} epochs)"
            )
        if "forget_bias" not in errors and self.forget_bias != FORGET_BIAS and self.init != "scaled":
            # uniform keeps torch's biases and chrono draws its own: the value would do nothing.
            errors["forget_bias"] = f"a forget-gate bias takes --init scaled (this run has --init {self.init})"
        if "stop_at" not in errors and self.stop_at:
            try:
                parse_stop_at(self.stop_at)
            except ValueError as error:
                errors["stop_at"] = str(error)
        if "device" not in errors and check_device:
            unavailable = device_problem(self.device)
            if unavailable:
                errors["device"] = unavailable
        if not errors and self.estimate_memory_bytes() > MAX_MEMORY_BYTES:
            need = self.estimate_memory_bytes() / 2**30
            cap = f"this run would need about {need:.1f} GiB, above the {MAX_MEMORY_BYTES / 2**30:.0f} GiB cap"
            if 2 * self._test_set_bytes() > self.estimate_memory_bytes():
                # Mostly the test set: the flags to change are its own (all `evaluate` can change).
                errors["test_samples"] = (f"{cap}, most of it the test set: use fewer test samples or shorter "
                                          "test sequences")
            else:
                errors["batch_size"] = f"{cap}: use fewer samples, a smaller batch, hidden size or shorter sequences"
        return errors

    def check(self, check_device: bool = True) -> RunConfig:
        """Return self if valid, else raise ConfigError with every message."""
        errors = self.validate(check_device)
        if errors:
            raise ConfigError(errors)
        return self


@dataclass(frozen=True)
class StopTarget:
    """A parsed --stop-at: ``metric op value``, op '>=' or '<='."""

    metric: str
    op: str
    value: float

    def holds(self, epoch) -> bool:
        """Whether an epoch's result (anything with the metric as an attribute) meets the target."""
        reading = getattr(epoch, self.metric)
        return reading >= self.value if self.op == ">=" else reading <= self.value

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


def parse_stop_at(text: str) -> StopTarget | None:
    """'test_copy_acc>=0.99' → StopTarget; '' → None; ValueError (one line) for anything else."""
    text = (text or "").replace(" ", "")
    if not text:
        return None
    for op in (">=", "<="):
        metric, found, value = text.partition(op)
        if found:
            break
    else:
        raise ValueError(f"write METRIC>=VALUE or METRIC<=VALUE, e.g. test_copy_acc>=0.99, got {text!r}")
    if metric not in TARGET_METRICS:
        raise ValueError(f"unknown metric {metric!r}: choose one of {', '.join(TARGET_METRICS)}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"the target of {metric} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"the target of {metric} must be a finite number, got {value!r}")
    return StopTarget(metric, op, number)


# The settings that shape the weights: a fork must keep them, or its parent's weights do not fit.
WEIGHT_SHAPING = ("cell", "mult_form", "embedding_size", "hidden_size", "norm_m")


def weights_problem(parent: RunConfig, child: RunConfig) -> str | None:
    """Why ``child`` cannot start from ``parent``'s weights, in one line; None if it can (the
    task's lengths, the learning rate, the schedule, the epochs… may all change)."""
    for name in WEIGHT_SHAPING:
        if name == "mult_form" and child.cell not in MULT_CELLS:
            continue  # the plain cells have no multiplicative form
        if name == "norm_m" and child.cell not in MULT_CELLS:
            continue  # nor a layer-normalised m_t
        before, after = getattr(parent, name), getattr(child, name)
        if before != after:
            return (f"{SETTINGS[name].spelling} {after} differs from the parent's {before}: its weights do not fit "
                    f"(a fork keeps the cell, its form, the embedding and hidden sizes)")
    return None


def cell_label(config: RunConfig) -> str:
    """The cell as every page and report names it: 'mlstm' in Krause's form, 'mlstm (input form)'
    in the other, so the two forms are never averaged together."""
    if config.cell in MULT_CELLS and config.mult_form != MULT_FORMS[0]:
        return f"{config.cell} ({config.mult_form} form)"
    return config.cell


def mult_form_of(config: RunConfig) -> str | None:
    """The multiplicative form that ran, for the summaries: None for the cells that have no form."""
    return config.mult_form if config.cell in MULT_CELLS else None


SETTINGS: dict[str, Setting] = declared(RunConfig)


def varied_keys(configs: Sequence[RunConfig], ignore: Iterable[str] = ()) -> list[str]:
    """The settings (besides ``ignore``) whose value is not the same in every run, in declaration
    order. Each field is read as it is, without to_dict's deep copy (6× slower): Compare asks
    this of 200 configs several times a render."""
    skip = set(ignore)
    return [name for name in SETTINGS
            if name not in skip and len({repr(getattr(config, name)) for config in configs}) > 1]
