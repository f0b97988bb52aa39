"""Training and evaluation. Reports each epoch through a callback; knows no database.

One epoch: shuffled mini-batches of the training set; Adam; cross-entropy per time step
averaged; every gradient clamped to [-1, 1] (the original assignment's choice; ``clip='norm'`` is the option).
Then the test set, at the test lengths, fed in chunks of the training length with the state
carried across ``forward`` calls, as the seed did. At the end: copy accuracy by output position,
and over a range of test lengths (length generalisation).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from seqcopy.config import RunConfig, StopTarget, mult_form_of, parse_stop_at
from seqcopy.core import data, diagnostics
from seqcopy.core import resume as resume_state
from seqcopy.core.checkpoint import build_model
from seqcopy.core.data import Layout
from seqcopy.core.metrics import Counts, sequence_loss
from seqcopy.core.model import CopyModel, detach_state
from seqcopy.costs import EVAL_BATCH
from seqcopy.devices import resolve_device

SWEEP_SAMPLES = 250  # sequences per length in the final length sweep
SWEEP_FACTORS = (1, 2, 5)  # test lengths as multiples of the training length


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_acc: float
    train_copy_acc: float
    train_seq_acc: float
    test_loss: float
    test_acc: float
    test_copy_acc: float
    test_seq_acc: float
    seconds: float
    samples_per_sec: float
    lr: float
    stage_output_len: int  # the curriculum's output length this epoch (N when it is off)
    stage_seq_len: int
    # Memory on the fixed probe batch (seqcopy.core.diagnostics); None where not measured.
    memory_gate: float | None = None
    saturated_gates: float | None = None
    saliency_diagonal: float | None = None
    first_input_grad: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    config: RunConfig
    model: CopyModel
    epochs: list[EpochResult] = field(default_factory=list)
    position_acc: list[float] = field(default_factory=list)  # copy accuracy at output 1..N
    length_acc: list[dict] = field(default_factory=list)  # {seq_len, output_len, copy_acc, seq_acc}
    stopped: bool = False  # True when should_stop() ended training early
    diverged: str | None = None  # why training stopped on a non-finite loss, if it did
    target_epoch: int | None = None  # the epoch at which the --stop-at target was reached, if it was

    def summary(self) -> dict:
        """The run's final numbers, as the CLI prints them on its last line, and which
        multiplicative form ran (null for the cells that have none)."""
        last = self.epochs[-1] if self.epochs else None
        pick = (lambda name: round(getattr(last, name), 6)) if last else (lambda name: None)
        return {
            "cell": self.config.cell,
            "mult_form": mult_form_of(self.config),
            "seed": self.config.seed,
            "epochs": len(self.epochs),
            "train_loss": pick("train_loss"),
            "test_loss": pick("test_loss"),
            "train_acc": pick("train_acc"),
            "test_acc": pick("test_acc"),
            "train_copy_acc": pick("train_copy_acc"),
            "test_copy_acc": pick("test_copy_acc"),
            "test_seq_acc": pick("test_seq_acc"),
            "seconds": round(sum(e.seconds for e in self.epochs), 3),
        }


class Stopped(Exception):
    """Raised inside the loop when ``should_stop`` says so."""


class Diverged(Exception):
    """Raised inside the loop when a loss is NaN or infinite: the weights are ruined."""

    def __init__(self, where: str, what: str, value: float):
        super().__init__(f"training diverged {where}: {what} is {value}; try a lower learning rate or --clip norm")


def curriculum_stages(config: RunConfig) -> list[tuple[int, int]]:
    """The (K, N) of each curriculum stage: N grows from ``curriculum_start`` up to the configured
    N, doubling or by ``curriculum_step``, and K keeps the configured ratio K/N (so the last stage
    is the real task)."""
    final = (config.train_seq_len, config.train_output_len)
    if not config.curriculum:
        return [final]
    ratio = config.train_seq_len / config.train_output_len
    stages, output = [], min(config.curriculum_start, config.train_output_len)
    while output < config.train_output_len:
        stages.append((max(output, round(output * ratio)), output))
        output = output + config.curriculum_step if config.curriculum_step else output * 2
    return stages + [final]


def flush_denormals() -> None:
    """Count float32 values below its normal range (under 1.2e-38) as 0 in this thread's arithmetic.

    A trained cell's saturated gates make such values, and the CPU works on them far more slowly: a
    batch of trained Krause mLSTMs of copy-20 took 2–17× as long (bench/bench_denormals.py,
    bench/RESULTS.md). Runs stay deterministic; only those values change."""
    torch.set_flush_denormal(True)


def evaluate(
    model: CopyModel,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    layout: Layout,
    chunk: int,
    device: str,
    positions: bool = False,
) -> tuple[Counts, list[float]]:
    """Counts over a data set, feeding each sequence in chunks of ``chunk`` steps with the
    state carried across calls; optionally the copy accuracy per output position."""
    model.eval()
    counts = Counts()
    right_per_position = torch.zeros(layout.output)
    with torch.inference_mode():
        for start in range(0, len(inputs), EVAL_BATCH):
            x = inputs[start : start + EVAL_BATCH].to(device)
            y = targets[start : start + EVAL_BATCH].to(device)
            logits = run_in_chunks(model, x, chunk)
            counts.update(logits, y, layout.copy_start)
            if positions:
                right = logits.argmax(-1)[:, layout.copy_start :] == y[:, layout.copy_start :]
                right_per_position += right.float().sum(0).cpu()
    per_position = (right_per_position / max(len(inputs), 1)).tolist() if positions else []
    return counts, per_position


def run_in_chunks(model: CopyModel, x: torch.Tensor, chunk: int) -> torch.Tensor:
    """Logits of a (B, T) batch fed ``chunk`` steps at a time, state carried: equal to one pass."""
    state, pieces = None, []
    for piece in x.split(chunk, dim=1):
        logits, state = model(piece, state)
        state = detach_state(state)
        pieces.append(logits)
    return torch.cat(pieces, dim=1)


def _learning_rate(config: RunConfig, step: int, segment_steps: int, steps_per_epoch: int,
                   segment_start: int = 0) -> float:
    """Warm-up (linear) then constant, cosine or linear decay over the schedule's segment, the
    steps ``segment_start`` to ``segment_start + segment_steps``: the whole run, or the epochs a
    continuation added (a warm restart from --lr, without warm-up). 'plateau' is handled by its scheduler."""
    warmup = config.warmup_epochs * steps_per_epoch if segment_start == 0 else 0
    local = step - segment_start
    if warmup and local < warmup:
        return config.lr * (local + 1) / warmup
    progress = min((local - warmup) / max(segment_steps - warmup, 1), 1.0)
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * progress))
    if config.lr_schedule == "linear":  # Krause et al.'s decay: to 0 at the last step
        return config.lr * (1 - progress)
    return config.lr


class AfterEpoch:
    """What ``on_epoch_state`` gets as its second argument, after an epoch: calling it returns the
    resume state's bytes (taken only when asked); ``model`` holds the weights that epoch finished
    (read them, never train them); ``history`` is every EpochResult of the run so far, a resumed
    run's earlier ones included; ``stage_ends`` says whether this epoch is its curriculum stage's
    last: the curriculum moves on after it, or the run ends with it."""

    def __init__(self, take: Callable[[], bytes], model: CopyModel, history: list[EpochResult], stage_ends: bool):
        self._take, self.model, self.history, self.stage_ends = take, model, history, stage_ends

    def __call__(self) -> bytes:
        return self._take()


def _cpu(value):
    """A state_dict with every tensor on the CPU (an accelerator's state loads anywhere)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _cpu(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cpu(item) for item in value]
    return value


def train(
    config: RunConfig,
    *,
    on_batch: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bytes | resume_state.TrainState | resume_state.WeightsStart | None = None,
    on_epoch_state: Callable[[EpochResult, AfterEpoch, bool], None] | None = None,
) -> TrainResult:
    """Train one run. ``on_batch(done, total)`` reports progress within an epoch; ``should_stop()``
    is asked before every batch and ends the run early (the epoch in progress is dropped, finished
    epochs are kept).

    ``resume``: a resume state (seqcopy.core.resume) to go on from its next epoch, bit for bit as
    the run left alone on the same machine and thread count; or a checkpoint's bytes, whose
    weights a fork starts from. ``on_epoch_state(result, state, final)`` is called after each
    epoch with its EpochResult, an :class:`AfterEpoch` (called, it returns the resume state after
    it; it also shows the epoch's weights, for a snapshot), and whether this epoch ends the run
    (its last, or the --stop-at target reached); raising :class:`Stopped` from it ends the run
    there, that epoch kept."""
    loop = set_up(config, resume, on_batch=on_batch, should_stop=should_stop, on_epoch_state=on_epoch_state)
    try:
        if not _ended_already(loop):
            for epoch in range(loop.carried.epoch + 1, config.epochs + 1):
                if train_epoch(loop, epoch):
                    break
    except (Stopped, Diverged) as reason:
        # A stop inside an epoch leaves half-trained (or, diverged, NaN) weights; the run's
        # checkpoint must be the weights of the last epoch it reports, so put those back.
        if loop.finished_weights is not None:
            loop.model.load_state_dict(loop.finished_weights)
        loop.result.stopped = True
        if isinstance(reason, Diverged):
            loop.result.diverged = str(reason)
        return loop.result
    _length_sweep(loop.result, loop.device)
    return loop.result


@dataclass
class TrainLoop:
    """One run's live training objects, built by :func:`set_up`, and what it carries from epoch to
    epoch: ``carried`` holds the resume state's counters, and the objects here its saved form,
    which :meth:`snapshot` writes into it when a state is taken."""

    config: RunConfig
    device: str
    model: CopyModel
    optimiser: torch.optim.Optimizer
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None  # with --lr-schedule plateau only
    shuffle_rng: np.random.Generator  # the order of the training batches
    test_set: tuple[torch.Tensor, torch.Tensor, Layout]  # inputs, targets, their layout
    probe: tuple[torch.Tensor, torch.Tensor, Layout]  # seqcopy.core.diagnostics' fixed batch, on the device
    stages: list[tuple[int, int]]  # curriculum_stages(config)
    target: StopTarget | None  # the parsed --stop-at
    result: TrainResult
    carried: resume_state.TrainState
    on_batch: Callable[[int, int], None] | None = None
    should_stop: Callable[[], bool] | None = None
    on_epoch_state: Callable[[EpochResult, AfterEpoch, bool], None] | None = None
    finished_weights: dict | None = None  # the weights at the end of the last finished epoch
    train_set: tuple[Layout, torch.Tensor, torch.Tensor] | None = None
    drawn: tuple[int, int] | None = None  # the (stage, data_epoch) that train_set was drawn for

    def resume_from(self, state: bytes | resume_state.TrainState | resume_state.WeightsStart) -> None:
        """Put a resume state (or a fork's start weights) into the freshly built loop."""
        if isinstance(state, (bytes, bytearray)):
            state = resume_state.from_bytes(bytes(state))
        self.model.load_state_dict(state.model)
        if isinstance(state, resume_state.WeightsStart):
            return  # a fork: these weights, and everything else as a new run has it
        self.optimiser.load_state_dict(state.optimiser)
        if self.plateau is not None and state.plateau is not None:
            self.plateau.load_state_dict(state.plateau)
        self.shuffle_rng.bit_generator.state = state.shuffle_rng
        torch.set_rng_state(state.torch_rng)
        self.result.epochs = [EpochResult(**epoch) for epoch in state.epochs]
        self.carried = state.counters()
        config = self.config
        if config.epochs != state.planned_epochs:
            # A continuation asks for more epochs: the parent's --stop-at count ended the parent,
            # and must not end the child before its first epoch.
            self.carried.target_hits = 0
        if config.epochs > state.planned_epochs and config.lr_schedule in ("cosine", "linear"):
            # A continuation: its epochs decay again from --lr (a warm restart), since the run's own
            # decay ended at or near 0. Constant and plateau go on from the last learning rate.
            self.carried.segment_start = state.step
            self.carried.segment_steps = (config.epochs - state.epoch) * config.batches_per_epoch

    def snapshot(self) -> bytes:
        """The resume state after the epoch just finished, as bytes."""
        return replace(
            self.carried, planned_epochs=self.config.epochs,
            model={name: t.detach().cpu() for name, t in self.model.state_dict().items()},
            optimiser=_cpu(self.optimiser.state_dict()),
            plateau=self.plateau.state_dict() if self.plateau is not None else None,
            shuffle_rng=self.shuffle_rng.bit_generator.state, torch_rng=torch.get_rng_state(),
            epochs=[epoch.to_dict() for epoch in self.result.epochs],
        ).to_bytes()

    def training_set(self) -> tuple[Layout, torch.Tensor, torch.Tensor]:
        """The next epoch's training set, drawn again only when the stage or the fresh data moved."""
        if self.drawn != (self.carried.stage, self.carried.data_epoch):
            self.drawn = (self.carried.stage, self.carried.data_epoch)
            self.train_set = _stage_data(self.config, self.stages, *self.drawn)
        return self.train_set

    def test(self, positions: bool) -> tuple[Counts, list[float]]:
        """The test pass, in chunks of the training length; with ``positions`` also per output position."""
        inputs, targets, layout = self.test_set
        return evaluate(self.model, inputs, targets, layout, self.config.train_length, self.device, positions=positions)

    def keep_finished_weights(self) -> None:
        self.finished_weights = {name: t.detach().clone() for name, t in self.model.state_dict().items()}


def set_up(
    config: RunConfig,
    resume: bytes | resume_state.TrainState | resume_state.WeightsStart | None = None,
    **callbacks,
) -> TrainLoop:
    """A run's loop before its first epoch, or, given ``resume``, before the state's next one;
    ``callbacks`` are train()'s on_batch, should_stop and on_epoch_state."""
    config.check()
    device = resolve_device(config.device)
    flush_denormals()
    torch.manual_seed(config.seed)
    model = build_model(config).to(device)  # built as a new run is, so torch's generator moves the same
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    plateau = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, mode="max", factor=0.5, patience=2)
        if config.lr_schedule == "plateau"
        else None
    )
    test_layout = Layout(config.test_seq_len, config.padding, config.test_output_len)
    test_inputs, test_targets = data.random_sequences(
        data.generator(config.seed, data.TEST_STREAM), config.test_samples, test_layout
    )
    shuffle_rng = data.generator(config.seed, data.SHUFFLE_STREAM)
    probe_inputs, probe_targets, probe_layout = diagnostics.probe_batch(config)  # a stream of its own
    loop = TrainLoop(
        config=config, device=device, model=model, optimiser=optimiser, plateau=plateau, shuffle_rng=shuffle_rng,
        test_set=(test_inputs, test_targets, test_layout),
        probe=(probe_inputs.to(device), probe_targets.to(device), probe_layout),
        stages=curriculum_stages(config), target=parse_stop_at(config.stop_at),
        result=TrainResult(config=config, model=model),
        carried=resume_state.TrainState(segment_steps=config.epochs * config.batches_per_epoch),
        **callbacks,
    )
    if resume is not None:
        loop.resume_from(resume)
    if loop.carried.epoch:  # a resumed run: the state's weights are its last finished epoch's
        loop.keep_finished_weights()
    return loop


