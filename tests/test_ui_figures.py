"""The dashboard's pure helpers: figure builders, frames, the playground's model pass and the
estimates. No Streamlit, no browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from seqcopy.config import RunConfig
from seqcopy.core.checkpoint import build_model
from seqcopy.presets import PRESETS
from seqcopy.results.sweeps import parse_seeds
from seqcopy.runs.store import RunInfo
from seqcopy.ui import figures, frames
from seqcopy.ui.estimates import calibration, estimate_grid, format_bytes, format_duration, predicted_epoch_seconds
from seqcopy.ui.launch_form import build_configs, form_values
from seqcopy.ui.playground import max_sequence_length, run_copy
from seqcopy.vocab import CHANCE_LEVEL, InvalidSequence


def epochs_of(run_id: int, values: list[float], label: str | None = None, stage=None) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame({
        "run_id": run_id, "epoch": range(1, n + 1), "minutes": np.arange(n) * 0.5,
        "label": label or f"#{run_id}", "stage_output_len": stage or [4] * n,
        "train_loss": values, "test_loss": values, "train_acc": values, "test_acc": values,
        "train_copy_acc": values, "test_copy_acc": values,
    })


def traces(fig, kind):
    return [t for t in fig.data if isinstance(t.meta, dict) and t.meta.get("kind") == kind]


# ----------------------------------------------------------------------------- run curves
def test_run_curves_have_a_train_and_a_test_line_per_run():
    data = pd.concat([epochs_of(1, [0.2, 0.4, 0.6], "#1 lstm s0"), epochs_of(2, [0.1, 0.3, 0.5], "#2 gru s0")])
    fig = figures.run_curves_figure(data, "loss")
    assert [t.name for t in fig.data] == ["#1 lstm s0 train", "#1 lstm s0", "#2 gru s0 train", "#2 gru s0"]
    assert [t.showlegend for t in fig.data] == [False, True, False, True]  # one legend entry per run
    assert fig.data[0].legendgroup == fig.data[1].legendgroup != fig.data[2].legendgroup
    assert fig.data[0].line.dash == "dash" and fig.data[1].line.dash == "solid"
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    assert not any(t.name == figures.CHANCE_NAME for t in fig.data)  # no chance line on loss
    assert list(fig.data[1].y) == [0.2, 0.4, 0.6]


def test_copy_accuracy_curves_draw_the_chance_level_at_one_ninth():
    fig = figures.run_curves_figure(epochs_of(1, [0.2, 0.4]), "copy_acc")
    chance = [t for t in fig.data if t.name == figures.CHANCE_NAME]
    assert len(chance) == 1 and chance[0].y[0] == pytest.approx(1 / 9)
    lines = [s for s in fig.layout.shapes if s.y0 == s.y1]
    assert len(lines) == 1 and lines[0].y0 == pytest.approx(CHANCE_LEVEL)


def test_curriculum_stage_changes_are_marked():
    data = epochs_of(1, [0.2, 0.5, 0.6, 0.8], stage=[2, 2, 4, 4])
    stages = frames.stage_changes(data)
    assert list(stages["epoch"]) == [3] and list(stages["stage_output_len"]) == [4]
    fig = figures.run_curves_figure(data, "acc", stages=stages)
    (ticks,) = traces(fig, "curriculum")  # a tick at the foot of the plot, its words on hover
    assert list(ticks.x) == [3] and ticks.hovertext[0].endswith("N=4 at epoch 3")
    assert not fig.layout.annotations


def test_wall_time_axis_and_log_scale():
    fig = figures.run_curves_figure(epochs_of(1, [2.0, 1.0, 0.5]), "loss", x="minutes", log_y=True)
    assert list(fig.data[0].x) == [0.0, 0.5, 1.0]
    assert fig.layout.yaxis.type == "log"


# ----------------------------------------------------------------------------- seed bands
SEEDS_A = {1: [0.1, 0.5, 0.8], 2: [0.2, 0.4, 0.9], 3: [0.15, 0.6, 0.7]}
SEED_B = {4: [0.3, 0.35, 0.4]}


@pytest.fixture
def grouped():
    parts = [epochs_of(run, values).assign(group="lstm") for run, values in SEEDS_A.items()]
    parts += [epochs_of(run, values).assign(group="rnn") for run, values in SEED_B.items()]
    return pd.concat(parts, ignore_index=True)


def test_the_band_is_the_mean_plus_and_minus_the_seeds_standard_deviation(grouped):
    fig = figures.seed_band_figure(grouped, x="epoch", y="test_copy_acc", title="t")
    values = np.array(list(SEEDS_A.values()))
    mean, std = values.mean(axis=0), values.std(axis=0, ddof=1)  # sample std across seeds
    (upper,) = [t for t in traces(fig, "band_upper") if t.meta["group"] == "lstm"]
    (lower,) = [t for t in traces(fig, "band_lower") if t.meta["group"] == "lstm"]
    (mean_line,) = [t for t in traces(fig, "mean") if t.meta["group"] == "lstm"]
    np.testing.assert_allclose(mean_line.y, mean)
    np.testing.assert_allclose(upper.y, mean + std)
    np.testing.assert_allclose(lower.y, mean - std)
    assert lower.fill == "tonexty"  # filled up to the upper edge drawn just before it
    assert fig.data.index(lower) == fig.data.index(upper) + 1


def test_each_seed_is_a_thin_line_in_its_groups_colour(grouped):
    fig = figures.seed_band_figure(grouped, x="epoch", y="test_copy_acc", title="t")
    (seeds,) = [t for t in traces(fig, "seeds") if t.meta["group"] == "lstm"]
    assert seeds.meta["runs"] == [1, 2, 3]
    # One trace, each seed's line separated from the next by a gap.
    nan = np.nan
    np.testing.assert_array_equal(seeds.y, [*SEEDS_A[1], nan, *SEEDS_A[2], nan, *SEEDS_A[3], nan])
    assert seeds.line.width < 2
    (mean_line,) = [t for t in traces(fig, "mean") if t.meta["group"] == "lstm"]
    assert seeds.line.color == figures.rgba(mean_line.line.color, 0.45)
    assert "mean of 3 seeds" in mean_line.name
    assert not traces(figures.seed_band_figure(grouped, x="epoch", y="test_copy_acc", title="t", show_seeds=False),
                      "seeds")


def test_a_group_with_a_single_seed_gets_no_band_and_says_so(grouped):
    fig = figures.seed_band_figure(grouped, x="epoch", y="test_copy_acc", title="t")
    assert not [t for t in traces(fig, "band_upper") + traces(fig, "band_lower") if t.meta["group"] == "rnn"]
    (mean_line,) = [t for t in traces(fig, "mean") if t.meta["group"] == "rnn"]
    assert "1 seed" in mean_line.name and "no band" in mean_line.name
    np.testing.assert_allclose(mean_line.y, SEED_B[4])
    # Two groups, two colours.
    colours = {t.line.color for t in traces(fig, "mean")}
    assert len(colours) == 2


def test_band_figure_counts_traces_and_can_draw_chance(grouped):
    fig = figures.seed_band_figure(grouped, x="epoch", y="test_copy_acc", title="t", chance=True)
    assert len(fig.data) == (1 + 2 + 1) + (1 + 1) + 1  # lstm: seeds, band, mean; rnn: seed, mean; chance
    assert fig.data[-1].name == figures.CHANCE_NAME


# ----------------------------------------------------------------------------- frames
def test_smoothing_is_an_ema_within_each_run():
    data = pd.concat([epochs_of(1, [0.0, 1.0, 1.0]), epochs_of(2, [1.0, 0.0, 0.0])])
    assert frames.smooth(data, ["test_loss"], 0.0)["test_loss"].tolist() == data["test_loss"].tolist()
    smoothed = frames.smooth(data, ["test_loss"], 0.5)
    expected = pd.Series([0.0, 1.0, 1.0]).ewm(alpha=0.5).mean().tolist()
    assert smoothed[smoothed.run_id == 1]["test_loss"].tolist() == pytest.approx(expected)
    assert smoothed[smoothed.run_id == 2]["test_loss"].iloc[0] == 1.0  # not mixed with run 1


def test_compares_group_line_and_the_runs_table_sweep_column():
    def info(run_id, config, tag="", sweep_id=None):
        return RunInfo(id=run_id, config=config, status="completed", tag=tag, created_at=0.0, started_at=0.0,
                       finished_at=1.0, worker_id=None, heartbeat_at=None, cancel_requested=False, error=None,
                       epochs_done=1, epochs_total=1, batch_done=0, batch_total=1, latest={}, sweep_id=sweep_id)

    runs = [info(1, RunConfig(cell="lstm", seed=0)), info(2, RunConfig(cell="lstm", seed=1, lr=0.01), sweep_id=4),
            info(3, RunConfig(cell="gru", tag="*old*"), tag="[new]")]
    assert frames.group_summary(runs, "cell") == ("gru: a single seed, so no band · "
                                                  "lstm: 2 seed(s) — mixes runs that differ in lr")
    assert frames.group_summary(runs, "tag") == (r"\(no tag\): 2 seed(s) — mixes runs that differ in lr · "
                                                 r"\[new\]: a single seed, so no band")  # the tag as edited, escaped
    assert frames.runs_frame(runs)["sweep"].tolist()[1] == 4


def test_config_diff_shows_only_the_keys_that_differ():
    diff = frames.config_diff({1: RunConfig(), 2: RunConfig(cell="gru", seed=3), 3: RunConfig(seed=3)})
    assert list(diff.index) == ["cell", "seed"]
    assert list(diff.columns) == ["run 1", "run 2", "run 3"]
    assert diff.loc["cell"].tolist() == ["rnn", "gru", "rnn"]
    assert frames.config_diff({1: RunConfig()}).empty


def test_the_final_metric_table_gives_n_mean_spread_median_min_max_and_the_best_run():
    runs = pd.DataFrame({"group": ["a", "a", "a", "b", "c"], "id": [4, 5, 6, 7, 8], "seed": [0, 1, 2, 0, 0],
                         "test_copy_acc": [0.8, 0.9, 0.4, 0.5, np.nan], "test_loss": [0.3, 0.1, 0.9, 0.7, np.nan]})
    table = frames.final_metric_table(runs, "test_copy_acc", error="std").set_index("group")
    assert list(table.columns) == ["n", "mean ± spread", "median", "min", "max", "best seed", "best run"]
    std = np.std([0.8, 0.9, 0.4], ddof=1)
    a = table.loc["a"]
    assert (a["n"], a["median"], a["min"], a["max"]) == (3, 0.8, 0.4, 0.9)
    assert a["mean ± spread"] == f"0.700 ± {std:.3f}" and (a["best seed"], a["best run"]) == (1, "runs?runs=5")
    assert table.loc["b", "mean ± spread"] == "0.500" and table.loc["b", "n"] == 1  # one seed: no spread
    assert table.loc["c", "n"] == 0 and table.loc["c", "mean ± spread"] == "—" and pd.isna(table.loc["c", "median"])
    se = frames.final_metric_table(runs, "test_copy_acc").set_index("group").loc["a", "mean ± spread"]
    assert se == f"0.700 ± {std / np.sqrt(3):.3f}"  # the standard error by default
    losses = frames.final_metric_table(runs, "test_loss").set_index("group")
    assert losses.loc["a", "best run"] == "runs?runs=5" and losses.loc["a", "best seed"] == 1  # the lowest loss


def test_groups_by_everything_that_varies_but_the_seed_and_labels_name_the_values():
    def info(run_id, config, tag=""):
        return RunInfo(id=run_id, config=config, status="completed", tag=tag, created_at=0.0, started_at=0.0,
                       finished_at=1.0, worker_id=None, heartbeat_at=None, cancel_requested=False, error=None,
                       epochs_done=1, epochs_total=1, batch_done=0, batch_total=1, latest={}, sweep_id=None)

    runs = [info(i, RunConfig(cell=cell, seed=seed, train_seq_len=k, train_output_len=k))
            for i, (cell, seed, k) in enumerate([("lstm", 0, 8), ("lstm", 1, 8), ("gru", 0, 16), ("gru", 1, 8)])]
    keys = frames.default_group_keys(runs)
    assert keys == ("cell", "train_seq_len", "train_output_len")
    assert frames.group_of(runs[2], keys) == "gru, train_seq_len=16, train_output_len=16"
    assert frames.group_of(runs[2], ["train_seq_len"]) == frames.group_of(runs[2], "train_seq_len") == "16"
    assert frames.default_group_keys(runs[:2]) == ("cell",)  # only the seed differs
    forms = [info(1, RunConfig(cell="mlstm")), info(2, RunConfig(cell="mlstm", mult_form="input"))]
    assert frames.default_group_keys(forms) == ("cell",)  # the form is in the cell's label
    assert {frames.group_of(run, ("cell",)) for run in forms} == {"mlstm", "mlstm (input form)"}
    tagged = [info(1, RunConfig(), tag="old"), info(2, RunConfig(seed=1), tag="new")]
    assert frames.default_group_keys(tagged) == ("tag",)  # the tag as edited on Runs


# ----------------------------------------------------------------------------- playground
def test_the_playground_pass_lays_out_the_sequence_like_training():
    config = RunConfig(cell="gru", hidden_size=8, embedding_size=4, padding=2, train_seq_len=5, train_output_len=5)
    torch.manual_seed(0)
    trace = run_copy(build_model(config).eval(), config, "  AXC ")  # case and spaces forgiven
    assert trace.sequence == "axc"
    assert "".join(trace.inputs) == "axc$$···"
    assert "".join(trace.targets) == "·····axc"
    assert trace.copy_start == 5
    assert trace.probabilities.shape == (11, 8)
    np.testing.assert_allclose(trace.probabilities.sum(axis=0), 1.0, rtol=1e-5)
    assert trace.states["h"].shape == (8, 8)
    assert list(trace.copied["target"]) == list("axc")
    assert trace.copied["right"].tolist() == [o == t for o, t in zip(trace.copied["output"], "axc", strict=True)]


@pytest.mark.parametrize("text", ["", "hello", "a$x", "a" * 1000])
def test_the_playground_refuses_what_is_not_a_sequence(text):
    config = RunConfig(cell="rnn", hidden_size=4, embedding_size=2, train_seq_len=20, train_output_len=10)
    with pytest.raises(InvalidSequence):
        run_copy(build_model(config), config, text)
    assert max_sequence_length(config) == 100


# ----------------------------------------------------------------------------- estimates, form
def test_estimates_scale_with_history_and_format():
    config = PRESETS["Quick demo"]
    plain = estimate_grid([config, config.replace(cell="gru")])
    assert plain.runs == 2 and not plain.calibrated and plain.total_seconds > 0
    factor = calibration([(config, predicted_epoch_seconds(config) / 4)])
    assert factor == pytest.approx(0.25)
    assert estimate_grid([config], factor).total_seconds == pytest.approx(plain.seconds_per_run[0] / 4)
    assert calibration([]) is None
    assert format_duration(30) == "30 s" and format_duration(3600) == "60 min" and format_bytes(3 * 2**20) == "3.0 MiB"


def test_the_form_builds_one_config_per_cell_and_seed():
    result = build_configs(form_values(PRESETS["Quick demo"]), ["lstm", "rnn"], "0, 2-3")
    assert not result.errors
    assert [(c.cell, c.seed) for c in result.configs] == [(c, s) for c in ("lstm", "rnn") for s in (0, 2, 3)]
    assert parse_seeds("3, 3, 1") == [3, 1]
    bad = build_configs(form_values(PRESETS["Quick demo"]) | {"lr": -1.0}, [], "x")
    assert set(bad.errors) == {"cells", "seeds", "lr"} and not bad.configs  # every error at once
    bad = build_configs(form_values(PRESETS["Quick demo"]) | {"lr": -1.0}, ["lstm"], "0-500")
    assert "seeds" in bad.errors and "lr" in bad.errors
