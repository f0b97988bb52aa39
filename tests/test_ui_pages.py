"""Every dashboard page under streamlit.testing.v1.AppTest, on an empty store and on one that
holds completed, running, failed, cancelled and queued runs of several cells and seeds.

SEQCOPY_WORKER=external keeps the app from starting a worker; SEQCOPY_DB points at a temp file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import ui_store
from streamlit.testing.v1 import AppTest

from seqcopy.runs.store import Store
from seqcopy.ui import escape
from seqcopy.ui.launch_form import label_for

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ["views/launch.py", "views/runs.py", "views/compare.py", "views/playground.py"]


def open_page(page: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    if page != PAGES[0]:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def point_the_app_at(url: str, monkeypatch) -> str:
    """The app reads ``url`` and starts no worker of its own."""
    monkeypatch.setenv("SEQCOPY_DB", url)
    monkeypatch.setenv("SEQCOPY_WORKER", "external")
    return url


@pytest.fixture
def empty_db(tmp_path, monkeypatch):
    return point_the_app_at(f"sqlite:///{tmp_path / 'runs.db'}", monkeypatch)


def store_made_by(fill, tmp_path_factory) -> tuple:
    """(url, what ``fill`` returns) of a fresh store that ``fill`` filled."""
    url = f"sqlite:///{tmp_path_factory.mktemp(fill.__name__) / 'runs.db'}"
    return url, fill(url)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    return store_made_by(ui_store.fill, tmp_path_factory)


@pytest.fixture
def filled_db(filled, monkeypatch):
    return point_the_app_at(filled[0], monkeypatch), filled[1]


# ----------------------------------------------------------------------------- empty store
@pytest.mark.parametrize("page", PAGES)
def test_each_page_on_an_empty_store_points_to_launch(empty_db, page):
    at = open_page(page)
    if page == "views/launch.py":
        assert "Nothing is queued" in texts(at.info)
    else:
        assert "Launch" in texts(at.info)


def test_a_bad_database_url_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("SEQCOPY_DB", f"sqlite:///{foreign}")
    monkeypatch.setenv("SEQCOPY_WORKER", "external")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "cannot be used" in texts(at.error)


# ----------------------------------------------------------------------------- filled store
@pytest.mark.parametrize("page", PAGES)
def test_each_page_on_a_store_with_every_kind_of_run(filled_db, page):
    at = open_page(page)
    assert not at.error


def test_runs_page_draws_the_runs_named_in_the_url(filled_db):
    _, ids = filled_db
    chosen = [ids["completed"][0], ids["completed"][3], ids["running"][0], ids["single"][0]]
    at = open_page("views/runs.py", {"runs": ",".join(map(str, chosen))})
    assert f"{len(chosen)} selected run(s)" in texts(at.subheader)
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # loss, accuracy, copy accuracy
    assert "Live" in texts(at.caption)  # a running run is selected: the curves refresh
    # The config diff shows only what differs: cell, seed, epochs, curriculum…, never tag.
    diff = [df for df in at.dataframe if "run " + str(chosen[0]) in df.value.columns]
    assert diff and "cell" in diff[0].value.index and "tag" not in diff[0].value.index


def test_runs_page_ignores_what_is_not_a_run_in_the_url(filled_db):
    at = open_page("views/runs.py", {"runs": "1,x,99999"})
    assert "Ignored in the link" in texts(at.warning)
    assert "1 selected run(s)" in texts(at.subheader)


def test_runs_page_filters_and_shows_a_failed_runs_error(filled_db):
    _, ids = filled_db
    at = open_page("views/runs.py", {"runs": str(ids["failed"][0])})
    assert any("failed" in e.label for e in at.expander)
    at.multiselect(key="runs_filter_status").set_value(["failed"]).run()
    assert not at.exception
    table = [df for df in at.dataframe if "status" in df.value.columns][0].value
    assert set(table["status"]) == {"failed"}


def test_compare_page_groups_by_everything_but_the_seed_and_by_any_keys(filled_db):
    at = open_page("views/compare.py")
    captions = texts(at.caption)
    assert "a single seed" in captions  # the mgru group
    # The default: every key these completed runs vary but the seed (mgru alone ran a curriculum).
    assert "Grouped by everything that varies but the seed: cell, curriculum." in captions
    final = at.dataframe[0].value.set_index("cell, curriculum")
    assert set(final.index) == {f"{cell}, curriculum=False" for cell in ("lstm", "gru", "rnn")} | {
        "mgru, curriculum=True"}
    assert list(final.columns) == ["n", "mean ± spread", "median", "min", "max", "best seed", "best run"]
    lstm = final.loc["lstm, curriculum=False"]
    assert lstm["n"] == 3 and lstm["min"] <= lstm["median"] <= lstm["max"] and " ± " in lstm["mean ± spread"]
    assert lstm["best run"].startswith("runs?runs=")
    assert final.loc["mgru, curriculum=True", "n"] == 1
    # curves; the final metric against a varied setting, parallel coordinates (these runs vary
    # cell, curriculum…); the speed; verdicts against lstm; by position, by length
    assert len(at.get("plotly_chart")) == 7
    assert at.selectbox(key="compare_reference").value.startswith("lstm")
    at.multiselect(key="compare_group").set_value(["cell"]).run()
    assert not at.exception
    final = at.dataframe[0].value.set_index("cell")
    assert set(final.index) == {"lstm", "gru", "rnn", "mgru"} and final.loc["lstm", "n"] == 3
    at.multiselect(key="compare_group").set_value(["curriculum"]).run()
    assert not at.exception
    at.multiselect(key="compare_status").set_value(["running", "failed"]).run()
    assert not at.exception


# ----------------------------------------------------------------------------- launch form
BAD_FIELDS = [
    ("train_seq_len", 0), ("test_seq_len", -3), ("padding", 0), ("train_output_len", 50),
    ("test_output_len", 0), ("batch_size", 0), ("embedding_size", 0), ("hidden_size", 100_000),
    ("epochs", 0), ("lr", 0.0), ("train_samples", 0), ("test_samples", 0), ("warmup_epochs", -1),
    ("curriculum_start", 0), ("curriculum_threshold", 1.5), ("curriculum_step", -1),
]


def assert_refused(at: AppTest, message: str, url: str) -> None:
    """The form names the problem (as text: escaped for markdown), and a click on Queue queues nothing."""
    from seqcopy.ui.escape import markdown

    shown = texts(at.error)
    assert message in shown or markdown(message) in shown, (message, shown)
    queue_with(at)
    assert "Nothing was queued" in texts(at.error)
    assert Store(url).list_runs() == []


def queue_with(at: AppTest) -> AppTest:
    at.button[[b.label for b in at.button].index("Queue runs")].click().run()
    assert not at.exception
    return at


@pytest.mark.parametrize("field, bad", BAD_FIELDS)
def test_the_form_refuses_each_bad_field_and_queues_nothing(empty_db, field, bad):
    at = open_page("views/launch.py")
    at.number_input(key=f"launch_{field}").set_value(bad).run()
    assert any(m.value.startswith(":red[") for m in at.markdown)  # the message under the field
    assert_refused(at, label_for(field), empty_db)  # and in the list beside the form


@pytest.mark.parametrize("widget, bad, message", [
    ("seeds", "0, x", "not a seed"), ("seeds", "", "at least one seed"), ("cells", [], "at least one cell"),
    ("device", "cuda", "CUDA"),
])
def test_the_form_refuses_bad_cells_seeds_and_device(empty_db, widget, bad, message):
    at = open_page("views/launch.py")
    if widget == "seeds":
        at.text_input(key="launch_seeds").set_value(bad).run()
    elif widget == "cells":
        at.multiselect(key="launch_cells").set_value(bad).run()
    else:
        at.selectbox(key="launch_device").set_value(bad).run()
    assert_refused(at, message, empty_db)


def test_a_good_submit_queues_cells_times_seeds(empty_db):
    at = open_page("views/launch.py")
    at.multiselect(key="launch_cells").set_value(["lstm", "gru"]).run()
    at.text_input(key="launch_seeds").set_value("0-2").run()
    at.text_input(key="launch_tag").set_value("grid").run()
    assert "6" in [str(m.value) for m in at.metric if m.label == "Runs to queue"][0]
    queue_with(at)
    assert "Queued 6 run(s)" in texts(at.success)
    runs = Store(empty_db).list_runs()
    assert sorted((r.config.cell, r.config.seed) for r in runs) == sorted(
        (c, s) for c in ("lstm", "gru") for s in range(3))
    assert {r.status for r in runs} == {"queued"} and {r.tag for r in runs} == {"grid"}
    assert "6 queued" in texts(at.caption)  # the queue below shows them


def test_a_preset_fills_the_form(empty_db):
    at = open_page("views/launch.py")
    at.selectbox(key="launch_preset").set_value("The original final configuration").run()
    assert at.number_input(key="launch_train_seq_len").value == 100
    assert at.number_input(key="launch_hidden_size").value == 256


def test_every_form_widget_shows_its_declared_label_and_help(empty_db):
    from seqcopy.config import SETTINGS
    from seqcopy.ui.launch_form import FIELDS

    at = open_page("views/launch.py")
    widgets = {w.key: w for kind in ("number_input", "toggle", "selectbox", "text_input") for w in getattr(at, kind)}
    for name in FIELDS:
        widget = widgets[f"launch_{name}"]
        assert (widget.label, widget.help) == (SETTINGS[name].label, SETTINGS[name].help), name


def test_the_queue_cancels_a_queued_run(empty_db):
    store = Store(empty_db)
    run_id = store.submit(ui_store.TINY)
    at = open_page("views/launch.py")
    at.button(key=f"cancel_{run_id}").click().run()
    assert not at.exception
    assert store.get_run(run_id).status == "cancelled"


def test_cancel_while_the_database_is_down_is_one_message_not_a_traceback(empty_db, monkeypatch):
    from sqlalchemy.exc import OperationalError

    store = Store(empty_db)
    run_id = store.submit(ui_store.TINY)
    at = open_page("views/launch.py")

    def gone(self, run_id):
        raise OperationalError("UPDATE runs", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(Store, "request_cancel", gone)
    at.button(key=f"cancel_{run_id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [str(e.value)[:35] for e in at.error] == ["The runs database does not answer: "]
    assert store.get_run(run_id).status == "queued"


# ----------------------------------------------------------------------------- playground
def playground(query=None) -> AppTest:
    at = open_page("views/playground.py", query)
    assert at.text_input(key="play_text") is not None
    return at


@pytest.mark.parametrize("text, message", [
    ("axz!", "not '!', 'z'"), ("", "type at least one"), ("a x", "not ' '"),
])
def test_the_playground_refuses_bad_text(filled_db, text, message):
    at = playground()
    at.text_input(key="play_text").set_value(text).run()
    assert not at.exception
    assert escape.markdown(message) in texts(at.error)  # shown as text, not markdown
    assert not at.get("plotly_chart")


def test_the_playground_shows_the_models_copy_with_right_and_wrong_marks(filled_db):
    at = playground()
    at.text_input(key="play_text").set_value("axcr").run()
    assert not at.exception and not at.error
    assert "**Read:** `axcr`" in texts(at.markdown)
    copied = [df.value for df in at.dataframe if "target" in df.value.columns][0]
    assert list(copied["target"]) == list("axcr")
    assert set(copied["right"]) <= {"✓ right", "✗ wrong"}
    assert len(at.get("plotly_chart")) == 1  # probabilities, states and gates on one time axis
    at.slider(key="play_step").set_value(6).run()  # K=4, P=1: step 5 is the first copy step
    assert {m.label for m in at.metric} >= {"Input at this step", "Model writes", "Copy"}


def test_the_playground_tries_a_longer_random_sequence(filled_db):
    at = playground()
    at.button[[b.label for b in at.button].index("Random, 8 letters")].click().run()
    assert not at.exception
    assert len(at.text_input(key="play_text").value) == 8
    assert "longer than the 4 it was trained on" in texts(at.warning)


def test_the_playground_says_plainly_when_no_run_has_a_checkpoint(empty_db):
    store = Store(empty_db)
    ui_store.add_run(store, ui_store.TINY, "completed", with_checkpoint=False)
    at = open_page("views/playground.py")
    assert "has no checkpoint" in texts(at.info)


# ----------------------------------------------------------------------------- editing
def test_runs_page_sets_a_tag_and_deletes_a_run(empty_db):
    store = Store(empty_db)
    keep = ui_store.add_run(store, ui_store.TINY, "completed")
    gone = ui_store.add_run(store, ui_store.TINY.replace(seed=1), "cancelled", epochs=1)
    at = open_page("views/runs.py", {"runs": f"{keep},{gone}"})
    at.text_input(key=f"runs_tag_{keep}-{gone}").set_value("best").run()
    at.button(key="runs_set_tag").click().run()
    assert not at.exception
    assert {store.get_run(keep).tag, store.get_run(gone).tag} == {"best"}
    at = open_page("views/runs.py", {"runs": str(gone)})
    at.checkbox(key="runs_delete_sure").check().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception
    assert [r.id for r in store.list_runs()] == [keep]


def test_the_app_starts_one_local_worker_unless_told_workers_are_external(empty_db, monkeypatch):
    from seqcopy.ui import state

    monkeypatch.delenv("SEQCOPY_WORKER")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    at = AppTest.from_file(APP, default_timeout=60).run()
    again = AppTest.from_file(APP, default_timeout=60).run()
    try:
        assert not at.exception
        worker = state._local_worker(empty_db)
        assert worker.alive() and worker.starts == 1  # one per server process, however many sessions
        # From the store's heartbeats: 'starting' until the worker's first one, then 'live'.
        line = texts(again.sidebar.caption)
        assert f"Local worker: starting (pid {worker.pid})" in line or f"Local worker: live (pid {worker.pid})" in line
    finally:
        state._local_worker(empty_db).stop()


# ----------------------------------------------------------------------------- sweeps
def metric(at: AppTest, label: str) -> str:
    return str(next(m.value for m in at.metric if m.label == label))


def test_launch_queues_a_sweep_with_tied_lengths_as_one_sweep(empty_db):
    at = open_page("views/launch.py")
    at.multiselect(key="launch_cells").set_value(["lstm", "gru"]).run()
    at.text_input(key="launch_seeds").set_value("0, 1").run()
    at.selectbox(key="launch_sweep_field_0").set_value("train_seq_len").run()
    at.text_input(key="launch_sweep_values_0").set_value("4, 6").run()
    at.toggle(key="launch_tie_n").set_value(True).run()
    at.toggle(key="launch_tie_test").set_value(True).run()
    assert not at.exception and not at.error
    assert metric(at, "Runs to queue") == "8"
    assert "2 cells × 2 seeds × 2 values of train_seq_len = 8 runs" in texts(at.caption)
    assert metric(at, "Total, two workers")  # the whole grid's time, before anything is queued
    assert at.number_input(key="launch_train_output_len").disabled  # set by the sweep now
    queue_with(at)
    assert "Queued 8 run(s) as sweep #1" in texts(at.success)
    store = Store(empty_db)
    runs = store.list_runs()
    assert len(runs) == 8 and {r.sweep_id for r in runs} == {1}
    assert {(c.train_seq_len, c.train_output_len, c.test_seq_len, c.test_output_len)
            for c in (r.config for r in runs)} == {(4, 4, 4, 4), (6, 6, 6, 6)}
    (sweep,) = store.list_sweeps()
    assert sweep.spec["axes"] == ["train_seq_len=4,6"] and "train_output_len=train_seq_len" in sweep.spec["ties"]


@pytest.mark.parametrize("cells, seeds, values, message", [
    (["lstm"], "0", "4, -1", "'-1': must be at least 1, got -1"),
    (["lstm"], "0", "4, 20", "the output (20) cannot be longer than the input sequence (4)"),
    (["rnn", "lstm", "gru", "mlstm", "mgru"], "0-99", "4, 6", "1000 runs: at most 500"),
])
def test_the_form_refuses_a_bad_sweep_and_queues_nothing(empty_db, cells, seeds, values, message):
    at = open_page("views/launch.py")  # Quick demo: N = 10, untied
    at.multiselect(key="launch_cells").set_value(cells).run()
    at.text_input(key="launch_seeds").set_value(seeds).run()
    at.selectbox(key="launch_sweep_field_0").set_value("train_seq_len").run()
    at.text_input(key="launch_sweep_values_0").set_value(values).run()
    if "output" in message:
        at.number_input(key="launch_train_output_len").set_value(20).run()
    assert_refused(at, message, empty_db)


def test_the_length_study_preset_fills_the_grid_and_estimates_it(empty_db):
    at = open_page("views/launch.py")
    at.selectbox(key="launch_preset").set_value("Length study").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="launch_sweep_field_0").value == "train_seq_len"
    assert at.text_input(key="launch_sweep_values_0").value == "4, 8, 16, 40"
    assert at.toggle(key="launch_tie_n").value and at.toggle(key="launch_tie_test").value
    assert metric(at, "Runs to queue") == "60"
    assert metric(at, "Total, two workers").endswith("min")
    assert "need hours per run on a CPU" in texts(at.caption)
    at.selectbox(key="launch_preset").set_value("Quick demo").run()  # a preset without a grid clears it
    assert at.selectbox(key="launch_sweep_field_0").value is None and not at.toggle(key="launch_tie_n").value


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A store holding a sweep; the tests point the app at it."""
    return store_made_by(ui_store.add_sweep, tmp_path_factory)


