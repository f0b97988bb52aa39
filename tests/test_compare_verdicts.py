"""Compare's answer in words and the frames behind it, without a page: the head-to-head line, the
short verdict, the default reference among pruned trials, categories on a figure's x axis."""

from __future__ import annotations

import time

import pandas as pd

from seqcopy.results.verdicts import permutation_p, verdict
from seqcopy.ui.sweep_figures import metric_vs_setting_figure
from seqcopy.ui.sweep_frames import default_reference, head_to_head, is_categorical

LSTM = {0: 0.61, 1: 0.72, 2: 0.55}
GRU = {0: 0.70, 1: 0.80, 2: 0.66}  # better by 0.09, 0.08, 0.11 seed by seed
NOISY = {0: 0.70, 1: 0.60, 2: 0.66}  # better on two seeds, worse on one


def test_the_headline_says_which_is_better_only_where_the_interval_excludes_zero():
    clear = verdict(LSTM, GRU).headline("gru", "lstm", seeds=[0, 1, 2])
    assert clear.startswith("gru − lstm: +0.0933 [") and "paired over seeds 0, 1, 2" in clear
    assert clear.endswith("gru is better (the 95% interval excludes 0)")
    unclear = verdict(LSTM, NOISY).headline("gru", "lstm", seeds=[0, 1, 2])
    assert unclear.endswith("these 3 seeds cannot decide") and "better" not in unclear
    # On a loss, lower is better: the same numbers crown the reference.
    assert verdict(LSTM, GRU).headline("gru", "lstm", lower_is_better=True, seeds=[0, 1, 2]).endswith(
        "lstm is better (the 95% interval excludes 0)")
    welch = verdict(LSTM, {5: 0.7, 6: 0.8, 7: 0.66}).headline("gru", "lstm")
    assert "3 against 3 seeds, unpaired" in welch


def test_the_short_verdict_and_the_interval_are_rounded_text_never_none():
    result = verdict(LSTM, GRU)
    assert result.short() == "better" and result.short(lower_is_better=True) == "worse"
    assert verdict(LSTM, NOISY).short() == "cannot decide"
    one = verdict({0: 0.5}, {0: 0.9, 1: 0.8})
    assert one.short().startswith("no test") and one.interval_text(significant=True) == "+0.350"
    assert verdict({}, {}).interval_text(significant=True) == ""
    assert result.interval_text(significant=True).startswith("+0.0933 [")
    assert result.interval_text().startswith("+0.093 [")  # the report's columns: decimals


def frame(rows):
    return pd.DataFrame(rows, columns=["run_id", "seed", "group", "status", "pruned", "test_copy_acc", "x"])


def test_the_default_reference_counts_no_pruned_trial():
    rows = [(1, 0, "lstm, lr=0.00120", "completed", True, 0.3, "all runs"),
            (2, 0, "gru, lr=0.1", "completed", False, 0.8, "all runs"),
            (3, 1, "gru, lr=0.1", "completed", False, 0.7, "all runs"),
            (4, 0, "lstm, lr=0.1", "completed", False, 0.8, "all runs")]
    assert default_reference(frame(rows)) == "gru, lr=0.1"  # 2 seeds; the pruned lstm trial counts none
    assert default_reference(frame(rows[:1] + rows[3:])) == "lstm, lr=0.1"  # lstm on a tie, the unpruned one


def test_the_head_to_head_pairs_by_seed_and_refuses_groups_that_mix_runs_of_one_seed():
    rows = [(i, seed, cell, "completed", False, value, "all runs")
            for i, (cell, seed, value) in enumerate([(c, s, v) for c, values in (("lstm", LSTM), ("gru", GRU))
                                                     for s, v in values.items()])]
    lines = head_to_head(frame(rows), "test_copy_acc", "lstm")
    assert len(lines) == 1 and lines[0].startswith("gru − lstm: ") and "paired over seeds 0, 1, 2" in lines[0]
    assert head_to_head(frame(rows), "test_copy_acc", "rnn") == []  # no such reference
    doubled = rows + [(99, 0, "gru", "completed", False, 0.1, "all runs")]  # two gru runs of seed 0
    assert head_to_head(frame(doubled), "test_copy_acc", "lstm") == []


def test_categories_get_markers_without_a_line_or_a_log_axis():
    assert is_categorical(["lstm", "gru"]) and is_categorical([0.1, 0.1]) and not is_categorical([0.1, 1.0])
    data = pd.DataFrame({"run_id": [1, 2, 3, 4], "label": ["a", "b", "c", "d"], "seed": [0, 1, 0, 1],
                         "x": ["lstm", "lstm", "gru", "gru"], "group": ["all runs"] * 4,
                         "test_copy_acc": [0.5, 0.6, 0.7, 0.8]})
    figure = metric_vs_setting_figure(data, "test_copy_acc", "cell", style="band", log_x=True)
    assert figure.layout.xaxis.type == "category"
    means = [trace for trace in figure.data if trace.meta["kind"] == "mean"]
    assert means and all("lines" not in trace.mode for trace in means)
    assert not [trace for trace in figure.data if trace.meta["kind"].startswith("band")]  # no band between categories
    numbers = data.assign(x=[0.001202222703522498, 0.001202222703522498, 0.1, 0.1])
    ticks = metric_vs_setting_figure(numbers, "test_copy_acc", "lr").layout.xaxis.ticktext
    assert list(ticks) == ["0.00120", "0.1"]


def test_the_permutation_test_of_many_seeds_samples_instead_of_stalling():
    started = time.perf_counter()
    group, reference = [0.5 + 0.01 * i for i in range(20)], [0.45 + 0.01 * i for i in range(20)]
    p = permutation_p(group, reference, paired=False)  # C(40, 20) ≈ 1.4e11 relabellings to enumerate
    assert 0 < p <= 1 and p == permutation_p(group, reference, paired=False)  # seeded: one value
    assert time.perf_counter() - started < 10
