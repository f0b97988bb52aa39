"""Launch: every training setting, grouped and explained; one submit queues cells × seeds × any
swept setting, as one sweep. Below, the queue: live progress, status and cancel."""

import time

import streamlit as st

from seqcopy.config import CELL_NAMES, SETTINGS, ConfigError, RunConfig, cell_label
from seqcopy.presets import BY_NAME, BY_SLUG, PRESETS
from seqcopy.runs.lineage import LineageError, fork_start, kept_weights
from seqcopy.runs.queueing import queue_grid
from seqcopy.runs.states import RunBadge, RunStatus, WorkerPresence
from seqcopy.runs.store import StoreError, UnknownRun, run_note
from seqcopy.ui import escape, search_form, state
from seqcopy.ui.estimates import calibration, estimate_grid, format_bytes, format_duration
from seqcopy.ui.launch_form import (
    FIELDS,
    GROUPS,
    SWEEP_FIELDS,
    SWEEP_ROWS,
    FormTies,
    SweepRow,
    build_configs,
    form_values,
    help_for,
    label_for,
    preset_sweep,
)
from seqcopy.ui.lineage import FORK_KEY
from seqcopy.ui.workers import queued_reasons, workers_view

CUSTOM = "(custom)"
DEFAULT_PRESET = "Quick demo"


def key(name: str) -> str:
    return f"launch_{name}"


def set_sweep(rows: list[SweepRow], ties: FormTies) -> None:
    for index in range(SWEEP_ROWS):
        row = rows[index] if index < len(rows) else SweepRow(None)
        st.session_state[key(f"sweep_field_{index}")] = row.field
        st.session_state[key(f"sweep_values_{index}")] = row.values
    st.session_state[key("tie_n")] = ties.n_to_k
    st.session_state[key("tie_test")] = ties.test_to_train
    st.session_state[key("tie_factor")] = ties.factor


def load_preset() -> None:
    """Fill every field and the sweep from the chosen preset; a preset that carries a grid also
    sets the cells and seeds (others leave them as they are)."""
    preset = BY_NAME.get(st.session_state[key("preset")])
    if preset is None:
        return
    for field, value in form_values(preset.config).items():
        st.session_state[key(field)] = value
    set_sweep(*preset_sweep(preset))
    st.session_state[key("sweep_name")] = ""
    if preset.cells:
        st.session_state[key("cells")] = list(preset.cells)
    if preset.seeds:
        st.session_state[key("seeds")] = ", ".join(map(str, preset.seeds))


# The form as the person left it: Streamlit drops a widget's value after a run that does not draw
# it (a visit to Runs, or a live fragment's rerun there), which reset the form to its preset.
SAVED_FORM = "saved_launch_form"


def form_keys() -> list[str]:
    """The keys of the Sweep form's widgets: those Streamlit drops, saved and put back. Mode and
    the search's own fields pass defaults to their widgets, which Streamlit refuses to mix with
    a value set through the session state, so they are left out."""
    names = [*FIELDS, "preset", "cells", "seeds", "sweep_name", "tie_n", "tie_test", "tie_factor"]
    names += [f"sweep_{part}_{index}" for index in range(SWEEP_ROWS) for part in ("field", "values")]
    return [key(name) for name in names]


def restore_form() -> None:
    for name, value in st.session_state.get(SAVED_FORM, {}).items():
        if name not in st.session_state:  # a fork's settings, just set, stay
            st.session_state[name] = value


def save_form() -> None:
    st.session_state[SAVED_FORM] = {name: st.session_state[name] for name in form_keys() if name in st.session_state}


def initialise() -> None:
    restore_form()
    if key("preset") not in st.session_state:
        st.session_state[key("preset")] = DEFAULT_PRESET
        st.session_state[key("cells")] = [PRESETS[DEFAULT_PRESET].cell]
        st.session_state[key("seeds")] = str(PRESETS[DEFAULT_PRESET].seed)
        load_preset()
    for field, value in form_values(RunConfig()).items():  # any field a preset left out
        st.session_state.setdefault(key(field), value)


def field_widget(name: str, error: str | None, follows: str | None = None) -> None:
    """The widget RunConfig's declaration of ``name`` asks for (seqcopy.settings); ``follows``
    says the sweep sets it instead (swept or tied), and the widget is disabled."""
    declaration = SETTINGS[name]
    common = dict(label=declaration.label, key=key(name), help=declaration.help, disabled=follows is not None)
    if declaration.kind == "int":
        st.number_input(step=1, **common)
    elif declaration.kind == "float":
        step = declaration.step or 0.05
        st.number_input(step=step, format="%.4f" if step < 0.01 else "%.2f", **common)
    elif declaration.kind == "bool":
        st.toggle(**common)
    elif declaration.kind == "choice":
        st.selectbox(options=declaration.choices, **common)
    else:
        st.text_input(max_chars=int(declaration.high), **common)  # the tag, whose length is capped
    if follows:
        st.caption(f"Set by the sweep: {follows}")
    show_error(error)


