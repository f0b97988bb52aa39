"""Compare: runs grouped by cell (or any config key), one colour per group: the mean across
seeds with a ± std band and each seed as a thin line; final metrics as mean ± std; copy
accuracy by output position and by test length."""

import streamlit as st

from seqcopy.config import RunConfig
from seqcopy.schema import EPOCH_METRICS, STATUSES
from seqcopy.ui import escape, state
from seqcopy.ui.figures import seed_band_figure
from seqcopy.ui.frames import differing_keys, epochs_frame, final_metrics_table, group_of, results_frame, runs_frame

MAX_COMPARED = 200  # the most recent runs that match; epochs are read only for these
GROUP_KEYS = [name for name in RunConfig().to_dict() if name != "seed"]
CURVE_METRICS = [m for m in EPOCH_METRICS if m not in ("lr",)]

st.title("Compare")
all_runs = state.runs_or_stop("No runs yet: queue a few seeds of several cells on the Launch page, then compare them here.")

frame = runs_frame(all_runs)
top = st.columns(4)
group_key = top[0].selectbox("Group by", GROUP_KEYS, index=GROUP_KEYS.index("cell"), key="compare_group",
                             help="runs with the same value form one group; its seeds are averaged")
statuses = top[1].multiselect("Status", STATUSES, default=["completed"], key="compare_status")
tags = top[2].multiselect("Tag", sorted(t for t in frame["tag"].unique() if t), key="compare_tag")
metric = top[3].selectbox("Curve", CURVE_METRICS, index=CURVE_METRICS.index("test_copy_acc"), key="compare_metric")

chosen = [run for run in all_runs if (not statuses or run.status in statuses) and (not tags or run.tag in tags)]
if not chosen:
    st.info("No run matches these filters" + (" (completed runs only by default: add other statuses above)." if statuses == ["completed"] else "."))
    st.stop()
if len(chosen) > MAX_COMPARED:
    st.caption(f"{len(chosen)} runs match; comparing the {MAX_COMPARED} most recent. Narrow the filters to choose others.")
    chosen = chosen[:MAX_COMPARED]
infos = {run.id: run for run in chosen}
groups = {}
for run in chosen:
    groups.setdefault(group_of(run, group_key), []).append(run)

summary = []
for name, members in sorted(groups.items()):
    mixed = differing_keys([m.config for m in members], ignore=("seed", "tag", group_key))
    shown = escape.markdown(name or "(no tag)")
    note = f"{shown}: {len(members)} seed(s)" if len(members) > 1 else f"{shown}: a single seed, so no band"
    if mixed:
        note += f" — mixes runs that differ in {', '.join(mixed)}"
    summary.append(note)
st.caption(" · ".join(summary))

show_seeds = st.toggle("Show each seed as a thin line", value=True, key="compare_seeds")
epochs = epochs_frame(state.epochs(state.url(), tuple(sorted(infos))), infos)
if epochs.empty:
    st.info("The matching runs have no recorded epochs yet.")
else:
    epochs["group"] = epochs["run_id"].map(lambda i: escape.plotly(group_of(infos[i], group_key)))
    figure = seed_band_figure(
        epochs, x="epoch", y=metric, title=f"{metric.replace('_', ' ')} by {group_key}: mean ± std across seeds",
        chance=metric.endswith("copy_acc"), show_seeds=show_seeds, log_y=metric.endswith("loss"),
        y_title=metric.replace("_", " "), legend_columns=4,
    )
    st.plotly_chart(figure, width="stretch", key="compare_curves")

st.subheader("Final metrics")
table = frame[frame["id"].isin(list(infos))].copy()
table["group"] = table["id"].map(lambda i: group_of(infos[i], group_key))
st.dataframe(final_metrics_table(table).rename(columns={"group": group_key}), hide_index=True, width="stretch")
st.caption("Each cell: mean ± sample standard deviation across the group's seeds (n seeds), from each run's last epoch.")

st.subheader("Where copying breaks down")
ids = tuple(sorted(infos))
positions = results_frame(state.position_results(state.url(), ids), infos, group_key)
lengths = results_frame(state.length_results(state.url(), ids), infos, group_key)
for drawn in (positions, lengths):  # group names become legend entries: plotly draws HTML-like tags
    if not drawn.empty:
        drawn["group"] = drawn["group"].map(escape.plotly)



def final_result_chart(column, frame, x: str, x_title: str, what: str, title: str, key: str) -> None:
    with column:
        if frame.empty:
            st.info(f"Copy accuracy by {what} is recorded when a run completes; none of these has yet.")
            return
        figure = seed_band_figure(frame, x=x, y="copy_acc", title=title, chance=True, show_seeds=show_seeds,
                                  x_title=x_title, y_title="copy accuracy", legend_columns=2)
        st.plotly_chart(figure, width="stretch", key=key)


left, right = st.columns(2)
final_result_chart(left, positions, "position", "output position", "output position",
                   "Copy accuracy by output position (test set)", "compare_positions")
final_result_chart(right, lengths, "seq_len", "input length K", "test length",
                   "Copy accuracy by test length K (generalisation)", "compare_lengths")