def _target_reached(loop: TrainLoop) -> bool:
    """Whether the --stop-at count carried so far has met its patience."""
    return loop.target is not None and loop.carried.target_hits >= loop.config.stop_patience


def _ended_already(loop: TrainLoop) -> bool:
    """A resume that lands where the run ends (its worker killed after the last epoch's write, or
    after the epoch that met the --stop-at target): no epoch is left to train, yet the final
    results are the run's all the same, from the weights that state holds. True when it did."""
    carried, config = loop.carried, loop.config
    if carried.epoch == 0 or carried.epoch < config.epochs and not _target_reached(loop):
        return False
    if _target_reached(loop):
        loop.result.target_epoch = carried.epoch
    loop.result.position_acc = loop.test(positions=True)[1]
    return True


def train_epoch(loop: TrainLoop, epoch: int) -> bool:
    """One epoch: its batches, its test pass and probe, its EpochResult, then the plateau
    scheduler's and the curriculum's move, the --stop-at count and ``on_epoch_state``; True when
    the run ends with it (its last epoch, or the --stop-at target reached)."""
    config, carried, result = loop.config, loop.carried, loop.result
    layout, inputs, targets = loop.training_set()
    loop.model.train()
    started = time.perf_counter()
    counts = _train_batches(loop, epoch, layout, inputs, targets)
    train_seconds = time.perf_counter() - started
    last_epoch = epoch == config.epochs  # its test pass also gives the per-position result
    test_counts, per_position = loop.test(positions=last_epoch)
    if not math.isfinite(test_counts.loss):  # the epoch's last step broke the weights
        raise Diverged(f"at the end of epoch {epoch}", "the test loss", test_counts.loss)
    seconds = time.perf_counter() - started
    memory = diagnostics.measure(loop.model, *loop.probe)  # reads the model; changes no weight, no stream
    epoch_result = EpochResult(
        epoch=epoch,
        train_loss=counts.loss,
        train_acc=counts.accuracy,
        train_copy_acc=counts.copy_accuracy,
        train_seq_acc=counts.sequence_accuracy,
        test_loss=test_counts.loss,
        test_acc=test_counts.accuracy,
        test_copy_acc=test_counts.copy_accuracy,
        test_seq_acc=test_counts.sequence_accuracy,
        seconds=seconds,
        samples_per_sec=len(inputs) / max(train_seconds, 1e-9),
        lr=loop.optimiser.param_groups[0]["lr"],
        stage_output_len=layout.output,
        stage_seq_len=layout.symbols,
        **memory.to_dict(),
    )
    result.epochs.append(epoch_result)
    loop.keep_finished_weights()
    carried.epoch = epoch
    stage_before = carried.stage
    _end_of_epoch(loop, counts, test_counts, epoch)
    if loop.target is not None:
        carried.target_hits = carried.target_hits + 1 if loop.target.holds(epoch_result) else 0
    reached = _target_reached(loop)
    if reached:
        result.target_epoch = epoch
        if not last_epoch:  # the per-position result of the weights it ends with
            _, per_position = loop.test(positions=True)
    if last_epoch or reached:
        result.position_acc = per_position
    if loop.on_epoch_state is not None:
        stage_ends = carried.stage != stage_before or last_epoch or reached
        loop.on_epoch_state(epoch_result, AfterEpoch(loop.snapshot, loop.model, result.epochs, stage_ends),
                            last_epoch or reached)
    return last_epoch or reached


