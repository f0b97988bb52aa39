"""Playground: pick a finished run, type a sequence, and watch the model read it and copy it,
step by step."""

import numpy as np
import streamlit as st

from seqcopy.checkpoint import CheckpointError
from seqcopy.ui import state
from seqcopy.ui.figures import heatmap_figure
from seqcopy.ui.playground import max_sequence_length, random_sequence, run_copy
from seqcopy.vocab import ALPHABET, InvalidSequence

MAX_HIDDEN_SHOWN = 128  # hidden units drawn; more makes an unreadable heatmap
PLAY_INTERVAL_S = 0.6


def set_random(length: int) -> None:
    st.session_state["play_text"] = random_sequence(length, np.random.default_rng())
    st.session_state["play_step"] = 0


def toggle_play(steps: int) -> None:
    playing = not st.session_state.get("play_on", False)
    if playing and st.session_state.get("play_step", 0) >= steps - 1:
        st.session_state["play_step"] = 0  # at the end: play from the start
    st.session_state["play_on"] = playing


def marked(trace) -> str:
    """The copy with each symbol green (right) or red (wrong)."""
    return " ".join(f":green[**{row.output}**]" if row.right else f":red[**{row.output}**]" for row in trace.copied.itertuples())


def phase(trace, step: int) -> str:
    if step < len(trace.sequence):
        return "reading"
    return "delimiter" if step < trace.copy_start else "copying"


def stepper(trace) -> None:
    """The step slider and everything drawn at that step; reruns on its own while playing."""
    last = trace.steps - 1
    finished = False
    if st.session_state.get("play_on"):
        step = min(st.session_state.get("play_step", 0) + 1, last)
        st.session_state["play_step"] = step
        if step == last:
            st.session_state["play_on"] = False
            finished = True
    if st.session_state.get("play_step", 0) > last:
        st.session_state["play_step"] = last
    step = st.slider("Step", 0, last, key="play_step", help="drag to walk through the sequence one time step at a time")
    columns = st.columns(4)
    columns[0].metric("Input at this step", trace.inputs[step])
    columns[1].metric("Model writes", trace.outputs[step], f"p = {trace.probabilities.iloc[:, step].max():.2f}", delta_color="off", delta_arrow="off")
    columns[2].metric("Should write", trace.targets[step])
    if step >= trace.copy_start:
        columns[3].metric("Copy", "right ✓" if trace.outputs[step] == trace.targets[step] else "wrong ✗")
    else:
        columns[3].metric("Phase", phase(trace, step))
    st.plotly_chart(heatmap_figure(trace.probabilities, "Probability of each symbol over time", step=step, zmin=0, zmax=1,
                                   x_labels=trace.inputs, y_title="symbol"), width="stretch", key="play_probs")
    hidden = trace.hidden.iloc[:MAX_HIDDEN_SHOWN]
    st.plotly_chart(heatmap_figure(hidden, "Hidden state over time", step=step, colorscale="RdBu", zmin=-1, zmax=1,
                                   x_labels=trace.inputs, y_title="hidden unit", height=360), width="stretch", key="play_hidden")
    if len(trace.hidden) > MAX_HIDDEN_SHOWN:
        st.caption(f"The first {MAX_HIDDEN_SHOWN} of {len(trace.hidden)} hidden units.")
    if finished:
        st.rerun()  # the whole page: the button says Play again and the timer stops


st.title("Playground")
all_runs = state.runs_or_stop("No runs yet. Train one on the Launch page (the Quick demo preset learns in about a minute), then come back.")
with_checkpoint = state.checkpoint_ids(state.url())
usable = [run for run in all_runs if run.id in with_checkpoint and run.status in ("completed", "cancelled")]
if not usable:
    finished = [run for run in all_runs if run.status == "completed"]
    if finished:
        st.info(f"Run {finished[0].id} completed but has no checkpoint, so there is no model to play with. "
                "Runs save a checkpoint when they finish; train another on the Launch page.")
    else:
        st.info("No run has finished with a checkpoint yet. When one completes (see Launch's queue) it appears here.")
    st.stop()


def describe(run) -> str:
    copy = run.latest.get("test_copy_acc")
    score = f" · test copy acc {copy:.3f}" if copy is not None else ""
    stopped = " · cancelled early" if run.status == "cancelled" else ""
    return f"#{run.id} {run.config.cell} · seed {run.config.seed} · K={run.config.train_seq_len}{score}{stopped}"


run = st.selectbox("Model", usable, format_func=describe, key="play_run",
                   help="runs that finished (or were cancelled after an epoch) with a checkpoint")
try:
    model, config = state.model_for(state.url(), run.id, run.finished_at)
except CheckpointError as error:
    st.error(f"Run {run.id}'s checkpoint cannot be loaded: {error}")
    st.stop()

limit = max_sequence_length(config)
st.caption(f"Trained to copy {config.train_output_len} of {config.train_seq_len} letters (K), with {config.padding} "
           f"'$' between. Type up to {limit} of the letters {' '.join(ALPHABET)}; longer than K tests how it generalises.")
st.session_state.setdefault("play_text", random_sequence(min(config.train_seq_len, limit), np.random.default_rng(0)))
text_column, random_column, long_column = st.columns([4, 1, 1], vertical_alignment="bottom")
text = text_column.text_input("Sequence to copy", key="play_text", max_chars=2 * limit)
random_column.button("Random sequence", on_click=set_random, args=(min(config.train_seq_len, limit),), width="stretch")
longer = min(limit, 2 * config.train_seq_len)
long_column.button(f"Random, {longer} letters", on_click=set_random, args=(longer,), width="stretch",
                   help="twice the training length (or the most allowed): does the copy generalise?")

try:
    trace = run_copy(model, config, text)
except InvalidSequence as error:
    st.error(str(error))
    st.stop()
if len(trace.sequence) > config.train_seq_len:
    st.warning(f"{len(trace.sequence)} letters is longer than the {config.train_seq_len} it was trained on: "
               "this tests length generalisation, so expect mistakes.")

right = int(trace.copied["right"].sum())
st.markdown(f"**Read:** `{trace.sequence}`  \n**Wrote:** {marked(trace)}  \n"
            ":green[green] is a right symbol, :red[red] a wrong one.")
st.metric("Copied right", f"{right}/{len(trace.copied)}", f"{trace.copy_accuracy:.0%}", delta_color="off", delta_arrow="off")

play_column, _ = st.columns([1, 5])
playing = st.session_state.get("play_on", False)
play_column.button("⏸ Pause" if playing else "▶ Play", on_click=toggle_play, args=(trace.steps,), key="play_button",
                   help="step through the sequence automatically")
st.fragment(stepper, run_every=PLAY_INTERVAL_S if playing else None)(trace)

with st.expander("Every copied symbol"):
    table = trace.copied.assign(right=lambda f: f["right"].map({True: "✓ right", False: "✗ wrong"}))
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"confidence": st.column_config.NumberColumn(format="%.2f")})
