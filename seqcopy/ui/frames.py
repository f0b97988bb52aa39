"""Store rows → pandas DataFrames, and the small reshapes the pages and figures need.

Everything here is a pure function of plain data so it can be tested without a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from seqcopy.config import RunConfig, cell_label, varied_keys
from seqcopy.results.spread import DEFAULT_ERROR, describe, format_summary
from seqcopy.runs.provenance import environment_rows
from seqcopy.runs.schema import DIAGNOSTIC_METRICS, EPOCH_METRICS
from seqcopy.runs.states import RunStatus
from seqcopy.runs.store import RunInfo
from seqcopy.text import parse_id, rounded, shorten
from seqcopy.ui import escape

RUN_COLUMNS = [
    "id", "cell", "seed", "status", "shown_status", "badges", "progress", "epochs", "epochs_done", "epochs_total",
    "test_copy_acc", "test_acc", "test_seq_acc", "test_loss", "train_loss", "tag", "sweep", "created", "duration_s",
    "error", "lineage",
]
EPOCH_COLUMNS = ["run_id", "epoch", "wall_time", "stage_output_len", "stage_seq_len", *EPOCH_METRICS,
                 *DIAGNOSTIC_METRICS]


def run_label(run_id: int, cell: str, seed: int) -> str:
    """The short name a run has in legends: '#12 lstm s0'."""
    return f"#{run_id} {cell} s{seed}"


def runs_frame(runs: Sequence[RunInfo], now: float | None = None) -> pd.DataFrame:
    """One row per run, newest first, with the latest metrics; no epochs are read."""
    rows = []
    for run in runs:
        end = run.finished_at or (now if run.status == RunStatus.RUNNING else None)
        duration = (end - run.started_at) if (end and run.started_at) else np.nan
        rows.append(
            {
                "id": run.id,
                "cell": cell_label(run.config),
                "seed": run.config.seed,
                "status": str(run.status),  # the plain word: the status filter matches it
                "shown_status": run.shown_status,  # with its badges: what the table shows
                "badges": badges_text(run),
                "progress": run.epochs_done / max(run.epochs_total, 1),
                "epochs": f"{run.epochs_done}/{run.epochs_total}",
                "epochs_done": run.epochs_done,
                "epochs_total": run.epochs_total,
                **{
                    name: run.latest.get(name)
                    for name in ("test_copy_acc", "test_acc", "test_seq_acc", "test_loss", "train_loss")
                },
                "tag": run.tag,
                "sweep": run.sweep_id,
                "created": pd.Timestamp.fromtimestamp(run.created_at),  # server-local, as on Launch
                "duration_s": duration,
                "error": (run.error or "").splitlines()[0] if run.error else "",
                "lineage": run.lineage,  # 'from #12 @ epoch 30'
            }
        )
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for name in ("test_copy_acc", "test_acc", "test_seq_acc", "test_loss", "train_loss", "duration_s"):
        frame[name] = frame[name].astype(float)
    return frame


def badges_text(run: RunInfo) -> str:
    """'preempted, forked': the run's badges as plain words, '' for none (a CSV cell, a filter's match)."""
    return ", ".join(str(badge) for badge in run.badges)


def filter_runs(
    frame: pd.DataFrame, cells: Iterable[str] = (), statuses: Iterable[str] = (), tags: Iterable[str] = (),
    badges: Iterable[str] = (),
) -> pd.DataFrame:
    """Rows matching every non-empty filter (an empty filter keeps everything); a row matches
    the badge filter when it has any of the badges asked for."""
    mask = pd.Series(True, index=frame.index)
    for column, wanted in (("cell", cells), ("status", statuses), ("tag", tags)):
        wanted = list(wanted)
        if wanted:
            mask &= frame[column].isin(wanted)
    wanted = set(badges)
    if wanted:
        mask &= frame["badges"].map(lambda text: bool(wanted & set(text.split(", "))))
    return frame[mask]


def fork_offset(run: RunInfo | None) -> int:
    """Epochs to add to a run's own epoch numbers to draw it on its lineage's axis: a fork trains
    epochs from 1 but starts from its parent's weights after ``parent_epoch``; a continuation
    already numbers its epochs on from the parent's."""
    if run is None or run.parent_id is None or run.continues_parent or run.parent_epoch is None:
        return 0
    return int(run.parent_epoch)


