"""Playground: pick a finished run, type a sequence, and watch the model read it and copy it,
step by step; look inside the cell (gates, cell state, m_t), at which input each output reads,
at what an edit changes, at a second model beside it, and at the path of its state; all of it at
the final model or at any epoch whose weights the run kept (the Epoch slider, seqcopy.runs.snapshots).
The URL says which run, epoch and sequence are shown (?run=12&epoch=8&seq=axcry): a view can be shared."""

from functools import partial

import numpy as np
import streamlit as st

from seqcopy.config import cell_label
from seqcopy.core.checkpoint import CheckpointError
from seqcopy.runs.states import RunStatus
from seqcopy.ui import escape, state
from seqcopy.ui.inside import DEFAULT_DRAWN, QUANTITIES, UNIT_ORDERS, UntraceableCell, pick_units
from seqcopy.ui.playground import (
    FINAL,
    MAX_EXTRA_DELIMITERS,
    URL_KEYS,
    changed_positions,
    copies_frame,
    edit_sequence,
    epoch_caption,
    epoch_choices,
    epoch_from_url,
    marked_copy,
    max_sequence_length,
    play_tick,
    play_toggled,
    position_from_selection,
    random_sequence,
    run_copy,
    run_from_url,
    sequence_from_url,
    suggest_partner,
    trajectory_frame,
    url_query,
)
from seqcopy.ui.playground_figures import (
    copy_grid_figure,
    input_row_figure,
    inside_figure,
    right_probability_figure,
    saliency_figure,
    trajectory_figure,
)
from seqcopy.ui.saliency import MAX_SALIENCY_LETTERS, MEASURES
from seqcopy.vocab import ALPHABET, InvalidSequence

MAX_UNITS_SHOWN = 128  # units drawn per heatmap; more makes an unreadable picture
DEFAULT_UNITS_SHOWN = 32
PLAY_INTERVAL_S = 0.6
VIEWS = ["Step by step", "Which input each output reads", "What if", "Side by side", "State trajectory"]


# A resource, not data: a 500-letter pass of a 256-unit mLSTM holds ~7 MB, which st.cache_data would
# unpickle on every rerun (every play tick); the trace is never changed, so one object is shared.
@st.cache_resource(max_entries=16, show_spinner=False)
def copy_pass(database: str, run_id: int, finished_at, text: str, extra_delimiters: int = 0,
              epoch: int | None = None):
    """The run's model (final, or after ``epoch``) over ``text``, cached: every view of the page
    reads the same pass."""
    model, config = state.model_for(database, run_id, finished_at, epoch)
    return run_copy(model, config, text, extra_delimiters)


@st.cache_data(max_entries=16, show_spinner="Measuring what each copied symbol depends on…")
def saliency_of(database: str, run_id: int, finished_at, text: str, measure: str, epoch: int | None = None):
    model, config = state.model_for(database, run_id, finished_at, epoch)
    return MEASURES[measure](model, config, text)


def set_random(length: int) -> None:
    st.session_state["play_text"] = random_sequence(length, np.random.default_rng())
    st.session_state["play_step"] = 0


def toggle_play(steps: int) -> None:
    st.session_state["play_on"], st.session_state["play_step"] = play_toggled(
        st.session_state.get("play_on", False), st.session_state.get("play_step", 0), steps)


def describe(run) -> str:
    copy = run.latest.get("test_copy_acc")
    score = f" · test copy acc {copy:.3f}" if copy is not None else ""
    stopped = " · cancelled early" if run.status == RunStatus.CANCELLED else ""
    tag = f" · {run.tag}" if run.tag else ""  # as edited on Runs
    config = run.config
    return f"#{run.id} {cell_label(config)} · seed {config.seed} · K={config.train_seq_len}{tag}{score}{stopped}"