def show_error(error: str | None) -> None:
    if error:
        st.markdown(f":red[**{escape.markdown(error)}**]")


def form_result():
    values = {name: st.session_state[key(name)] for name in FIELDS}
    rows = [SweepRow(st.session_state[key(f"sweep_field_{i}")], st.session_state[key(f"sweep_values_{i}")])
            for i in range(SWEEP_ROWS)]
    ties = FormTies(
        st.session_state[key("tie_n")], st.session_state[key("tie_test")], st.session_state[key("tie_factor")]
    )
    return build_configs(values, st.session_state[key("cells")], st.session_state[key("seeds")], rows, ties,
                         st.session_state[key("sweep_name")])


def long_lengths_note() -> str:
    """The assignment's lengths on this machine, from the same estimate the summary shows."""
    final = BY_SLUG["original-final"].config.replace(cell="lstm", train_seq_len=1000, train_output_len=1000,
                                                    test_seq_len=1000, test_output_len=1000)
    one_run = estimate_grid([final], calibration(state.speed_history(state.url()))).total_seconds
    return (f"The assignment's lengths (K = 100 … 1000) need hours per run on a CPU: one LSTM run of the original "
            f"final configuration at K = N = 1000 is estimated at {format_duration(one_run)} here. Sweep them on a "
            "GPU (Device: cuda) or with workers on several machines sharing one PostgreSQL store (README).")


def render_sweep(result) -> None:
    errors = result.errors
    with st.container(border=True):
        st.markdown("**Sweep** — several values of any setting; the grid is cells × seeds × every row")
        for index in range(SWEEP_ROWS):
            setting, values = st.columns([2, 3])
            chosen = setting.selectbox(
                "Setting" if index == 0 else f"Setting {index + 1}", SWEEP_FIELDS, key=key(f"sweep_field_{index}"),
                format_func=label_for, placeholder="(none)", label_visibility="visible" if index == 0 else "collapsed",
                help="any numeric, on/off or choice setting (it is then set here, not in its box below)",
            )
            values.text_input(
                "Values" if index == 0 else f"Values {index + 1}", key=key(f"sweep_values_{index}"), max_chars=500,
                disabled=chosen is None, placeholder="comma-separated, e.g. 10, 20, 40",
                label_visibility="visible" if index == 0 else "collapsed",
            )
            with values:
                show_error(errors.get(f"sweep_{index}"))
        tie_n, tie_test, factor = st.columns(3)
        tie_n.toggle("Tie N to K", key=key("tie_n"), help="the output length N equals the input length K in every run")
        tie_test.toggle("Tie test K, N to training", key=key("tie_test"),
                        help="test K and test N are the training K and N times the factor")
        factor.number_input("× factor", min_value=0.1, max_value=100.0, step=0.5, key=key("tie_factor"),
                            disabled=not st.session_state[key("tie_test")])
        st.text_input(label_for("sweep_name"), key=key("sweep_name"), max_chars=int(SETTINGS["tag"].high),
                      help=help_for("sweep_name"),
                      placeholder=result.name if result.grid is not None else "")
        show_error(errors.get("sweep_name"))
        show_error(errors.get("grid"))
        st.caption(long_lengths_note())


def render_fork() -> None:
    """Which run the form's runs start from, when Fork… on the Runs page filled it."""
    fork_from = st.session_state.get(FORK_KEY)
    if fork_from is None:
        return
    st.info(f"Forking run #{fork_from}: the runs queued below start from its final weights, with the settings "
            "below (the cell, its form, the embedding and hidden sizes must stay).")
    # Under the note, not in a narrow column beside it, where its label was cut.
    if st.button("Train from scratch instead", key="button_fork_drop", icon=":material/restart_alt:"):
        st.session_state.pop(FORK_KEY, None)
        st.rerun()