def epochs_frame(rows: Sequence[Mapping], runs: Mapping[int, RunInfo], lineage_axis: bool = False) -> pd.DataFrame:
    """Epoch rows with each run's label, cell and seed, and the minutes since it started;
    ``run_epoch`` is the run's own epoch number. With ``lineage_axis``, ``epoch`` is where the
    epoch falls on its lineage's axis: a fork's epoch 1 comes after its parent's epoch it forked
    from (fork_offset), so its curve goes on from the parent's instead of lying on top of it."""
    frame = pd.DataFrame(list(rows), columns=EPOCH_COLUMNS).astype({name: float for name in DIAGNOSTIC_METRICS})
    if frame.empty:
        return frame.assign(label=pd.Series(dtype=str), cell=pd.Series(dtype=str),
                            seed=pd.Series(dtype=int), minutes=pd.Series(dtype=float),
                            run_epoch=pd.Series(dtype=int))
    # One merge with a small per-run table: a per-row lookup is slow on 10,000 epochs.
    ids = [int(i) for i in frame["run_id"].unique()]
    meta = pd.DataFrame({
        "run_id": ids,
        "label": [run_label(i, cell_label(runs[i].config), runs[i].config.seed) if i in runs else f"#{i}" for i in ids],
        "cell": [cell_label(runs[i].config) if i in runs else "?" for i in ids],
        "seed": [runs[i].config.seed if i in runs else -1 for i in ids],
        "started": [runs[i].started_at if i in runs and runs[i].started_at else np.nan for i in ids],
        "offset": [fork_offset(runs.get(i)) if lineage_axis else 0 for i in ids],
    })
    frame = frame.merge(meta, on="run_id", how="left")
    frame["run_epoch"] = frame["epoch"]
    frame["epoch"] = frame["epoch"] + frame["offset"]
    # Wall time from the run's start (or its first epoch's start, for runs never claimed).
    first = frame.groupby("run_id")["wall_time"].transform("min") - frame.groupby("run_id")["seconds"].transform(
        "first"
    )
    frame["minutes"] = (frame["wall_time"] - frame["started"].fillna(first)) / 60.0
    return frame.drop(columns=["started", "offset"])


def metrics_export(rows: Sequence[Mapping], runs: Mapping[int, RunInfo]) -> pd.DataFrame:
    """The CSV of Runs' download: each epoch row, exact, with what tells its run apart: cell,
    seed, status and badges, lineage, then every setting of its config. A setting named like an
    epoch's measure (lr: the configured rate, the epoch's own is its schedule's) gets ``_setting``."""
    epochs = pd.DataFrame(list(rows), columns=EPOCH_COLUMNS)
    ids = [int(i) for i in epochs["run_id"].unique()]
    known = [i for i in ids if i in runs]
    fields = list(RunConfig().to_dict())
    renamed = {name: f"{name}_setting" if name in EPOCH_COLUMNS else name for name in fields}
    meta = pd.DataFrame(
        [{"run_id": i, "status": str(runs[i].status), "badges": badges_text(runs[i]), "lineage": runs[i].lineage,
          **{renamed[name]: value for name, value in runs[i].config.to_dict().items()}} for i in known],
        columns=["run_id", "status", "badges", "lineage", *renamed.values()],
    )
    frame = epochs.merge(meta, on="run_id", how="left")
    first = ["run_id", "cell", "seed", "status", "badges", "lineage"]
    return frame[first + [c for c in frame.columns if c not in first]]


def smooth(frame: pd.DataFrame, columns: Sequence[str], weight: float, by: str = "run_id") -> pd.DataFrame:
    """Exponential moving average of ``columns`` within each run (TensorBoard's smoothing:
    weight 0 is the raw curve, 0.9 is heavy). Returns a copy."""
    if weight <= 0 or frame.empty:
        return frame.copy()
    out = frame.copy()
    alpha = 1.0 - min(weight, 0.999)
    for column in columns:
        out[column] = frame.groupby(by)[column].transform(lambda s: s.ewm(alpha=alpha, adjust=True).mean())
    return out