def chart_titles(at: AppTest) -> list[str]:
    import json

    return [json.loads(chart.proto.spec)["layout"].get("title", {}).get("text", "") for chart in at.get("plotly_chart")]


def test_compare_draws_a_sweeps_metric_against_its_setting(swept, monkeypatch):
    point_the_app_at(swept[0], monkeypatch)
    sweep_id, ids = swept[1]
    at = open_page("views/compare.py", {"sweep": str(sweep_id)})
    assert at.selectbox(key="compare_sweep").value == sweep_id
    assert "Against a setting" in texts(at.subheader)
    assert at.selectbox(key="compare_x").value == "train_seq_len"  # the swept setting
    titles = chart_titles(at)
    assert any(t.startswith("test copy acc against train_seq_len") for t in titles)
    assert any(t.startswith("Epochs to reach 99% test copy accuracy") for t in titles)  # solving: 99% by default
    assert any(t.startswith("test copy acc: each group minus lstm") for t in titles)  # the verdicts
    rates = next(df.value for df in at.dataframe if "solved" in df.value.columns)
    # The lines are the cells: N moves with K, so it splits no line.
    assert set(rates["cell"]) == {"lstm", "gru"} and set(rates["train_seq_len"]) == {4, 8}
    shares = [int(k) / int(n) for k, n in (text.split("/") for text in rates["solved"])]
    assert all(0 <= low <= share <= high <= 1 for low, share, high in zip(rates["low"], shares, rates["high"],
                                                                          strict=True))
    verdicts = next(df.value for df in at.dataframe if "verdict" in df.value.columns)
    assert list(verdicts["cell"]) == ["gru", "gru"] and set(verdicts["test"]) <= {"paired t-test", "no spread"}
    assert any(t.startswith("Every run across the varied settings") for t in titles)
    captions = texts(at.caption)
    assert "Grouped by everything that varies but the seed: cell, train_seq_len, train_output_len" in captions
    at.multiselect(key="compare_group").set_value(["cell"]).run()
    final = at.dataframe[0].value.set_index("cell")
    assert set(final.index) == {"lstm", "gru"}  # only the sweep's runs
    assert final.loc["lstm", "n"] == 6
    se = final.loc["lstm", "mean ± spread"]
    at.segmented_control(key="compare_error").set_value("ci95").run()
    at.selectbox(key="compare_final_metric").set_value("test_acc").run()
    at.radio(key="compare_style").set_value("band").run()
    at.radio(key="compare_measure").set_value("minutes").run()
    assert not at.exception
    ci = at.dataframe[0].value.set_index("cell").loc["lstm", "mean ± spread"]
    assert float(ci.split(" ± ")[1]) > float(se.split(" ± ")[1])  # t(0.975, 5) = 2.57 standard errors
    assert any(t.startswith("test acc against train_seq_len") and "95% interval" in t for t in chart_titles(at))
    at.selectbox(key="compare_sweep").set_value(None).run()  # every run again, the URL follows
    assert not at.exception and "sweep" not in at.query_params
    assert "rnn" in set(at.dataframe[0].value["cell"])


