"""Launch: every training setting, grouped and explained; one submit queues cells × seeds.
Below, the queue: live progress, status and cancel."""

import time

import streamlit as st

from seqcopy.config import CELL_NAMES, SETTINGS, ConfigError, RunConfig
from seqcopy.presets import PRESETS
from seqcopy.store import StoreError, UnknownRun
from seqcopy.ui import escape, state
from seqcopy.ui.estimates import calibration, estimate_grid, format_bytes, format_duration
from seqcopy.ui.launch_form import FIELDS, GROUPS, build_configs, form_values, help_for, label_for
from seqcopy.ui.workers import queued_reasons, workers_view

CUSTOM = "(custom)"
DEFAULT_PRESET = "Quick demo"


def key(name: str) -> str:
    return f"launch_{name}"


def load_preset() -> None:
    """Fill every field from the chosen preset (cells and seeds are left as they are)."""
    name = st.session_state[key("preset")]
    if name in PRESETS:
        for field, value in form_values(PRESETS[name]).items():
            st.session_state[key(field)] = value


def initialise() -> None:
    if key("preset") not in st.session_state:
        st.session_state[key("preset")] = DEFAULT_PRESET
        load_preset()
        st.session_state[key("cells")] = [PRESETS[DEFAULT_PRESET].cell]
        st.session_state[key("seeds")] = str(PRESETS[DEFAULT_PRESET].seed)
    for field, value in form_values(RunConfig()).items():  # any field a preset left out
        st.session_state.setdefault(key(field), value)


def field_widget(name: str, error: str | None) -> None:
    """The widget RunConfig's declaration of ``name`` asks for (seqcopy.settings)."""
    declaration = SETTINGS[name]
    common = dict(label=declaration.label, key=key(name), help=declaration.help)
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
        st.text_input(max_chars=int(declaration.high or 200), **common)
    if error:
        st.markdown(f":red[**{escape.markdown(error)}**]")


def form_result():
    values = {name: st.session_state[key(name)] for name in FIELDS}
    return build_configs(values, st.session_state[key("cells")], st.session_state[key("seeds")])


def render_form(errors: dict[str, str]) -> None:
    st.selectbox("Preset", [*PRESETS, CUSTOM], key=key("preset"), on_change=load_preset,
                 help="fills every field below; change any of them afterwards")
    with st.container(border=True):
        st.markdown("**Grid** — one run per cell and seed")
        left, right = st.columns(2)
        with left:
            st.multiselect(label_for("cells"), CELL_NAMES, key=key("cells"), help=help_for("cells"))
            if errors.get("cells"):
                st.markdown(f":red[**{escape.markdown(errors['cells'])}**]")
        with right:
            st.text_input(label_for("seeds"), key=key("seeds"), help=help_for("seeds"), max_chars=500)
            if errors.get("seeds"):
                st.markdown(f":red[**{escape.markdown(errors['seeds'])}**]")
    for group, names in GROUPS.items():
        with st.container(border=True):
            st.markdown(f"**{group}**")
            columns = st.columns(3)
            for index, name in enumerate(names):
                with columns[index % 3]:
                    field_widget(name, errors.get(name))


def render_summary(result) -> None:
    store = state.get_store()
    if result.errors:
        st.error("Fix these before queueing (nothing is queued until every field is valid):\n\n"
                 + "\n".join(f"- **{label_for(name)}**: {escape.markdown(message)}" for name, message in result.errors.items()))
    else:
        factor = calibration(state.speed_history(state.url()))
        estimate = estimate_grid(result.configs, factor)
        st.metric("Runs to queue", estimate.runs)
        per_run = estimate.seconds_per_run
        low, high = min(per_run), max(per_run)
        st.metric("Time per run", format_duration(high) if high - low < 1 else f"{format_duration(low)} – {format_duration(high)}")
        st.metric("Total, one worker", format_duration(estimate.total_seconds))
        st.metric("Peak memory of a run", format_bytes(estimate.peak_bytes))
        basis = ("scaled by the speed of this store's recent runs" if estimate.calibrated
                 else "a conservative guess for a 2-core CPU; it sharpens once runs have finished here")
        st.caption(f"Estimates: {basis}.")
    if st.button("Queue runs", type="primary", disabled=False, width="stretch"):
        if result.errors:
            st.error(f"Nothing was queued: {len(result.errors)} field(s) need fixing.")
            return
        try:
            ids = store.submit_many(result.configs)
        except (ConfigError, StoreError) as error:
            st.error(f"Nothing was queued: {escape.markdown(error)}")
            return
        state.clear_reads()
        st.session_state["launch_queued"] = ids
    queued = st.session_state.get("launch_queued")
    if queued:
        st.success(f"Queued {len(queued)} run(s): " + ", ".join(f"#{i}" for i in queued))


