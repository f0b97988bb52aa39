"""Compare: runs grouped by any set of config keys (by default everything that varies but the
seed), one colour per group: the mean across seeds with a ± std band and each seed as a thin
line; the final-metric table (n, mean ± the chosen spread, median, min, max, the best run); a
final metric and the speed of convergence against any swept setting, with the share of seeds
that solved (Wilson 95%); verdicts against a reference group chosen on the page, by default the
one with the most completed seeds (the difference with its 95% interval, paired by seed or
Welch's); parallel coordinates over every varied setting; copy accuracy by output position and
by test length. Where the groups differ in one setting (the tour's lstm against gru), the page
opens with the answer in one line: the difference, its interval, and whether the seeds decide.
Runs a search's pruner stopped are drawn among the curves but left out of every mean unless a
toggle takes them in. The sweep, the grouping, the metric and the reference live in the URL
(?sweep=3&group=cell&metric=test_copy_acc&ref=lstm), so a view can be shared."""

import html
from dataclasses import dataclass

import streamlit as st

from seqcopy.config import RunConfig
from seqcopy.results.report import FINAL_METRICS, epochs_by_run, epochs_to_target
from seqcopy.results.spread import DEFAULT_ERROR, ERROR_KINDS, ERROR_SHORT
from seqcopy.runs.provenance import differs
from seqcopy.runs.schema import DIAGNOSTIC_METRICS, EPOCH_METRICS, STATUSES
from seqcopy.runs.states import RunStatus
from seqcopy.text import rounded
from seqcopy.ui import escape, search_view, state
from seqcopy.ui.figures import seed_band_figure
from seqcopy.ui.frames import (
    default_group_keys,
    epochs_frame,
    final_metric_table,
    group_of,
    group_summary,
    label_digits,
    lower_is_better,
    results_frame,
    runs_frame,
)
from seqcopy.ui.sweep_figures import (
    convergence_figure,
    metric_vs_setting_figure,
    parallel_coordinates_figure,
    verdicts_figure,
)
from seqcopy.ui.sweep_frames import (
    convergence_frame,
    default_reference,
    head_to_head,
    is_categorical,
    line_keys,
    mixed_settings,
    setting_choices,
    settings_frame,
    solve_rate_table,
    sweep_from_url,
    sweep_labels,
    verdicts_frame,
)

MAX_COMPARED = 200  # the most recent runs that match; epochs are read only for these
GROUP_KEYS = [name for name in RunConfig().to_dict() if name != "seed"]
CURVE_METRICS = [m for m in EPOCH_METRICS if m not in ("lr",)] + list(DIAGNOSTIC_METRICS)  # memory, per epoch


def sweep_selection(labels: dict[int, str]) -> None:
    """Follow ?sweep= when the URL changed since this page last wrote it (first load, a shared
    link); the select box's own changes write it back."""
    text = st.query_params.get("sweep", "")
    if st.session_state.get("compare_sweep_url") != text:
        st.session_state["compare_sweep_url"] = text
        st.session_state["compare_sweep"] = sweep_from_url(text, labels)
        if text and st.session_state["compare_sweep"] is None:
            st.warning("The link names no sweep of this store: showing every run.")
    elif st.session_state.get("compare_sweep") not in (None, *labels):
        st.session_state["compare_sweep"] = None  # its runs were deleted meanwhile


def remember_sweep() -> None:
    chosen = st.session_state["compare_sweep"]
    text = "" if chosen is None else str(chosen)
    if text:
        st.query_params["sweep"] = text
    elif "sweep" in st.query_params:
        del st.query_params["sweep"]
    st.session_state["compare_sweep_url"] = text


REFERENCE_KEY = "compare_reference"
# What else a shared link holds, beside ?sweep=: the query parameter → the widget it sets.
URL_WIDGETS = {"group": "compare_group", "metric": "compare_table_metric", "ref": REFERENCE_KEY}
LONGEST_URL_VALUE = 500  # a link may hold any text; no group name is this long


def url_value(name: str, text: str):
    """The widget value a query parameter's text means; None where it means nothing valid (an
    unknown setting or metric), which leaves the page's default."""
    if name == "group":
        parts = [part.strip() for part in text.split(",") if part.strip()]
        return list(dict.fromkeys(parts)) if all(part in GROUP_KEYS for part in parts) else None
    if name == "metric":
        return text if text in FINAL_METRICS else None
    return text[:LONGEST_URL_VALUE] or None  # a reference: checked against the groups where it is used


