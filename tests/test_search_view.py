"""The search's figures (Optuna's, restyled) as pure functions, and Compare's search view under AppTest."""

from __future__ import annotations

import optuna
import plotly.graph_objects as go
import pytest
from conftest import TINY
from test_search import drain, start
from test_ui_pages import open_page, point_the_app_at, texts

from seqcopy.results import search
from seqcopy.runs.store import Store
from seqcopy.ui import search_figures
from seqcopy.ui.figures import PALETTE


def a_study(completed: int = 6) -> optuna.Study:
    """An in-memory study of a known function, with one pruned trial."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(completed):
        trial = study.ask({"hidden_size": optuna.distributions.IntDistribution(4, 64),
                           "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
        for epoch in (1, 2):
            trial.report(trial.params["hidden_size"] / 64 * epoch / 2, epoch)
        study.tell(trial, trial.params["hidden_size"] / 64)
    pruned = study.ask({"hidden_size": optuna.distributions.IntDistribution(4, 64)})
    pruned.report(0.01, 1)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    return study


@pytest.mark.parametrize("view", search_figures.VIEWS)
def test_each_view_is_optunas_figure_in_the_apps_style(view):
    figure = search_figures.search_figure(a_study(), view, "test_copy_acc")
    assert isinstance(figure, go.Figure) and figure.data
    assert figure.layout.title.text == search_figures.VIEW_TITLES[view]
    assert list(figure.layout.colorway) == list(PALETTE) and figure.layout.height >= 380


def test_views_that_cannot_be_drawn_yet_are_none():
    empty = optuna.create_study()
    assert all(search_figures.search_figure(empty, view) is None for view in search_figures.VIEWS)
    one = a_study(completed=1)
    assert search_figures.search_figure(one, "importances") is None
    assert search_figures.search_figure(one, "contour") is None
    assert search_figures.search_figure(one, "history") is not None


def test_the_trials_frame_shows_the_seeds_mean_and_se_and_the_pruned_epoch():
    rows = [{"number": 2, "state": "completed", "params": {"lr": 0.01}, "value": 0.5, "se": 0.1, "n": 3,
             "pruned_epoch": None, "run_ids": [4, 5, 6]},
            {"number": 1, "state": "pruned", "params": {"lr": 0.1}, "value": 0.2, "se": None, "n": 1,
             "pruned_epoch": 2, "run_ids": [1, 2, 3]}]
    frame = search_figures.trials_frame(rows, "test_copy_acc")
    # 3 significant figures, exact values as they are
    assert list(frame["trial"]) == [2, 1] and list(frame["test_copy_acc (mean ± SE)"]) == ["0.5 ± 0.1", "0.2"]
    assert frame["pruned at epoch"].iloc[1] == 2 and frame["runs"].iloc[0] == "4, 5, 6"


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('searched') / 'runs.db'}"
    store = Store(url)
    sweep_id = start(store, trials_count=3, seeds=(0, 1), base=TINY.replace(epochs=2))
    drain(store)
    store.close()
    return url, sweep_id


def test_compare_shows_a_search_its_figures_and_trains_the_best_with_more_seeds(searched, monkeypatch):
    url, sweep_id = searched
    point_the_app_at(url, monkeypatch)
    at = open_page("views/compare.py", {"sweep": str(sweep_id)})
    assert f"Search #{sweep_id}" in texts(at.subheader)
    assert "3 of 3 trials asked" in texts(at.caption)
    table = at.dataframe[0].value  # the search's table comes first, above the runs' own
    assert len(table) == 3 and "test_copy_acc (mean ± SE)" in table.columns
    assert len(at.tabs) == len(search_figures.VIEWS)
    button = at.button(key="search_more_seeds")
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Queued 3 run(s) as sweep" in texts(at.success)
    store = Store(url)
    best = search.best_trials(store, sweep_id)[0]
    new = [s for s in store.list_sweeps() if s.spec.get("from_search") == sweep_id]
    assert len(new) == 1 and new[0].spec["trial"] == best["number"] and new[0].spec["seeds"] == [2, 3, 4]
    runs = store.list_runs(sweep_id=new[0].id)
    params = best["params"]
    assert all(getattr(r.config, k) == v for r in runs for k, v in params.items())
    store.close()


@pytest.fixture
def empty_db(tmp_path, monkeypatch):
    return point_the_app_at(f"sqlite:///{tmp_path / 'runs.db'}", monkeypatch)


def test_launch_starts_a_search_with_its_upper_bound_and_refuses_a_bad_space(empty_db):
    at = open_page("views/launch.py")
    at.segmented_control(key="launch_mode").set_value("Search").run()
    at.selectbox(key="launch_search_field_0").set_value("hidden_size").run()
    at.text_input(key="launch_search_spec_0").set_value("int(8,x)").run()
    assert "not a whole number" in texts(at.error)
    at.button(key="button_search_start").click().run()
    store = Store(empty_db)
    assert store.list_sweeps() == [] and store.list_runs() == []
    at.text_input(key="launch_search_spec_0").set_value("int(8,16)").run()
    at.number_input(key="launch_search_trials").set_value(4).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = {m.label: m.value for m in at.metric}
    seeds = len({r for r in at.text_input(key="launch_seeds").value.replace(" ", "").split(",") if r})
    assert shown["Runs, at most"] == str(4 * seeds)
    assert "Total, one worker, no pruning (upper bound)" in shown
    at.button(key="button_search_start").click().run()
    assert "started" in texts(at.success)
    (sweep,) = store.list_sweeps()
    assert sweep.spec["search"] and sweep.spec["trials"] == 4 and store.list_runs() == []
    store.close()
