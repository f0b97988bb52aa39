"""Runs of a sweep → the tables its figures draw: one row per run with the swept settings and
the final metrics, the mean ± spread per line and setting value, and when each run first
reached a copy-accuracy threshold. Pure functions of plain data, tested without a database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from seqcopy.config import SETTINGS, cell_label, varied_keys
from seqcopy.results.report import first_reaching
from seqcopy.results.spread import format_summary, solve_rate, summarise
from seqcopy.results.verdicts import verdict
from seqcopy.runs.schema import LATEST_METRICS
from seqcopy.runs.states import RunStatus
from seqcopy.runs.store import RunInfo, SweepInfo
from seqcopy.text import parse_id
from seqcopy.ui.escape import plotly
from seqcopy.ui.frames import GroupKeys, group_of, label_digits, lower_is_better, run_label

NOT_PLOTTED = ("seed", "tag")  # never an x axis: seeds are averaged, a tag names the runs


def sweep_labels(sweeps: Sequence[SweepInfo], runs: Sequence[RunInfo]) -> dict[int, str]:
    """Each sweep that still has runs → how a select box lists it (plain text, never markdown):
    '#3 length study (60 runs)', newest first."""
    counts = Counter(run.sweep_id for run in runs if run.sweep_id is not None)
    return {sweep.id: f"#{sweep.id} {sweep.name} ({counts[sweep.id]} run{'' if counts[sweep.id] == 1 else 's'})"
            for sweep in sorted(sweeps, key=lambda s: -s.id) if counts[sweep.id]}


def sweep_from_url(text: str, known: Iterable[int]) -> int | None:
    """?sweep=3 → 3 when this store has sweep 3 (with runs); None for anything else (a link may
    hold any text: thousands of digits too)."""
    try:
        sweep_id = parse_id(text, "sweep")
    except ValueError:
        return None
    return sweep_id if sweep_id in set(known) else None


def setting_choices(runs: Sequence[RunInfo], swept_first: Sequence[str] = ()) -> list[str]:
    """The settings these runs vary that a figure can put on its x axis, a sweep's own first."""
    varied = [key for key in varied_keys([run.config for run in runs]) if key not in NOT_PLOTTED]
    return [key for key in swept_first if key in varied] + [key for key in varied if key not in swept_first]


def is_numeric(values: Sequence) -> bool:
    """Numbers (not on/off) go on a numeric axis; anything else is a category."""
    return all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in values
    )


def is_categorical(values: Sequence) -> bool:
    """Values a figure draws as categories, each its own point with no line between: anything
    not a number (a cell, a form, on/off), and numbers of fewer than two distinct values."""
    return not is_numeric(values) or len(set(values)) < 2


def spans_a_decade(values: Sequence) -> bool:
    """Positive numbers whose largest is at least ten times the smallest: a log axis reads them."""
    if not len(values) or not is_numeric(values):
        return False
    low, high = float(min(values)), float(max(values))
    return low > 0 and high / low >= 10


ALL_RUNS = "all runs"


