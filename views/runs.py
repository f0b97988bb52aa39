"""Runs: every run in a table that follows the store while runs train; the selected runs' curves
(live while they run, a fork drawn on from its parent's epoch), their config diff, CSV and
checkpoint downloads, tags and deletion. The selection lives in the URL (?runs=3,7) so a view
can be shared or reloaded."""

import time

import pandas as pd
import streamlit as st

from seqcopy.config import SETTINGS, cell_label
from seqcopy.runs.lineage import LineageError, continue_run
from seqcopy.runs.provenance import provenance_lines
from seqcopy.runs.schema import DIAGNOSTIC_METRICS, STATUSES
from seqcopy.runs.states import RunBadge, RunStatus
from seqcopy.runs.store import UnknownRun
from seqcopy.text import check_tag
from seqcopy.ui import escape, state
from seqcopy.ui.figures import diagnostic_curves_figure, run_curves_figure
from seqcopy.ui.frames import (
    config_diff,
    epochs_frame,
    filter_runs,
    fork_offset,
    metrics_export,
    parse_run_ids,
    runs_frame,
    smooth,
    stage_changes,
)
from seqcopy.ui.lineage import fork_form
from seqcopy.ui.sweep_frames import sweep_labels

MAX_PLOTTED = 20  # runs drawn at once: beyond this the curves are unreadable anyway
CURVE_COLUMNS = [f"{split}_{metric}" for split in ("train", "test") for metric in ("loss", "acc", "copy_acc")]
# Numbers to three significant figures for a person (the CSV keeps them exact); sprintf's %g
# counts significant figures, as seqcopy.text.rounded does in legends and captions.
ROUNDED = "%.3g"
TABLE_CONFIG = {
    "id": st.column_config.NumberColumn("run", format="%d", width="small"),
    "status": st.column_config.TextColumn("status", width="medium",
                                          help="its status, and what the status alone does not say: pruned, "
                                               "preempted (queued, resumes), resumed, continued, forked"),
    "epochs": st.column_config.TextColumn("epochs", width="small", help="epochs done / epochs it trains to"),
    "test_copy_acc": st.column_config.NumberColumn("test copy acc", format=ROUNDED),
    "test_acc": st.column_config.NumberColumn("test acc", format=ROUNDED),
    "test_seq_acc": st.column_config.NumberColumn("test seq acc", format=ROUNDED),
    "test_loss": st.column_config.NumberColumn("test loss", format=ROUNDED),
    "train_loss": st.column_config.NumberColumn("train loss", format=ROUNDED),
    "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
    "duration_s": st.column_config.NumberColumn("seconds", format="%.0f"),
    "sweep": st.column_config.NumberColumn("sweep", format="%d", width="small", help="the sweep it was queued with"),
    "lineage": st.column_config.TextColumn("from", width="medium",
                                           help="the run it continues or was forked from, and its epoch"),
    "error": st.column_config.TextColumn("note", help="why it failed or was cancelled; a queued run's 'preempted at "
                                         "epoch k; resumes'; a completed run's 'target reached at epoch E'"),
}
TABLE_COLUMNS = ["id", "cell", "seed", "status", "epochs", "test_copy_acc", "test_acc", "test_seq_acc",
                 "test_loss", "tag", "sweep", "lineage", "created", "duration_s", "error"]


def ids_from_url() -> tuple[list[int], list[str]]:
    """?runs=3,7 → [3, 7]; anything that is not a run id is reported, not fatal."""
    return parse_run_ids(st.query_params.get("runs", ""))


def selection_from_url(known: set[int]) -> list[int]:
    """Follow the URL when it changed since we last wrote it (first load, reload, shared link)."""
    text = st.query_params.get("runs", "")
    if st.session_state.get("runs_url_seen") != text:
        ids, bad = ids_from_url()
        missing = [i for i in ids if i not in known]
        if bad or missing:
            st.warning(
                "Ignored in the link: " + ", ".join(escape.markdown(item) for item in bad + missing) + " (no such run)"
            )
        st.session_state["runs_selected"] = [i for i in ids if i in known]
        st.session_state["runs_url_seen"] = text
    return st.session_state.get("runs_selected", [])


