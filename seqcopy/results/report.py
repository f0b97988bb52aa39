"""``seqcopy report``: a store's completed runs as a markdown results table.

Runs are grouped by tag (one experiment per tag), cell and every other setting the tag's runs
differ in besides the seed (a column each, as Compare groups), so a row holds the seeds of one
configuration. Each row gives the mean ± std over seeds of the final test copy accuracy and
sequence accuracy, and how many epochs and minutes the runs took to first reach 90% and 99% test
copy accuracy ("—" when some seed never did).

Curriculum runs that advance at 99% on fresh data also give each seed's *copy frontier*: the
longest output length whose stage reached 99% copy accuracy on training sequences the model had
never seen (with fresh data every epoch's sequences are new, and each batch is scored before the
model learns from it; stages of 4 symbols or fewer have at most 9⁴ = 6,561 distinct sequences
and repeat, which is why the frontier runs start at 8). Runs that reuse one training set get no
frontier, because memorising the set flatters it; nor do runs that advance below 99%, which leave
each stage before mastering it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import partial
from types import SimpleNamespace

from seqcopy.config import CELL_NAMES, MULT_FORMS, SETTINGS, RunConfig, cell_label, parse_stop_at, varied_keys
from seqcopy.results.spread import DEFAULT_ERROR, ERROR_KINDS, ERROR_SHORT, format_solve_rate, format_summary
from seqcopy.results.verdicts import PAIRED, WELCH, WHY, verdict
from seqcopy.runs import provenance
from seqcopy.runs.states import RunStatus
from seqcopy.runs.store import Store
from seqcopy.text import printable

THRESHOLDS = (0.90, 0.99)
SOLVED_AT = 0.99  # a seed 'solves' the task when its test copy accuracy reaches this at some epoch
FRONTIER_THRESHOLD = 0.99
# Fields that tell runs of one group apart, or say nothing about the experiment's settings.
# mult_form is part of a row's cell ('mlstm (input form)'), so it is not a setting of the table.
NOT_SETTINGS = {"cell", "mult_form", "seed", "tag", "device", "fused"}
# What the table without --by does not split its rows by, as Compare's default grouping: the seeds are
# averaged, the cell (with its form, cell_label) is the row's first column, and each tag has a table.
NOT_ROWS = ("cell", "mult_form", "seed", "tag")
CELL_ORDER = {name: i for i, name in enumerate(CELL_NAMES)}  # rows in the order the docs list cells


def cell_order(config: RunConfig) -> tuple[int, int]:
    """Where a run's cell sits among the rows: the docs' order of cells, Krause's form first."""
    return CELL_ORDER.get(config.cell, 99), MULT_FORMS.index(config.mult_form) if config.mult_form in MULT_FORMS else 99


# The table without --by: 'mean ± std' over the seeds, as its header says (one seed: its value).
mean_std = partial(format_summary, kind="std", labelled=False)


def first_reaching(epochs: list[dict], threshold: float) -> tuple[int, float] | None:
    """(epoch, minutes of training so far) when test copy accuracy first reached ``threshold``."""
    seconds = 0.0
    for row in epochs:
        seconds += row["seconds"]
        if row["test_copy_acc"] >= threshold:
            return row["epoch"], seconds / 60
    return None


def epochs_to_target(config: RunConfig, epochs: list[dict]) -> int | None:
    """The epoch at which a run's --stop-at target had held for --stop-patience epochs in a row
    (the epoch it stopped at, or would have), read from its epoch rows; None without a target or
    when it was not reached."""
    target = parse_stop_at(config.stop_at)
    if target is None:
        return None
    hits = 0
    for row in epochs:
        hits = hits + 1 if target.holds(SimpleNamespace(**row)) else 0
        if hits >= config.stop_patience:
            return int(row["epoch"])
    return None


def time_to(reached: list[tuple[int, float] | None]) -> str:
    if not reached:
        return "—"
    missing = sum(item is None for item in reached)
    if missing:
        return f"not reached by {missing}/{len(reached)}"
    epochs = [float(item[0]) for item in reached]
    minutes = [item[1] for item in reached]
    return f"{mean_std(epochs, digits=1)} ep / {mean_std(minutes, digits=2)} min"


def measures_frontier(config: RunConfig) -> bool:
    """Whether a run's stages say how long a copy it masters (see the module's docstring)."""
    return config.curriculum and config.fresh_data and config.curriculum_threshold >= FRONTIER_THRESHOLD