def render_form(result) -> None:
    errors = result.errors
    render_fork()
    follows = result.swept | FormTies(st.session_state[key("tie_n")], st.session_state[key("tie_test")],
                                      st.session_state[key("tie_factor")]).targets()
    st.selectbox("Preset", [*PRESETS, CUSTOM], key=key("preset"), on_change=load_preset,
                 help="fills every field below; change any of them afterwards")
    with st.container(border=True):
        st.markdown("**Grid** — one run per cell and seed")
        left, right = st.columns(2)
        with left:
            st.multiselect(label_for("cells"), CELL_NAMES, key=key("cells"), help=help_for("cells"))
            if errors.get("cells"):
                show_error(errors['cells'])
        with right:
            st.text_input(label_for("seeds"), key=key("seeds"), help=help_for("seeds"), max_chars=500)
            if errors.get("seeds"):
                show_error(errors['seeds'])
    render_sweep(result)
    for group, names in GROUPS.items():
        with st.container(border=True):
            st.markdown(f"**{group}**")
            columns = st.columns(3)
            for index, name in enumerate(names):
                with columns[index % 3]:
                    field_widget(name, errors.get(name), follows.get(name))


def render_summary(result) -> None:
    store = state.get_store()
    if result.errors:
        st.error(
            "Fix these before queueing (nothing is queued until every field is valid):\n\n"
            + "\n".join(
                f"- **{label_for(name)}**: {escape.markdown(message)}" for name, message in result.errors.items()
            )
        )
    else:
        factor = calibration(state.speed_history(state.url()))
        estimate = estimate_grid(result.configs, factor)
        st.metric("Runs to queue", estimate.runs)
        st.caption(result.grid.describe_size())
        per_run = estimate.seconds_per_run
        low, high = min(per_run), max(per_run)
        st.metric(
            "Time per run",
            format_duration(high) if high - low < 1 else f"{format_duration(low)} – {format_duration(high)}",
        )
        st.metric("Total, one worker", format_duration(estimate.total_seconds))
        if estimate.runs > 1:
            st.metric("Total, two workers", format_duration(estimate.wall_seconds(2)),
                      help="two workers, one per core of a 2-core machine (OMP_NUM_THREADS=1 each)")
        st.metric("Peak memory of a run", format_bytes(estimate.peak_bytes),
                  help="one worker trains one run at a time: a worker needs this much, two workers twice as much")
        basis = ("scaled by the speed of this store's recent runs" if estimate.calibrated
                 else "a conservative guess for a 2-core CPU; it sharpens once runs have finished here")
        if any(config.curriculum for config in result.configs):
            basis += ("; every epoch is counted at full length, though a curriculum starts on shorter "
                      "sequences, so such runs usually finish sooner")
        st.caption(f"Estimates: {basis}.")
    if st.button("Queue runs", type="primary", width="stretch"):
        if result.errors:
            st.error(f"Nothing was queued: {len(result.errors)} field(s) need fixing.")
            return
        fork_from = st.session_state.get(FORK_KEY)
        try:
            fork = fork_start(store, fork_from) if fork_from is not None else None
            queued = queue_grid(store, result.configs, name=result.name, spec=result.grid.spec(),
                                is_sweep=result.is_sweep, fork=fork)
        except (ConfigError, StoreError, LineageError, UnknownRun) as error:
            st.error(f"Nothing was queued: {escape.markdown(error)}")
            return
        state.clear_reads()
        st.session_state["launch_queued"] = (queued.sweep_id, queued.run_ids)
    queued = st.session_state.get("launch_queued")
    if queued:
        sweep_id, ids = queued
        shown = ", ".join(f"#{i}" for i in ids) if len(ids) <= 10 else f"#{ids[0]} … #{ids[-1]}"
        st.success(f"Queued {len(ids)} run(s)" + (f" as sweep #{sweep_id}" if sweep_id else "") + f": {shown}")
        if sweep_id:
            st.page_link("views/compare.py", label=f"Compare sweep #{sweep_id}", icon=":material/compare:",
                         query_params={"sweep": str(sweep_id)})


def cancel(run_id: int) -> None:
    """Called in the queue's own run, not as a button's callback: Streamlit runs callbacks before
    the page, outside :func:`state.outage_safe`, so a database outage there was a traceback."""
    store = state.get_store()
    try:
        store.request_cancel(run_id)
        # A run cancelled while queued to resume keeps its last state's weights as its checkpoint
        # now, so Runs' download and the Playground find them as the command line's cancel does.
        kept_weights(store, run_id)
    except UnknownRun:
        pass  # deleted meanwhile: nothing left to cancel
    state.clear_reads()
    st.rerun()  # the whole page: the queue and the summary read the change


MAX_SHOWN = 25


def render_workers(workers) -> None:
    """Who is there to train: live and vanished workers, the stopped ones folded away."""
    view = workers_view(workers)
    st.markdown(f"**Workers** · {escape.markdown(view.summary)}")
    if not view.present.empty:
        st.dataframe(view.present, hide_index=True, width="stretch")
    if not view.stopped.empty:
        with st.expander(f"{len(view.stopped)} stopped in the last day"):
            st.dataframe(view.stopped, hide_index=True, width="stretch")