def remember_selection(ids: list[int]) -> None:
    st.session_state["runs_selected"] = ids
    text = ",".join(map(str, ids))
    if text:
        st.query_params["runs"] = text
    elif "runs" in st.query_params:
        del st.query_params["runs"]
    st.session_state["runs_url_seen"] = text


@state.outage_safe
def render_table() -> None:
    """Every run, read again on the live parts' timer (a fragment): progress, statuses and badges
    as the store has them now, runs queued since the page opened among them. A change of the
    selection reruns the whole page, whose curves and details follow it."""
    all_runs = state.runs(state.url())
    if not all_runs:
        st.info("No runs left: they were deleted. Queue some on the Launch page.")
        return
    frame = runs_frame(all_runs, now=time.time())
    selected = st.session_state.get("runs_selected", [])
    sweeps = sweep_labels(state.sweeps(state.url()), all_runs)
    cell, status, badge, tag, sweep = st.columns(5)
    cells = cell.multiselect("Cell", sorted(frame["cell"].unique()), key="runs_filter_cell")
    # The plain words, so the widget shows and session state keeps completed, not RunStatus.COMPLETED.
    statuses = status.multiselect(
        "Status", [str(s) for s in STATUSES if s in set(frame["status"])], key="runs_filter_status"
    )
    present = {word for text in frame["badges"] for word in text.split(", ") if word}
    badges = badge.multiselect("Badge", [str(b) for b in RunBadge if b in present], key="runs_filter_badge",
                               help="runs with any of these: pruned by a search, preempted (queued, resumes), "
                                    "resumed after a worker stopped, continued or forked from another run")
    tags = tag.multiselect("Tag", sorted(t for t in frame["tag"].unique() if t), key="runs_filter_tag")
    chosen_sweeps = sweep.multiselect("Sweep", list(sweeps), format_func=sweeps.get, key="runs_filter_sweep",
                                      help="runs queued together as one grid")
    shown = filter_runs(frame, cells, statuses, tags, badges)
    if chosen_sweeps:
        shown = shown[shown["sweep"].isin(chosen_sweeps)]
    shown = shown.reset_index(drop=True)
    positions = [int(i) for i in shown.index[shown["id"].isin(selected)]]
    # The key follows the rows shown, so the table is rebuilt (with the remembered selection)
    # whenever they change, and a row index always means the same run; new progress alone keeps it.
    table_key = f"runs_table_{hash(tuple(shown['id']))}"
    event = st.dataframe(
        shown[TABLE_COLUMNS].assign(status=shown["shown_status"]), key=table_key, on_select="rerun",
        selection_mode="multi-row", hide_index=True, column_config=TABLE_CONFIG,
        height=min(400, 38 + 35 * max(len(shown), 1)), selection_default={"selection": {"rows": positions}},
        placeholder="—",
    )
    live = int(frame["status"].isin([RunStatus.RUNNING, RunStatus.QUEUED]).sum())
    st.caption(f"{len(shown)} of {len(frame)} runs · tick rows to select them · click a header to sort"
               + (f" · {live} queued or running: refreshing every {state.LIVE_REFRESH_S} s" if live else ""))
    chosen = [int(shown["id"].iloc[row]) for row in event.selection.rows if row < len(shown)]
    if chosen != selected:
        remember_selection(chosen)
        st.rerun()  # the whole page: the curves and details below draw the new selection