def copy_frontier(config: RunConfig, epochs: list[dict]) -> int | None:
    """The longest stage output length copied at ≥ 99% on unseen sequences (None: not measured,
    0: no stage reached it)."""
    if not measures_frontier(config):
        return None
    copied = [row["stage_output_len"] for row in epochs if row["train_copy_acc"] >= FRONTIER_THRESHOLD]
    return max(copied, default=0)


def settings_line(configs: list[RunConfig]) -> str:
    """The settings a group's runs share, as flags where they differ from the defaults."""
    defaults = RunConfig().to_dict()
    first = configs[0].to_dict()
    varied = sorted(varied_keys(configs, ignore=NOT_SETTINGS))
    shared = {k: v for k, v in first.items() if k not in NOT_SETTINGS and k not in varied}
    shown = {k: ("varies" if k in varied else v) for k, v in first.items()}
    parts = [
        f"K={shown['train_seq_len']}, N={shown['train_output_len']}, P={shown['padding']}, "
        f"hidden {shown['hidden_size']}, lr {shown['lr']}, batch {shown['batch_size']}, "
        f"{shown['epochs']} epochs × {shown['train_samples']} samples, "
        f"test K={shown['test_seq_len']} N={shown['test_output_len']}"
    ]
    sizes = {"train_seq_len", "train_output_len", "padding", "hidden_size", "lr", "batch_size", "epochs",
             "train_samples", "test_seq_len", "test_output_len"}
    extras = [
        SETTINGS[key].long_flag(value)
        for key, value in sorted(shared.items())
        if key not in sizes and value != defaults[key]
    ]
    if extras:
        parts.append(" ".join(extras))
    if varied:
        parts.append(f"(differs between runs: {', '.join(varied)})")
    return "; ".join(parts)


def _finished(store: Store, tags: list[str] | None, sweep_id: int | None,
              include_pruned: bool = True) -> tuple[list, list]:
    """(completed, failed) runs of the chosen tags or sweep; without ``include_pruned``, the
    completed ones a search's pruner stopped early are left out (their final metrics are of a
    shorter run than their row's)."""
    chosen = [r for r in store.list_runs(statuses=[RunStatus.COMPLETED, RunStatus.FAILED], sweep_id=sweep_id)
              if tags is None or r.tag in tags]
    return ([r for r in chosen if r.status == RunStatus.COMPLETED and (include_pruned or not r.pruned)],
            [r for r in chosen if r.status == RunStatus.FAILED])


def pruned_note(store: Store, tags: list[str] | None, sweep_id: int | None) -> str | None:
    """'3 pruned runs left out …' when the report leaves a search's pruned runs out, else None."""
    count = sum(1 for r in _finished(store, tags, sweep_id)[0] if r.pruned)
    if not count:
        return None
    return (f"{count} pruned run{'s' if count != 1 else ''} left out of the final-metric means (stopped early by a "
            "search's pruner; --include-pruned counts them).")


def origin_of(run) -> str:
    """What a row's runs started from, so a continuation is never a seed of its parent's row: ''
    from scratch, 'continues #12' (numbered on from its parent's epochs), 'from #12' (a fork of
    its weights)."""
    if run.parent_id is None:
        return ""
    return f"continues #{run.parent_id}" if run.continues_parent else f"from #{run.parent_id}"


def distinct_seeds(members: list) -> tuple[list, int]:
    """(one run per seed, the lowest id first; how many repeats of a seed were left out): runs of
    one configuration and seed are the same experiment again, not a new seed."""
    kept: dict[int, object] = {}
    for run in sorted(members, key=lambda r: r.id):
        kept.setdefault(run.config.seed, run)
    return sorted(kept.values(), key=lambda r: r.config.seed), len(members) - len(kept)


def epochs_by_run(rows: Iterable[dict]) -> dict[int, list[dict]]:
    """Epoch rows (ordered by run and epoch, as the store gives them) grouped by run."""
    grouped: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[int(row["run_id"])].append(row)
    return grouped


def solved_column(histories: list[list[dict]], threshold: float = SOLVED_AT) -> str:
    """'2/3 [0.21, 0.94]': the seeds whose test copy accuracy reached ``threshold`` at some epoch,
    with the Wilson 95% interval of that share (seqcopy.results.spread.solve_rate)."""
    return format_solve_rate([first_reaching(h, threshold) is not None for h in histories])