@st.fragment(run_every=state.LIVE_REFRESH_S)
@state.outage_safe
def render_queue() -> None:
    st.subheader("Queue")
    workers = state.workers(state.url())
    render_workers(workers)
    active = sorted(state.active_runs(state.url()), key=lambda r: (r.status != RunStatus.RUNNING, r.id))
    if not active:
        st.info("Nothing is queued or running. Queue runs above; finished runs are on the Runs page.")
        st.page_link("views/runs.py", label="Open Runs", icon=":material/monitoring:")
        return
    running = [r for r in active if r.status == RunStatus.RUNNING]
    st.caption(
        f"{len(running)} running, {len(active) - len(running)} queued · refreshes every {state.LIVE_REFRESH_S} s"
    )
    live = any(worker.state() == WorkerPresence.LIVE for worker in workers)
    if not running and state.external_workers() and not live:
        shown = state.get_store().safe_url
        st.warning("Runs are queued but no worker runs them: start one on a machine that reaches this database:")
        st.code(f"SEQCOPY_DB='{shown}' seqcopy worker", language="bash")
        if "***" in shown:
            st.caption("The password is masked here: put yours in its place (or in ~/.pgpass).")
    elif not running and not live:
        st.caption("No worker is live yet: the sidebar says what became of the local worker.")
    now = time.time()
    reasons = queued_reasons(active[:MAX_SHOWN], workers, now)
    for run in active[:MAX_SHOWN]:
        with st.container(border=True):
            name, epochs, batches, action = st.columns([3, 3, 3, 1], vertical_alignment="center")
            config = run.config
            name.markdown(f"**#{run.id}** {cell_label(config)} · seed {config.seed} · {run.shown_status}"
                          + (" · cancelling…" if run.cancel_requested and run.status == RunStatus.RUNNING else ""))
            name.caption(f"K={config.train_seq_len} N={config.train_output_len} hidden {config.hidden_size}"
                         + f" · {run.device_used or config.device}"
                         + (f" · tag {escape.markdown(run.tag)}" if run.tag else ""))
            epochs.progress(min(1.0, run.epochs_done / max(run.epochs_total, 1)),
                            text=f"epoch {run.epochs_done}/{run.epochs_total}")
            if run.status == RunStatus.RUNNING:
                within = run.batch_done / max(run.batch_total, 1)
                copy = run.latest.get("test_copy_acc")
                batches.progress(min(1.0, within), text=f"batch {run.batch_done}/{run.batch_total}"
                                 + (f" · copy acc {copy:.3f}" if copy is not None else ""))
                if run.heartbeat_at and now - run.heartbeat_at > 30:
                    batches.caption(f"no heartbeat for {now - run.heartbeat_at:.0f} s")
            else:
                note = run_note(run) if RunBadge.PREEMPTED in run.badges else ""  # 'preempted at epoch k; resumes'
                batches.caption(f"queued at {time.strftime('%H:%M:%S', time.localtime(run.created_at))}"
                                + (f" · {escape.markdown(note)}" if note else "")
                                + f" · {escape.markdown(reasons[run.id])}")
            if action.button("Cancel", key=f"cancel_{run.id}", disabled=run.cancel_requested,
                             help="queued: removed at once; running: stops at the next batch"):
                cancel(run.id)
    if len(active) > MAX_SHOWN:
        st.caption(f"… and {len(active) - MAX_SHOWN} more (see the Runs page, filtered by status).")


def search_base(result) -> tuple[RunConfig | None, list[int], str | None]:
    """Search mode: the form's first run as the base (its first cell), the form's seeds."""
    if result.errors or not result.configs:
        return None, [], next(iter(result.errors.values()), None)
    return result.configs[0], sorted({config.seed for config in result.configs}), None


st.title("Launch runs")
initialise()
result = form_result()
mode = st.segmented_control("Mode", ["Sweep", "Search"], default="Sweep", key="launch_mode", required=True,
                            help="Sweep: every point of the grid; Search: Optuna chooses the trials and prunes")
form_column, summary_column = st.columns([3, 1], gap="large")
with form_column:
    if mode == "Search":
        search_form.render_space()
    render_form(result)
save_form()
with summary_column:
    if mode == "Search":
        found = search_form.form_plan(*search_base(result))
        search_form.render_summary(found, state.get_store(), calibration(state.speed_history(state.url())))
    else:
        render_summary(result)
render_queue()