def stage_changes(frame: pd.DataFrame) -> pd.DataFrame:
    """The epochs where a run's curriculum moved to a new stage (first epoch of each stage
    after the first), with the stage's output length."""
    if frame.empty:
        return frame.iloc[0:0][["run_id", "epoch", "stage_output_len"]]
    ordered = frame.sort_values(["run_id", "epoch"])
    previous = ordered.groupby("run_id")["stage_output_len"].shift()
    changed = ordered[previous.notna() & (ordered["stage_output_len"] != previous)]
    return changed[["run_id", "epoch", "stage_output_len", "label", "minutes"]].reset_index(drop=True)


def config_diff(configs: Mapping[int, RunConfig], runs: Mapping[int, RunInfo] | None = None) -> pd.DataFrame:
    """Keys whose values differ between the configs, one column per run ('run 3', …); with
    ``runs``, also what made them where that differs (code, libraries, threads, hardware: the
    first segment of each, seqcopy.runs.provenance)."""
    if len(configs) < 2:
        return pd.DataFrame()
    differing = varied_keys(list(configs.values()))
    frame = pd.DataFrame({f"run {run_id}": [str(getattr(config, key)) for key in differing]
                          for run_id, config in configs.items()}, index=differing)
    if runs is not None and all(run_id in runs for run_id in configs):
        made = pd.DataFrame({f"run {run_id}": environment_rows(runs[run_id]) for run_id in configs})
        frame = pd.concat([frame, made[made.nunique(axis=1) > 1]])
    return frame


GroupKeys = str | Sequence[str]  # one config key, or several (Compare's "Group by")
NOT_GROUPED = ("seed", "mult_form")  # seeds are averaged; the form is part of the cell's label


def group_keys(keys: GroupKeys) -> tuple[str, ...]:
    return (keys,) if isinstance(keys, str) else tuple(keys)


def default_group_keys(runs: Sequence[RunInfo]) -> tuple[str, ...]:
    """Compare's default grouping: every config key whose value differs between ``runs`` except
    the seed, so that a group holds the seeds of one configuration; the cell first. The
    multiplicative form is named by the cell's label (cell_label), so a varied form groups by cell.
    With nothing varied but the seed: the cell."""
    configs = [run.config for run in runs]
    varied = varied_keys(configs, ignore=NOT_GROUPED)
    if "cell" not in varied and "mult_form" in varied_keys(configs):
        varied.insert(0, "cell")
    tag_varies = len({run.tag for run in runs}) > 1  # the tag as edited, as group_of reads it
    keys = [key for key in varied if key != "tag"] + (["tag"] if tag_varies else [])
    return tuple(sorted(keys, key=lambda key: key != "cell")) or ("cell",)


def _value_of(run: RunInfo, key: str, digits: int = 3) -> str:
    if key == "cell":
        return cell_label(run.config)  # the two multiplicative forms are two groups
    # A number as a person reads it (lr=0.00120, not 0.001202222703522498); words and on/off as they are.
    if key == "tag":
        return run.tag
    value = getattr(run.config, key)
    return "None" if value is None else rounded(value, digits)


def label_digits(runs: Iterable[RunInfo], keys: GroupKeys) -> int:
    """The significant figures group labels need so that rounding merges no two groups: 3, or
    more where two values of a key agree to 3 figures (two sampled learning rates, 0.0012022 and
    0.0012049). Every caller that groups ``runs`` by label passes it to group_of."""
    keys = [key for key in group_keys(keys) if key not in ("cell", "tag")]
    runs = list(runs)
    digits = 3
    for key in keys:
        numbers = {value for value in (getattr(run.config, key) for run in runs) if isinstance(value, float)}
        while digits < 17 and len({rounded(value, digits) for value in numbers}) < len(numbers):
            digits += 1
    return digits


def group_of(run: RunInfo, keys: GroupKeys, digits: int = 3) -> str:
    """The group a run falls in when runs are grouped by the config key(s) ``keys``: one key's
    value alone ('lstm', 'True'), several named ('lstm, train_seq_len=16'; the cell bare), numbers
    to ``digits`` significant figures (label_digits: enough to keep distinct values apart). The
    tag is the run's current one (edited on Runs), not the one it was submitted with, as in the
    filters."""
    keys = group_keys(keys)
    if len(keys) == 1:
        return _value_of(run, keys[0], digits)
    return ", ".join(_value_of(run, key, digits) if key == "cell" else f"{key}={_value_of(run, key, digits)}"
                     for key in keys)