def cancel(run_id: int) -> None:
    try:
        state.get_store().request_cancel(run_id)
    except UnknownRun:
        pass  # deleted meanwhile: nothing left to cancel
    state.clear_reads()


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
    active = sorted(state.active_runs(state.url()), key=lambda r: (r.status != "running", r.id))
    if not active:
        st.info("Nothing is queued or running. Queue runs above; finished runs are on the Runs page.")
        st.page_link("views/runs.py", label="Open Runs", icon=":material/monitoring:")
        return
    running = [r for r in active if r.status == "running"]
    st.caption(f"{len(running)} running, {len(active) - len(running)} queued · refreshes every {state.LIVE_REFRESH_S} s")
    if not running and state.external_workers() and not any(worker.state() == "live" for worker in workers):
        shown = state.get_store().safe_url
        st.warning("Runs are queued but no worker runs them: start one on a machine that reaches this database:")
        st.code(f"SEQCOPY_DB='{shown}' python -m seqcopy worker", language="bash")
        if "***" in shown:
            st.caption("The password is masked here: put yours in its place (or in ~/.pgpass).")
    now = time.time()
    reasons = queued_reasons(active[:MAX_SHOWN], workers, now)
    for run in active[:MAX_SHOWN]:
        with st.container(border=True):
            name, epochs, batches, action = st.columns([3, 3, 3, 1], vertical_alignment="center")
            config = run.config
            name.markdown(f"**#{run.id}** {config.cell} · seed {config.seed} · {run.status}"
                          + (" · cancelling…" if run.cancel_requested and run.status == "running" else ""))
            name.caption(f"K={config.train_seq_len} N={config.train_output_len} hidden {config.hidden_size}"
                         + f" · {run.device_used or config.device}"
                         + (f" · tag {escape.markdown(run.tag)}" if run.tag else ""))
            epochs.progress(min(1.0, run.epochs_done / max(run.epochs_total, 1)),
                            text=f"epoch {run.epochs_done}/{run.epochs_total}")
            if run.status == "running":
                within = run.batch_done / max(run.batch_total, 1)
                copy = run.latest.get("test_copy_acc")
                batches.progress(min(1.0, within), text=f"batch {run.batch_done}/{run.batch_total}"
                                 + (f" · copy acc {copy:.3f}" if copy is not None else ""))
                if run.heartbeat_at and now - run.heartbeat_at > 30:
                    batches.caption(f"no heartbeat for {now - run.heartbeat_at:.0f} s")
            else:
                batches.caption(f"queued at {time.strftime('%H:%M:%S', time.localtime(run.created_at))}"
                                f" · {escape.markdown(reasons[run.id])}")
            action.button("Cancel", key=f"cancel_{run.id}", on_click=cancel, args=(run.id,),
                          disabled=run.cancel_requested, help="queued: removed at once; running: stops at the next batch")
    if len(active) > MAX_SHOWN:
        st.caption(f"… and {len(active) - MAX_SHOWN} more (see the Runs page, filtered by status).")


st.title("Launch runs")
initialise()
result = form_result()
form_column, summary_column = st.columns([3, 1], gap="large")
with form_column:
    render_form(result.errors)
with summary_column:
    render_summary(result)
render_queue()
