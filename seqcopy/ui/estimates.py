"""How long and how much memory a queued grid of runs will take, before it is queued.

``RunConfig.estimate_flops_per_epoch`` counts matrix-product FLOPs, but small recurrent models on
a CPU are bound by the per-step overhead of launching kernels, not by FLOPs (measured on a 2-core
machine: ≈0.5 ms per time step per batch for small models, ≈30 GFLOP/s for larger ones). So an
epoch is predicted as the slower of the two limits, each taken a little conservatively, and where this store holds
finished epochs the prediction is scaled by how the past runs compared with their own prediction.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from seqcopy.config import RunConfig
from seqcopy.costs import EVAL_BATCH

CONSERVATIVE_FLOPS_PER_S = 20e9  # below the ≈30 GFLOP/s measured on 2 cores (Quick demo preset)
STEP_OVERHEAD_S = 0.6e-3  # per recurrent step of one batch (forward + backward); measured ≈0.5 ms


def predicted_epoch_seconds(config: RunConfig) -> float:
    """The uncalibrated prediction of one epoch's wall time."""
    train_steps = config.batches_per_epoch * config.train_length
    test_steps = math.ceil(config.test_samples / EVAL_BATCH) * config.test_length / 3  # no backward
    compute_bound = config.estimate_flops_per_epoch() / CONSERVATIVE_FLOPS_PER_S
    overhead_bound = (train_steps + test_steps) * STEP_OVERHEAD_S
    return max(compute_bound, overhead_bound)


def calibration(history: Iterable[tuple[RunConfig, float]]) -> float | None:
    """Median ratio measured / predicted over (config, measured seconds per epoch) pairs of past
    runs; None without history. Clamped so one odd run cannot make the estimate absurd."""
    ratios = [seconds / predicted_epoch_seconds(config) for config, seconds in history if seconds > 0]
    if not ratios:
        return None
    return min(10.0, max(0.05, statistics.median(ratios)))


@dataclass(frozen=True)
class GridEstimate:
    runs: int
    seconds_per_run: list[float]
    peak_bytes: int  # the largest single run: one worker trains one run at a time
    calibrated: bool

    @property
    def total_seconds(self) -> float:
        """With one worker, runs go one after another."""
        return float(sum(self.seconds_per_run))

    def wall_seconds(self, workers: int) -> float:
        """With several workers, each takes the next queued run as it frees up (queue order)."""
        free_at = [0.0] * max(workers, 1)
        for seconds in self.seconds_per_run:
            soonest = min(range(len(free_at)), key=free_at.__getitem__)
            free_at[soonest] += seconds
        return max(free_at)


def estimate_grid(configs: Sequence[RunConfig], factor: float | None = None) -> GridEstimate:
    seconds = [predicted_epoch_seconds(c) * c.epochs * (factor or 1.0) for c in configs]
    peak = max((c.estimate_memory_bytes() for c in configs), default=0)
    return GridEstimate(runs=len(configs), seconds_per_run=seconds, peak_bytes=peak, calibrated=factor is not None)


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return "< 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def format_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
