"""``python -m seqcopy report``: a store's completed runs as a markdown results table.

Runs are grouped by tag (one experiment per tag) and cell; each row gives the mean ± std over
seeds of the final test copy accuracy and sequence accuracy, and how many epochs and minutes the
runs took to first reach 90% and 99% test copy accuracy ("—" when some seed never did).
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from .config import CELL_NAMES
from .store import Store

THRESHOLDS = (0.90, 0.99)


def mean_std(values: list[float], digits: int = 3) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def first_reaching(epochs: list[dict], threshold: float) -> tuple[int, float] | None:
    """(epoch, minutes of training so far) when test copy accuracy first reached ``threshold``."""
    seconds = 0.0
    for row in epochs:
        seconds += row["seconds"]
        if row["test_copy_acc"] >= threshold:
            return row["epoch"], seconds / 60
    return None


def time_to(reached: list[tuple[int, float] | None]) -> str:
    if not reached:
        return "—"
    missing = sum(item is None for item in reached)
    if missing:
        return f"not reached by {missing}/{len(reached)}"
    epochs = [float(item[0]) for item in reached]
    minutes = [item[1] for item in reached]
    return f"{mean_std(epochs, 1)} ep / {mean_std(minutes, 2)} min"


def build_report(store: Store, tags: list[str] | None = None) -> str:
    runs = [r for r in store.list_runs(statuses=["completed"]) if tags is None or r.tag in tags]
    if not runs:
        return "No completed runs in this store."
    epochs_by_run: dict[int, list[dict]] = defaultdict(list)
    for row in store.epochs([r.id for r in runs]):
        epochs_by_run[row["run_id"]].append(row)
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for run in runs:
        groups[(run.tag, run.config.cell)].append(run)
    for members in groups.values():
        members.sort(key=lambda r: r.config.seed)

    order = {name: i for i, name in enumerate(CELL_NAMES)}
    lines = []
    for tag in sorted({tag for tag, _ in groups}):
        sample = next(runs for (t, _), runs in groups.items() if t == tag)[0].config
        lines += [
            f"### {tag or '(no tag)'}",
            "",
            f"K={sample.train_seq_len}, N={sample.train_output_len}, P={sample.padding}, hidden {sample.hidden_size}, "
            f"lr {sample.lr}, {sample.epochs} epochs × {sample.train_samples} samples, test K={sample.test_seq_len} "
            f"N={sample.test_output_len}{', curriculum' if sample.curriculum else ''}",
            "",
            "| cell | seeds | test copy acc | test seq acc | test acc (all positions) | to 90% copy | to 99% copy | wall time |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for (_, cell), members in sorted(((k, v) for k, v in groups.items() if k[0] == tag), key=lambda kv: order.get(kv[0][1], 99)):
            histories = [epochs_by_run[r.id] for r in members]
            finals = [h[-1] for h in histories if h]
            wall = [sum(row["seconds"] for row in h) / 60 for h in histories]
            lines.append(
                f"| {cell} | {len(members)} ({', '.join(str(r.config.seed) for r in members)}) "
                f"| {mean_std([f['test_copy_acc'] for f in finals])} "
                f"| {mean_std([f['test_seq_acc'] for f in finals])} "
                f"| {mean_std([f['test_acc'] for f in finals])} "
                + "".join(f"| {time_to([first_reaching(h, t) for h in histories])} " for t in THRESHOLDS)
                + f"| {mean_std(wall, 1)} min |"
            )
        lines.append("")
    lines.append("Copy accuracy counts only the copied symbols (chance 1/9 = 0.111); accuracy over all positions includes the blanks.")
    return "\n".join(lines)
