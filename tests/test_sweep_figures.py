"""The sweep figures and their tables on hand-made values: the band and bars are exactly mean ±
the chosen spread, runs that never reach the threshold are marked, parallel coordinates carry
every varied setting."""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pandas as pd
import pytest

from seqcopy.config import RunConfig
from seqcopy.results.spread import format_summary, half_width, summarise, t975
from seqcopy.runs.store import RunInfo, SweepInfo
from seqcopy.ui.figures import CHANCE_NAME
from seqcopy.ui.sweep_figures import (
    convergence_figure,
    metric_vs_setting_figure,
    parallel_coordinates_figure,
    verdicts_figure,
)
from seqcopy.ui.sweep_frames import (
    convergence_frame,
    default_reference,
    line_keys,
    mixed_settings,
    setting_choices,
    settings_frame,
    solve_rate_table,
    summary_by_setting,
    sweep_from_url,
    sweep_labels,
    verdicts_frame,
)

# Final copy accuracy of three seeds at each K, per cell: made up, with round numbers.
FINALS = {
    ("lstm", 5): [0.2, 0.4, 0.9], ("lstm", 50): [0.1, 0.15, 0.2],
    ("gru", 5): [0.5, 0.7, 0.6], ("gru", 50): [0.3, 0.3, 0.3],
}


def run(run_id: int, config: RunConfig, copy: float | None, status: str = "completed",
        sweep_id: int | None = 1) -> RunInfo:
    latest = {"train_loss": 1.0, "test_loss": 1.0, "test_acc": 0.5 + copy / 2 if copy is not None else None,
              "test_copy_acc": copy, "test_seq_acc": 0.0}
    return RunInfo(id=run_id, config=config, status=status, tag="", created_at=0.0, started_at=0.0, finished_at=1.0,
                   worker_id=None, claim_token=None, heartbeat_at=None, cancel_requested=False, error=None,
                   epochs_done=3, epochs_total=3, batch_done=0, batch_total=1, latest=latest, sweep_id=sweep_id)


def sweep_runs() -> list[RunInfo]:
    runs = []
    for (cell, k), finals in FINALS.items():
        for seed, copy in enumerate(finals):
            config = RunConfig(cell=cell, seed=seed, train_seq_len=k, train_output_len=k, test_seq_len=k,
                               test_output_len=k)
            runs.append(run(len(runs) + 1, config, copy))
    return runs


def traces(fig, kind: str, group: str | None = None) -> list:
    return [t for t in fig.data
            if t.meta and t.meta.get("kind") == kind and (group is None or t.meta.get("group") == group)]


# ---------------------------------------------------------------------------- the spread itself
def test_the_spread_kinds_on_hand_made_values():
    values = [0.2, 0.4, 0.9]
    std = statistics.stdev(values)  # sample standard deviation, ddof 1
    assert half_width(values, "std") == pytest.approx(std)
    assert half_width(values, "se") == pytest.approx(std / math.sqrt(3))
    assert half_width(values, "ci95") == pytest.approx(4.302653 * std / math.sqrt(3))  # t(0.975, 2)
    assert half_width([0.5], "se") is None and summarise([], "se") == (None, None, 0)
    assert summarise([0.5, float("nan"), 0.7], "std")[2] == 2  # a diverged run's NaN is left out
    assert format_summary([0.5, 0.7], "se") == f"0.600 ± {0.1:.3f} SE (n=2)"
    with pytest.raises(ValueError, match="unknown error kind"):
        half_width(values, "iqr")


def test_t_quantiles_are_students_and_tend_to_the_normal():
    # Published table values (to three decimals), then the normal quantile far out.
    for degrees, quantile in ((1, 12.706), (2, 4.303), (30, 2.042), (60, 2.000), (120, 1.980)):
        assert t975(degrees) == pytest.approx(quantile, abs=1e-3)
    assert t975(10**6) == pytest.approx(1.95996, abs=1e-4)
    with pytest.raises(ValueError, match="degree of freedom"):
        t975(0)


