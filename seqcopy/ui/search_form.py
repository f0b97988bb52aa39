"""Launch's Search mode: space rows, trials, sampler, pruner, objective; its estimates and its start.

The rest of the form (every setting, the cells and the seeds) gives the base of the search: its
first cell and its seeds; the space rows override settings as ``seqcopy search --space`` does,
and the plan is checked by the same code (seqcopy.results.search.SearchPlan.check), so the form
and the command line refuse the same spaces with the same words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import streamlit as st

from seqcopy.config import SETTINGS, TARGET_METRICS, RunConfig
from seqcopy.results.search import SearchError, SearchPlan, default_direction, parse_space, start_search
from seqcopy.runs import trials
from seqcopy.ui import escape
from seqcopy.ui.estimates import estimate_grid, format_duration

SPACE_ROWS = 3
SEARCHABLE = [name for name, d in SETTINGS.items() if d.sweepable and name != "seed"]


def key(name: str) -> str:
    return f"launch_search_{name}"


def render_space() -> None:
    """The space rows and the search's own choices (in the form column)."""
    with st.container(border=True):
        st.markdown("**Search** — Optuna asks a trial whenever a worker is free; each trial is one run per seed")
        for index in range(SPACE_ROWS):
            setting, spec = st.columns([2, 3])
            setting.selectbox("Setting" if index == 0 else f"Setting {index + 1}", SEARCHABLE, index=None,
                              key=key(f"field_{index}"), placeholder="(none)",
                              label_visibility="visible" if index == 0 else "collapsed")
            spec.text_input("Range or choices" if index == 0 else f"Range {index + 1}", key=key(f"spec_{index}"),
                            placeholder="int(8,64), float(0.1,3), log(1e-4,1e-2) or 16,32,64", max_chars=200,
                            label_visibility="visible" if index == 0 else "collapsed")
        columns = st.columns(4)
        columns[0].number_input("Trials", min_value=1, max_value=500, value=12, key=key("trials"))
        columns[1].selectbox("Sampler", trials.SAMPLERS, key=key("sampler"))
        columns[2].selectbox("Pruner", trials.PRUNERS, index=1, key=key("pruner"))
        columns[3].selectbox("Objective", TARGET_METRICS, index=TARGET_METRICS.index("test_copy_acc"),
                             key=key("objective"))
        seed = st.columns(2)
        seed[0].number_input("Sampler seed (the same seed, the same trials)", min_value=0, value=0,
                             key=key("sampler_seed"))
        seed[1].caption("The seeds of each trial are the Seeds above; its objective is their mean.")


@dataclass(frozen=True)
class FormSearch:
    plan: SearchPlan | None
    error: str | None
    hint: str | None = None  # what to fill in, while nothing is wrong yet (an untouched form)


NOTHING_CHOSEN = ("Choose a setting to search and type its range or choices, "
                  "e.g. lr with log(1e-4,1e-2) or hidden_size with 16,32,64.")
# The search's own command-line flags, as the form labels them (longest first: --sampler-seed
# before --sampler, --seeds before any --seed).
_FORM_LABELS = {"--sampler-seed": "Sampler seed", "--objective": "Objective", "--direction": "Objective",
                "--sampler": "Sampler", "--pruner": "Pruner", "--trials": "Trials", "--seeds": "Seeds",
                "--space": "Setting"}


def form_words(message: str) -> str:
    """A search's one-line error (written for the command line) in the form's words: a setting's
    flags become its name as the Setting box lists it, the search's flags the fields' labels."""
    spellings = {d.spelling: name for name, d in SETTINGS.items()} | _FORM_LABELS
    for spelling in sorted(spellings, key=len, reverse=True):
        message = re.sub(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", spellings[spelling], message)
    return message


def _space_texts() -> tuple[list[str], str | None]:
    """The filled space rows as SETTING=SPEC, and what to fill in when none is complete yet."""
    texts, waiting = [], []
    for i in range(SPACE_ROWS):
        name, spec = st.session_state.get(key(f"field_{i}")), (st.session_state.get(key(f"spec_{i}")) or "").strip()
        if name and spec:
            texts.append(f"{name}={spec}")
        elif name:
            waiting.append(name)
    if texts:
        return texts, None
    if waiting:
        return texts, f"Type the range or choices of {waiting[0]} in Range or choices."
    return texts, NOTHING_CHOSEN


def form_plan(base: RunConfig | None, seeds: list[int], problem: str | None) -> FormSearch:
    """The plan the form describes, checked; or the one-line reason it cannot start (in the
    form's words); or, before any space row is filled, what to fill in, with no error."""
    if base is None:
        return FormSearch(None, problem or "fix the fields of the form first")
    texts, waiting = _space_texts()
    if waiting:
        return FormSearch(None, None, waiting)
    objective = st.session_state[key("objective")]
    try:
        plan = SearchPlan(base=base, space=parse_space(texts), trials=int(st.session_state[key("trials")]),
                          objective=objective, direction=default_direction(objective),
                          sampler=st.session_state[key("sampler")], pruner=st.session_state[key("pruner")],
                          seeds=tuple(seeds), sampler_seed=int(st.session_state[key("sampler_seed")]),
                          space_texts=tuple(texts)).check()
    except SearchError as error:
        return FormSearch(None, form_words(str(error)))
    return FormSearch(plan, None)


def upper_bound(plan: SearchPlan, factor: float | None) -> tuple[int, float]:
    """(runs, seconds on one worker) without pruning: every trial × seed at the space's costliest
    checked point (seqcopy.results.search.space_configs)."""
    from seqcopy.results.search import space_configs

    configs = [config for _, config in space_configs(plan.base, plan.space)]
    longest = max(estimate_grid(configs, factor).seconds_per_run)
    return plan.runs_upper_bound, plan.runs_upper_bound * longest


def render_summary(found: FormSearch, store, factor: float | None) -> None:
    """The search's estimates and its Start button (in the summary column)."""
    if found.error:
        st.error(f"The search cannot start: {escape.markdown(found.error)}")
    elif found.plan is None:
        st.info(escape.markdown(found.hint or NOTHING_CHOSEN))
    else:
        runs, seconds = upper_bound(found.plan, factor)
        st.metric("Runs, at most", runs, help="trials × seeds; pruning stops some of them early")
        st.metric("Total, one worker, no pruning (upper bound)", format_duration(seconds))
        st.metric("Total, two workers, no pruning", format_duration(seconds / 2))
        st.caption(found.plan.describe())
    if st.button("Start search", type="primary", width="stretch", key="button_search_start"):
        if found.plan is None:
            st.error("Nothing was started: " + ("fix the search first." if found.error else
                                                escape.markdown(found.hint or NOTHING_CHOSEN)))
            return
        sweep_id = start_search(store, found.plan)
        st.session_state[key("started")] = sweep_id
    started = st.session_state.get(key("started"))
    if started:
        st.success(f"Search #{started} started: free workers ask its trials.")
        st.page_link("views/compare.py", label=f"Compare search #{started}", icon=":material/compare:",
                     query_params={"sweep": str(started)})
