"""Compare: runs grouped by cell (or any config key), one colour per group: the mean across
seeds with a ± std band and each seed as a thin line; final metrics as mean ± the chosen spread
(standard error by default); a final metric and the speed of convergence against any swept
setting, and parallel coordinates over every varied one; copy accuracy by output position and
by test length. A sweep can be chosen, and lives in the URL (?sweep=3)."""

from dataclasses import dataclass

import streamlit as st

from seqcopy.config import RunConfig
from seqcopy.results.report import epochs_by_run, epochs_to_target
from seqcopy.results.spread import DEFAULT_ERROR, ERROR_KINDS
from seqcopy.runs.schema import EPOCH_METRICS, STATUSES
from seqcopy.ui import escape, search_view, state
from seqcopy.ui.figures import seed_band_figure
from seqcopy.ui.frames import (
    FINAL_METRICS,
    epochs_frame,
    final_metrics_table,
    group_of,
    group_summary,
    results_frame,
    runs_frame,
)
from seqcopy.ui.sweep_figures import convergence_figure, metric_vs_setting_figure, parallel_coordinates_figure
from seqcopy.ui.sweep_frames import (
    convergence_frame,
    mixed_settings,
    setting_choices,
    settings_frame,
    sweep_from_url,
    sweep_labels,
)

MAX_COMPARED = 200  # the most recent runs that match; epochs are read only for these
GROUP_KEYS = [name for name in RunConfig().to_dict() if name != "seed"]
CURVE_METRICS = [m for m in EPOCH_METRICS if m not in ("lr",)]


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


@dataclass(frozen=True)
class Filters:
    """What the controls above the page chose."""

    sweep_id: int | None
    group_key: str
    statuses: list[str]
    tags: list[str]
    metric: str


def render_filters(frame, labels: dict[int, str]) -> Filters:
    sweep_selection(labels)
    top = st.columns(5)
    sweep_id = top[0].selectbox("Sweep", [None, *labels], key="compare_sweep", on_change=remember_sweep,
                                format_func=lambda i: "all runs" if i is None else labels[i],
                                help="runs queued together as one grid (Launch, or submit --sweep)")
    group_key = top[1].selectbox("Group by", GROUP_KEYS, index=GROUP_KEYS.index("cell"), key="compare_group",
                                 help="runs with the same value form one group; its seeds are averaged")
    statuses = top[2].multiselect("Status", STATUSES, default=["completed"], key="compare_status")
    tags = top[3].multiselect("Tag", sorted(t for t in frame["tag"].unique() if t), key="compare_tag")
    metric = top[4].selectbox("Curve", CURVE_METRICS, index=CURVE_METRICS.index("test_copy_acc"),
                              key="compare_metric")
    return Filters(sweep_id, group_key, statuses, tags, metric)


def chosen_runs(all_runs: list, filters: Filters) -> list:
    """The runs the filters match, newest first, at most MAX_COMPARED; stops the page on none."""
    chosen = [run for run in all_runs
              if (not filters.statuses or run.status in filters.statuses)
              and (not filters.tags or run.tag in filters.tags)
              and (filters.sweep_id is None or run.sweep_id == filters.sweep_id)]
    if not chosen:
        st.info("No run matches these filters" + (" (completed runs only by default: add other statuses above)."
                                                  if filters.statuses == ["completed"] else "."))
        st.stop()
    if len(chosen) > MAX_COMPARED:
        st.caption(f"{len(chosen)} runs match; comparing the {MAX_COMPARED} most recent. "
                   "Narrow the filters to choose others.")
        chosen = chosen[:MAX_COMPARED]
    return chosen


def render_curves(epoch_rows: list[dict], infos: dict, group_key: str, metric: str, show_seeds: bool) -> None:
    epochs = epochs_frame(epoch_rows, infos)
    if epochs.empty:
        st.info("The matching runs have no recorded epochs yet.")
        return
    epochs["group"] = epochs["run_id"].map(lambda i: escape.plotly(group_of(infos[i], group_key)))
    figure = seed_band_figure(
        epochs, x="epoch", y=metric, title=f"{metric.replace('_', ' ')} by {group_key}: mean ± std across seeds",
        chance=metric.endswith("copy_acc"), show_seeds=show_seeds, log_y=metric.endswith("loss"),
        y_title=metric.replace("_", " "), legend_columns=4,
    )
    st.plotly_chart(figure, width="stretch", key="compare_curves")


