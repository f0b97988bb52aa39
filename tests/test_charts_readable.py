"""Charts a person can read at the widths the pages draw them: curriculum marks that never pile
up, titles that fit, legends below the plot with rounded numbers, and a search's trials numbered
as its table numbers them. Figure builders are pure functions, tested without a browser."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest
from conftest import TINY
from test_search import drain, start

from seqcopy.results import search
from seqcopy.runs.store import Store
from seqcopy.text import rounded
from seqcopy.ui import figures, frames, playground_figures, search_figures

LONG_LR = 0.001202222703522498


def epochs_of(run_id: int, values: list[float], stage: list[int], label: str) -> pd.DataFrame:
    n = len(values)
    return pd.DataFrame({
        "run_id": run_id, "epoch": range(1, n + 1), "minutes": np.arange(n) * 0.5, "label": label,
        "stage_output_len": stage, "train_loss": values, "test_loss": values, "train_acc": values,
        "test_acc": values, "train_copy_acc": values, "test_copy_acc": values, "train_seq_acc": values,
        "test_seq_acc": values,
    })


def of_kind(fig, kind: str) -> list:
    return [t for t in fig.data if isinstance(t.meta, dict) and t.meta.get("kind") == kind]


def plain(title: str) -> str:
    """A title's main line, as drawn at the title's size (a <sup> line is smaller)."""
    return title.split("<br>")[0]


def assert_legend_below(fig) -> None:
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.yanchor == "top" and legend.x == 0
    # Inside the bottom margin, under the x axis: the plot keeps its height.
    assert legend.yref == "container" and legend.y * fig.layout.height <= fig.layout.margin.b - 40


# ----------------------------------------------------------------------------- curriculum marks
def test_curriculum_changes_are_ticks_with_their_words_on_hover_never_text_on_the_plot():
    # Three runs changing stage at nearby epochs: once "cucurriculum N=N=N=10" over the subtitle.
    data = pd.concat([epochs_of(i, [0.1, 0.2, 0.4, 0.6, 0.8], [5, 5, 10, 10, 10], f"#{i} lstm s{i}")
                      for i in (1, 2, 3)])
    stages = frames.stage_changes(data)
    for metric in ("loss", "acc", "copy_acc"):
        fig = figures.run_curves_figure(data, metric, stages=stages, log_y=metric == "loss")
        assert not fig.layout.annotations  # no label written on the plot
        assert not [s for s in fig.layout.shapes if s.x0 == s.x1]  # nor a line across it
        (ticks,) = of_kind(fig, "curriculum")
        assert list(ticks.x) == [3, 3, 3] and ticks.marker.symbol == "line-ns-open"
        assert ticks.hovertext == tuple(f"#{i} lstm s{i}: curriculum → N=10 at epoch 3" for i in (1, 2, 3))
        # On an axis of its own, 0 to 1, linear: at the foot of the plot whatever the metric's scale.
        assert ticks.yaxis == "y2" and list(ticks.y) == [0.04] * 3
        assert fig.layout.yaxis2.overlaying == "y" and tuple(fig.layout.yaxis2.range) == (0, 1)
        assert fig.layout.yaxis2.type != "log" and fig.layout.yaxis2.visible is False
    assert figures.run_curves_figure(data, "loss", log_y=True, stages=stages).layout.yaxis.type == "log"


def test_without_stage_changes_there_is_no_tick():
    data = epochs_of(1, [0.1, 0.2], [5, 5], "#1")
    assert not of_kind(figures.run_curves_figure(data, "acc", stages=frames.stage_changes(data)), "curriculum")


# ----------------------------------------------------------------------------- titles that fit
def test_every_title_fits_the_narrowest_column_it_is_drawn_in():
    data = epochs_of(1, [0.1, 0.2, 0.3], [5, 5, 5], "#1")
    for metric in figures.METRIC_TITLES:
        title = figures.run_curves_figure(data, metric).layout.title.text
        assert len(plain(title)) <= figures.TITLE_CHARACTERS, title
    for metric in figures.DIAGNOSTIC_TITLES:
        frame = data.assign(**{metric: [0.5, 0.6, 0.7]})
        fig = figures.diagnostic_curves_figure(frame, metric)
        assert len(fig.layout.title.text) <= figures.TITLE_CHARACTERS, fig.layout.title.text
        assert fig.layout.yaxis.title.text == figures.DIAGNOSTIC_AXES[metric]  # the detail, on the axis
        assert len(fig.layout.yaxis.title.text) <= 30  # along a 250 px plot
    for view, title in search_figures.VIEW_TITLES.items():
        assert len(title) <= figures.TITLE_CHARACTERS, view


def test_the_playgrounds_titles_fit_and_its_legends_sit_below():
    copies = pd.DataFrame({"label": ["#1 lstm · epoch 8"] * 2 + ["#2 mLSTM (Krause)"] * 2, "position": [1, 2] * 2,
                           "target": ["a", "x"] * 2, "output": ["a", "c"] * 2, "right": [True, False] * 2,
                           "p_right": [0.9, 0.2, 0.8, 0.1]})
    fig = playground_figures.right_probability_figure(copies)
    assert len(plain(fig.layout.title.text)) <= figures.TITLE_CHARACTERS
    assert_legend_below(fig)
    trajectory = pd.DataFrame({"step": range(4), "pc1": [0.0, 1, 2, 3], "pc2": [0.0, 1, 0, 1],
                               "phase": ["reading", "reading", "delimiters", "copying"], "symbol": list("ax$a")})
    fig = playground_figures.trajectory_figure(trajectory, [0.7, 0.2], step=1, title="Cell state c")
    assert len(plain(fig.layout.title.text)) <= 40 and "(70% and 20% of the variance)" in fig.layout.title.text
    assert_legend_below(fig)


# ----------------------------------------------------------------------------- legends and numbers
def test_eight_long_legend_entries_grow_the_figure_not_shrink_the_plot():
    parts = [epochs_of(i, [0.1 * i, 0.2, 0.3], [5, 5, 5], f"#{i}").assign(group=f"{LONG_LR * i}")
             for i in range(1, 9)]
    frame = pd.concat(parts, ignore_index=True)
    few = figures.seed_band_figure(frame[frame["run_id"] == 1], x="epoch", y="test_copy_acc", title="t")
    many = figures.seed_band_figure(frame, x="epoch", y="test_copy_acc", title="t")
    for fig in (few, many):
        assert_legend_below(fig)
        plot = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
        assert plot == 250  # the same plot, however many entries
    assert many.layout.height >= few.layout.height + 7 * figures.LEGEND_ROW_PX  # about one entry a row
    names = [t.name for t in of_kind(many, "mean")]
    assert names[0] == "0.00120 (1 seed, no band)" and not any("0.0012022" in name for name in names)


def test_legend_text_rounds_long_decimals_only():
    assert figures.legend_text(f"lstm, lr={LONG_LR}") == "lstm, lr=0.00120"
    assert figures.legend_text("lr=0.5, hidden_size=64") == "lr=0.5, hidden_size=64"
    assert figures.legend_text("tag v1.23456") == "tag v1.23456"  # inside a word: a person's text
    assert figures.legend_text("3.2e-05") == "3.2e-05" and figures.legend_text("0.123456e-05") == "1.23e-6"


# ----------------------------------------------------------------------------- a search's trials
def tagged_study() -> optuna.Study:
    """Trials tagged as the search tags them: an orphan the first asker left (failed) takes
    Optuna's number 0, so Optuna's count and the table's differ by more than one."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    space = {"hidden_size": optuna.distributions.IntDistribution(4, 64),
             "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
    orphan = study.ask(space)
    orphan.set_user_attr("seqcopy_number", 1)
    study.tell(orphan, state=optuna.trial.TrialState.FAIL)
    for number in (1, 2, 3, 4):
        trial = study.ask(space)
        trial.set_user_attr("seqcopy_number", number)
        for epoch in (1, 2):
            trial.report(number / 10 * epoch, epoch)
        study.tell(trial, number / 10 * 2)
    return study