@state.outage_safe
def render_curves(run_ids: list[int]) -> None:
    """The curves of the selected runs; a fragment that refreshes while any of them runs."""
    database, wanted = state.url(), set(run_ids)
    infos = {run.id: run for run in state.runs(database) if run.id in wanted}
    frame = epochs_frame(state.epochs(database, tuple(run_ids)), infos, lineage_axis=True)
    running = {i for i, run in infos.items() if run.status in (RunStatus.RUNNING, RunStatus.QUEUED)}
    was_running = st.session_state.get("runs_curves_running", set())
    st.session_state["runs_curves_running"] = running
    if was_running - running:
        st.rerun()  # a run just finished: refresh the whole page (table, downloads) once
    if frame.empty:
        st.info("No epoch has been recorded for the selected runs yet"
                + (": they are queued or in their first epoch." if running else "."))
        return
    weight, x, log_y = (
        st.session_state.get("runs_smoothing", 0.0),
        st.session_state.get("runs_x", "epoch"),
        st.session_state.get("runs_log", False),
    )
    stages = stage_changes(frame)
    frame = smooth(frame, CURVE_COLUMNS, weight)
    columns = st.columns(3)
    for column, metric in zip(columns, ("loss", "acc", "copy_acc"), strict=True):
        with column:
            figure = run_curves_figure(frame, metric, x=x, log_y=log_y and metric == "loss", stages=stages)
            st.plotly_chart(with_own_epochs(figure, frame), width="stretch", key=f"runs_curve_{metric}")
    render_memory(frame, x)
    forks = [f"#{i} from epoch {fork_offset(infos[i])} of #{infos[i].parent_id}" for i in sorted(infos)
             if fork_offset(infos[i]) and i in set(frame["run_id"])]
    if forks and x == "epoch":
        st.caption("Forks go on from the parent's epoch they started from (the hover gives their own epoch): "
                   + ", ".join(forks) + ".")
    if running:
        st.caption(f"Live: {len(running)} selected run(s) still going; refreshing every {state.LIVE_REFRESH_S} s.")


def with_own_epochs(figure, frame: pd.DataFrame):
    """The run's own epoch number on hover of the lines drawn on their lineage's axis (a fork's,
    shifted by frames.fork_offset); run_curves_figure names each run's lines by its id."""
    shifted = frame[frame["epoch"] != frame["run_epoch"]]
    if shifted.empty:
        return figure
    own = {str(run_id): group["run_epoch"].tolist() for run_id, group in shifted.groupby("run_id")}
    for trace in figure.data:
        epochs = own.get(trace.legendgroup)
        if epochs is not None and len(epochs) == len(trace.x):
            trace.customdata = epochs
            trace.hovertemplate = f"{trace.name}: %{{y:.3g}} (its epoch %{{customdata}})<extra></extra>"
    return figure


def render_memory(frame: pd.DataFrame, x: str) -> None:
    """The memory diagnostics per epoch (seqcopy.core.diagnostics), where the runs recorded them."""
    measured = [name for name in DIAGNOSTIC_METRICS if frame[name].notna().any()]
    if not measured:
        return
    for column, metric in zip(st.columns(len(measured)), measured, strict=True):
        with column:
            st.plotly_chart(diagnostic_curves_figure(frame, metric, x=x), width="stretch", key=f"runs_memory_{metric}")
    st.caption("Memory on a fixed probe batch of 32 training-length sequences, each epoch: the mean forget or update "
               "gate through the delay, the share of saturated gates, the share of outputs whose largest gradient is "
               "on the right letter (when the diagonal formed), and the gradient that crosses the whole sequence.")


def metrics_csv(store, run_ids: list[int]) -> str:
    """Called by the download button when clicked, outside the script run: no st.* here. Every
    epoch of the runs, exact, with each run's cell, seed, status, badges and settings."""
    rows = store.epochs(run_ids)
    if not rows:
        return ""
    wanted = set(run_ids)
    runs = {run.id: run for run in store.list_runs() if run.id in wanted}  # read now: the status as of the click
    return metrics_export(rows, runs).to_csv(index=False)


MAX_LINEAGE = 10  # runs offered Continue and Fork… at once