def group_summary(runs: Sequence[RunInfo], keys: GroupKeys) -> str:
    """Compare's line about its groups (markdown, names escaped): each group of ``runs`` by
    ``keys`` with its number of seeds, and the settings besides the seed its runs differ in."""
    keys = group_keys(keys)
    groups: dict[str, list[RunInfo]] = {}
    digits = label_digits(runs, keys)
    for run in runs:
        groups.setdefault(group_of(run, keys, digits), []).append(run)
    notes = []
    for name, members in sorted(groups.items()):
        shown = escape.markdown(name or "(no tag)")
        note = f"{shown}: {len(members)} seed(s)" if len(members) > 1 else f"{shown}: a single seed, so no band"
        mixed = varied_keys([member.config for member in members], ignore=("seed", "tag", *keys))
        if mixed:
            note += f" — mixes runs that differ in {', '.join(mixed)}"
        notes.append(note)
    return " · ".join(notes)


def lower_is_better(metric: str) -> bool:
    return metric.endswith("loss")


def runs_link(run_id: int) -> str:
    """The Runs page with this run selected (views/runs.py reads ?runs=)."""
    return f"runs?runs={int(run_id)}"


def final_metric_table(runs: pd.DataFrame, metric: str, error: str = DEFAULT_ERROR,
                       group: str = "group") -> pd.DataFrame:
    """One row per group of ``runs`` (one row per run: ``id``, ``seed``, ``group`` and the final
    ``metric``): n (the runs with a value), 'mean ± spread' (the spread one of
    seqcopy.results.spread's kinds; the standard error by default), median, min, max, and the
    best run (the highest value, the lowest for a loss) as its seed and a link to it on Runs."""
    rows = []
    for name, members in runs.groupby(group, sort=True):
        valued = members.dropna(subset=[metric])
        facts = describe(valued[metric].tolist())
        best = None
        if not valued.empty:
            best = valued.loc[valued[metric].idxmin() if lower_is_better(metric) else valued[metric].idxmax()]
        rows.append({
            group: name, "n": facts["n"],
            "mean ± spread": format_summary(valued[metric].tolist(), error, labelled=False, significant=True),
            "median": facts["median"], "min": facts["min"], "max": facts["max"],
            "best seed": None if best is None else int(best["seed"]),
            "best run": None if best is None else runs_link(best["id"]),
        })
    columns = [group, "n", "mean ± spread", "median", "min", "max", "best seed", "best run"]
    return pd.DataFrame(rows, columns=columns).astype({"median": float, "min": float, "max": float})


def results_frame(rows: Sequence[Mapping], runs: Mapping[int, RunInfo], group_key: GroupKeys) -> pd.DataFrame:
    """position_results or length_results rows, with each run's group and seed label."""
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return frame
    frame = frame[frame["run_id"].isin(list(runs))]
    ids = [int(i) for i in frame["run_id"].unique()]
    digits = label_digits(runs.values(), group_key)
    meta = pd.DataFrame({
        "run_id": ids,
        "group": [group_of(runs[i], group_key, digits) for i in ids],
        "label": [run_label(i, cell_label(runs[i].config), runs[i].config.seed) for i in ids],
    })
    return frame.merge(meta, on="run_id", how="left")


def parse_run_ids(text: str, limit: int = 200) -> tuple[list[int], list[str]]:
    """'3, 7,x' → ([3, 7], ['x']): the run ids of a shared link, and what is not one (shortened).
    A run id is a whole number from 1 to 2**63 - 1 (seqcopy.text.parse_id); at most
    ``limit`` parts are read, and repeats count once."""
    ids: list[int] = []
    bad: list[str] = []
    for part in text.split(",", limit)[:limit]:
        part = part.strip()
        if not part:
            continue
        try:
            ids.append(parse_id(part))
        except ValueError:
            bad.append(shorten(part))
    return list(dict.fromkeys(ids)), bad