def view_from_url() -> None:
    """Follow ?group=, ?metric= and ?ref= when the URL changed since this page last wrote them
    (first load, a shared link), as sweep_selection follows ?sweep=; the widgets' own changes
    write them back (remember_in_url)."""
    for name, key in URL_WIDGETS.items():
        text = st.query_params.get(name, "")
        if st.session_state.get(f"{key}_url") == text:
            continue
        st.session_state[f"{key}_url"] = text
        value = url_value(name, text)
        if value is not None:
            st.session_state[key] = value
        elif key in st.session_state:
            del st.session_state[key]  # the default again: no grouping chosen, the first metric, the likeliest


def remember_in_url(name: str) -> None:
    key = URL_WIDGETS[name]
    value = st.session_state.get(key)
    text = ",".join(value) if isinstance(value, list) else ("" if value is None else str(value))
    if text:
        st.query_params[name] = text
    elif name in st.query_params:
        del st.query_params[name]
    st.session_state[f"{key}_url"] = text


@dataclass(frozen=True)
class Filters:
    """What the controls above the page chose."""

    sweep_id: int | None
    group_keys: tuple[str, ...]  # empty: everything that varies but the seed (default_group_keys)
    statuses: list[str]
    tags: list[str]
    metric: str


def render_filters(frame, labels: dict[int, str]) -> Filters:
    sweep_selection(labels)
    top = st.columns(5)
    sweep_id = top[0].selectbox("Sweep", [None, *labels], key="compare_sweep", on_change=remember_sweep,
                                format_func=lambda i: "all runs" if i is None else labels[i],
                                help="runs queued together as one grid (Launch, or submit --sweep)")
    group_keys = top[1].multiselect("Group by", GROUP_KEYS, key="compare_group", on_change=remember_in_url,
                                    args=("group",),
                                    placeholder="everything that varies but the seed",
                                    help="runs with the same values of these settings form one group; its seeds "
                                         "are averaged. Empty: every setting that differs between the runs, but "
                                         "the seed")
    # The plain words, so the widget shows and session state keeps completed, not RunStatus.COMPLETED.
    statuses = top[2].multiselect("Status", [str(s) for s in STATUSES], default=[str(RunStatus.COMPLETED)],
                                  key="compare_status")
    tags = top[3].multiselect("Tag", sorted(t for t in frame["tag"].unique() if t), key="compare_tag")
    metric = top[4].selectbox("Curve", CURVE_METRICS, index=CURVE_METRICS.index("test_copy_acc"),
                              key="compare_metric")
    return Filters(sweep_id, tuple(group_keys), statuses, tags, metric)


def chosen_runs(all_runs: list, filters: Filters) -> list:
    """The runs the filters match, newest first, at most MAX_COMPARED; stops the page on none."""
    chosen = [run for run in all_runs
              if (not filters.statuses or run.status in filters.statuses)
              and (not filters.tags or run.tag in filters.tags)
              and (filters.sweep_id is None or run.sweep_id == filters.sweep_id)]
    if not chosen:
        st.info("No run matches these filters" + (" (completed runs only by default: add other statuses above)."
                                                  if filters.statuses == [RunStatus.COMPLETED] else "."))
        st.stop()
    if len(chosen) > MAX_COMPARED:
        st.caption(f"{len(chosen)} runs match; comparing the {MAX_COMPARED} most recent. "
                   "Narrow the filters to choose others.")
        chosen = chosen[:MAX_COMPARED]
    return chosen


def render_curves(epoch_rows: list[dict], infos: dict, keys: tuple[str, ...], metric: str, show_seeds: bool) -> None:
    epochs = epochs_frame(epoch_rows, infos)
    if epochs.empty:
        st.info("The matching runs have no recorded epochs yet.")
        return
    # A name per run, not per epoch row: 200 runs × 50 epochs would name each run 50 times.
    digits = label_digits(infos.values(), keys)
    names = {run_id: escape.plotly(group_of(run, keys, digits)) for run_id, run in infos.items()}
    epochs["group"] = epochs["run_id"].map(names)
    figure = seed_band_figure(
        epochs, x="epoch", y=metric, title=f"{metric.replace('_', ' ')} by {', '.join(keys)}: mean ± std across seeds",
        chance=metric.endswith("copy_acc"), show_seeds=show_seeds, log_y=metric.endswith(("loss", "_grad")),
        y_title=metric.replace("_", " "), legend_columns=4,
    )
    st.plotly_chart(figure, width="stretch", key="compare_curves")