def _train_batches(loop: TrainLoop, epoch: int, layout: Layout, inputs: torch.Tensor, targets: torch.Tensor) -> Counts:
    """The epoch's training pass: shuffled mini-batches, one optimiser step each."""
    config, carried, model, optimiser = loop.config, loop.carried, loop.model, loop.optimiser
    counts = Counts()
    batches = data.shuffled_batches(inputs, targets, config.batch_size, loop.shuffle_rng)
    for done, (x, y) in enumerate(batches, start=1):
        if loop.should_stop is not None and loop.should_stop():
            raise Stopped
        # The schedule sets the rate; with 'plateau' only through the warm-up, after which
        # ReduceLROnPlateau owns it.
        if loop.plateau is None or carried.step <= config.warmup_epochs * config.batches_per_epoch:
            for group in optimiser.param_groups:
                group["lr"] = _learning_rate(config, carried.step, carried.segment_steps,
                                             config.batches_per_epoch, carried.segment_start)
        x, y = x.to(loop.device), y.to(loop.device)
        logits, _ = model(x)
        loss = sequence_loss(logits, y)
        # One NaN step ruins every weight, so stop at the batch it happens. (The check waits for
        # the batch on an accelerator: small beside a sequence's kernel launches.)
        if not torch.isfinite(loss):
            raise Diverged(f"at epoch {epoch}, batch {done}", "the loss", loss.item())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip == "value":
            torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
        else:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        counts.update(logits.detach(), y, layout.copy_start, loss.detach())
        carried.step += 1
        if loop.on_batch is not None:
            loop.on_batch(done, config.batches_per_epoch)
    return counts