def render_final_metrics(frame, infos: dict, group_key: str) -> str:
    """The final-metric table; returns the spread chosen for it, which the figures below use too."""
    st.subheader("Final metrics")
    error = st.segmented_control("Spread over seeds", list(ERROR_KINDS), default=DEFAULT_ERROR, key="compare_error",
                                 format_func=lambda kind: ERROR_KINDS[kind].split(" (")[0], required=True,
                                 help="standard error (std/√n, the default), standard deviation, or a 95% "
                                      "interval from Student's t with n − 1 degrees of freedom (wide for a few seeds)")
    table = frame[frame["id"].isin(list(infos))].copy()
    table["group"] = table["id"].map(lambda i: group_of(infos[i], group_key))
    st.dataframe(final_metrics_table(table, error=error).rename(columns={"group": group_key}), hide_index=True,
                 width="stretch")
    st.caption(f"Each cell: mean ± {ERROR_KINDS[error]} across the group's n seeds, from each run's last epoch.")
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


def render_against_a_setting(runs: list, epoch_rows: list[dict], error: str, sweep, group_key: str) -> None:
    """A final metric and the speed of convergence against a varied setting (those of ``sweep``
    first, when one is chosen); parallel coordinates across all of them."""
    st.subheader("Against a setting")
    choices = setting_choices(runs, sweep.varied if sweep else ())
    if not choices:
        st.info("These runs share every setting but the seed: choose a sweep, or runs that differ in a setting, "
                "to plot a metric against it.")
        return
    preferred = [key for key in choices if key not in ("cell", group_key)] or choices
    controls = st.columns([2, 2, 1, 1])
    x = controls[0].selectbox("Setting (x axis)", choices, index=choices.index(preferred[0]), key="compare_x")
    y = controls[1].selectbox("Final metric", FINAL_METRICS, key="compare_final_metric")
    style = controls[2].radio("Spread as", ["bars", "band"], horizontal=True, key="compare_style")
    log_x = controls[3].toggle("Log x", value=True, key="compare_log_x",
                               help="a logarithmic x axis where the values span a decade (largest ≥ 10 × smallest)")
    lines = None if group_key == x else group_key
    data = settings_frame(runs, x, lines, keys=choices)  # the parallel coordinates' columns too
    st.plotly_chart(metric_vs_setting_figure(data, y, x, error=error, style=style, log_x=log_x),
                    width="stretch", key="compare_vs_setting")
    mixed = mixed_settings(runs, x, lines)
    if mixed:
        st.warning(f"Each point averages runs that also differ in {', '.join(mixed)}: group by one of them, "
                   "or narrow the runs with the filters above.")
    st.caption("Copy accuracy counts only the copied symbols; chance is 1/9 = 0.111 (dotted line).")

    speed = st.columns([3, 2])
    threshold = speed[0].slider("Copy accuracy to reach", 0.2, 1.0, 0.9, 0.01, key="compare_threshold",
                                help="test copy accuracy; a run's first epoch at or above it counts")
    measure = speed[1].radio("Measured in", ["epochs", "minutes"], horizontal=True, key="compare_measure")
    reached = convergence_frame(data, epochs_by_run(epoch_rows), threshold)
    st.plotly_chart(convergence_figure(reached, x, threshold, measure, error=error, log_x=log_x),
                    width="stretch", key="compare_convergence")
    missing = int((~reached["reached"]).sum())
    st.caption(f"{missing} of {len(reached)} runs never reached {threshold:.0%}: open crosses at how far they ran."
               if missing else f"Every run reached {threshold:.0%}.")

    if len(choices) >= 2:
        st.plotly_chart(parallel_coordinates_figure(data, choices, y),
                        width="stretch", key="compare_parallel")
        st.caption("Drag along an axis to pick out a range of runs.")


def render_breakdown(infos: dict, ids: tuple[int, ...], group_key: str, show_seeds: bool) -> None:
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


# ----------------------------------------------------------------------------- the page
st.title("Compare")
all_runs = state.runs_or_stop("No runs yet: queue a few seeds of several cells on the Launch page, then compare "
                              "them here.")
frame = runs_frame(all_runs)
sweeps = {sweep.id: sweep for sweep in state.sweeps(state.url())}
filters = render_filters(frame, sweep_labels(list(sweeps.values()), all_runs))
if search_view.is_search(state.get_store(), filters.sweep_id):  # a search: Optuna's views first
    search_view.render(state.get_store(), filters.sweep_id)
chosen = chosen_runs(all_runs, filters)
infos = {run.id: run for run in chosen}
ids = tuple(sorted(infos))
st.caption(group_summary(chosen, filters.group_key))

show_seeds = st.toggle("Show each seed as a thin line", value=True, key="compare_seeds")
epoch_rows = state.epochs(state.url(), ids)  # read once: the curves and the convergence figure
render_curves(epoch_rows, infos, filters.group_key, filters.metric, show_seeds)
error = render_final_metrics(frame, infos, filters.group_key)
render_against_a_setting(chosen, epoch_rows, error, sweeps.get(filters.sweep_id), filters.group_key)
render_breakdown(infos, ids, filters.group_key, show_seeds)
