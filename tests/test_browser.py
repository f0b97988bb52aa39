"""End to end in a real browser: queue a quick run in the Launch form, a worker trains it, its
curves appear on Runs, Compare draws it, and the Playground copies a typed sequence.

Runs `streamlit run app.py` on a temporary database with SEQCOPY_WORKER=external and starts one
worker itself (OMP_NUM_THREADS=1: two torch processes on two cores must not thrash). Screenshots
of each page go to test-artifacts/. Needs Debian's Chromium at /usr/bin/chromium; Playwright
never downloads a browser.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from seqcopy.runs.schema import DIAGNOSTIC_METRICS

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed at /usr/bin/chromium"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
            return response.read().strip() == b"ok"
    except OSError:
        return False


@pytest.fixture
def dashboard(tmp_path):
    """A running dashboard on a fresh database, with one worker of our own."""
    yield from serve(tmp_path, f"sqlite:///{tmp_path / 'runs.db'}", with_worker=True)


def serve(tmp_path, database: str, with_worker: bool, own_worker: bool = False):
    """Serve the app on ``database``: with one worker of the test's (``with_worker``), or with
    the app starting and looking after its own local worker (``own_worker``), as bin/dashboard does."""
    port = free_port()
    env = dict(os.environ, SEQCOPY_DB=database, SEQCOPY_WORKER="external", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if own_worker:
        del env["SEQCOPY_WORKER"]
    logs = tmp_path / "logs"
    logs.mkdir()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "seqcopy", "worker", "--db", database],
        cwd=ROOT, env=env, stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT,
    ) if with_worker else None
    base = f"http://localhost:{port}"
    try:
        wait_until(lambda: healthy(base) or server.poll() is not None, 60, "the Streamlit server")
        assert server.poll() is None, (logs / "server.log").read_text()
        yield base, database, logs
    finally:
        processes = [p for p in (worker, server) if p is not None]
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def filled_dashboard(tmp_path):
    """A dashboard (no worker) on a store holding every kind of run: for screenshots."""
    import ui_store

    database = f"sqlite:///{tmp_path / 'filled.db'}"
    ui_store.fill(database)
    yield from serve(tmp_path, database, with_worker=False)


@contextmanager
def chromium_page():
    """A page of Debian's Chromium, closed afterwards; the timeouts allow for the first page
    load, which imports torch (seconds on 2 cores)."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            page.set_default_timeout(30_000)
            expect.set_options(timeout=30_000)
            yield page
        finally:
            browser.close()


def keep_failure_evidence(page, logs: Path) -> None:
    """A screenshot of the page as it failed, and the end of the server's and worker's logs."""
    page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
    for log in sorted(logs.glob("*.log")):
        print(log.read_text()[-3000:])