def inside_controls(trace, cell: str) -> dict:
    """What to draw inside the cell and which units: the chosen quantities (units × steps each),
    ordered and cut to the chosen range."""
    available = [name for name in QUANTITIES if name in trace.states]
    drawn = st.pills(
        "Inside the cell", available, selection_mode="multi", default=DEFAULT_DRAWN.get(cell, ["h"]),
        format_func=lambda name: QUANTITIES[name].label, key=f"play_draw_{cell}",
        help="gates (0 closed, 1 open), the cell state and m_t, on the same time axis as the input",
    ) or ["h"]
    drawn = [name for name in available if name in drawn]  # top to bottom in the order the step computes them
    order_column, units_column = st.columns([1, 2])
    order_by = order_column.selectbox(
        "Order units by",
        UNIT_ORDERS,
        key="play_order",
        help="sorting by the value at the end of reading puts the units that stored something together",
    )
    order = trace.unit_orders[order_by]  # computed once per pass, not at every tick
    hidden = len(order)
    first, last = 1, hidden
    if hidden > DEFAULT_UNITS_SHOWN:
        first, last = units_column.slider(
            "Units drawn (in this order)", 1, hidden, (1, DEFAULT_UNITS_SHOWN), key=f"play_units_{hidden}",
            help=f"at most {MAX_UNITS_SHOWN} at once",
        )
        last = min(last, first + MAX_UNITS_SHOWN - 1)
    else:
        units_column.caption(f"All {hidden} units, ordered by {order_by} of {trace.ordering}.")
    return pick_units(trace.states, drawn, order, first, last)


def stepper(trace, cell: str) -> None:
    """The step slider and everything drawn at that step; reruns on its own while playing."""
    last = trace.steps - 1
    finished = False
    if st.session_state.get("play_on"):
        st.session_state["play_step"], playing = play_tick(st.session_state.get("play_step", 0), trace.steps)
        st.session_state["play_on"] = playing
        finished = not playing
    if st.session_state.get("play_step", 0) > last:
        st.session_state["play_step"] = last
    step = st.slider("Step", 0, last, key="play_step", help="drag to walk through the sequence one time step at a time")
    columns = st.columns(4)
    columns[0].metric("Input at this step", trace.inputs[step])
    columns[1].metric(
        "Model writes",
        trace.outputs[step],
        f"p = {trace.probabilities.iloc[:, step].max():.2f}",
        delta_color="off",
        delta_arrow="off",
    )
    columns[2].metric("Should write", trace.targets[step])
    if step >= trace.copy_start:
        columns[3].metric("Copy", "right ✓" if trace.outputs[step] == trace.targets[step] else "wrong ✗")
    else:
        columns[3].metric("Phase", trace.phases[step])
    states = inside_controls(trace, cell)
    st.caption(trace.phase_summary)
    st.plotly_chart(inside_figure(states, trace.inputs, len(trace.sequence), trace.padding, step=step,
                                  probabilities=trace.probabilities),
                    width="stretch", key="play_inside")
    if finished:
        st.rerun()  # the whole page: the button says Play again and the timer stops


def step_by_step(trace, cell: str) -> None:
    play_column, _ = st.columns([1, 5])
    playing = st.session_state.get("play_on", False)
    play_column.button("⏸ Pause" if playing else "▶ Play", on_click=toggle_play, args=(trace.steps,), key="play_button",
                       help="step through the sequence automatically")
    st.fragment(stepper, run_every=PLAY_INTERVAL_S if playing else None)(trace, cell)
    with st.expander("Every copied symbol"):
        table = trace.copied.assign(right=lambda f: f["right"].map({True: "✓ right", False: "✗ wrong"}))
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"confidence": st.column_config.NumberColumn(format="%.2f"),
                                    "p_right": st.column_config.NumberColumn("p(right)", format="%.2f")})


def which_input(run, trace, epoch: int | None) -> None:
    letters = len(trace.sequence)
    if letters > MAX_SALIENCY_LETTERS:
        st.info(f"Which input each output reads is measured for sequences of up to {MAX_SALIENCY_LETTERS} letters; "
                f"this one has {letters}.")
        return
    gradient = saliency_of(state.url(), run.id, run.finished_at, trace.sequence, "gradient", epoch)
    replacement = saliency_of(state.url(), run.id, run.finished_at, trace.sequence, "replacement", epoch)
    columns = st.columns([1, 1, 1, 2], vertical_alignment="bottom")
    columns[0].metric("Diagonal (gradient)", f"{gradient.diagonal_score:.0%}",
                      help="share of copied outputs whose largest gradient sits on the right input letter")
    columns[1].metric("Diagonal (replacement)", f"{replacement.diagonal_score:.0%}",
                      help="share of copied outputs that lose most when the right input letter is replaced")
    columns[2].metric("Gradient on the letters", f"{np.mean(gradient.letter_share):.0%}",
                      help="mean share of each output's gradient norm on the letters read (the rest on '$' and blanks)")
    everything = columns[3].toggle(
        "Gradient: also the '$' and blank steps",
        key="play_saliency_all",
        help="steps after the letters carry no information but can have large gradients; values above 1 are clipped",
    )
    left, right = st.columns(2)
    left.plotly_chart(saliency_figure(gradient.matrix, letters, trace.inputs, gradient.diagonal_score, "gradient",
                                      letters_only=not everything), width="stretch", key="play_saliency")
    right.plotly_chart(
        saliency_figure(replacement.matrix, letters, trace.inputs, replacement.diagonal_score, "replacement"),
        width="stretch",
        key="play_replacement",
    )
    st.caption(
        "Rows: the copied outputs; columns: the input letters; each row scaled to its largest entry, the squares "
        "mark the right input. **Gradient**: the norm of the gradient of the output's log-probability of the "
        "right symbol with respect to the input's embedding. **Replacement**: how much that log-probability "
        "drops, on average, when the input letter is replaced by each of the eight others. A confident model "
        "saturates, and its gradient often peaks beside the right letter; the replacement asks directly."
    )