def test_compare_says_when_a_link_names_no_sweep(swept, monkeypatch):
    point_the_app_at(swept[0], monkeypatch)
    at = open_page("views/compare.py", {"sweep": "99"})
    assert "names no sweep" in texts(at.warning)
    assert at.selectbox(key="compare_sweep").value is None


def uneven_seeds(url: str) -> None:
    """gru with 3 seeds and lstm with 2 at each of two learning rates, and a failed lstm run."""
    store = Store(url)
    for cell, seeds in (("lstm", (0, 1)), ("gru", (0, 1, 2))):
        for lr in (0.01, 0.02):
            for seed in seeds:
                ui_store.add_run(store, ui_store.TINY.replace(cell=cell, seed=seed, lr=lr), "completed")
    ui_store.add_run(store, ui_store.TINY.replace(cell="lstm", seed=5, lr=0.01), "failed", epochs=1,
                     with_checkpoint=False)
    store.close()


def test_compare_draws_verdicts_against_the_group_with_the_most_seeds_until_another_is_chosen(tmp_path_factory,
                                                                                               monkeypatch):
    url, _ = store_made_by(uneven_seeds, tmp_path_factory)
    point_the_app_at(url, monkeypatch)
    at = open_page("views/compare.py")
    status = at.multiselect(key="compare_status")
    assert status.value == ["completed"] and all(type(v) is str for v in status.value)  # plain words
    assert "completed" in status.options and "cancelled" in status.options
    reference = at.selectbox(key="compare_reference")
    assert reference.label == "Reference group" and reference.value == "gru"  # 3 seeds against lstm's 2
    assert any(t.startswith("test copy acc: each group minus gru") for t in chart_titles(at))
    reference.set_value("lstm").run()
    at.slider(key="compare_threshold").set_value(0.5).run()  # another control: the choice stays
    assert not at.exception
    assert at.selectbox(key="compare_reference").value == "lstm" and at.session_state["compare_reference"] == "lstm"
    verdicts = next(df.value for df in at.dataframe if "verdict" in df.value.columns)
    assert set(verdicts["cell"]) == {"gru"} and "n (lstm)" in verdicts.columns