def settle(page) -> None:
    """Wait for Streamlit to finish the rerun a change started."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=30_000)
    page.wait_for_timeout(200)


def set_number(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    settle(page)


PLAYGROUND_VIEWS = {  # tab → what it must show
    "Which input each output reads": "Diagonal (replacement)",
    "What if": "Edited:",
    "Side by side": re.compile("Beside it|Only one run has a model"),
    "State trajectory": "principal components",
}


def plotly_charts_drawn(page, count: int) -> None:
    from playwright.sync_api import expect

    expect(page.locator(".js-plotly-plot")).to_have_count(count)
    page.locator(".js-plotly-plot .main-svg").nth(count - 1).wait_for()


def explore_playground(page, prefix: str) -> None:
    """Step through the sequence, then open every view of the Playground: screenshots of each."""
    from playwright.sync_api import expect

    plotly_charts_drawn(page, 1)  # the probabilities, and the gates and states inside the cell
    step = page.get_by_role("slider", name="Step")
    step.focus()
    for expected in range(1, 4):
        page.keyboard.press("ArrowRight")
        settle(page)
        expect(step).to_have_value(str(expected))
    expect(page.get_by_text("through the delay").first).to_be_visible()  # the summary line
    page.screenshot(path=str(ARTIFACTS / f"{prefix}.png"), full_page=True)
    for view, shows in PLAYGROUND_VIEWS.items():
        page.get_by_role("tab", name=view).click()
        settle(page)
        expect(page.get_by_text(shows).first).to_be_visible()
        if view == "What if":  # a click on the third letter of the input row picks it
            page.locator(".st-key-whatif_click .scatterlayer .point").nth(2).click(force=True)
            settle(page)
            expect(page.get_by_label("Position")).to_have_value("3")
        page.screenshot(path=str(ARTIFACTS / f"{prefix}-{view.split()[0].lower()}.png"), full_page=True)
    page.get_by_role("tab", name="Step by step").click()
    settle(page)
    expect(step).to_have_value("3")  # the step survived the other views


def test_launch_train_watch_compare_and_play(dashboard):
    from playwright.sync_api import expect

    from seqcopy.runs.store import Store

    base, database, logs = dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        try:
            # Launch: the Quick demo preset, made tiny so it trains in seconds.
            page.goto(base)
            expect(page.get_by_role("heading", name="Launch runs")).to_be_visible()
            expect(page.get_by_label("Epochs", exact=True)).to_be_visible()
            settle(page)
            for label, value in (("Epochs", 3), ("Training sequences", 600), ("Test sequences", 100),
                                 ("Hidden size", 32)):
                set_number(page, label, value)
            set_number(page, "Hidden size", 0)  # a bad field: refused beside the form
            expect(page.get_by_text("must be at least 1, got 0").first).to_be_visible()
            page.get_by_role("button", name="Queue runs").click()
            expect(page.get_by_text("Nothing was queued")).to_be_visible()
            assert Store(database).list_runs() == []
            set_number(page, "Hidden size", 32)
            page.get_by_role("button", name="Queue runs").click()
            expect(page.get_by_text("Queued 1 run(s): #1")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "launch.png"), full_page=True)

            # The worker trains it; the queue (a live fragment) empties on its own.
            store = Store(database)
            wait_until(lambda: store.get_run(1).status in ("completed", "failed"), 120, "run 1 to finish")
            assert store.get_run(1).status == "completed", store.get_run(1).error
            expect(page.get_by_text("Nothing is queued or running")).to_be_visible(timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / "launch-after.png"), full_page=True)

            # Runs: the selection comes from the URL; three charts with the run's curves, then one
            # per memory diagnostic it recorded.
            page.goto(f"{base}/runs?runs=1")
            expect(page.get_by_text("1 selected run(s)")).to_be_visible()
            expect(page.locator(".js-plotly-plot")).to_have_count(3 + len(DIAGNOSTIC_METRICS))
            expect(page.locator(".js-plotly-plot").first.get_by_text("#1 lstm s0").first).to_be_attached()
            settle(page)
            page.screenshot(path=str(ARTIFACTS / "runs.png"), full_page=True)

            # Compare: the lstm group (a single seed) and its final results.
            page.goto(f"{base}/compare")
            expect(page.get_by_text("a single seed, so no band")).to_be_visible()
            expect(page.locator(".js-plotly-plot")).to_have_count(3)
            settle(page)
            page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)

            # Playground: a bad sequence is refused, a good one is read and copied, then every view.
            page.goto(f"{base}/playground")
            box = page.get_by_label("Sequence to copy")
            box.fill("axq!")
            box.press("Enter")
            expect(page.get_by_text("only the letters")).to_be_visible()
            box.fill("axcrywbtoa")
            box.press("Enter")
            settle(page)
            expect(page.get_by_text("Copied right").first).to_be_visible()
            explore_playground(page, "playground")
        except Exception:
            keep_failure_evidence(page, logs)
            raise


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the select box labelled ``label``."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def test_a_sweep_from_the_form_and_its_metric_against_the_setting(dashboard):
    """Launch a small sweep (K = N ∈ {3, 6}, two seeds) from the form; the worker trains it; Compare
    draws test copy accuracy against K with error bars."""
    from playwright.sync_api import expect

    from seqcopy.runs.store import Store

    base, database, logs = dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        try:
            page.goto(base)
            expect(page.get_by_label("Epochs", exact=True)).to_be_visible()
            settle(page)
            for label, value in (("Epochs", 2), ("Training sequences", 200), ("Test sequences", 50),
                                 ("Hidden size", 16)):
                set_number(page, label, value)
            seeds = page.get_by_label("Seeds", exact=True)
            seeds.fill("0, 1")
            seeds.press("Enter")
            settle(page)
            choose(page, "Setting", "Input length K (train)")
            values = page.get_by_label("Values", exact=True)
            values.fill("3, 6")
            values.press("Enter")
            settle(page)
            page.get_by_text("Tie N to K", exact=True).click()
            settle(page)
            page.get_by_text("Tie test K, N to training", exact=True).click()
            settle(page)
            expect(page.get_by_text("1 cell × 2 seeds × 2 values of train_seq_len = 4 runs")).to_be_visible()
            page.get_by_role("button", name="Queue runs").click()
            expect(page.get_by_text("Queued 4 run(s) as sweep #1")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "launch-sweep.png"), full_page=True)

            store = Store(database)
            runs = store.list_runs()
            assert {r.sweep_id for r in runs} == {1} and {r.config.train_output_len for r in runs} == {3, 6}
            wait_until(lambda: all(store.get_run(r.id).status in ("completed", "failed") for r in runs), 180,
                       "the sweep's runs to finish")
            assert {store.get_run(r.id).status for r in runs} == {"completed"}

            page.get_by_role("link", name="Compare sweep #1").click()
            expect(page.get_by_role("heading", name="Against a setting")).to_be_visible()
            figure = page.locator(".js-plotly-plot").filter(has_text="test copy acc against train_seq_len")
            expect(figure).to_have_count(1)
            expect(figure.get_by_text("lstm (mean ± SE, n=2)")).to_be_attached()
            settle(page)
            figure.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "compare-sweep.png"), full_page=True)
        except Exception:
            keep_failure_evidence(page, logs)
            raise


def test_every_page_with_every_kind_of_run(filled_dashboard):
    """Screenshots of a busy store: the queue with a running run, several runs' curves with a
    curriculum stage change, seed bands on Compare."""
    from playwright.sync_api import expect

    base, _, logs = filled_dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        try:
            page.goto(base)
            expect(page.get_by_text("1 running, 1 queued")).to_be_visible()
            expect(page.get_by_label("Epochs", exact=True)).to_be_visible()
            settle(page)
            page.screenshot(path=str(ARTIFACTS / "filled-launch.png"))
            page.goto(f"{base}/runs?runs=1,4,10,11")
            expect(page.locator(".js-plotly-plot")).to_have_count(3)
            settle(page)
            page.screenshot(path=str(ARTIFACTS / "filled-runs.png"))
            page.goto(f"{base}/compare")
            # curves; against a setting: the metric, parallel coordinates; the speed; the verdicts;
            # position, length
            expect(page.locator(".js-plotly-plot")).to_have_count(7)
            settle(page)
            page.screenshot(path=str(ARTIFACTS / "filled-compare.png"))
        except Exception:
            keep_failure_evidence(page, logs)
            raise


def test_every_playground_view_works_on_a_store_of_every_kind(filled_dashboard):
    """The Playground on a store holding every kind of run steps through its sequence and opens
    every view. (How long it takes to draw is measured by bench/bench_browser_draw.py.)"""
    from playwright.sync_api import expect

    base, _, logs = filled_dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        try:
            page.goto(f"{base}/playground")
            # A fresh server's first page imports torch: tens of seconds on a loaded 2-core machine.
            expect(page.get_by_text("Copied right").first).to_be_visible(timeout=90_000)
            settle(page)
            explore_playground(page, "filled-playground")
        except Exception:
            keep_failure_evidence(page, logs)
            raise


def test_a_shared_link_opened_first_goes_through_the_app(filled_dashboard):
    """The first request a fresh server gets is a shared /runs link: the page must still run
    inside app.py (its navigation and sidebar), not as a bare script of a pages folder."""
    from playwright.sync_api import expect

    base, _, _ = filled_dashboard
    with chromium_page() as page:
        page.goto(f"{base}/runs?runs=1")
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        expect(page.get_by_text("Database:")).to_be_visible()  # written by app.py's sidebar
        expect(page.get_by_role("link", name="Launch")).to_be_visible()  # app.py's st.navigation


@pytest.fixture
def image_host():
    """A small web server that counts the requests it gets: the host a hostile tag points at."""
    import http.server
    import threading

    hits: list[str] = []

    class Counting(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


def test_user_text_that_looks_like_markdown_is_shown_as_text_and_fetches_nothing(tmp_path, image_host):
    """Issue #13: tags, error reasons and link values that are markdown images. The browser must
    show them literally and never request the image."""
    import urllib.parse

    import ui_store
    from playwright.sync_api import expect

    from seqcopy.runs.store import Store
    from seqcopy.ui.escape import unlinked
    from seqcopy.ui.frames import parse_run_ids

    host, hits = image_host
    tag, reason, link = (f"![q](http://{host}/tag.png)", f"![e](http://{host}/error.png) boom",
                         f"![](//{host}/link.png)")
    database = f"sqlite:///{tmp_path / 'hostile.db'}"
    store = Store(database)
    failed = ui_store.add_run(store, ui_store.TINY.replace(tag=tag), "failed", epochs=1, with_checkpoint=False)
    with store.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE runs SET error = :e WHERE id = :id"), {"e": reason + "\nTraceback …", "id": failed})
    ui_store.add_run(store, ui_store.TINY.replace(tag=tag), "queued")
    store.close()
    ARTIFACTS.mkdir(exist_ok=True)
    for base, _, _ in serve(tmp_path, database, with_worker=False):
        with chromium_page() as page:
            # Shown as typed (an invisible word joiner after '://' keeps markdown from linking it).
            page.goto(base)
            expect(page.get_by_text(f"tag {unlinked(tag)}")).to_be_visible()  # the Launch queue
            settle(page)
            page.screenshot(path=str(ARTIFACTS / "hostile-launch.png"))
            page.goto(f"{base}/runs?runs={urllib.parse.quote(link)},{failed}")
            shortened = parse_run_ids(link)[1][0]  # the page names at most 24 characters of it
            expect(page.get_by_text(f"Ignored in the link: {unlinked(shortened)} (no such run)")).to_be_visible()
            expect(page.get_by_text(f"Run {failed} failed: {unlinked(reason)}")).to_be_visible()
            settle(page)
            page.screenshot(path=str(ARTIFACTS / "hostile-runs.png"), full_page=True)
            assert page.locator(f"img[src*='{host}']").count() == 0
            assert page.locator(f"a[href*='{host}']").count() == 0
    assert hits == []  # no browser ever asked the host for an image


@pytest.fixture
def lineage_dashboard(tmp_path):
    """A dashboard (no worker) on a store with a run preempted by a signal and resumed by another
    worker, and a fork of it: trained for real, tiny (#21)."""
    from conftest import TINY

    from seqcopy.runs.store import Store
    from seqcopy.runs.worker import RunExecution, StopSignals, Worker

    database = f"sqlite:///{tmp_path / 'lineage.db'}"
    store = Store(database)
    config = TINY.replace(cell="lstm", epochs=4, tag="resumed")
    resumed = store.submit(config)
    signals = StopSignals()
    run = store.claim("first:1", lease=30)
    on_batch = lambda done, total: signals.stop() if store.get_run(resumed).epochs_done == 1 else None  # noqa: E731
    assert RunExecution(store, run, "first:1", 30, signals, on_batch=on_batch).execute() == "preempted"
    Worker(store, worker_id="second:2", lease=30).run(once=True)
    store.submit_sweep([config.replace(train_seq_len=6, train_output_len=6, epochs=3, tag="forked")], "fork", {},
                       lineage=dict(parent_id=resumed, parent_epoch=4, state=store.checkpoint(resumed)))
    Worker(store, worker_id="second:2", lease=30).run(once=True)
    store.close()
    yield from serve(tmp_path, database, with_worker=False)


def test_runs_shows_a_resumed_run_and_a_fork_with_its_lineage(lineage_dashboard):
    """A screenshot of Runs with a run resumed after a preemption and a run forked from it."""
    from playwright.sync_api import expect

    base, _, logs = lineage_dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        try:
            page.goto(f"{base}/runs?runs=1,2")
            expect(page.locator(".js-plotly-plot")).to_have_count(3 + len(DIAGNOSTIC_METRICS))
            page.get_by_role("tab", name="Continue or fork").click()
            expect(page.get_by_text(re.compile(r"completed · forked · from #1 @ epoch 4"))).to_be_visible()
            settle(page)
            page.screenshot(path=str(ARTIFACTS / "runs-lineage.png"), full_page=True)
        except Exception:
            keep_failure_evidence(page, logs)
            raise


@pytest.fixture
def swept_dashboard(tmp_path):
    """A dashboard (no worker) on a store holding one finished sweep: lstm and gru, 3 seeds, K 4 and 8."""
    import ui_store

    database = f"sqlite:///{tmp_path / 'swept.db'}"
    sweep_id, _ = ui_store.add_sweep(database)
    yield from (served + (sweep_id,) for served in serve(tmp_path, database, with_worker=False))


def test_compare_shows_the_verdicts_against_a_reference(swept_dashboard):
    """Compare on a sweep: the solve rate beside the speed, and each group against LSTM with the
    95% interval of the difference; a screenshot of the verdicts (test-artifacts/compare-verdicts.png)."""
    from playwright.sync_api import expect

    base, _, logs, sweep_id = swept_dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        try:
            page.goto(f"{base}/compare?sweep={sweep_id}")
            expect(page.get_by_role("heading", name="Verdicts against a reference")).to_be_visible()
            figure = page.locator(".js-plotly-plot").filter(has_text="each group minus lstm")
            expect(figure).to_have_count(1)
            expect(figure.get_by_text("no difference from lstm")).to_be_attached()
            expect(page.get_by_role("heading", name="Solve rate and speed")).to_be_visible()
            settle(page)
            page.screenshot(path=str(ARTIFACTS / "compare-full.png"), full_page=True)
            figure.scroll_into_view_if_needed()
            settle(page)
            figure.screenshot(path=str(ARTIFACTS / "compare-verdicts.png"))
        except Exception:
            keep_failure_evidence(page, logs)
            raise


@pytest.fixture
def snapshots_dashboard(tmp_path):
    """A dashboard (no worker) on a store with one run trained for real by a worker, its
    snapshots kept: a curriculum (N=2 then 4) over 8 epochs."""
    from conftest import TINY

    from seqcopy.runs.store import Store
    from seqcopy.runs.worker import Worker

    database = f"sqlite:///{tmp_path / 'snapshots.db'}"
    store = Store(database)
    store.submit(TINY.replace(cell="lstm", epochs=8, padding=1, curriculum=True, curriculum_start=2,
                              curriculum_threshold=0.01, tag="snapshots"))
    Worker(store, worker_id="w:1", lease=30).run(once=True)
    store.close()
    yield from serve(tmp_path, database, with_worker=False)


def test_the_playground_scrubs_a_run_through_its_epochs(snapshots_dashboard):
    """The Epoch slider moved to the first kept epoch, the next, and the final model: a
    screenshot of each (test-artifacts/playground-epoch-*.png), each saying which epoch it shows."""
    from playwright.sync_api import expect

    base, _, logs = snapshots_dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium_page() as page:
        try:
            page.goto(f"{base}/playground")
            plotly_charts_drawn(page, 1)
            epoch = page.get_by_role("slider", name="Epoch")
            epoch.focus()
            page.keyboard.press("Home")
            for name, key, shown in (("1", None, "the model after epoch 1 of 8"),
                                     ("2", "ArrowRight", "the model after epoch 2 of 8"),
                                     ("final", "End", "the final model (epoch 8)")):
                if key:
                    epoch.focus()
                    page.keyboard.press(key)
                settle(page)
                expect(page.get_by_text(re.compile(f"Showing {re.escape(shown)}"))).to_be_visible()
                page.screenshot(path=str(ARTIFACTS / f"playground-epoch-{name}.png"), full_page=True)
        except Exception:
            keep_failure_evidence(page, logs)
            raise