def test_history_and_per_epoch_figures_number_trials_as_the_table_with_the_projects_axes():
    study = tagged_study()
    history = search_figures.search_figure(study, "history", "test_copy_acc")
    points = of_kind(history, "trial")
    assert [t.meta["trial"] for t in points] == [1, 2, 3, 4] and [t.x[0] for t in points] == [1, 2, 3, 4]
    assert history.layout.xaxis.title.text == "trial" and history.layout.yaxis.title.text == "test copy acc"
    per_epoch = search_figures.search_figure(study, "intermediate", "test_copy_acc")
    assert [t.name for t in per_epoch.data] == ["trial 1", "trial 2", "trial 3", "trial 4"]
    assert per_epoch.layout.xaxis.title.text == "epoch" and per_epoch.layout.yaxis.title.text == "test copy acc"
    assert all(t.showlegend is not False for t in per_epoch.data)
    assert_legend_below(per_epoch)
    # One colour per trial across the figures.
    assert [t.line.color for t in per_epoch.data] == [t.marker.color for t in points]
    assert per_epoch.data[0].line.color == search_figures.trial_colour(1)
    # Optuna's slice colours by trial number: the table's too.
    slice_ = search_figures.search_figure(study, "slice", "test_copy_acc")
    assert sorted(set(slice_.data[0].marker.color)) == [1, 2, 3, 4]