def render_lineage(runs) -> None:
    """Each selected run's lineage, a Continue (completed runs: more epochs, a new run that goes
    on from its state) and a Fork… that fills the Launch form with its settings."""
    for run in runs:
        with st.container(border=True):
            name, more, go_on, fork = st.columns([4, 2, 1, 1], vertical_alignment="bottom")
            name.markdown(f"**#{run.id}** {cell_label(run.config)} · seed {run.config.seed} · {run.shown_status}"
                          + (f" · {run.lineage}" if run.lineage else ""))
            epochs = more.number_input("More epochs", 1, 10_000, 10, key=f"runs_more_{run.id}")
            if go_on.button("Continue", key=f"runs_continue_{run.id}", disabled=not run.status.finished,
                            help="a new run that goes on from this one's last epoch, its whole state: "
                                 "constant and plateau rates go on, cosine and linear decay again from the lr"):
                try:
                    child, _, epoch = continue_run(state.get_store(), run.id, int(epochs))
                except (LineageError, UnknownRun) as error:
                    st.error(escape.markdown(error))
                else:
                    state.clear_reads()
                    st.success(f"Queued #{child}: from #{run.id} @ epoch {epoch}, to epoch {epoch + int(epochs)}")
            if fork.button("Fork…", key=f"runs_fork_{run.id}", disabled=run.id not in state.checkpoint_ids(state.url()),
                           help="the Launch form, filled with this run's settings: change K, N, the lr, the epochs "
                                "or make a grid; the runs start from this run's final weights"):
                st.session_state.update(fork_form(run))
                st.switch_page("views/launch.py")