def pick_position(letters: int) -> None:
    chosen = position_from_selection(st.session_state.get("whatif_click"), letters)
    if chosen is not None:
        st.session_state["whatif_position"] = chosen


def what_if(run, trace, config, epoch: int | None) -> None:
    text, letters = trace.sequence, len(trace.sequence)
    if not 1 <= st.session_state.get("whatif_position", 1) <= letters:
        st.session_state["whatif_position"] = 1
    position = st.session_state.get("whatif_position", 1)
    st.caption("Click a letter (or pick its position), choose a new letter, and see which outputs change.")
    st.plotly_chart(
        input_row_figure(text, position),
        width="stretch",
        key="whatif_click",
        on_select=partial(pick_position, letters),
        selection_mode="points",
        config={"displayModeBar": False},
    )
    columns = st.columns(3)
    position = columns[0].number_input("Position", 1, letters, key="whatif_position", step=1)
    current = text[position - 1]
    letter = columns[1].selectbox(
        "New letter",
        list(ALPHABET),
        index=(ALPHABET.index(current) + 1) % len(ALPHABET),
        key=f"whatif_letter_{current}",
    )
    extra = columns[2].slider(
        "More '$' (a longer delay)",
        0,
        min(MAX_EXTRA_DELIMITERS, max(20, 4 * config.padding)),
        0,
        key="whatif_extra",
        help=f"trained with {config.padding} '$'; more makes the model hold the letters longer",
    )
    edited_text = edit_sequence(text, position, letter)
    edited = copy_pass(state.url(), run.id, run.finished_at, edited_text, extra, epoch)
    copies = copies_frame({"original": trace, "edited": edited})
    changed = changed_positions(copies, "original", "edited")
    delay = f" with {config.padding + extra} '\\$'" if extra else ""
    st.markdown(
        f"**Original:** `{text}` → {marked_copy(trace)}  \n**Edited:** `{edited_text}`{delay} → {marked_copy(edited)}"
    )
    if changed:
        st.markdown(
            f"**Changed outputs:** position{'s' if len(changed) > 1 else ''} "
            f"{', '.join(map(str, changed))} of {letters}"
            + (" — only the edited one, as a perfect copier would." if changed == [position] else ".")
        )
    else:
        st.markdown("**No output changed.**")
    st.plotly_chart(copy_grid_figure(copies, changed), width="stretch", key="whatif_grid")
    st.plotly_chart(right_probability_figure(copies), width="stretch", key="whatif_p")


