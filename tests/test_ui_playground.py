"""The Playground page under AppTest with a model of every cell and a hand-built perfect copier:
inside the cell, which input each output reads, what if, side by side, the state trajectory."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import ui_store
from copiers import shift_register
from test_ui_pages import open_page, texts

from seqcopy.core import checkpoint
from seqcopy.core.cells import CELL_NAMES
from seqcopy.runs.store import Store
from seqcopy.ui import escape

COPIER_TAG = "hand-built copier"


@pytest.fixture(scope="module")
def store_of_cells(tmp_path_factory):
    """One tiny run of each cell (K=4, P=1, hidden 8) and the perfect copier (hidden 54)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cells') / 'runs.db'}"
    store = Store(url)
    ids = {cell: ui_store.add_run(store, ui_store.TINY.replace(cell=cell, tag="sweep"), "completed")
           for cell in CELL_NAMES}
    for cell in ("mlstm", "mgru"):  # the input form too
        ids[f"{cell}-input"] = ui_store.add_run(store, ui_store.TINY.replace(cell=cell, mult_form="input", tag="sweep"),
                                                "completed")
    model, config = shift_register(letters=4, padding=1)
    config = config.replace(tag=COPIER_TAG, epochs=1)
    ids["copier"] = run_id = store.submit(config)
    store.claim(ui_store.WORKER)
    store.record_epoch(run_id, ui_store.WORKER, ui_store.epoch_row(1, 0, "rnn"))
    store.finish(run_id, ui_store.WORKER, "completed", checkpoint=checkpoint.to_bytes(model, config))
    store.close()
    return url, ids


@pytest.fixture
def cells_db(store_of_cells, monkeypatch):
    url, ids = store_of_cells
    monkeypatch.setenv("SEQCOPY_DB", url)
    monkeypatch.setenv("SEQCOPY_WORKER", "external")
    return ids


def playground_on(run_id: int, text: str = "axcr"):
    at = open_page("views/playground.py")
    models = at.selectbox(key="play_run")
    models.select_index(next(i for i, label in enumerate(models.options) if label.startswith(f"#{run_id} "))).run()
    at.text_input(key="play_text").set_value(text).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_view(at, view: str):
    at.session_state["play_view"] = view
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def figure(at, key: str) -> dict:
    return json.loads(at.get_by_key(key).proto.spec)


