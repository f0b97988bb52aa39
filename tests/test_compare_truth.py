"""Compare says what its runs say: the tour's head-to-head answer, a reference that is a real
group of seeds, pruned runs kept out of the means, rounded numbers, and a view that lives in the
URL. Each store is a handful of runs written through Store, no training."""

from __future__ import annotations

import json

import pytest
import ui_store
from test_ui_pages import open_page, point_the_app_at, store_made_by, texts

from seqcopy.results.sweeps import Grid
from seqcopy.runs.store import Store

ODD_LR = 0.001202222703522498  # a search's sampled learning rate, as Optuna hands it over


def tour(url: str) -> int:
    """The README's tour: the Quick demo's lstm and gru × seeds 0, 1, 2, queued as one sweep."""
    store = Store(url)
    grid = Grid(ui_store.TINY.replace(tag="tour"), ("lstm", "gru"), (0, 1, 2))
    configs = grid.configs()
    sweep_id, ids = store.submit_sweep(configs, "Quick demo", grid.spec())
    for run_id, config in zip(ids, configs, strict=True):
        ui_store.record(store, run_id, config, "completed")
    store.close()
    return sweep_id


def prune(store: Store, config, epochs: int = 1) -> int:
    """A run a search's pruner stopped: completed, but after fewer epochs than it asked for."""
    run_id = store.submit(config)
    claimed = store.claim(ui_store.WORKER)
    assert claimed.id == run_id
    for epoch in range(1, epochs + 1):
        store.record_epoch(run_id, ui_store.WORKER, ui_store.epoch_row(epoch, config.seed, config.cell))
    store.finish(run_id, ui_store.WORKER, "completed", error=f"pruned at epoch {epochs} by the median pruner")
    return run_id


def with_pruned_trials(url: str) -> None:
    """lstm and gru × 3 seeds; a pruned lstm trial of one seed at an odd learning rate (newest,
    and lstm by name: the old default chose it); two pruned gru seeds of the gru group."""
    store = Store(url)
    for cell in ("lstm", "gru"):
        for seed in (0, 1, 2):
            ui_store.add_run(store, ui_store.TINY.replace(cell=cell, seed=seed), "completed")
    for seed in (3, 4):
        prune(store, ui_store.TINY.replace(cell="gru", seed=seed))
    prune(store, ui_store.TINY.replace(cell="lstm", seed=0, lr=ODD_LR, epochs=15))
    store.close()


@pytest.fixture(scope="module")
def tour_store(tmp_path_factory):
    return store_made_by(tour, tmp_path_factory)


@pytest.fixture(scope="module")
def pruned_store(tmp_path_factory):
    return store_made_by(with_pruned_trials, tmp_path_factory)


def head_to_head(at) -> str:
    """The answer at the top, as it reads once its markdown escapes are rendered."""
    lines = [str(e.value).replace("\\", "") for e in at.markdown if "head to head" in str(e.value).lower()]
    return "\n".join(lines)


def verdict_table(at):
    return next(df.value for df in at.dataframe if "verdict" in df.value.columns)


def final_table(at):
    return next(df.value for df in at.dataframe if "mean ± spread" in df.value.columns)


def test_the_tours_lstm_against_gru_gets_a_one_line_answer(tour_store, monkeypatch):
    url, sweep_id = tour_store
    point_the_app_at(url, monkeypatch)
    at = open_page("views/compare.py", {"sweep": str(sweep_id)})
    line = head_to_head(at)
    assert "gru − lstm" in line and "paired over seeds 0, 1, 2" in line, line
    assert ("cannot decide" in line) or ("better" in line and "excludes 0" in line)
    assert "One group only" not in texts(at.info)
    verdicts = verdict_table(at)
    assert list(verdicts["cell"]) == ["gru"]
    assert "None" not in verdicts.astype(str).to_numpy().ravel().tolist()


def test_the_default_reference_is_never_a_pruned_or_one_seed_group(pruned_store, monkeypatch):
    point_the_app_at(pruned_store[0], monkeypatch)
    at = open_page("views/compare.py")
    reference = at.selectbox(key="compare_reference")
    assert any("epochs=15" in group for group in reference.options) is False  # left out of the means
    assert reference.value == "lstm, epochs=3, lr=0.1"  # 3 seeds, not the newest lstm group's 1
    at.toggle(key="compare_include_pruned").set_value(True).run()  # the pruned trial in the means: still not it
    assert not at.exception
    reference = at.selectbox(key="compare_reference")
    assert any("epochs=15" in group for group in reference.options)
    assert "epochs=15" not in reference.value