# ---------------------------------------------------------------------------- metric against a setting
def test_the_band_and_the_bars_are_exactly_mean_plus_minus_the_standard_error():
    data = settings_frame(sweep_runs(), "train_seq_len", "cell")
    for style in ("bars", "band"):
        fig = metric_vs_setting_figure(data, "test_copy_acc", "train_seq_len", error="se", style=style)
        for cell in ("lstm", "gru"):
            (mean,) = traces(fig, "mean", cell)
            expected_mean = [statistics.fmean(FINALS[(cell, k)]) for k in (5, 50)]
            expected_se = [statistics.stdev(FINALS[(cell, k)]) / math.sqrt(3) for k in (5, 50)]
            assert list(mean.x) == [5, 50]
            np.testing.assert_allclose(mean.y, expected_mean)
            if style == "bars":
                np.testing.assert_allclose(mean.error_y.array, expected_se)
                assert mean.error_y.visible and not traces(fig, "band_upper", cell)
            else:
                (upper,), (lower,) = traces(fig, "band_upper", cell), traces(fig, "band_lower", cell)
                np.testing.assert_allclose(upper.y, np.add(expected_mean, expected_se))
                np.testing.assert_allclose(lower.y, np.subtract(expected_mean, expected_se))
                assert lower.fill == "tonexty"
            (seeds,) = traces(fig, "seeds", cell)  # every seed a faint point
            assert len(seeds.y) == 6 and "0.35" in seeds.marker.color


def test_the_spread_kind_changes_the_bars_and_the_legend_says_which():
    data = settings_frame(sweep_runs(), "train_seq_len", "cell")
    values = FINALS[("lstm", 5)]
    for kind, factor in (("std", 1.0), ("ci95", 4.302653 / math.sqrt(3))):
        fig = metric_vs_setting_figure(data, "test_copy_acc", "K", error=kind)
        (mean,) = traces(fig, "mean", "lstm")
        assert mean.error_y.array[0] == pytest.approx(statistics.stdev(values) * factor)
        assert {"std": "std", "ci95": "95% CI"}[kind] in mean.name and "n=3" in mean.name


def test_log_x_where_the_values_span_a_decade_and_the_chance_line_for_copy_accuracy():
    data = settings_frame(sweep_runs(), "train_seq_len", "cell")
    fig = metric_vs_setting_figure(data, "test_copy_acc", "K")
    assert fig.layout.xaxis.type == "log" and "log x" in fig.layout.title.text
    assert any(t.name == CHANCE_NAME for t in fig.data)
    assert metric_vs_setting_figure(data, "test_copy_acc", "K", log_x=False).layout.xaxis.type == "linear"
    narrow = data[data["x"] == 5].assign(x=[5, 5, 5, 8, 8, 8])
    assert metric_vs_setting_figure(narrow, "test_loss", "K").layout.xaxis.type == "linear"
    assert not any(t.name == CHANCE_NAME for t in metric_vs_setting_figure(narrow, "test_loss", "K").data)