def build_report(store: Store, tags: list[str] | None = None, sweep_id: int | None = None,
                 solved_at: float = SOLVED_AT, include_pruned: bool = False) -> str:
    """The table per tag: a row per configuration and origin (from scratch, a continuation, a
    fork), its distinct seeds averaged; pruned runs left out unless ``include_pruned`` (and
    said); a row whose runs ran different code or libraries flagged."""
    runs, failed_runs = _finished(store, tags, sweep_id, include_pruned)
    # A failed run is a missing seed the reader must know about (a divergence is a result too).
    failed: dict[str, list] = defaultdict(list)
    for run in failed_runs:
        failed[run.tag].append(run)
    if not runs and not failed:
        return "No completed runs in this store."
    history_of = epochs_by_run(store.epochs([r.id for r in runs]))
    by_tag: dict[str, list] = defaultdict(list)
    for run in runs:
        by_tag[run.tag].append(run)

    lines = []
    for tag in sorted(set(by_tag) | set(failed)):
        lines += [f"### {printable(tag) if tag else '(no tag)'}", ""]  # an old store's tag may hold escape codes
        if tag in by_tag:
            lines += _tag_table(by_tag[tag], history_of, solved_at) + [""]
        if failed[tag]:
            lines += _failed_lines(failed[tag]) + [""]
    lines += lineage_lines(runs, history_of)
    note = None if include_pruned else pruned_note(store, tags, sweep_id)
    if note:
        lines += [note, ""]
    lines.append(f"{SOLVED_NOTE} {HONEST_NOTE}")
    return "\n".join(lines)


def _tag_table(runs: list, history_of: dict[int, list[dict]], solved_at: float) -> list[str]:
    """One tag's table: a row per configuration, its seeds averaged."""
    configs = [r.config for r in runs]
    # A row holds the seeds of one configuration, as Compare groups by default: each setting these
    # runs differ in besides the seed gets a column, so two lengths' seeds are never averaged.
    columns = varied_keys(configs, ignore=NOT_ROWS)
    groups: dict[tuple, list] = defaultdict(list)
    for run in runs:
        cell = cell_label(run.config) + (f" ({origin_of(run)})" if run.parent_id is not None else "")
        groups[(cell, *(getattr(run.config, k) for k in columns))].append(run)
    notes = []
    frontier = any(measures_frontier(c) for c in configs)
    lines = [
        settings_line(configs),
        "",
        "| cell | " + "".join(f"{key} | " for key in columns) + "seeds | test copy acc | test seq acc "
        "| test acc (all positions) | to 90% copy | to 99% copy "
        f"| solved (≥ {solved_at:.0%}, Wilson 95%) | wall time |"
        + (" copy frontier (N at ≥ 99%, per seed) |" if frontier else ""),
        "|---|---|---|---|---|---|---|---|---|" + "---|" * len(columns) + ("---|" if frontier else ""),
    ]
    for (cell, *values), members in sorted(
        groups.items(), key=lambda kv: (cell_order(kv[1][0].config), kv[0][0], [_value_key(v) for v in kv[0][1:]])
    ):
        members, repeats = distinct_seeds(members)
        named = f"{cell}" + "".join(f", {key} {printable(str(value))}" for key, value in zip(columns, values,
                                                                                          strict=True))
        if repeats:
            notes.append(f"- {named}: {repeats} repeat run{'s' if repeats != 1 else ''} of a seed left out "
                         "(the same configuration and seed again)")
        differs = provenance.differs(members)
        if differs:
            notes.append(f"- {named}: {differs} (runs {', '.join(f'#{r.id}' for r in members)})")
        histories = [history_of[r.id] for r in members]
        finals = [h[-1] for h in histories if h]
        wall = [sum(row["seconds"] for row in h) / 60 for h in histories]
        lines.append(
            f"| {cell} | " + "".join(f"{printable(str(value))} | " for value in values)
            + f"{len(members)} ({', '.join(str(r.config.seed) for r in members)}) "
            f"| {mean_std([f['test_copy_acc'] for f in finals])} "
            f"| {mean_std([f['test_seq_acc'] for f in finals])} "
            f"| {mean_std([f['test_acc'] for f in finals])} "
            + "".join(f"| {time_to([first_reaching(h, t) for h in histories])} " for t in THRESHOLDS)
            + f"| {solved_column(histories, solved_at)} "
            + f"| {mean_std(wall, digits=1)} min |"
            + (f" {_frontiers(members, histories)} |" if frontier else "")
        )
    return lines + (["", *notes] if notes else [])