def test_untagged_trials_take_the_tables_number_by_storage_id_or_count_from_one():
    study = optuna.create_study()
    for value in (0.3, 0.1):
        trial = study.ask()
        trial.report(value, 1)
        study.tell(trial, value)
    frozen = study.get_trials()
    assert [search_figures.trial_number(t) for t in frozen] == [1, 2]
    numbers = {frozen[0]._trial_id: 7, frozen[1]._trial_id: 9}
    assert [search_figures.trial_number(t, numbers) for t in frozen] == [7, 9]
    assert list(search_figures.search_figure(study, "history", numbers=numbers).data[1].x) == [7]


def test_the_trials_table_rounds_sampled_values():
    rows = [{"number": 1, "state": "completed", "params": {"lr": LONG_LR, "cell": "lstm", "hidden_size": 16},
             "value": 0.812345, "se": 0.0123456, "n": 2, "pruned_epoch": None, "run_ids": [1, 2]}]
    frame = search_figures.trials_frame(rows, "test_copy_acc")
    assert frame["lr"].iloc[0] == "0.00120" and frame["cell"].iloc[0] == "lstm" and frame["hidden_size"].iloc[0] == 16
    assert frame["test_copy_acc (mean ± SE)"].iloc[0] == "0.812 ± 0.0123"


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('charts') / 'runs.db'}"
    store = Store(url)
    # With a pruner each epoch is reported to Optuna (a trial it prunes keeps the epochs it reported).
    sweep_id = start(store, trials_count=3, seeds=(0,), base=TINY.replace(epochs=2), pruner="median")
    drain(store)
    yield store, sweep_id
    store.close()


def test_a_real_searchs_table_and_figures_agree_on_trial_numbers(searched):
    store, sweep_id = searched
    rows = search.trials_table(store, sweep_id)
    table = set(search_figures.trials_frame(rows, "test_copy_acc")["trial"])
    assert table == {1, 2, 3}
    study = search.load_optuna_study(store, sweep_id)
    numbers = {r["trial_id"]: r["number"] for r in rows}
    history = search_figures.search_figure(study, "history", "test_copy_acc", numbers)
    assert {t.meta["trial"] for t in of_kind(history, "trial")} == table
    per_epoch = search_figures.search_figure(study, "intermediate", "test_copy_acc", numbers)
    assert {t.meta["trial"] for t in per_epoch.data} == table


def test_hover_values_are_rounded_to_three_significant_figures():
    data = epochs_of(1, [0.812345678, 0.9], [5, 5], "#1")
    assert figures.run_curves_figure(data, "acc").layout.yaxis.hoverformat == ".3g"
    fig = search_figures.search_figure(tagged_study(), "intermediate", "test_copy_acc")
    assert all(text == rounded(value) for t in fig.data for text, value in zip(t.hovertext, t.y, strict=True))