def test_a_setting_that_is_not_a_number_is_a_category_axis():
    runs = [run(i + 1, RunConfig(cell="lstm", seed=i % 2, init=("uniform", "scaled")[i // 2]), 0.3 + 0.1 * i)
            for i in range(4)]
    fig = metric_vs_setting_figure(settings_frame(runs, "init", None), "test_copy_acc", "init")
    assert fig.layout.xaxis.type == "category" and list(fig.layout.xaxis.categoryarray) == ["scaled", "uniform"]
    (mean,) = traces(fig, "mean", "all runs")
    assert list(mean.x) == ["scaled", "uniform"]
    np.testing.assert_allclose(mean.y, [0.55, 0.35])


def test_summary_skips_runs_without_a_final_metric_and_a_single_seed_has_no_bar():
    frame = settings_frame([run(1, RunConfig(seed=0), 0.4), run(2, RunConfig(seed=1), None, "queued"),
                            run(3, RunConfig(seed=0, lr=0.01), 0.8)], "lr", None)
    summary = summary_by_setting(frame, "test_copy_acc", "se")
    assert list(summary["x"]) == [0.01, 0.1] and list(summary["n"]) == [1, 1]
    assert summary["half"].isna().all() and list(summary["upper"]) == list(summary["mean"])


# ---------------------------------------------------------------------------- convergence
def history(*accs: float, seconds: float = 30.0) -> list[dict]:
    return [{"run_id": 0, "epoch": e, "test_copy_acc": a, "seconds": seconds} for e, a in enumerate(accs, start=1)]


def test_runs_that_never_reach_the_threshold_are_marked_not_dropped():
    runs = sweep_runs()[:6]  # lstm: three seeds at K = 5 and three at K = 50
    epochs = {1: history(0.5, 0.95), 2: history(0.92, 0.99), 3: history(0.2, 0.3, 0.4),
              4: history(0.1, 0.91, seconds=60.0), 5: history(0.1, 0.2), 6: history(0.3)}
    reached = convergence_frame(settings_frame(runs, "train_seq_len", "cell"), epochs, 0.9)
    assert list(reached["reached"]) == [True, True, False, True, False, False]
    assert list(reached["epochs_to"][:2]) == [2.0, 1.0] and reached["minutes_to"].iloc[3] == pytest.approx(2.0)
    assert list(reached["epochs_run"]) == [2, 2, 3, 2, 2, 1]
    fig = convergence_figure(reached, "K", 0.9, "epochs")
    (never,) = traces(fig, "never")
    assert never.meta["runs"] == [3, 5, 6] and list(never.y) == [3, 2, 1]  # at how far each ran
    assert never.marker.symbol == "x-open" and "never reached 90%" in never.name
    (piles,) = traces(fig, "never_count")  # how many crosses share a spot
    assert sorted(zip(piles.y, piles.text, strict=True)) == [(1, "1×"), (2, "1×"), (3, "1×")]
    (mean,) = traces(fig, "mean", "lstm")
    assert list(mean.text) == ["2/3", "1/3"]  # how many seeds reached it at each K
    np.testing.assert_allclose(mean.y, [1.5, 2.0])
    minutes = convergence_figure(reached, "K", 0.9, "minutes")
    np.testing.assert_allclose(traces(minutes, "mean", "lstm")[0].y, [0.75, 2.0])
    assert list(traces(minutes, "never")[0].y) == [1.5, 1.0, 0.5]


# ---------------------------------------------------------------------------- parallel coordinates
def test_parallel_coordinates_carry_every_varied_setting_and_the_metric():
    runs = [run(i + 1, RunConfig(cell=("lstm", "gru")[i % 2], seed=0, hidden_size=(64, 128)[i // 2 % 2],
                                 init=("uniform", "scaled")[i // 4], fresh_data=bool(i % 3)), 0.1 * i)
            for i in range(8)]
    keys = setting_choices(runs)
    assert keys == ["cell", "hidden_size", "init", "fresh_data"]
    fig = parallel_coordinates_figure(settings_frame(runs, "hidden_size", "cell", keys=keys), keys, "test_copy_acc")
    (coords,) = fig.data
    assert [d.label for d in coords.dimensions] == [*keys, "test_copy_acc"]
    cell = coords.dimensions[0]
    assert list(cell.ticktext) == ["gru", "lstm"] and list(cell.values) == [1, 0, 1, 0, 1, 0, 1, 0]
    assert list(coords.dimensions[1].values) == [64, 64, 128, 128, 64, 64, 128, 128]
    np.testing.assert_allclose(coords.line.color, [0.1 * i for i in range(8)])
    assert coords.meta["keys"] == keys


# ---------------------------------------------------------------------------- choosing a sweep
def test_sweep_labels_the_url_and_the_settings_a_point_mixes():
    runs = sweep_runs()
    sweeps = [SweepInfo(1, "K *sweep*", 0.0, {}, ["cell", "seed", "train_seq_len"]), SweepInfo(2, "gone", 1.0, {}, [])]
    assert sweep_labels(sweeps, runs) == {1: "#1 K *sweep* (12 runs)"}  # a sweep whose runs are gone is not listed
    assert sweep_from_url("1", [1]) == 1 and sweep_from_url("2", [1]) is None and sweep_from_url("¹", [1]) is None
    assert sweep_from_url("1" * 5000, [1]) is None and sweep_from_url(" 1 ", [1]) == 1  # int() refuses 4,300+ digits
    assert setting_choices(runs, swept_first=["train_seq_len"])[0] == "train_seq_len"
    assert "train_output_len" in setting_choices(runs)  # tied settings vary too
    assert mixed_settings(runs, "train_seq_len", "cell") == []
    runs.append(run(99, runs[0].config.replace(hidden_size=64), 0.5))
    assert mixed_settings(runs, "train_seq_len", "cell") == ["hidden_size"]
    assert isinstance(settings_frame(runs, "train_seq_len", "cell"), pd.DataFrame)


def test_a_point_mixes_only_what_its_line_does_not_separate():
    """Lines by cell keep the two multiplicative forms apart (as cell_label names them), and
    lines by tag follow the tag as edited on Runs: within a point neither counts as mixed."""
    forms = [run(i, RunConfig(cell="mlstm", mult_form=form, hidden_size=hidden), 0.5)
             for i, (form, hidden) in enumerate([("krause", 8), ("input", 8), ("krause", 16), ("input", 16)], 1)]
    assert mixed_settings(forms, "hidden_size", "cell") == []
    assert set(settings_frame(forms, "hidden_size", "cell")["group"]) == {"mlstm", "mlstm (input form)"}
    assert mixed_settings(forms, "hidden_size", None) == ["mult_form"]  # one line of all runs: mixed indeed
    # Submitted as 'a' and 'b', both tagged 'x' since: one line, whose point mixes two learning rates.
    tagged = [dataclasses.replace(run(i, RunConfig(tag=tag, lr=lr), 0.5), tag="x")
              for i, (tag, lr) in enumerate([("a", 0.1), ("b", 0.01)], 1)]
    assert mixed_settings(tagged, "hidden_size", "tag") == ["lr"]


# ---------------------------------------------------------------------------- solve rate and verdicts
def test_the_solve_rate_table_counts_the_seeds_that_reached_it_with_wilsons_interval():
    from scipy import stats

    runs = sweep_runs()
    epochs = {r.id: [{"epoch": 1, "seconds": 60.0, "test_copy_acc": r.latest["test_copy_acc"]}] for r in runs}
    table = solve_rate_table(convergence_frame(settings_frame(runs, "train_seq_len", "cell"), epochs, 0.5), "se")
    lstm5 = table[(table["group"] == "lstm") & (table["x"] == 5)].iloc[0]
    wilson = stats.binomtest(1, 3).proportion_ci(method="wilson")  # only 0.9 reached 0.5
    assert lstm5["solved"] == "1/3" and (lstm5["low"], lstm5["high"]) == pytest.approx((wilson.low, wilson.high))
    gru5 = table[(table["group"] == "gru") & (table["x"] == 5)].iloc[0]
    assert gru5["solved"] == "3/3" and gru5["low"] == pytest.approx(0.43850, abs=1e-5) and gru5["epochs to it"] == (
        "1.0 ± 0.0")
    assert list(table["x"]) == [5, 50, 5, 50]  # each line in axis order


def test_verdicts_pair_the_same_seeds_at_each_setting_and_the_figure_marks_the_clear_ones():
    from scipy import stats

    runs = sweep_runs()
    data = settings_frame(runs, "train_seq_len", "cell")
    verdicts = verdicts_frame(data, "test_copy_acc", "lstm")
    assert list(verdicts["group"]) == ["gru", "gru"] and list(verdicts["x"]) == [5, 50]
    at5 = verdicts.iloc[0]
    expected = stats.ttest_rel(FINALS[("gru", 5)], FINALS[("lstm", 5)])
    assert at5["paired"] and at5["test"] == "paired t-test" and at5["p"] == pytest.approx(expected.pvalue)
    assert at5["difference"] == pytest.approx(0.6 - 0.5) and not at5["clear"]  # 0.3, 0.3, -0.3: undecided
    at50 = verdicts.iloc[1]
    assert at50["difference"] == pytest.approx(0.15) and at50["clear"]  # 0.2, 0.15, 0.1 better seed by seed
    fig = verdicts_figure(verdicts, "lstm", "test_copy_acc", "train_seq_len")
    (line,) = [t for t in fig.data if t.meta and t.meta.get("kind") == "difference"]
    assert line.meta["clear"] == [False, True]
    assert list(line.marker.color) == ["white", line.line.color]  # open where undecided, filled where clear
    assert list(line.error_y.array) == pytest.approx([at5["high"] - at5["difference"], at50["high"] - 0.15])
    assert "no difference from lstm" in fig.layout.annotations[0].text
    assert verdicts_frame(data, "test_copy_acc", "mgru").empty  # no such reference: nothing to compare


def test_the_default_reference_has_the_most_completed_seeds_and_lstm_wins_a_tie():
    runs = sweep_runs()  # lstm and gru with seeds 0, 1, 2 at each K: a tie
    assert default_reference(settings_frame(runs, "train_seq_len", "cell")) == "lstm"
    config = RunConfig(cell="gru", seed=3)
    more_gru = [*runs, run(100, config, 0.5)]
    assert default_reference(settings_frame(more_gru, "train_seq_len", "cell")) == "gru"  # 4 seeds against 3
    # Seeds are counted among completed runs only, each seed once (it ran at two lengths).
    unfinished = [*runs, run(100, config, 0.5, status="failed"), run(101, config.replace(seed=4), None, "running")]
    assert default_reference(settings_frame(unfinished, "train_seq_len", "cell")) == "lstm"
    # Several keys: the cell is named bare ('lstm, train_seq_len=5'), so a tie still goes to lstm.
    both = settings_frame(runs, None, ("train_seq_len", "cell"))
    assert default_reference(both) == "train_seq_len=5, lstm"
    # No lstm among the tied: the first in name order.
    rnn = [dataclasses.replace(r, config=r.config.replace(cell="rnn")) if r.config.cell == "lstm" else r for r in runs]
    assert default_reference(settings_frame(rnn, "train_seq_len", "cell")) == "gru"
    assert default_reference(settings_frame([], None, "cell")) is None


def test_lines_leave_out_the_settings_that_move_with_x():
    runs = sweep_runs()  # N and the test lengths are tied to K
    keys = ("cell", "train_seq_len", "train_output_len", "test_seq_len")
    assert line_keys(runs, "train_seq_len", keys) == ("cell",)
    assert line_keys(runs, "cell", keys) == ("train_seq_len", "train_output_len", "test_seq_len")