def array(value) -> np.ndarray:
    """A figure's data array as sent to the browser: a list, or plotly's typed array
    {"dtype", "bdata" (base64), "shape"}."""
    if isinstance(value, dict):
        shape = [int(n) for n in str(value.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape)
    return np.asarray(value)


def titles(spec: dict) -> list[str]:
    return [annotation["text"] for annotation in spec["layout"].get("annotations", [])]


EXPECTED = {
    "rnn": (["hidden state h"], "No gates"),
    "lstm": (["forget gate f", "cell state c", "hidden state h"], "forget gate f (1 keeps c)"),
    "gru": (["update gate z", "hidden state h"], "update gate z (1 keeps h)"),
    "mlstm": (["multiplicative m_t", "forget gate f", "cell state c", "hidden state h"], "|m_t|"),
    "mgru": (["multiplicative m_t", "update gate z", "hidden state h"], "update gate z (1 keeps h)"),
}
EXPECTED["mlstm-input"], EXPECTED["mgru-input"] = EXPECTED["mlstm"], EXPECTED["mgru"]


@pytest.mark.parametrize("cell", [*CELL_NAMES, "mlstm-input", "mgru-input"])
def test_step_by_step_draws_the_gates_and_states_of_each_cell(cells_db, cell):
    at = playground_on(cells_db[cell])
    panels, summary = EXPECTED[cell]
    spec = figure(at, "play_inside")
    assert [t for t in titles(spec) if t in panels] == panels
    assert summary in texts(at.caption)
    assert titles(spec)[0] == "probability of each symbol"  # on the same time axis, above the cell
    probabilities, *heatmaps = [trace for trace in spec["data"] if trace["type"] == "heatmap"]
    assert array(probabilities["z"]).shape == (11, 4 + 1 + 4)
    # H = 8 units each; the input form's m_t scales the input: E units
    sizes = [ui_store.TINY.embedding_size if title == "multiplicative m_t" and cell.endswith("input") else 8
             for title in panels]
    assert [array(h["z"]).shape for h in heatmaps] == [(size, 4 + 1 + 4) for size in sizes]
    # The step slider moves the red outline on every panel.
    at.slider(key="play_step").set_value(6).run()
    shapes = figure(at, "play_inside")["layout"]["shapes"]
    assert any(shape.get("x0") == 5.5 and shape.get("line", {}).get("color") == "red" for shape in shapes)


def test_the_drawn_quantities_and_units_can_be_picked(cells_db):
    at = playground_on(cells_db["mlstm"])
    at.pills(key="play_draw_mlstm").set_value(["i", "o"]).run()
    assert [t for t in titles(figure(at, "play_inside")) if "gate" in t] == ["input gate i", "output gate o"]
    copier = playground_on(cells_db["copier"])  # 54 units: more than drawn at once
    assert copier.slider(key="play_units_54").value == (1, 32)
    copier.slider(key="play_units_54").set_value((5, 14)).run()
    heatmap = [t for t in figure(copier, "play_inside")["data"] if t["type"] == "heatmap"][1]  # below the probabilities
    assert array(heatmap["z"]).shape[0] == 10
    copier.selectbox(key="play_order").set_value("unit number").run()
    heatmap = [t for t in figure(copier, "play_inside")["data"] if t["type"] == "heatmap"][1]
    assert heatmap["y"] == [f"u{i}" for i in range(4, 14)]


def test_the_saliency_of_the_perfect_copier_is_diagonal_on_the_page(cells_db):
    at = open_view(playground_on(cells_db["copier"]), "Which input each output reads")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Diagonal (gradient)"] == metrics["Diagonal (replacement)"] == "100%"
    assert "diagonal: 100%" in figure(at, "play_saliency")["layout"]["title"]["text"]
    assert "diagonal: 100%" in figure(at, "play_replacement")["layout"]["title"]["text"]
    assert array(figure(at, "play_saliency")["data"][0]["z"]).shape == (4, 4)
    at.toggle(key="play_saliency_all").set_value(True).run()
    assert array(figure(at, "play_saliency")["data"][0]["z"]).shape == (4, 4 + 1 + 4)
    untrained = open_view(playground_on(cells_db["lstm"], "axcrywbt"), "Which input each output reads")
    assert {m.label: m.value for m in untrained.metric}["Diagonal (gradient)"] != "100%"


def test_a_what_if_edit_of_the_copier_changes_only_that_output(cells_db):
    at = open_view(playground_on(cells_db["copier"]), "What if")
    at.number_input(key="whatif_position").set_value(2).run()
    at.selectbox(key="whatif_letter_x").set_value("o").run()
    assert not at.exception
    assert "**Changed outputs:** position 2 of 4 — only the edited one" in texts(at.markdown)
    assert "**Edited:** `aocr`" in texts(at.markdown)
    grid = figure(at, "whatif_grid")["data"][0]
    assert grid["y"] == ["should write", "original", "should write (edited)", "edited"]
    assert grid["text"][3] == list("aocr")  # the edited pass wrote the edited letter
    at.slider(key="whatif_extra").set_value(3).run()  # a longer delay: this copier reads a fixed slot, so it fails
    assert "with 4 '\\$'" in texts(at.markdown)
    assert [t["name"] for t in figure(at, "whatif_p")["data"] if t.get("name")] == ["original", "edited"]


def test_two_models_side_by_side_each_marked(cells_db):
    at = open_view(playground_on(cells_db["lstm"]), "Side by side")
    partner = at.selectbox(key=f"side_run_{cells_db['lstm']}")
    shown = partner.options[partner.index]
    assert " lstm " not in shown and "sweep" in shown  # another cell of the same sweep
    assert [m.label for m in at.metric].count("Copied right") == 3  # the page's and one per model
    assert sum(":green[" in m or ":red[" in m for m in texts(at.markdown).split("**Wrote:**")[1:]) >= 3
    grid = figure(at, "side_grid")
    assert grid["data"][0]["y"][0] == "should write" and len(grid["data"][0]["y"]) == 3


def test_side_by_side_names_a_run_by_its_edited_tag_shown_as_text(tmp_path, monkeypatch):
    """The tag edited on Runs, not the one submitted; escaped as every page escapes user text, so
    a tag that looks like a web address does not become a link."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(url)
    lstm = ui_store.add_run(store, ui_store.TINY.replace(cell="lstm", tag="sweep"), "completed")
    gru = ui_store.add_run(store, ui_store.TINY.replace(cell="gru", tag="sweep"), "completed")
    for run_id in (lstm, gru):
        store.set_tag(run_id, "www.evil.example *now*")
    store.close()
    monkeypatch.setenv("SEQCOPY_DB", url)
    monkeypatch.setenv("SEQCOPY_WORKER", "external")
    at = open_view(playground_on(lstm), "Side by side")
    partner = at.selectbox(key=f"side_run_{lstm}")
    shown = partner.options[partner.index]
    assert shown.startswith(f"#{gru} gru") and "www.evil.example *now*" in shown
    headers = texts(at.markdown)
    assert escape.markdown("www.evil.example *now*") in headers and "www\u2060" in headers
    assert "www.evil.example" not in headers and " · sweep" not in headers


def test_the_state_trajectory_of_h_and_c(cells_db):
    at = open_view(playground_on(cells_db["lstm"]), "State trajectory")
    spec = figure(at, "play_pca")
    assert {t.get("name") for t in spec["data"]} >= {"reading", "delimiter", "copying"}
    assert "principal components" in spec["layout"]["title"]["text"]
    at.radio(key="play_pca_state").set_value("c").run()
    assert figure(at, "play_pca")["layout"]["title"]["text"].startswith("Cell state c")


def test_errors_show_user_text_as_text_not_markdown(cells_db):
    at = playground_on(cells_db["gru"], "a*b_[x](y)")
    message = texts(at.error)
    assert escape.markdown("not '(', ')', '*', '[', ']', '_'") in message
    assert not at.get("plotly_chart")