def render_final_metrics(frame, infos: dict, keys: tuple[str, ...]) -> str:
    """The final-metric table; returns the spread chosen for it, which the figures below use too."""
    st.subheader("Final metrics")
    controls = st.columns([1, 2])
    metric = controls[0].selectbox("Metric", FINAL_METRICS, key="compare_table_metric", on_change=remember_in_url,
                                   args=("metric",), help="the final metric of this table and of the answer at the top")
    error = controls[1].segmented_control(
        "Spread over seeds", list(ERROR_KINDS), default=DEFAULT_ERROR, key="compare_error",
        format_func=lambda kind: ERROR_KINDS[kind].split(" (")[0], required=True,
        help="standard error (std/√n, the default), standard deviation, or a 95% interval from Student's t with "
             "n − 1 degrees of freedom (wide for a few seeds)")
    table = frame[frame["id"].isin(list(infos))].copy()
    digits = label_digits(infos.values(), keys)
    table["group"] = table["id"].map(lambda i: group_of(infos[i], keys, digits))
    label = ", ".join(keys)
    st.dataframe(final_metric_table(table, metric, error=error).rename(columns={"group": label}), hide_index=True,
                 width="stretch", column_config={
                     "mean ± spread": st.column_config.TextColumn(f"mean ± {ERROR_SHORT[error]}"),
                     "best run": st.column_config.LinkColumn("best run", display_text=r"runs\?runs=(\d+)",
                                                             help="the group's best run, on the Runs page"),
                     # Three significant figures: a loss of 0.0012 is not 0.001.
                     **{name: st.column_config.NumberColumn(name, format="%.3g") for name in ("median", "min", "max")},
                 })
    st.caption(f"{metric.replace('_', ' ')} at each run's last epoch: mean ± {ERROR_KINDS[error]} across the "
               "group's n seeds; the best run is the highest (the lowest for a loss), its id a link to it on Runs.")
    render_targets(infos)
    return error


def render_targets(infos: dict) -> None:
    """Epochs to each run's --stop-at target, read from its epochs, for the runs that set one."""
    targeted = [run for run in infos.values() if run.config.stop_at]
    if not targeted:
        return
    history = epochs_by_run(state.epochs(state.url(), tuple(run.id for run in targeted)))
    reached = [(run, epochs_to_target(run.config, history.get(run.id, []))) for run in targeted]
    st.caption("Epochs to target (--stop-at): " + "; ".join(
        f"#{run.id} {escape.markdown(run.config.stop_at)} "
        + (f"at epoch {epoch}" if epoch is not None else "not reached") for run, epoch in reached))


@dataclass(frozen=True)
class Axis:
    """What "Against a setting" chose, for the sections below it: the setting on the x axis (None
    when the runs vary none besides the grouping), the final metric, the lines (the grouping
    keys other than x) and one row per run (settings_frame)."""

    x: str | None
    y: str
    log_x: bool
    lines: tuple[str, ...]
    data: object