def render_details(run_ids: list[int]) -> None:
    store, wanted = state.get_store(), set(run_ids)
    infos = {run.id: run for run in state.runs(state.url()) if run.id in wanted}
    diff_tab, lineage_tab, export_tab, manage_tab = st.tabs(
        ["Config diff", "Continue or fork", "Downloads", "Tag and delete"])
    with lineage_tab:
        render_lineage([infos[i] for i in run_ids if i in infos][:MAX_LINEAGE])
    with diff_tab:
        configs = {i: infos[i].config for i in run_ids if i in infos}
        shown = dict(infos)  # the runs the diff's columns are
        (only,) = infos.values() if len(infos) == 1 else (None,)
        if only is not None and only.parent_id is not None and st.toggle(
                f"Compare with its parent #{only.parent_id}", key="runs_diff_parent"):
            parent = next((run for run in state.runs(state.url()) if run.id == only.parent_id), None)
            if parent is not None:
                configs = {parent.id: parent.config, only.id: only.config}
                shown = {parent.id: parent, only.id: only}
        if len(configs) == 1:
            (run_id, config), = configs.items()
            st.caption(f"Run {run_id}'s configuration (select two or more runs to see what differs)")
            st.dataframe(
                pd.DataFrame({"value": [str(v) for v in config.to_dict().values()]}, index=list(config.to_dict())),
                width="stretch",
            )
        else:
            diff = config_diff(configs, shown)
            if diff.empty:
                st.info("The selected runs have identical configurations.")
            else:
                st.caption(f"Only the {len(diff)} setting(s) that differ")
                st.dataframe(diff, width="stretch")
        with st.expander("What made them: code, libraries, threads and hardware of each run's segments"):
            for run in infos.values():
                st.markdown(f"**#{run.id}**")
                for line in provenance_lines(run):
                    (st.warning if "rounding only" in line else st.caption)(escape.markdown(line))
        for run in infos.values():
            if run.error and run.status == RunStatus.FAILED:
                with st.expander(f"Run {run.id} failed: {escape.markdown(run.error.splitlines()[0][:120])}"):
                    st.code(run.error, language=None)
    with export_tab:
        # Read and written only when clicked: 200 runs × 50 epochs take a quarter of a second.
        st.download_button("Metrics of the selected runs (CSV)", lambda: metrics_csv(store, run_ids),
                           file_name="seqcopy-metrics.csv", mime="text/csv", icon=":material/download:",
                           disabled=not any(run.epochs_done for run in infos.values()))
        with_checkpoint = state.checkpoint_ids(state.url())
        for run_id in run_ids:
            run = infos.get(run_id)
            if run is None:
                continue
            if run_id in with_checkpoint:
                st.download_button(
                    f"Checkpoint of run {run_id} ({cell_label(run.config)}, seed {run.config.seed})",
                    data=lambda run_id=run_id: store.checkpoint(run_id) or b"",  # read only when clicked
                    file_name=f"run{run_id}-{run.config.cell}-seed{run.config.seed}.pt",
                    mime="application/octet-stream", key=f"runs_ckpt_{run_id}", icon=":material/download:",
                )
            else:
                st.caption(f"Run {run_id} has no checkpoint ({run.status}: checkpoints are saved when a run "
                           "finishes or is cancelled after at least one epoch).")
    with manage_tab:
        common = {infos[i].tag for i in infos}
        tag = st.text_input("Tag", value=common.pop() if len(common) == 1 else "", max_chars=int(SETTINGS["tag"].high),
                            key="runs_tag_" + "-".join(map(str, sorted(infos))))
        if st.button(f"Set this tag on {len(infos)} run(s)", key="runs_set_tag"):
            problem = check_tag(tag.strip())
            if problem:  # once for all the runs, and nothing changed
                st.error(f"The tag was not set: {escape.markdown(problem)}")
            else:
                for run_id in infos:
                    try:
                        store.set_tag(run_id, tag.strip())
                    except UnknownRun:
                        pass  # deleted meanwhile
                state.clear_reads()
                st.rerun()
        st.divider()
        sure = st.checkbox(f"Delete {len(infos)} run(s), their epochs and checkpoints", key="runs_delete_sure")
        if st.button("Delete", type="primary", disabled=not sure, key="runs_delete"):
            problems = []
            for run_id in infos:
                try:
                    store.delete_run(run_id)
                except (UnknownRun, ValueError) as error:
                    problems.append(str(error))
            state.clear_reads()
            remember_selection([])
            st.session_state["runs_delete_problems"] = problems
            st.rerun()
    for problem in st.session_state.pop("runs_delete_problems", []):
        st.warning(problem)


st.title("Runs")
all_runs = state.runs_or_stop(
    "No runs yet. Queue some on the Launch page; they appear here as soon as they are queued."
)

selection_from_url({run.id for run in all_runs})
st.fragment(render_table, run_every=state.LIVE_REFRESH_S)()
chosen = st.session_state.get("runs_selected", [])
if not chosen:
    st.info("Select runs in the table (tick the boxes at the left) to see their curves, compare their "
            "configs and download their metrics or checkpoints.")
    st.stop()

st.subheader(f"{len(chosen)} selected run(s)")
if len(chosen) > MAX_PLOTTED:
    st.caption(f"Curves show the first {MAX_PLOTTED} of them.")
controls = st.columns([2, 2, 1])
controls[0].slider("Smoothing (EMA weight)", 0.0, 0.95, 0.0, 0.05, key="runs_smoothing",
                   help="0 is the raw curve; heavier smoothing shows the trend of noisy runs")
controls[1].radio("x-axis", ["epoch", "minutes"], key="runs_x", horizontal=True,
                  format_func=lambda v: "epoch" if v == "epoch" else "wall time (min)")
controls[2].toggle("log-scale loss", key="runs_log")
plotted = chosen[:MAX_PLOTTED]
shown_ids = set(plotted)
live = any(run.status in (RunStatus.RUNNING, RunStatus.QUEUED) for run in all_runs if run.id in shown_ids)
st.fragment(render_curves, run_every=state.LIVE_REFRESH_S if live else None)(plotted)
render_details(chosen)
