"""Every input harmless, and no secret shown: passwords in database URLs (masked in worker output,
error messages and the sidebar; absent from the local worker's command line), run ids of any
size, tags with control characters, user text that looks like markdown, a lease shorter than a
few heartbeats, and the smaller cases of issue #13 (an empty store file, repeated seeds, a
malformed URL, an idle-exit while the database fails)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ui_store
from conftest import assert_one_line_error, run_cli
from sqlalchemy import text
from streamlit.testing.v1 import AppTest
from test_cli_store import TINY_FLAGS

from seqcopy.config import RunConfig
from seqcopy.runs.redact import display_url, scrub
from seqcopy.runs.store import Store, StoreError, UnknownRun, UnknownSweep, open_store
from seqcopy.text import MAX_ID, check_tag, parse_id, printable
from seqcopy.ui import escape
from seqcopy.ui.frames import parse_run_ids

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
SECRET = "Hunter2-secret"


def one_line_error(code: int, err: str) -> str:
    """The one line of an exit-2 error (see test_cli_store)."""
    assert_one_line_error(code, err)
    return err.strip()


def with_password(url: str, where: str) -> str:
    """The PostgreSQL test URL with a password (the test server trusts local connections, so
    any password works) in the netloc or as a query parameter."""
    if where == "netloc":
        return url.replace("@", f":{SECRET}@", 1)
    return f"{url}?password={SECRET}"


# ----------------------------------------------------------------------------- secrets
@pytest.mark.parametrize("url, shown", [
    (f"postgresql://u:{SECRET}@h/db", "postgresql://u:***@h/db"),
    (f"postgresql://u@h/db?password={SECRET}&sslmode=disable", "postgresql://u@h/db?password=***&sslmode=disable"),
    (f"postgresql://u:{SECRET}@h/db?sslpassword={SECRET}", "postgresql://u:***@h/db?sslpassword=***"),
    (f"postgresql://u:{SECRET}@[::1/x", "postgresql://u:***@[::1/x"),  # malformed: no parser reads it
    ("postgresql://u:p@ss/word@h:5/db", "postgresql://u:***@h:5/db"),  # an unescaped '@' and '/'
    (f"host=h password={SECRET} dbname=x", "host=h password=*** dbname=x"),
    ("sqlite:///runs.db", "sqlite:///runs.db"),
    ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
])
def test_display_url_masks_every_password(url, shown):
    assert display_url(url) == shown


def test_scrub_masks_a_password_quoted_in_a_driver_message():
    url = "postgresql://u:p%40ssw0rd@h/db"
    assert scrub("auth failed for p@ssw0rd (postgresql://u:p%40ssw0rd@h/db)", url) == "auth failed for *** (postgresql://u:***@h/db)"


@pytest.mark.parametrize("where", ["netloc", "query"])
def test_the_worker_prints_its_database_with_the_password_masked(pg_url, where):
    done = subprocess.run(
        [sys.executable, "-m", "seqcopy", "worker", "--once", "--db", with_password(pg_url, where)],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("worker ") and (":***@" in first if where == "netloc" else "password=***" in first)


@pytest.mark.parametrize("url", [
    f"postgresql://u:{SECRET}@127.0.0.1:1/x",  # refused
    f"postgresql://u@127.0.0.1:1/x?password={SECRET}",
    f"postgresql://u:{SECRET}@[::1/x",  # malformed
    f"mysql://u:{SECRET}@h/x",  # unsupported
])
def test_errors_about_a_database_never_show_its_password(capsys, url):
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert SECRET not in str(caught.value)
    line = one_line_error(*run_cli(capsys, "runs", "--db", url)[::2])
    assert SECRET not in line


def test_a_malformed_url_is_named_as_such():
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://u:p@[::1/x")
    message = str(caught.value)
    assert message.startswith("not a database URL: 'postgresql://u:***@[::1/x'") and "\n" not in message


def test_a_database_error_mid_command_is_one_line_with_the_password_masked(pg_url, capsys, monkeypatch):
    from sqlalchemy.exc import OperationalError

    url = with_password(pg_url, "netloc")
    Store(url).close()

    def gone(*args, **kwargs):
        reason = f'password "{SECRET}" for user postgres:\nauthentication failed'
        raise OperationalError("SELECT", {}, Exception(reason))

    monkeypatch.setattr(Store, "list_runs", gone)
    code, _, err = run_cli(capsys, "runs", "--db", url)
    assert code == 1 and err.startswith("seqcopy: database error: ") and len(err.strip().splitlines()) == 1, err
    assert SECRET not in err and "authentication failed" in err


@pytest.mark.parametrize("where", ["netloc", "query"])
def test_the_sidebar_shows_the_database_with_the_password_masked(pg_url, monkeypatch, where):
    monkeypatch.setenv("SEQCOPY_DB", with_password(pg_url, where))
    monkeypatch.setenv("SEQCOPY_WORKER", "external")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    sidebar = "\n".join(str(caption.value) for caption in at.sidebar.caption)
    assert "Database: `postgresql+psycopg://" in sidebar and "***" in sidebar  # masked, as inline code
    assert SECRET not in sidebar and SECRET not in str(at)


def test_the_local_worker_gets_the_url_through_its_environment_not_its_command_line(pg_url):
    from seqcopy.ui.local_worker import LocalWorker

    url = with_password(pg_url, "netloc")
    worker = LocalWorker(url)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while b"local_worker" not in (raw := Path(f"/proc/{worker.pid}/cmdline").read_bytes()):
            assert time.monotonic() < deadline, raw  # exec'd by now
            time.sleep(0.01)
        assert SECRET not in raw.decode() and "--parent-pid" in raw.decode()
        environ = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
        assert f"SEQCOPY_DB={url}".encode() in environ  # readable by its owner only
        store = Store(pg_url)
        run_id = store.submit(ui_store.TINY.replace(epochs=1, train_samples=32, test_samples=8))
        deadline = time.monotonic() + 180  # a loaded machine imports torch slowly
        while store.get_run(run_id).status != "completed" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert store.get_run(run_id).status == "completed"  # and it works
        store.close()
    finally:
        worker.stop()


# ----------------------------------------------------------------------------- run ids
HUGE = "9" * 20_000


@pytest.mark.parametrize("given", [str(MAX_ID + 1), "0", "-1", HUGE, "1e3", "²", " "])
def test_the_cli_refuses_what_is_not_a_run_id_on_one_line(db_url, capsys, given):
    Store(db_url).close()
    line = one_line_error(*run_cli(capsys, "cancel", given, "--db", db_url)[::2])
    assert "not a run id" in line and len(line) < 200


def test_the_largest_run_id_is_unknown_not_an_overflow(db_url, capsys):
    store = Store(db_url)
    run_id = store.submit(ui_store.TINY)
    for missing in (MAX_ID, 2**31 + 1):  # past PostgreSQL's integer column: still just unknown
        line = one_line_error(*run_cli(capsys, "cancel", str(missing), "--db", db_url)[::2])
        assert f"no run with id {missing}" in line
        with pytest.raises(UnknownRun):
            store.set_tag(missing, "x")
    with pytest.raises(UnknownRun):
        store.get_run(MAX_ID + 1)
    assert store.get_run(run_id).status == "queued"
    store.close()


def test_run_ids_parse_with_bounds():
    assert parse_id(" 42 ") == 42 and parse_id(str(MAX_ID)) == MAX_ID
    for bad in ("0", str(MAX_ID + 1), HUGE, "-3", "+3", "4.0", "٣"):
        with pytest.raises(ValueError, match="not a run id"):
            parse_id(bad)
    ids, ignored = parse_run_ids(f"3,{HUGE},{MAX_ID + 1},0,3,7")
    assert ids == [3, 7] and len(ignored) == 3 and all(len(item) <= 24 for item in ignored)


@pytest.mark.parametrize("given", [HUGE, str(MAX_ID + 1), "0", "x"])
def test_report_refuses_what_is_not_a_sweep_id_on_one_line(db_url, capsys, given):
    Store(db_url).close()
    line = one_line_error(*run_cli(capsys, "report", "--sweep", given, "--db", db_url)[::2])
    assert "not a sweep id" in line and len(line) < 200


def test_the_largest_sweep_id_is_unknown_not_an_overflow(db_url, capsys):
    store = Store(db_url)
    for missing in (MAX_ID, 3_000_000_000):  # past PostgreSQL's integer column: still just unknown
        line = one_line_error(*run_cli(capsys, "report", "--sweep", str(missing), "--db", db_url)[::2])
        assert f"no sweep with id {missing}" in line
        with pytest.raises(UnknownSweep):
            store.get_sweep(missing)
        assert store.list_runs(sweep_id=missing) == []
    with pytest.raises(UnknownSweep):
        store.get_sweep(MAX_ID + 1)
    store.close()


def test_a_compare_link_with_a_huge_sweep_id_shows_every_run(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    ui_store.add_run(Store(url), ui_store.TINY, "completed")
    monkeypatch.setenv("SEQCOPY_DB", url)
    monkeypatch.setenv("SEQCOPY_WORKER", "external")
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["sweep"] = "1" * 5000
    at.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "The link names no sweep of this store" in "\n".join(str(w.value) for w in at.warning)


def test_a_link_with_a_huge_id_and_markdown_is_ignored_shown_as_text(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(url)
    run_id = ui_store.add_run(store, ui_store.TINY, "completed")
    monkeypatch.setenv("SEQCOPY_DB", url)
    monkeypatch.setenv("SEQCOPY_WORKER", "external")
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["runs"] = f"{HUGE},![](//127.0.0.1:9/x.png),{run_id}"
    at.run()
    at.switch_page("views/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    warning = "\n".join(str(w.value) for w in at.warning)
    assert "Ignored in the link" in warning and "\\!\\[\\]\\(" in warning and "![](" not in warning
    assert "1 selected run(s)" in "\n".join(str(s.value) for s in at.subheader)


# ----------------------------------------------------------------------------- tags
CONTROL_TAGS = {"NUL": "a\x00b", "ESC": "red \x1b[31m", "newline": "two\nlines", "tab": "a\tb",
                "bidi override": "abc\u202edcba", "lone surrogate": "x\ud800"}


@pytest.mark.parametrize("name", sorted(CONTROL_TAGS))
def test_tags_with_control_characters_are_refused_everywhere(db_url, name):
    tag = CONTROL_TAGS[name]
    assert "control characters" in check_tag(tag)
    assert "tag" in RunConfig(tag=tag).validate(check_device=False)
    store = Store(db_url)
    run_id = store.submit(ui_store.TINY)
    with pytest.raises(ValueError, match="control characters"):
        store.set_tag(run_id, tag)
    assert store.get_run(run_id).tag == ui_store.TINY.tag  # unchanged, and no database error
    store.close()


def test_plain_unicode_tags_are_fine():
    for tag in ("baseline", "Zürich 東京 🙂", "x" * 200, ""):
        assert check_tag(tag) is None
    assert "at most 200" in check_tag("x" * 201)


@pytest.mark.parametrize("tag", ["esc \x1b[2J", "new\nline"])
def test_submit_refuses_a_tag_with_control_characters(db_url, capsys, tag):
    line = one_line_error(*run_cli(capsys, "submit", *TINY_FLAGS, "--tag", tag, "--db", db_url)[::2])
    assert "control characters" in line and "\x1b" not in line
    store = Store(db_url)
    assert store.list_runs() == []
    store.close()


def test_runs_prints_an_old_tags_control_characters_as_escapes(db_url, capsys):
    store = Store(db_url)
    run_id = store.submit(ui_store.TINY)
    with store.engine.begin() as conn:  # as a store written before tags were checked may hold
        conn.execute(text("UPDATE runs SET tag = :tag WHERE id = :id"),
                     {"tag": "x\x1b[31mred\nforged row", "id": run_id})
    store.close()
    code, out, _ = run_cli(capsys, "runs", "--db", db_url)
    assert code == 0 and "\x1b" not in out
    assert out.splitlines()[1].endswith("x\\x1b[31mred\\nforged row") and len(out.splitlines()) == 2
    assert printable("plain tag") == "plain tag"


def test_the_launch_form_refuses_a_nul_tag_on_postgresql(pg_url, monkeypatch):
    monkeypatch.setenv("SEQCOPY_DB", pg_url)
    monkeypatch.setenv("SEQCOPY_WORKER", "external")
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="launch_tag").set_value("a\x00b").run()
    assert not at.exception
    assert "control characters" in "\n".join(str(e.value) for e in at.error)
    at.button[[b.label for b in at.button].index("Queue runs")].click().run()
    assert not at.exception and "Nothing was queued" in "\n".join(str(e.value) for e in at.error)
    assert Store(pg_url).list_runs() == []


def test_set_tag_on_the_runs_page_refuses_a_nul_tag_on_postgresql(pg_url, monkeypatch):
    store = Store(pg_url)
    run_id = ui_store.add_run(store, ui_store.TINY, "completed")
    monkeypatch.setenv("SEQCOPY_DB", pg_url)
    monkeypatch.setenv("SEQCOPY_WORKER", "external")
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["runs"] = str(run_id)
    at.run()
    at.switch_page("views/runs.py").run()
    at.text_input(key=f"runs_tag_{run_id}").set_value("a\x00b").run()
    at.button(key="runs_set_tag").click().run()
    assert not at.exception
    assert "The tag was not set" in "\n".join(str(e.value) for e in at.error)
    assert store.get_run(run_id).tag == ui_store.TINY.tag
    store.close()


# ----------------------------------------------------------------------------- markdown
IMAGE = "![q](http://127.0.0.1:9/q.png)"


def test_escaped_markdown_keeps_the_text():
    shown = escape.markdown(f"{IMAGE} :red[x] $x$ **b**\nnext")
    assert "\n" not in shown and "![" not in shown and ":red[" not in shown
    # Removing the escapes gives back the text, with the line break as a space and an invisible
    # word joiner where an automatic link would start.
    assert shown.replace("\\", "") == escape.unlinked(f"{IMAGE} :red[x] $x$ **b**\nnext")
    assert escape.unlinked(IMAGE).replace(escape.WORD_JOINER, "") == IMAGE
    assert escape.plotly('<a href="x">b</a> & c') == '&lt;a href="x"&gt;b&lt;/a&gt; &amp; c'
    assert escape.code_span("a`b") == "``a`b``" and escape.code_span("`x") == "`` `x ``"


def test_user_text_reaches_every_page_escaped(tmp_path, monkeypatch):
    """A tag and an error reason that are markdown images are escaped in the Launch queue, the
    Runs page's failure label, and Compare's group names."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(url)
    failed = ui_store.add_run(store, ui_store.TINY, "failed", epochs=1, with_checkpoint=False)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE runs SET error = :e WHERE id = :id"), {"e": f"{IMAGE} boom\ndetail", "id": failed})
    done = ui_store.add_run(store, ui_store.TINY, "completed")
    store.set_tag(done, IMAGE)
    ui_store.add_run(store, ui_store.TINY.replace(tag=IMAGE), "queued")
    monkeypatch.setenv("SEQCOPY_DB", url)
    monkeypatch.setenv("SEQCOPY_WORKER", "external")
    escaped = escape.markdown(IMAGE)

    at = AppTest.from_file(APP, default_timeout=60).run()
    captions = "\n".join(str(c.value) for c in at.caption)
    assert f"tag {escaped}" in captions and IMAGE not in captions  # the queue, run #queued

    at.query_params["runs"] = str(failed)
    at.switch_page("views/runs.py").run()
    labels = [e.label for e in at.expander]
    assert any(label == f"Run {failed} failed: {escaped} boom" for label in labels), labels

    at.switch_page("views/compare.py").run()
    at.multiselect(key="compare_group").set_value(["tag"]).run()
    assert not at.exception
    assert escaped in "\n".join(str(c.value) for c in at.caption)


