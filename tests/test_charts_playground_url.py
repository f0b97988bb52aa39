"""The Playground's shareable link (?run=&epoch=&seq=) and its sequence cap, and the Launch
page's search form before and after input, under AppTest."""

from __future__ import annotations

import ui_store
from test_snapshots import open_view, trained_store  # noqa: F401  (a fixture)
from test_ui_pages import open_page, point_the_app_at, texts

from seqcopy.runs.store import Store
from seqcopy.ui.playground import max_sequence_length


def plain(elements) -> str:
    """The elements' text with Markdown's escapes taken out, as a reader sees it."""
    return texts(elements).replace("\\", "")


def param(at, name: str) -> str | None:
    value = at.query_params.get(name)
    return value[0] if isinstance(value, list) else value


def test_the_counter_and_the_caption_give_the_same_cap(trained_store, monkeypatch):  # noqa: F811
    url, _, older = trained_store
    point_the_app_at(url, monkeypatch)
    at = open_page("views/playground.py", {"run": str(older)})
    limit = max_sequence_length(ui_store.TINY)
    assert at.text_input(key="play_text").max_chars == limit
    assert f"Type up to {limit} of the letters" in texts(at.caption)


def test_a_link_opens_the_run_epoch_and_sequence_and_the_page_writes_its_own(trained_store, monkeypatch):  # noqa: F811
    url, trained, older = trained_store
    point_the_app_at(url, monkeypatch)
    at = open_page("views/playground.py", {"run": str(trained), "epoch": "2", "seq": "axcr"})
    assert not at.warning, texts(at.warning)
    assert at.selectbox(key="play_run").value.id == trained
    assert at.select_slider(key=f"play_epoch_{trained}").value == 2
    assert at.text_input(key="play_text").value == "axcr"
    assert "Showing the model after epoch 2 of 5" in texts(at.caption)
    # Changes go back into the link.
    at.text_input(key="play_text").set_value("ccxa").run()
    assert (param(at, "run"), param(at, "epoch"), param(at, "seq")) == (str(trained), "2", "ccxa")
    at.select_slider(key=f"play_epoch_{trained}").set_value("final").run()
    assert param(at, "epoch") is None and param(at, "seq") == "ccxa"
    # Another view reruns the page without taking the link it wrote for a new one.
    open_view(at, "What if")
    assert at.text_input(key="play_text").value == "ccxa" and not at.warning
    # The page's own link, opened afresh, shows the same.
    again = open_page("views/playground.py", {name: param(at, name) for name in ("run", "seq") if param(at, name)})
    assert again.selectbox(key="play_run").value.id == trained and again.text_input(key="play_text").value == "ccxa"
    assert again.select_slider(key=f"play_epoch_{trained}").value == "final"


def test_what_a_link_gets_wrong_is_ignored_with_one_line(trained_store, monkeypatch):  # noqa: F811
    url, trained, older = trained_store
    point_the_app_at(url, monkeypatch)
    at = open_page("views/playground.py", {"run": "12abc", "seq": "hello"})
    assert not at.exception and len(at.warning) == 1
    line = plain(at.warning)
    assert "not a run id" in line and "only the letters" in line and "ignored" in line and "\n" not in line
    at = open_page("views/playground.py", {"run": str(trained), "epoch": "99", "seq": "ax"})
    assert not at.exception and len(at.warning) == 1 and "epoch '99' was not kept" in plain(at.warning)
    assert at.selectbox(key="play_run").value.id == trained and at.text_input(key="play_text").value == "ax"
    assert at.select_slider(key=f"play_epoch_{trained}").value == "final"
    at = open_page("views/playground.py", {"run": "999999"})
    assert not at.exception and "run 999999 has no model" in plain(at.warning)


# ----------------------------------------------------------------------------- the search form
def test_search_mode_opens_without_an_error_and_speaks_the_forms_words(tmp_path, monkeypatch):
    url = point_the_app_at(f"sqlite:///{tmp_path / 'runs.db'}", monkeypatch)
    at = open_page("views/launch.py")
    at.segmented_control(key="launch_mode").set_value("Search").run()
    assert not at.exception and not at.error, texts(at.error)
    assert "Choose a setting to search" in plain(at.info)
    at.selectbox(key="launch_search_field_0").set_value("hidden_size").run()
    assert not at.error and "Type the range or choices of hidden_size" in plain(at.info)
    at.button(key="button_search_start").click().run()
    assert "Nothing was started" in plain(at.error)
    at.text_input(key="launch_search_spec_0").set_value("float(8,64)").run()
    shown = plain(at.error)
    assert "hidden_size=float(8,64)" in shown and "--" not in shown  # the Setting box's words, not the flags
    store = Store(url)
    assert store.list_sweeps() == []
    store.close()