def render_against_a_setting(runs: list, error: str, sweep, keys: tuple[str, ...]) -> Axis:
    """A final metric against a varied setting (those of ``sweep`` first, when one is chosen);
    parallel coordinates across all of them."""
    st.subheader("Against a setting")
    choices = setting_choices(runs, sweep.varied if sweep else ())
    controls = st.columns([2, 2, 1, 1])
    y = controls[1].selectbox("Final metric", FINAL_METRICS, key="compare_final_metric")
    if not choices:
        st.info("These runs share every setting but the seed: choose a sweep, or runs that differ in a setting, "
                "to plot a metric against it.")
        return Axis(None, y, False, keys, settings_frame(runs, None, keys))
    preferred = ([key for key in choices if key not in ("cell", *keys)] or [key for key in choices if key != "cell"]
                 or choices)
    x = controls[0].selectbox("Setting (x axis)", choices, index=choices.index(preferred[0]), key="compare_x")
    style, log_x = "bars", False
    # A cell, a form, on/off or one value: categories side by side, with no band or log scale between them.
    if not is_categorical([getattr(run.config, x) for run in runs]):
        style = controls[2].radio("Spread as", ["bars", "band"], horizontal=True, key="compare_style")
        log_x = controls[3].toggle("Log x", value=True, key="compare_log_x",
                                   help="a logarithmic x axis where the values span a decade (largest ≥ 10 × "
                                        "smallest)")
    # No key left to split the lines (a sweep of one cell): one line, named by the cell its runs share.
    lines = line_keys(runs, x, keys) or (("cell",) if x != "cell" else ())
    data = settings_frame(runs, x, lines or None, keys=choices)  # the parallel coordinates' columns too
    st.plotly_chart(metric_vs_setting_figure(data, y, x, error=error, style=style, log_x=log_x),
                    width="stretch", key="compare_vs_setting")
    mixed = mixed_settings(runs, x, lines or None)
    if mixed:
        st.warning(f"Each point averages runs that also differ in {', '.join(mixed)}: group by one of them, "
                   "or narrow the runs with the filters above.")
    st.caption("Copy accuracy counts only the copied symbols; chance is 1/9 = 0.111 (dotted line).")
    if len(choices) >= 2:
        st.plotly_chart(parallel_coordinates_figure(data, choices, y),
                        width="stretch", key="compare_parallel")
        st.caption("Drag along an axis to pick out a range of runs.")
    return Axis(x, y, log_x, lines, data)


def shown_values(values):
    """A setting's values for a table: as they are when whole numbers or words, as rounded text
    when fractions (0.00120, not 0.001202222703522498), which a table would print in full."""
    if any(isinstance(v, float) and not float(v).is_integer() for v in values):
        return values.map(rounded)
    return values


def render_speed(axis: Axis, epoch_rows: list[dict], error: str) -> None:
    """How fast each run reached a copy accuracy (against the setting, when there is one) and,
    beside it, the share of seeds that reached it with its Wilson 95% interval."""
    st.subheader("Solve rate and speed")
    speed = st.columns([3, 2])
    threshold = speed[0].slider("Copy accuracy to reach", 0.2, 1.0, 0.99, 0.01, key="compare_threshold",
                                help="test copy accuracy; a run's first epoch at or above it counts")
    measure = speed[1].radio("Measured in", ["epochs", "minutes"], horizontal=True, key="compare_measure")
    reached = convergence_frame(axis.data, epochs_by_run(epoch_rows), threshold)
    figure, table = st.columns([3, 2]) if axis.x else (None, st.container())
    if axis.x:
        figure.plotly_chart(convergence_figure(reached, axis.x, threshold, measure, error=error, log_x=axis.log_x),
                            width="stretch", key="compare_convergence")
    rates = solve_rate_table(reached, error)
    rates = rates.assign(x=shown_values(rates["x"])).rename(columns={"group": ", ".join(axis.lines) or "runs",
                                                                     "x": axis.x or "setting"})
    table.dataframe(rates.drop(columns=["runs", "share"] + ([] if axis.x else ["setting"])), hide_index=True,
                    width="stretch", column_config={
                        "low": st.column_config.NumberColumn("95% low", format="%.2f", help="Wilson's interval"),
                        "high": st.column_config.NumberColumn("95% high", format="%.2f", help="Wilson's interval"),
                        "epochs to it": st.column_config.TextColumn(f"epochs to it (± {ERROR_SHORT[error]})"),
                    })
    missing = int((~reached["reached"]).sum())
    table.caption(f"Solved: the seeds whose test copy accuracy reached {threshold:.0%} at some epoch, with the Wilson "
                  "95% interval of that share (3 of 3 is [0.44, 1.00]: three seeds cannot rule out a 1-in-2 failure "
                  "rate). " + (f"{missing} of {len(reached)} runs never reached it: open crosses at how far they ran."
                               if missing else f"Every run reached {threshold:.0%}."))


def verdict_groups(axis: Axis, runs: list, keys: tuple[str, ...]):
    """The rows verdicts compare: the lines at each value of the setting where the lines come
    from the grouping (cell lines along a swept K); otherwise the groups the page shows, side by
    side (the tour's lstm and gru, with the cell itself on the x axis)."""
    if set(axis.lines) & set(keys):
        return axis.data
    return settings_frame(runs, None, keys)