def lineage_lines(runs, history_of: dict[int, list[dict]]) -> list[str]:
    """The runs that started from another run (continue, submit --from), each named with its
    parent and epoch, and the runs with a --stop-at target with the epoch they reached it (read
    from their epochs): a table row that averages a fork or an early stop says so."""
    lines = []
    for run in runs:
        parts = [run.lineage] if run.parent_id is not None else []
        if run.config.stop_at:
            reached = epochs_to_target(run.config, history_of.get(run.id, []))
            parts.append(f"target {run.config.stop_at} " + (f"reached at epoch {reached}" if reached
                                                                else "not reached"))
        if parts:
            lines.append(f"- run {run.id} ({cell_label(run.config)}, seed {run.config.seed}): {'; '.join(parts)}")
    return ["Lineage and targets:", "", *lines, ""] if lines else []


HONEST_NOTE = ("Copy accuracy counts only the copied symbols (chance 1/9 = 0.111); accuracy over all positions "
               "includes the blanks.")


def _value_key(value):
    """Sort numbers as numbers and anything else as text."""
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))


def build_by_report(store: Store, by: str, error: str = DEFAULT_ERROR, tags: list[str] | None = None,
                    sweep_id: int | None = None, solved_at: float = SOLVED_AT, include_pruned: bool = False) -> str:
    """One row per cell × value of the setting ``by``: each final metric's mean over seeds ± the
    chosen spread (standard error by default), the epochs to 90% test copy accuracy, and the
    seeds that solved (reached ``solved_at``) with the Wilson 95% interval of that share."""
    runs, failed = _finished(store, tags, sweep_id, include_pruned)
    if not runs and not failed:
        return "No completed runs in this store."
    history_of = epochs_by_run(store.epochs([r.id for r in runs]))
    rows: dict[tuple, list] = defaultdict(list)
    for run in runs:
        cell = cell_label(run.config) + (f" ({origin_of(run)})" if run.parent_id is not None else "")
        rows[(cell_order(run.config), cell, getattr(run.config, by))].append(run)
    lines = []
    if runs:
        lines += [settings_line([r.config for r in runs]), ""]
        # Settings tied to ``by`` vary with it; what matters is a row averaging different configurations.
        within = {k for members in rows.values() for k in varied_keys([r.config for r in members], ignore=NOT_SETTINGS)}
        mixed = [k for k in SETTINGS if k in within]
        if mixed:
            lines += [f"Each row also mixes runs that differ in {', '.join(mixed)}: filter with --tags or --sweep.", ""]
        spread = f"± {ERROR_SHORT[error]}"
        lines += [
            f"| cell | {by} | seeds | test copy acc ({spread}) | test seq acc ({spread}) "
            f"| test acc, all positions ({spread}) | epochs to {THRESHOLDS[0]:.0%} copy ({spread}) "
            f"| solved (≥ {solved_at:.0%}, Wilson 95%) | wall time ({spread}) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    repeats = 0
    for (_, cell, value), members in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1], _value_key(kv[0][2]))):
        members, again = distinct_seeds(members)
        repeats += again
        histories = [history_of[r.id] for r in members]
        finals = [h[-1] for h in histories if h]
        reached = [first_reaching(h, THRESHOLDS[0]) for h in histories]
        missing = sum(item is None for item in reached)
        speed = (f"not reached by {missing}/{len(reached)}" if missing
                 else format_summary([float(item[0]) for item in reached], error, 1, labelled=False))
        minutes = [sum(row["seconds"] for row in h) / 60 for h in histories]
        lines.append(
            f"| {cell} | {value} | {len(members)} ({', '.join(str(r.config.seed) for r in members)}) "
            + "".join(
                f"| {format_summary([f[m] for f in finals], error, labelled=False)} "
                for m in ("test_copy_acc", "test_seq_acc", "test_acc")
            )
            + f"| {speed} | {solved_column(histories, solved_at)} "
            + f"| {format_summary(minutes, error, 1, labelled=False)} min |"
        )
    if failed:
        lines += [""] + _failed_lines(failed)
    if repeats:
        lines += ["", f"{repeats} repeat run{'s' if repeats != 1 else ''} of a seed left out (the same configuration "
                      "and seed again)."]
    note = None if include_pruned else pruned_note(store, tags, sweep_id)
    if note:
        lines += ["", note]
    lines += ["", f"Each entry: mean over the seeds ± {ERROR_SHORT[error]}, the {ERROR_KINDS[error]}, n = the seeds "
                  f"column; one seed has no spread. {SOLVED_NOTE} {HONEST_NOTE}"]
    return "\n".join(lines)


SOLVED_NOTE = ("Solved: the seeds whose test copy accuracy reached the threshold at some epoch, and the Wilson 95% "
               "interval of that share (3/3 is [0.44, 1.00]: three seeds cannot rule out a 1-in-2 failure rate).")