def test_pruned_runs_are_left_out_of_the_means_unless_asked(pruned_store, monkeypatch):
    point_the_app_at(pruned_store[0], monkeypatch)
    at = open_page("views/compare.py", {"group": "cell"})
    assert "3 pruned runs left out of the means" in texts(at.caption)
    table = final_table(at).set_index("cell")
    assert table.loc["gru", "n"] == 3 and table.loc["lstm", "n"] == 3
    at.toggle(key="compare_include_pruned").set_value(True).run()
    assert not at.exception
    table = final_table(at).set_index("cell")
    assert table.loc["gru", "n"] == 5 and table.loc["lstm", "n"] == 4
    assert "left out of the means" not in texts(at.caption)


def page_text(at) -> str:
    """Every word the page shows: text elements, tables, and the figures' legends, ticks and titles."""
    parts = [texts(getattr(at, kind)) for kind in ("markdown", "caption", "info", "warning", "subheader")]
    parts += [df.value.to_csv() for df in at.dataframe]
    for chart in at.get("plotly_chart"):  # what a figure shows as words, not the data it plots
        figure = json.loads(chart.proto.spec)
        layout = figure["layout"]
        parts.append(json.dumps([layout.get("title"), layout.get("annotations"),
                                 *(axis.get("ticktext") for name, axis in layout.items() if name.startswith("xaxis"))]))
        parts += [json.dumps([trace.get("name"), trace.get("text"), trace.get("hovertemplate")])
                  for trace in figure["data"]]
    return "\n".join(parts)


def test_settings_are_rounded_in_captions_tables_and_legends(pruned_store, monkeypatch):
    point_the_app_at(pruned_store[0], monkeypatch)
    at = open_page("views/compare.py", {"group": "cell"})
    at.toggle(key="compare_include_pruned").set_value(True).run()
    at.selectbox(key="compare_x").set_value("lr").run()
    assert not at.exception
    shown = page_text(at)
    assert "0.00120" in shown  # the setting, as a person reads it
    assert str(ODD_LR) not in shown and "0.0012022" not in shown


def test_categorical_settings_are_drawn_as_categories_without_a_log_axis(tour_store, monkeypatch):
    url, sweep_id = tour_store
    point_the_app_at(url, monkeypatch)
    at = open_page("views/compare.py", {"sweep": str(sweep_id)})
    assert at.selectbox(key="compare_x").value == "cell"
    assert not [t for t in at.toggle if t.key == "compare_log_x"]  # no log scale for categories
    figure = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                  if "against cell" in json.loads(c.proto.spec)["layout"]["title"]["text"])
    assert figure["layout"]["xaxis"]["type"] == "category"
    means = [trace for trace in figure["data"] if trace.get("meta", {}).get("kind") == "mean"]
    assert means and all("lines" not in trace["mode"] for trace in means)


def test_the_grouping_metric_and_reference_live_in_the_url(pruned_store, monkeypatch):
    point_the_app_at(pruned_store[0], monkeypatch)
    at = open_page("views/compare.py", {"group": "cell", "metric": "test_loss", "ref": "gru"})
    assert at.multiselect(key="compare_group").value == ["cell"]
    assert at.selectbox(key="compare_table_metric").value == "test_loss"
    assert at.selectbox(key="compare_reference").value == "gru"
    assert "lstm − gru" in head_to_head(at) and "test loss" in head_to_head(at)
    at.selectbox(key="compare_reference").set_value("lstm").run()
    at.selectbox(key="compare_table_metric").set_value("test_seq_acc").run()
    at.multiselect(key="compare_group").set_value(["cell", "lr"]).run()
    assert not at.exception
    assert at.query_params["group"] in ("cell,lr", ["cell,lr"])
    assert at.query_params["metric"] in ("test_seq_acc", ["test_seq_acc"])
    assert at.query_params["ref"] in ("lstm", ["lstm"])


def test_a_url_with_bad_values_opens_the_default_view(pruned_store, monkeypatch):
    point_the_app_at(pruned_store[0], monkeypatch)
    at = open_page("views/compare.py", {"group": "cell,nonsense", "metric": "<b>", "ref": "x" * 5000})
    assert at.multiselect(key="compare_group").value == []
    assert at.selectbox(key="compare_table_metric").value == "test_copy_acc"
    assert at.selectbox(key="compare_reference").value.startswith("lstm")