def reference_of(data) -> str | None:
    """The reference chosen on the page when it is among these groups, else the default; kept in
    session state across reruns (set here, not by index=, so that a choice no longer among the
    groups, after other filters or another grouping, falls back to the default, not the first)."""
    chosen = st.session_state.get(REFERENCE_KEY)
    return chosen if chosen in set(data["group"]) else default_reference(data)


def render_head_to_head(runs: list, keys: tuple[str, ...]) -> None:
    """The answer at the top, where the groups differ in one setting: each group against the
    reference on the final metric of the table below, with the interval and whether it decides."""
    # One setting apart, and few groups: more than that is the verdicts' table below, and a test each.
    digits = label_digits(runs, keys)
    varying = [key for key in keys if len({group_of(run, key, digits) for run in runs}) > 1]
    if len(varying) != 1 or len({group_of(run, varying, digits) for run in runs}) > 5:
        return
    data = settings_frame(runs, None, keys)
    metric = st.session_state.get("compare_table_metric", FINAL_METRICS[0])
    if metric not in FINAL_METRICS:
        metric = FINAL_METRICS[0]
    lines = head_to_head(data, metric, reference_of(data))
    if not lines:
        return
    better = "lower" if lower_is_better(metric) else "higher"
    label = f"**Head to head**, final {metric.replace('_', ' ')} ({better} is better):"
    for line in lines:
        st.markdown(f"{label} {escape.markdown(html.unescape(line))}")
        label = "**·**"


def render_verdicts(axis: Axis, runs: list, keys: tuple[str, ...]) -> None:
    """Each group against a reference group chosen here, at every value of the setting."""
    st.subheader("Verdicts against a reference")
    data = verdict_groups(axis, runs, keys)
    per_x = data is axis.data
    groups = sorted(data["group"].unique())
    if len(groups) < 2:
        st.info("One group only: group by a setting that differs between the runs to compare groups.")
        return
    st.session_state[REFERENCE_KEY] = reference_of(data)
    reference = st.selectbox("Reference group", groups, key=REFERENCE_KEY, on_change=remember_in_url, args=("ref",),
                             help="every other group's final metric minus this one's"
                                  + (", at each value of the setting" if per_x else "")
                                  + "; by default the group with the most completed seeds that no pruner stopped "
                                    "(lstm on a tie)")
    verdicts = verdicts_frame(data.dropna(subset=[axis.y]), axis.y, reference)
    if verdicts.empty:
        st.info(f"No setting value has runs of both {reference} and another group.")
        return
    x_title = axis.x if per_x and axis.x else "runs"
    st.plotly_chart(verdicts_figure(verdicts, reference, axis.y, x_title, log_x=axis.log_x and per_x),
                    width="stretch", key="compare_verdicts")
    # Few, short columns, numbers as rounded text: the verdict must fit beside them on the page.
    columns = ["group", *(["x"] if verdicts["x"].nunique() > 1 else []), "n", "n_reference", "test", "interval", "p",
               "short"]
    shown = verdicts[columns].assign(p=verdicts["p"].map(rounded))
    if "x" in shown:
        shown["x"] = shown_values(shown["x"])
    shown = shown.rename(columns={
        "group": (", ".join(axis.lines) if per_x else ", ".join(keys)) or "group", "x": axis.x or "setting",
        "n_reference": f"n ({reference})", "interval": "difference [95% interval]", "short": "verdict"})
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "n": st.column_config.NumberColumn("n", width="small", help="the group's seeds"),
        f"n ({reference})": st.column_config.NumberColumn(f"n ({reference})", width="small"),
        "verdict": st.column_config.TextColumn("verdict", help="better or worse where the 95% interval excludes 0 "
                                                               "(lower is better for a loss)")})
    st.caption(f"Difference: the group's mean minus {reference}'s, with its 95% interval. Paired t-test "
               "(scipy's ttest_rel) when both groups ran the same seeds: runs of one seed share their training and "
               "test data, so the difference seed by seed takes that shared luck out. Welch's t-test otherwise (the "
               "spreads may differ). Clear: the interval excludes 0. The exact permutation test is a check that "
               "assumes no normal distribution; with 3 seeds it cannot go below 0.25 paired or 0.10 unpaired, so at "
               "2–3 seeds most differences of a few points cannot be decided. Not corrected for many comparisons.")