def test_runs_page_filters_by_sweep(swept, monkeypatch):
    point_the_app_at(swept[0], monkeypatch)
    sweep_id, ids = swept[1]
    at = open_page("views/runs.py")
    at.multiselect(key="runs_filter_sweep").set_value([sweep_id]).run()
    assert not at.exception
    table = [df for df in at.dataframe if "status" in df.value.columns][0].value
    assert sorted(table["id"]) == sorted(ids) and set(table["sweep"]) == {sweep_id}


# ----------------------------------------------------------------------------- continue and fork (#21)
def lineage_store(url: str) -> tuple[int, int]:
    """(a completed run with a resume state and a checkpoint, its fork): trained for real, tiny."""
    from seqcopy.runs.worker import Worker

    store = Store(url)
    parent = store.submit(ui_store.TINY.replace(cell="gru", epochs=2))
    Worker(store, worker_id="w:1", lease=30).run(once=True)
    fork = store.submit_sweep([ui_store.TINY.replace(cell="gru", epochs=1, lr=0.02)], "fork", {},
                              lineage=dict(parent_id=parent, parent_epoch=2, state=store.checkpoint(parent)))[1][0]
    store.close()
    return parent, fork


def test_runs_shows_the_lineage_and_continue_queues_a_child(empty_db, one_thread):
    parent, fork = lineage_store(empty_db)
    at = open_page("views/runs.py", {"runs": str(fork)})
    table = at.dataframe[0].value
    assert table.set_index("id").loc[fork, "lineage"] == f"from #{parent} @ epoch 2"
    at.toggle(key="runs_diff_parent").set_value(True).run()  # the config diff against its parent
    assert not at.exception
    assert "lr" in at.dataframe[-1].value.index
    at = open_page("views/runs.py", {"runs": str(parent)})
    at.number_input(key=f"runs_more_{parent}").set_value(3).run()
    at.button(key=f"runs_continue_{parent}").click().run()
    assert not at.exception
    assert f"from #{parent} @ epoch 2, to epoch 5" in texts(at.success)
    child = max(run.id for run in Store(empty_db).list_runs())
    run = Store(empty_db).get_run(child)
    assert (run.parent_id, run.parent_epoch, run.epochs_total, run.status) == (parent, 2, 5, "queued")


