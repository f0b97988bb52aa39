"""The original assignment's training plots as PNG files (matplotlib, Agg): loss, accuracy and copy accuracy per epoch.

Each plot shows the training and the test curve. The accuracy plot carries the accuracy of a model
that never copies (blanks right, copy guessed), which accuracy over all positions reaches without
learning anything; the copy-accuracy plot carries the chance level 1/9.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from seqcopy.config import RunConfig
from seqcopy.core.metrics import blank_baseline_accuracy
from seqcopy.core.train import EpochResult
from seqcopy.vocab import CHANCE_LEVEL

LOSS_PLOT = "train_loss.png"  # the original assignment's names
ACCURACY_PLOT = "train_accuracy.png"
COPY_ACCURACY_PLOT = "train_copy_accuracy.png"
PLOT_FILES = (LOSS_PLOT, ACCURACY_PLOT, COPY_ACCURACY_PLOT)


def _figure(title: str, ylabel: str) -> tuple[Figure, object]:
    # A Figure with its own Agg canvas, not pyplot: no global state, no display needed.
    figure = Figure(figsize=(6, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    return figure, axes


def _curves(axes, epochs: Sequence[EpochResult], metric: str) -> list[int]:
    x = [e.epoch for e in epochs]
    axes.plot(x, [getattr(e, f"train_{metric}") for e in epochs], marker="o", markersize=3, label="train")
    axes.plot(x, [getattr(e, f"test_{metric}") for e in epochs], marker="o", markersize=3, label="test")
    return x


def loss_figure(epochs: Sequence[EpochResult]) -> Figure:
    figure, axes = _figure("Loss (cross-entropy per step)", "loss")
    _curves(axes, epochs, "loss")
    axes.legend()
    return figure


def accuracy_figure(epochs: Sequence[EpochResult], config: RunConfig) -> Figure:
    figure, axes = _figure("Accuracy over all positions", "accuracy")
    x = _curves(axes, epochs, "acc")
    # The training lengths change with the curriculum stage, so its baseline is drawn per epoch.
    train_baseline = [blank_baseline_accuracy(e.stage_seq_len, config.padding, e.stage_output_len) for e in epochs]
    test_baseline = blank_baseline_accuracy(config.test_seq_len, config.padding, config.test_output_len)
    if all(value == test_baseline for value in train_baseline):
        axes.axhline(test_baseline, color="grey", linestyle=":", label="never copying")
    else:
        axes.plot(x, train_baseline, color="C0", linestyle=":", label="never copying, train lengths")
        axes.axhline(test_baseline, color="C1", linestyle=":", label="never copying, test lengths")
    axes.set_ylim(0, 1.02)
    axes.legend()
    return figure


def copy_accuracy_figure(epochs: Sequence[EpochResult]) -> Figure:
    figure, axes = _figure("Copy accuracy (target symbols only)", "copy accuracy")
    _curves(axes, epochs, "copy_acc")
    axes.axhline(CHANCE_LEVEL, color="grey", linestyle="--", label=f"chance 1/9 = {CHANCE_LEVEL:.3f}")
    axes.set_ylim(0, 1.02)
    axes.legend()
    return figure


def write_training_plots(folder: Path, epochs: Sequence[EpochResult], config: RunConfig) -> list[Path]:
    """Write the three plots into ``folder``; returns their paths."""
    figures = {
        LOSS_PLOT: loss_figure(epochs),
        ACCURACY_PLOT: accuracy_figure(epochs, config),
        COPY_ACCURACY_PLOT: copy_accuracy_figure(epochs),
    }
    paths = []
    for name, figure in figures.items():
        path = folder / name
        figure.savefig(path, format="png")
        paths.append(path)
    return paths