def side_by_side(run, trace, usable, epoch: int | None) -> None:
    """The chosen run at the chosen epoch beside another run's final model."""
    partner_ids = [other.id for other in usable if other.id != run.id]
    if not partner_ids:
        st.info("Only one run has a model to play with; train another (say, another cell on the same task) to compare.")
        return
    by_id = {other.id: other for other in usable}
    suggested = suggest_partner(usable, run)
    default = partner_ids.index(usable[suggested].id) if suggested is not None else 0
    partner_id = st.selectbox(
        "Beside it",
        partner_ids,
        index=default,
        format_func=lambda i: describe(by_id[i]),
        key=f"side_run_{run.id}",
        help="first suggestion: another cell trained on the same task, from the same sweep if there is one",
    )
    partner = by_id[partner_id]
    traces, columns = {}, st.columns(2)
    for column, shown, at in zip(columns, (run, partner), (epoch, None), strict=True):
        when = f" · epoch {at}" if at is not None else ""
        column.markdown(f"**{escape.markdown(describe(shown) + when)}**")
        try:
            copy = copy_pass(state.url(), shown.id, shown.finished_at, trace.sequence, epoch=at)
        except (InvalidSequence, UntraceableCell, CheckpointError) as error:
            column.error(escape.markdown(error))
            continue
        traces[f"#{shown.id} {cell_label(shown.config)}{when}"] = copy
        right = int(copy.copied["right"].sum())
        column.markdown(f"**Wrote:** {marked_copy(copy)}")
        column.metric(
            "Copied right",
            f"{right}/{len(copy.copied)}",
            f"{copy.copy_accuracy:.0%}",
            delta_color="off",
            delta_arrow="off",
        )
    if traces:
        copies = copies_frame(traces)
        st.plotly_chart(copy_grid_figure(copies), width="stretch", key="side_grid")
        st.plotly_chart(right_probability_figure(copies), width="stretch", key="side_p")


def trajectory(trace) -> None:
    quantity = "h"
    if "c" in trace.states:
        quantity = st.radio(
            "State", ["h", "c"], horizontal=True, format_func=lambda name: QUANTITIES[name].label, key="play_pca_state"
        )
    frame, shares = trajectory_frame(trace, quantity)
    step = min(st.session_state.get("play_step", 0), trace.steps - 1)
    st.plotly_chart(trajectory_figure(frame, shares, step=step, title=QUANTITIES[quantity].label.capitalize()),
                    width="stretch", key="play_pca")
    st.caption("Each dot is one step: blue while reading (labelled with the letter read), grey on the delimiters, red "
               "while copying (labelled with the letter written). The ring is the step chosen in Step by step.")


def follow_url(usable) -> None:
    """Read ?run=&epoch=&seq= when the URL changed since this page last wrote it (first load, a
    shared link): the run now; the epoch and the sequence once the run's choices are known
    (apply_url_epoch, apply_url_sequence). What cannot be used is said once, on one line."""
    wanted = {name: st.query_params.get(name, "") for name in URL_KEYS}
    if st.session_state.get("play_url") == wanted:
        return
    st.session_state["play_url"] = wanted
    st.session_state["play_url_pending"] = {name: value for name, value in wanted.items() if value}
    st.session_state["play_url_problems"] = []
    if wanted["run"]:
        run_id, problem = run_from_url(wanted["run"], [other.id for other in usable])
        if run_id is None:
            st.session_state["play_url_problems"].append(problem)
            st.session_state["play_url_pending"].pop("epoch", None)  # an epoch of which run?
        else:
            st.session_state["play_run"] = next(other for other in usable if other.id == run_id)


def apply_url_epoch(run_id: int, choices: list) -> None:
    value = st.session_state.get("play_url_pending", {}).pop("epoch", None)
    if value is None:
        return
    choice, problem = epoch_from_url(value, choices)
    if problem:
        st.session_state["play_url_problems"].append(problem)
    elif len(choices) > 1:
        st.session_state[f"play_epoch_{run_id}"] = choice


def apply_url_sequence(config) -> None:
    value = st.session_state.get("play_url_pending", {}).pop("seq", None)
    if value is not None:
        sequence, problem = sequence_from_url(value, config)
        if problem:
            st.session_state["play_url_problems"].append(problem)
        else:
            st.session_state["play_text"] = sequence
    problems = st.session_state.pop("play_url_problems", [])
    if problems:
        st.warning(escape.markdown("The link's " + "; ".join(problems) + ": ignored."))


def remember_url(run_id: int, epoch, sequence: str) -> None:
    """Write what the page shows into the URL, so that it can be shared; remembered as written,
    so that the next run does not take it for a new link."""
    query = url_query(run_id, epoch, sequence)
    if {name: st.query_params.get(name, "") for name in URL_KEYS} != {name: query.get(name, "") for name in URL_KEYS}:
        for name in URL_KEYS:
            if name in query:
                st.query_params[name] = query[name]
            elif name in st.query_params:
                del st.query_params[name]
    st.session_state["play_url"] = {name: query.get(name, "") for name in URL_KEYS}