def _end_of_epoch(loop: TrainLoop, counts: Counts, test_counts: Counts, epoch: int) -> None:
    """The plateau scheduler's step and the curriculum's move, after an epoch: the next epoch's
    learning rate and training set, which the resume state then records. (They are taken after the
    last epoch too, so a continuation goes on as the run given more epochs would have.)"""
    config, carried = loop.config, loop.carried
    if loop.plateau is not None and epoch >= config.warmup_epochs:
        loop.plateau.step(test_counts.copy_accuracy)
    # The curriculum moves on once the current stage is copied well enough.
    if carried.stage < len(loop.stages) - 1 and counts.copy_accuracy >= config.curriculum_threshold:
        carried.stage, carried.data_epoch = carried.stage + 1, 0
    elif config.fresh_data:
        carried.data_epoch = epoch


def _stage_data(config: RunConfig, stages: list[tuple[int, int]], stage: int, epoch: int = 0):
    """The training set of a curriculum stage. Each stage draws from its own stream, and the last
    stage is the plain task's training set; with ``fresh_data`` every epoch after the first draws
    a new set (from a stream of its own, so runs stay reproducible)."""
    symbols, output = stages[stage]
    layout = Layout(symbols, config.padding, output)
    stream = data.TRAIN_STREAM if stage == len(stages) - 1 else 100 + stage
    rng = data.generator(config.seed, stream) if epoch == 0 else np.random.default_rng([config.seed, stream, epoch])
    inputs, targets = data.random_sequences(rng, config.train_samples, layout)
    return layout, inputs, targets


def _length_sweep(result: TrainResult, device) -> None:
    """Copy accuracy at several test lengths: the training length, 2× and 5× (generalisation)."""
    config, model = result.config, result.model
    rng = data.generator(config.seed, data.SWEEP_STREAM)
    ratio = config.train_output_len / config.train_seq_len
    for factor in SWEEP_FACTORS:
        symbols = config.train_seq_len * factor
        layout = Layout(symbols, config.padding, max(1, round(symbols * ratio)))
        inputs, targets = data.random_sequences(rng, min(config.test_samples, SWEEP_SAMPLES), layout)
        counts, _ = evaluate(model, inputs, targets, layout, config.train_length, device)
        result.length_acc.append(
            {
                "seq_len": symbols,
                "output_len": layout.output,
                "copy_acc": counts.copy_accuracy,
                "seq_acc": counts.sequence_accuracy,
            }
        )