def test_fork_fills_the_launch_form_with_the_runs_settings_and_queues_forks(empty_db, one_thread):
    parent, _ = lineage_store(empty_db)
    at = open_page("views/runs.py", {"runs": str(parent)})
    at.button(key=f"runs_fork_{parent}").click().run()
    assert not at.exception
    # Fork… put the run's settings in the Launch form's state and switched to it.
    assert at.session_state["launch_fork_from"] == parent
    assert at.session_state["launch_cells"] == ["gru"] and at.session_state["launch_hidden_size"] == 8
    assert at.session_state["launch_preset"] == "(custom)"
    at.switch_page("views/launch.py").run()
    assert not at.exception
    assert f"Forking run #{parent}" in texts(at.info)
    assert at.number_input(key="launch_hidden_size").value == 8
    at.number_input(key="launch_train_seq_len").set_value(6).run()
    at.button[[b.label for b in at.button].index("Queue runs")].click().run()
    assert not at.exception and "Queued 1 run(s)" in texts(at.success)
    child = Store(empty_db).get_run(max(run.id for run in Store(empty_db).list_runs()))
    assert (child.parent_id, child.parent_epoch, child.config.train_seq_len) == (parent, 2, 6)
    # A change that makes the weights unusable is refused in one line, nothing queued.
    at.number_input(key="launch_hidden_size").set_value(16).run()
    at.button[[b.label for b in at.button].index("Queue runs")].click().run()
    assert "differs from the parent" in texts(at.error) and "16" in texts(at.error)
    assert len(Store(empty_db).list_runs()) == 3