# The final metrics a table or verdict compares (report --metric, Compare's final-metric choices).
FINAL_METRICS = ("test_copy_acc", "test_seq_acc", "test_acc", "test_loss", "train_loss")


def build_verdict_report(store: Store, against: str, by: str | None = None, metric: str = "test_copy_acc",
                         tags: list[str] | None = None, sweep_id: int | None = None,
                         include_pruned: bool = False) -> str:
    """Every other cell against the cell ``against`` (as cell_label names it) at each value of the
    setting ``by`` (each tag without one): the difference of the final ``metric``'s means with its
    95% interval, the test (paired by seed when both ran the same seeds, Welch's otherwise), its
    p-value, the exact permutation test's as a check, and the verdict (seqcopy.results.verdicts).
    ValueError (one line) when no completed run is of the cell ``against``. A continuation is not a
    seed of its cell (it would stand in for its parent's seed), so it is left out here."""
    runs, failed = _finished(store, tags, sweep_id, include_pruned)
    runs = [r for r in runs if not r.continues_parent]
    if not runs:
        return "No completed runs in this store."
    if not any(cell_label(r.config) == against for r in runs):
        known = sorted({cell_label(r.config) for r in runs}, key=lambda c: CELL_ORDER.get(c.split(" ")[0], 99))
        raise ValueError(f"no completed run of the cell {against!r} to compare against: these runs have "
                         f"{', '.join(known)}")
    history_of = epochs_by_run(store.epochs([r.id for r in runs]))
    column = by or "tag"
    values: dict[tuple, dict[int, float]] = defaultdict(dict)  # (setting value, cell) → {seed: final metric}
    order = {}
    for run in runs:
        history = history_of[run.id]
        if not history:
            continue
        key = getattr(run.config, by) if by else run.tag
        values[(key, cell_label(run.config))][run.config.seed] = history[-1][metric]
        order[cell_label(run.config)] = cell_order(run.config)
    lines = [settings_line([r.config for r in runs]), "",
             f"| {column} | cell | seeds (cell / {against}) | {metric}: cell | {metric}: {against} "
             f"| difference (95% interval) | test | p | permutation p | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    settings = sorted({key for key, _ in values}, key=_value_key)
    for setting in settings:
        reference = values.get((setting, against))
        for cell in sorted({c for k, c in values if k == setting and c != against}, key=order.get):
            group = values[(setting, cell)]
            shown = printable(str(setting)) if by is None else setting
            if reference is None:
                lines.append(f"| {shown} | {cell} | {len(group)} / 0 | {mean_std(list(group.values()))} | — | — | — "
                             f"| — | — | no {against} runs at this {column} |")
                continue
            result = verdict(reference, group)
            lines.append(
                f"| {shown} | {cell} | {result.n_group} / {result.n_reference}"
                f"{' (paired)' if result.paired else ''} | {mean_std(list(group.values()))} "
                f"| {mean_std(list(reference.values()))} | {result.interval_text()} | {result.test} "
                f"| {_p(result.p)} | {_p(result.permutation_p)} | {result.describe()} |"
            )
    if failed:
        lines += [""] + _failed_lines(failed)
    lines += ["", f"Difference: the cell's mean minus {against}'s (mean ± std beside it). {PAIRED}: {WHY[PAIRED]} "
                  f"(scipy.stats.ttest_rel). {WELCH}: {WHY[WELCH]} (scipy.stats.ttest_ind, equal_var=False). "
                  "Clear: the 95% interval excludes 0 (p < 0.05). The exact permutation test is a check that "
                  "assumes no normal distribution; with 3 seeds it cannot go below 0.25 paired or 0.10 unpaired. "
                  "Not corrected for multiple comparisons."]
    return "\n".join(lines)


def _p(value: float | None) -> str:
    return "—" if value is None else (f"{value:.3f}" if value >= 0.001 else "< 0.001")


def _frontiers(members: list, histories: list[list[dict]]) -> str:
    values = [copy_frontier(run.config, history) for run, history in zip(members, histories, strict=True)]
    return ", ".join("—" if v is None else ("none" if v == 0 else str(v)) for v in values)


def _failed_lines(runs: list) -> list[str]:
    return ["Failed, so not in the table:", ""] + [
        f"- {cell_label(run.config)} seed {run.config.seed}, after {run.epochs_done} of {run.config.epochs} epochs: "
        f"{(run.error or 'no reason recorded').splitlines()[0]}"
        for run in sorted(runs, key=lambda r: (cell_order(r.config), r.config.seed))
    ]