# ----------------------------------------------------------------------------- Compare and the current tag
def test_compare_groups_by_the_tag_as_edited(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(url)
    ids = [ui_store.add_run(store, ui_store.TINY.replace(seed=seed), "completed") for seed in (0, 1, 2)]
    store.set_tag(ids[2], "edited")  # submitted as 'fixture'
    monkeypatch.setenv("SEQCOPY_DB", url)
    monkeypatch.setenv("SEQCOPY_WORKER", "external")
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("views/compare.py").run()
    at.multiselect(key="compare_group").set_value(["tag"]).run()
    assert not at.exception
    final = at.dataframe[0].value.set_index("tag")
    assert set(final.index) == {"fixture", "edited"}
    assert final.loc["fixture", "n"] == 2 and final.loc["edited", "n"] == 1  # the table counts seeds as n
    at.multiselect(key="compare_tag").set_value(["edited"]).run()  # the filter agrees
    assert list(at.dataframe[0].value["tag"]) == ["edited"]


# ----------------------------------------------------------------------------- leases
@pytest.mark.parametrize("lease", ["0.1", "0.5", "0.99"])
def test_a_lease_shorter_than_a_few_heartbeats_is_refused(sqlite_url, capsys, lease):
    line = one_line_error(*run_cli(capsys, "worker", "--once", "--lease", lease, "--db", sqlite_url)[::2])
    assert "--lease: at least 1 s" in line


def test_the_worker_class_refuses_a_short_lease_too(sqlite_url):
    from seqcopy.runs.worker import Worker

    with pytest.raises(ValueError, match="lease: at least 1 s"):
        Worker(Store(sqlite_url), lease=0.1)


# ----------------------------------------------------------------------------- the smaller cases
def test_runs_on_an_empty_file_refuses_it_and_leaves_it_empty(tmp_path, capsys):
    empty = tmp_path / "empty.db"
    empty.touch()
    for command in (["runs"], ["cancel", "1"], ["report"]):
        line = one_line_error(*run_cli(capsys, *command, "--db", f"sqlite:///{empty}")[::2])
        assert "empty file" in line
    assert empty.stat().st_size == 0


def test_repeated_seeds_and_cells_queue_each_run_once(sqlite_url, capsys):
    code, out, err = run_cli(capsys, "submit", *TINY_FLAGS, "--seeds", "1,1,1,2", "--cells", "gru,gru",
                             "--db", sqlite_url)
    assert code == 0, err
    assert len(out.split()) == 2
    runs = Store(sqlite_url).list_runs()
    assert sorted((r.config.cell, r.config.seed) for r in runs) == [("gru", 1), ("gru", 2)]


def test_a_failing_database_is_not_idleness(sqlite_url, monkeypatch, capsys, one_thread):
    """Disk full (or any outage) while runs are queued: a worker with --idle-exit keeps trying
    instead of exiting as if the queue were empty."""
    from sqlalchemy.exc import OperationalError

    from seqcopy.runs.worker import Worker

    store = Store(sqlite_url)
    run_id = store.submit(ui_store.TINY)
    real_claim, failures = Store.claim, []

    def full_disk(self, *args, **kwargs):
        if len(failures) < 3:
            failures.append(1)
            raise OperationalError("UPDATE runs …", {}, Exception("database or disk is full"))
        return real_claim(self, *args, **kwargs)

    monkeypatch.setattr(Store, "claim", full_disk)
    assert Worker(store, worker_id="test:full", lease=5, poll=0.01).run(idle_exit=0) == 1
    assert store.get_run(run_id).status == "completed"
    assert capsys.readouterr().err.count("database or disk is full") == 3