def render_breakdown(infos: dict, ids: tuple[int, ...], group_key: tuple[str, ...], show_seeds: bool) -> None:
    """Copy accuracy by output position and by test length, from each run's final evaluation."""
    st.subheader("Where copying breaks down")
    positions = results_frame(state.position_results(state.url(), ids), infos, group_key)
    lengths = results_frame(state.length_results(state.url(), ids), infos, group_key)
    for drawn in (positions, lengths):  # group names become legend entries: plotly draws HTML-like tags
        if not drawn.empty:
            drawn["group"] = drawn["group"].map(escape.plotly)
    left, right = st.columns(2)
    final_result_chart(left, positions, "position", "output position", "output position",
                       "Copy accuracy by output position (test set)", "compare_positions", show_seeds)
    final_result_chart(right, lengths, "seq_len", "input length K", "test length",
                       "Copy accuracy by test length K (generalisation)", "compare_lengths", show_seeds)


def final_result_chart(column, frame, x: str, x_title: str, what: str, title: str, key: str, show_seeds: bool) -> None:
    with column:
        if frame.empty:
            st.info(f"Copy accuracy by {what} is recorded when a run completes; none of these has yet.")
            return
        figure = seed_band_figure(frame, x=x, y="copy_acc", title=title, chance=True, show_seeds=show_seeds,
                                  x_title=x_title, y_title="copy accuracy", legend_columns=2)
        st.plotly_chart(figure, width="stretch", key=key)


def runs_in_means(chosen: list) -> list:
    """The runs the means are taken over: a pruned trial stopped early, so its final metric is
    a shorter run's and would pull its group's mean down; left out unless the toggle takes it in."""
    pruned = sum(run.pruned for run in chosen)
    if not pruned:
        return chosen
    if st.toggle("Include pruned runs in the means", value=False, key="compare_include_pruned",
                 help="a search's pruner stopped these runs early: their last epoch is not a full run's"):
        return chosen
    st.caption(f"{pruned} pruned run{'' if pruned == 1 else 's'} left out of the means; include them with the "
               "toggle. Their curves are drawn.")
    return [run for run in chosen if not run.pruned]


# ----------------------------------------------------------------------------- the page
st.title("Compare")
all_runs = state.runs_or_stop("No runs yet: queue a few seeds of several cells on the Launch page, then compare "
                              "them here.")
frame = runs_frame(all_runs)
sweeps = {sweep.id: sweep for sweep in state.sweeps(state.url())}
view_from_url()
filters = render_filters(frame, sweep_labels(list(sweeps.values()), all_runs))
if search_view.is_search(state.get_store(), filters.sweep_id):  # a search: Optuna's views first
    search_view.render(state.get_store(), filters.sweep_id)
chosen = chosen_runs(all_runs, filters)
infos = {run.id: run for run in chosen}
ids = tuple(sorted(infos))
keys = filters.group_keys or default_group_keys(chosen)
st.caption(("" if filters.group_keys else f"Grouped by everything that varies but the seed: {', '.join(keys)}. ")
           + group_summary(chosen, keys))
made_apart = differs(chosen)
if made_apart:  # seeds pooled across code or library versions are not strictly repeats
    st.warning(f"These runs were not all made alike: {made_apart} (Runs → Config diff says which).")
measured = runs_in_means(chosen)
render_head_to_head(measured, keys)

show_seeds = st.toggle("Show each seed as a thin line", value=True, key="compare_seeds")
epoch_rows = state.epochs(state.url(), ids)  # read once: the curves and the convergence figure
render_curves(epoch_rows, infos, keys, filters.metric, show_seeds)  # pruned runs too: where they stopped
if not measured:
    st.info("Every matching run was pruned: include them in the means with the toggle above.")
    st.stop()
measured_infos = {run.id: run for run in measured}
error = render_final_metrics(frame, measured_infos, keys)
axis = render_against_a_setting(measured, error, sweeps.get(filters.sweep_id), keys)
render_speed(axis, epoch_rows, error)
render_verdicts(axis, measured, keys)
render_breakdown(measured_infos, tuple(sorted(measured_infos)), keys, show_seeds)
