"""Compare's view of a search: Optuna's figures, the best trials, and "train the best with more seeds".

Called by views/compare.py when the chosen sweep is a search; the figures come from
seqcopy.ui.search_figures, the numbers from seqcopy.results.search.
"""

from __future__ import annotations

import streamlit as st

from seqcopy.config import RunConfig
from seqcopy.results import search
from seqcopy.runs.states import TrialState
from seqcopy.runs.store import Store
from seqcopy.ui.search_figures import VIEW_CAPTIONS, VIEW_TABS, VIEWS, search_figure, trials_frame

MORE_SEEDS = 3


def is_search(store: Store, sweep_id: int | None) -> bool:
    return sweep_id is not None and store.search(sweep_id) is not None


def more_seeds_of_best(store: Store, sweep_id: int, best: dict, more: int = MORE_SEEDS) -> tuple[int, list[int]]:
    """Queue the best trial's config with ``more`` new seeds (past its own) as a sweep of its own."""
    runs = [store.get_run(run_id) for run_id in best["run_ids"]]
    config: RunConfig = runs[0].config
    start = max(run.config.seed for run in runs) + 1
    configs = [config.replace(seed=seed) for seed in range(start, start + more)]
    name = f"search {sweep_id}, trial {best['number']}: {more} more seeds"
    return store.submit_sweep(configs, name, {"from_search": sweep_id, "trial": best["number"],
                                              "seeds": [c.seed for c in configs]})


def render(store: Store, sweep_id: int) -> None:
    row = store.search(sweep_id)
    st.subheader(f"Search #{sweep_id}")
    rows = search.trials_table(store, sweep_id)
    shown = (TrialState.COMPLETED, TrialState.PRUNED, TrialState.RUNNING, TrialState.FAILED)
    counts = {s: sum(r["state"] == s for r in rows) for s in shown}
    st.caption(f"{row.direction} {row.objective} · {row.sampler} sampler · {row.pruner} pruner · "
               f"{len(rows)} of {row.trials} trials asked: "
               + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    st.dataframe(trials_frame(rows, row.objective), hide_index=True, width="stretch", key="search_trials")
    best = [r for r in rows if r["state"] == TrialState.COMPLETED]
    if best:
        if st.button(f"Train the best (trial {best[0]['number']}) with {MORE_SEEDS} more seeds",
                     key="search_more_seeds"):
            new_sweep, ids = more_seeds_of_best(store, sweep_id, best[0])
            st.success(f"Queued {len(ids)} run(s) as sweep #{new_sweep}.")
    study = search.load_optuna_study(store, sweep_id)
    numbers = {r["trial_id"]: r["number"] for r in rows if r.get("trial_id") is not None}
    tabs = st.tabs([VIEW_TABS[view] for view in VIEWS])
    for tab, view in zip(tabs, VIEWS, strict=True):
        with tab:
            figure = search_figure(study, view, row.objective, numbers)
            if figure is None:
                st.info("Not enough finished trials (or parameters) for this view yet.")
            else:
                st.plotly_chart(figure, width="stretch", key=f"search_{view}")
                st.caption(f"{VIEW_CAPTIONS[view]} Trials are numbered as in the table above.")
