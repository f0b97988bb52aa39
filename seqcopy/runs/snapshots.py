"""Which epochs' weights a run keeps for the Playground: the retention rule, a pure function.

A run keeps a snapshot (its checkpoint bytes, seqcopy.core.checkpoint) of the weights at:

* the log-spaced epochs 1, 2, 4, 8, … (at most 14 of them: MAX_EPOCHS is 10,000 < 2**14),
* the last epoch of each curriculum stage (the run's last epoch ends its last stage),
* the epoch with the best test copy accuracy so far (the earliest of equals),

and never more than :data:`MAX_SNAPSHOTS`. Log-spaced epochs and stage ends take the
``MAX_SNAPSHOTS - 1`` slots in epoch order, first come first kept; the one slot left is the best
so far. So a run holds at most ``MAX_SNAPSHOTS`` snapshots at any time, whatever its epochs or
stages: at the original-final size (a 296,145-byte checkpoint) that is at most 24 × 296,145 =
7,107,480 bytes (6.8 MiB) per run, beside its final checkpoint and resume state (docs/scaling.md).

The rule is monotone: an epoch it drops is never kept again later (log-spacing is fixed by the
number, a stage end is known at its epoch and the slots fill in epoch order, a best once beaten
stays beaten), so pruning never deletes weights that a later epoch would want back, and a run
resumed after preemption, seeing the same history, keeps exactly the snapshots of a run left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_SNAPSHOTS = 24  # per run, whatever its epochs: the store's growth is bounded by this × a checkpoint


@dataclass(frozen=True)
class EpochPoint:
    """What the rule reads of one finished epoch."""

    epoch: int
    stage_output_len: int  # the curriculum stage's N (stages have distinct N, growing)
    test_copy_acc: float


def is_log_spaced(epoch: int) -> bool:
    """1, 2, 4, 8, …: a power of two."""
    return epoch >= 1 and epoch & (epoch - 1) == 0


def retained(history: Sequence[EpochPoint], last_ends_stage: bool, cap: int = MAX_SNAPSHOTS) -> dict[int, str]:
    """epoch → why it is kept ("log-spaced", "end of stage N=8", "best so far", joined by ", "),
    for a run whose finished epochs are ``history`` (in epoch order). A stage's end is an epoch
    whose next epoch trains another N; for the last epoch, ``last_ends_stage`` says (the trainer
    knows whether its curriculum moves on, or the run ends). At most ``cap`` (≥ 1) epochs."""
    if cap < 1:
        raise ValueError(f"a snapshot cap is at least 1, got {cap}")
    reasons: dict[int, list[str]] = {}
    for index, point in enumerate(history):
        if len(reasons) == cap - 1:
            break  # the slots are full: later log-spaced epochs and stage ends go unkept
        why = ["log-spaced"] if is_log_spaced(point.epoch) else []
        last = index == len(history) - 1
        if last_ends_stage if last else history[index + 1].stage_output_len != point.stage_output_len:
            why.append(f"end of stage N={point.stage_output_len}")
        if why:
            reasons[point.epoch] = why
    best = _best(history)
    if best is not None:
        reasons.setdefault(best, []).append("best so far")
    return {epoch: ", ".join(why) for epoch, why in sorted(reasons.items())}


def _best(history: Sequence[EpochPoint]) -> int | None:
    """The epoch of the highest test copy accuracy so far, the earliest of equals; None for none."""
    best = None
    for point in history:
        if best is None or point.test_copy_acc > best.test_copy_acc:
            best = point
    return None if best is None else best.epoch


def bound_bytes(checkpoint_size: int, cap: int = MAX_SNAPSHOTS) -> int:
    """The most bytes a run's snapshots take: ``cap`` checkpoints of ``checkpoint_size`` bytes."""
    return cap * checkpoint_size