def settings_frame(runs: Sequence[RunInfo], x: str | None, group: GroupKeys | None,
                   keys: Sequence[str] = ()) -> pd.DataFrame:
    """One row per run: id, label, seed, the x setting (ALL_RUNS for None: one point), the line it
    belongs to (its value of the key(s) ``group``; one line of all runs for None or no keys), its
    status and whether a search's pruner stopped it, its final (latest) metrics, and a column for
    each setting in ``keys`` (for parallel coordinates)."""
    columns = ["run_id", "label", "seed", "x", "group", "status", "pruned", *LATEST_METRICS, *keys]
    digits = label_digits(runs, group) if group else 3
    rows = [
        [
            run.id,
            run_label(run.id, cell_label(run.config), run.config.seed),
            run.config.seed,
            getattr(run.config, x) if x else ALL_RUNS,
            plotly(group_of(run, group, digits)) if group else ALL_RUNS,
            str(run.status),  # the plain word, as runs_frame has it
            run.pruned,
            *(run.latest.get(name) for name in LATEST_METRICS),
            *(getattr(run.config, key) for key in keys),
        ]
        for run in runs
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({name: float for name in LATEST_METRICS})


def x_order(values: Sequence) -> list:
    """The x values in axis order: numbers ascending, anything else as text (False before True)."""
    unique = list(dict.fromkeys(values))
    if is_numeric(unique):
        return sorted(unique)
    return sorted(unique, key=lambda v: (str(v) not in ("False", "True"), str(v)))


def summary_by_setting(frame: pd.DataFrame, y: str, error: str) -> pd.DataFrame:
    """Per line and x value: the mean of ``y`` over its runs, the spread's half-width (NaN for
    one run), n, and the band's lower and upper edges."""
    rows = []
    for (group, x), members in frame.groupby(["group", "x"], sort=False):
        mean, half, n = summarise(members[y].tolist(), error)
        if mean is None:
            continue
        half = np.nan if half is None else half
        rows.append({"group": group, "x": x, "mean": mean, "half": half, "n": n,
                     "lower": mean - np.nan_to_num(half), "upper": mean + np.nan_to_num(half)})
    summary = pd.DataFrame(rows, columns=["group", "x", "mean", "half", "n", "lower", "upper"])
    order = {value: i for i, value in enumerate(x_order(list(summary["x"])))}
    return summary.assign(_order=summary["x"].map(order)).sort_values(["group", "_order"]).drop(columns="_order")


def line_keys(runs: Sequence[RunInfo], x: str, keys: Sequence[str]) -> tuple[str, ...]:
    """The grouping keys that make the lines of a figure against ``x``: ``keys`` less ``x`` and
    less any key that moves with it (the same value at each x, as a setting tied to it does:
    train_output_len=train_seq_len), which would otherwise split each line into single points."""
    slices: dict[str, list] = {}
    for run in runs:
        slices.setdefault(repr(getattr(run.config, x)), []).append(run)
    digits = label_digits(runs, keys)
    return tuple(key for key in keys if key != x and any(
        len({group_of(run, key, digits) for run in members}) > 1 for members in slices.values()))


def mixed_settings(runs: Sequence[RunInfo], x: str, group: GroupKeys | None) -> list[str]:
    """Settings that differ between the runs averaged into one point (same line, same x):
    besides the seed, each point should hold repeats of one configuration."""
    points: dict[tuple, list] = {}
    digits = label_digits(runs, group) if group else 3
    for run in runs:
        line = group_of(run, group, digits) if group else None  # the lines settings_frame draws
        points.setdefault((line, repr(getattr(run.config, x))), []).append(run.config)
    ignored = ("seed", "tag", x, *([group] if isinstance(group, str) else group or ()))
    mixed = {key for configs in points.values() for key in varied_keys(configs, ignore=ignored)}
    return [key for key in SETTINGS if key in mixed]


def convergence_frame(frame: pd.DataFrame, epochs: Mapping[int, list[dict]], threshold: float) -> pd.DataFrame:
    """``frame`` (settings_frame) with when each run first reached ``threshold`` test copy
    accuracy: ``reached``, ``epochs_to`` and ``minutes_to`` (of training and testing, summed over
    epochs), and how far runs went that never did (``epochs_run``, ``minutes_run``)."""
    out = frame.copy()
    reached, epochs_to, minutes_to, epochs_run, minutes_run = [], [], [], [], []
    for run_id in out["run_id"]:
        history = epochs.get(int(run_id), [])
        first = first_reaching(history, threshold)
        reached.append(first is not None)
        epochs_to.append(float(first[0]) if first else np.nan)
        minutes_to.append(first[1] if first else np.nan)
        epochs_run.append(float(history[-1]["epoch"]) if history else 0.0)
        minutes_run.append(sum(row["seconds"] for row in history) / 60)
    return out.assign(reached=reached, epochs_to=epochs_to, minutes_to=minutes_to,
                      epochs_run=epochs_run, minutes_run=minutes_run)


def solve_rate_table(reached: pd.DataFrame, error: str) -> pd.DataFrame:
    """Per line (``group``) and x value of a convergence_frame: the runs, how many reached the
    threshold with the Wilson 95% interval of that share (seqcopy.results.spread.solve_rate),
    and the epochs those runs took as 'mean ± spread'."""
    rows = []
    for (group, x), members in reached.groupby(["group", "x"], sort=False):
        solved, runs, low, high = solve_rate(list(members["reached"]))
        rows.append({"group": group, "x": x, "runs": runs, "solved": f"{solved}/{runs}", "share": solved / runs,
                     "low": low, "high": high,
                     "epochs to it": format_summary(list(members["epochs_to"]), error, 1, labelled=False)})
    table = pd.DataFrame(rows, columns=["group", "x", "runs", "solved", "share", "low", "high", "epochs to it"])
    order = {value: i for i, value in enumerate(x_order(list(table["x"])))}
    return table.assign(_o=table["x"].map(order)).sort_values(["group", "_o"]).drop(columns="_o").reset_index(drop=True)


BASELINE_CELL = "lstm"  # the assignment's baseline cell, the one the docs' verdicts measure others by


def default_reference(frame: pd.DataFrame) -> str | None:
    """The group (``group`` of a settings_frame) that verdicts are first drawn against: the one
    with the most seeds among its completed runs that no pruner stopped (a pruned trial is a
    shorter run, not a measure of its settings), whose mean is the firmest to measure others by;
    on a tie the first lstm group when one ties (group_of names the cell bare: 'lstm',
    'lstm, train_seq_len=8'), else the first tied group in name order. None for no runs."""
    groups = sorted(frame["group"].unique())
    if not groups:
        return None
    completed = frame[(frame["status"] == RunStatus.COMPLETED) & ~frame["pruned"].astype(bool)]
    seeds = completed.groupby("group")["seed"].nunique()
    most = max(int(seeds.get(group, 0)) for group in groups)
    tied = [group for group in groups if int(seeds.get(group, 0)) == most]
    return next((group for group in tied if BASELINE_CELL in [part.strip() for part in str(group).split(",")]),
                tied[0])


VERDICT_COLUMNS = ["group", "x", "n", "n_reference", "paired", "test", "difference", "low", "high", "p",
                   "permutation_p", "clear", "interval", "short", "verdict"]


def verdicts_frame(frame: pd.DataFrame, y: str, reference: str) -> pd.DataFrame:
    """Each line (``group``) of a settings_frame other than ``reference``, against it, at each x
    value where both have runs: the difference of the final ``y``'s means with its 95% interval
    (also as rounded text, ``interval``), the test (paired by seed when both ran the same seeds),
    p-values, whether the difference is clear, and the verdict in a few words (``short``: better
    or worse for ``y``, lower for a loss) and in a sentence (seqcopy.results.verdicts.verdict)."""
    rows = []
    for x, at_x in frame.groupby("x", sort=False):
        base = at_x[at_x["group"] == reference]
        if base.empty:
            continue
        by_seed = dict(zip(base["seed"], base[y], strict=True))
        for group, members in at_x[at_x["group"] != reference].groupby("group", sort=True):
            result = verdict(by_seed, dict(zip(members["seed"], members[y], strict=True)))
            rows.append({"group": group, "x": x, "n": result.n_group, "n_reference": result.n_reference,
                         "paired": result.paired, "test": result.test, "difference": result.difference,
                         "low": result.low, "high": result.high, "p": result.p,
                         "permutation_p": result.permutation_p, "clear": result.clear,
                         "interval": result.interval_text(significant=True), "short": result.short(lower_is_better(y)),
                         "verdict": result.describe()})
    table = pd.DataFrame(rows, columns=VERDICT_COLUMNS).astype(
        {"difference": float, "low": float, "high": float, "p": float, "permutation_p": float})
    order = {value: i for i, value in enumerate(x_order(list(table["x"])))}
    return table.assign(_o=table["x"].map(order)).sort_values(["group", "_o"]).drop(columns="_o").reset_index(drop=True)


def head_to_head(frame: pd.DataFrame, y: str, reference: str | None) -> list[str]:
    """Compare's answer at the top: each group of a settings_frame (its ``group``: the groups the
    page shows, every run at one x) against ``reference`` on the final ``y``, one sentence each
    (seqcopy.results.verdicts.Verdict.headline). Empty when there is nothing to set side by side:
    one group, no reference among them, or a group holding two runs of one seed (runs that
    differ in more than the grouping, which no pairing by seed can measure)."""
    frame = frame.dropna(subset=[y])
    groups = sorted(frame["group"].unique())
    if reference not in groups or len(groups) < 2 or frame.duplicated(["group", "seed"]).any():
        return []
    base = frame[frame["group"] == reference]
    by_seed = dict(zip(base["seed"], base[y], strict=True))
    lines = []
    for group in groups:
        if group == reference:
            continue
        members = frame[frame["group"] == group]
        other = dict(zip(members["seed"], members[y], strict=True))
        result = verdict(by_seed, other)
        lines.append(result.headline(group, reference, lower_is_better(y), sorted(set(by_seed) & set(other))))
    return lines