st.title("Playground")
all_runs = state.runs_or_stop(
    "No runs yet. Train one on the Launch page (the Quick demo preset learns in about a minute), then come back."
)
with_checkpoint = state.checkpoint_ids(state.url())
usable = [run for run in all_runs
          if run.id in with_checkpoint and run.status in (RunStatus.COMPLETED, RunStatus.CANCELLED)]
if not usable:
    finished = [run for run in all_runs if run.status == RunStatus.COMPLETED]
    if finished:
        st.info(f"Run {finished[0].id} completed but has no checkpoint, so there is no model to play with. "
                "Runs save a checkpoint when they finish; train another on the Launch page.")
    else:
        st.info("No run has finished with a checkpoint yet. When one completes (see Launch's queue) it appears here.")
    st.stop()

follow_url(usable)
run = st.selectbox("Model", usable, format_func=describe, key="play_run",
                   help="runs that finished (or were cancelled after an epoch) with a checkpoint")
kept = state.snapshots(state.url(), run.id, run.finished_at)
choices = epoch_choices(kept, run.epochs_done)
chosen = FINAL
apply_url_epoch(run.id, choices)
if len(choices) > 1:
    # One key per run: another run starts at its final model.
    chosen = st.select_slider("Epoch", choices, value=FINAL, key=f"play_epoch_{run.id}", format_func=str,
                              help="the weights kept at a few epochs (log-spaced, each curriculum stage's end, the "
                                   "best so far): every view below shows the model at the epoch chosen here")
st.caption(escape.markdown(epoch_caption(chosen, kept, run.epochs_done)))
epoch = None if chosen == FINAL else chosen
try:
    model, config = state.model_for(state.url(), run.id, run.finished_at, epoch)
except CheckpointError as error:
    what = "checkpoint" if epoch is None else f"snapshot of epoch {epoch}"
    st.error(escape.markdown(f"Run {run.id}'s {what} cannot be loaded: {error}"))
    st.stop()

limit = max_sequence_length(config)
apply_url_sequence(config)
st.caption(
    f"Trained to copy {config.train_output_len} of {config.train_seq_len} letters (K), with {config.padding} "
    f"'\\$' between. Type up to {limit} of the letters {' '.join(ALPHABET)}; longer than K tests how it generalises."
)
st.session_state.setdefault("play_text", random_sequence(min(config.train_seq_len, limit), np.random.default_rng(0)))
# Keep the step while another view is open: Streamlit forgets the value of a widget not drawn in a run.
st.session_state["play_step"] = st.session_state.get("play_step", 0)
text_column, random_column, long_column = st.columns([4, 1, 1], vertical_alignment="bottom")
text = text_column.text_input("Sequence to copy", key="play_text", max_chars=limit)
random_column.button("Random sequence", on_click=set_random, args=(min(config.train_seq_len, limit),), width="stretch")
longer = min(limit, 2 * config.train_seq_len)
long_column.button(f"Random, {longer} letters", on_click=set_random, args=(longer,), width="stretch",
                   help="twice the training length (or the most allowed): does the copy generalise?")

try:
    trace = copy_pass(state.url(), run.id, run.finished_at, text, epoch=epoch)
except (InvalidSequence, UntraceableCell) as error:
    st.error(escape.markdown(error))
    st.stop()
remember_url(run.id, epoch, trace.sequence)
if len(trace.sequence) > config.train_seq_len:
    st.warning(f"{len(trace.sequence)} letters is longer than the {config.train_seq_len} it was trained on: "
               "this tests length generalisation, so expect mistakes.")

right = int(trace.copied["right"].sum())
st.markdown(f"**Read:** `{trace.sequence}`  \n**Wrote:** {marked_copy(trace)}  \n"
            ":green[green] is a right symbol, :red[red] a wrong one.")
st.metric(
    "Copied right", f"{right}/{len(trace.copied)}", f"{trace.copy_accuracy:.0%}", delta_color="off", delta_arrow="off"
)

tabs = st.tabs(VIEWS, key="play_view", on_change="rerun")
with tabs[0]:
    if tabs[0].open is not False:
        step_by_step(trace, config.cell)
with tabs[1]:
    if tabs[1].open:
        which_input(run, trace, epoch)
with tabs[2]:
    if tabs[2].open:
        what_if(run, trace, config, epoch)
with tabs[3]:
    if tabs[3].open:
        side_by_side(run, trace, usable, epoch)
with tabs[4]:
    if tabs[4].open:
        trajectory(trace)
