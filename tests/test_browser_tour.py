"""README's five-minute tour, in Chromium, as a new user takes it: the Quick demo for lstm and gru ×
seeds 0–2 queued from the form, Runs' table updating while they train, the dashboard's own worker
stopped by SIGTERM (its run shown preempted, then resumed by the worker the dashboard restarts),
and Compare's one-line verdict between the two cells.

The dashboard here runs its own local worker, as `bin/dashboard` does (no SEQCOPY_WORKER). The
Quick demo is made small (epochs, sequences) so the six runs train in well under a minute on two
cores; everything else is the preset's. Screenshots go to test-artifacts/tour-*.png.
"""

from __future__ import annotations

import os
import re
import signal

import pytest
from test_browser import (
    ARTIFACTS,
    CHROMIUM,
    choose,
    chromium_page,
    keep_failure_evidence,
    serve,
    set_number,
    settle,
    wait_until,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Chromium is not installed at /usr/bin/chromium"),
]


@pytest.fixture
def own_worker_dashboard(tmp_path):
    """A dashboard on a fresh database that starts and looks after its own local worker (it
    follows its parent out when the server stops: seqcopy.ui.local_worker)."""
    yield from serve(tmp_path, f"sqlite:///{tmp_path / 'runs.db'}", with_worker=False, own_worker=True)


def live_worker(store):
    """The one live worker the store knows, or None."""
    live = [w for w in store.list_workers() if str(w.state()) == "live"]
    return live[0] if len(live) == 1 else None


def queue_caption(page) -> str:
    """The line under Runs' table that counts the runs still queued or running (the table itself
    is drawn on a canvas, so its cells are not text)."""
    return page.get_by_text(re.compile(r"\d+ of \d+ runs")).first.inner_text()


def test_the_five_minute_tour(own_worker_dashboard):
    from playwright.sync_api import expect

    from seqcopy.runs.store import Store

    base, database, logs = own_worker_dashboard
    ARTIFACTS.mkdir(exist_ok=True)
    store = Store(database)
    with chromium_page() as page:
        try:
            # 1. The form: the Quick demo, lstm and gru, seeds 0-2, made small.
            page.goto(base)
            expect(page.get_by_role("heading", name="Launch runs")).to_be_visible()
            settle(page)
            choose(page, "Preset", "Quick demo")
            cells = page.get_by_role("combobox", name=re.compile("Cells"))
            cells.click()
            page.get_by_role("option", name="gru", exact=True).click()
            page.keyboard.press("Escape")
            settle(page)
            seeds = page.get_by_label("Seeds", exact=True)
            seeds.fill("0-2")
            seeds.press("Enter")
            settle(page)
            for label, value in (("Epochs", 6), ("Training sequences", 2000), ("Test sequences", 100)):
                set_number(page, label, value)
            expect(page.get_by_text(re.compile(r"2 cells × 3 seeds"))).to_be_visible()
            page.get_by_role("button", name="Queue runs").click()
            expect(page.get_by_text(re.compile(r"Queued 6 run\(s\)"))).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "tour-launch.png"), full_page=True)

            # 2. Runs: the table follows the training without a reload.
            page.get_by_role("link", name="Runs").first.click()
            expect(page.get_by_text(re.compile("6 queued or running"))).to_be_visible()
            wait_until(lambda: store.get_run(1).status == "completed", 120, "run 1 to finish")
            expect(page.get_by_text(re.compile("5 queued or running"))).to_be_visible(timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "tour-runs-live.png"), full_page=True)

            # 3. A SIGTERM to the dashboard's own worker, watched in Launch's live queue: its run is
            # preempted, then resumed by the worker the dashboard starts again.
            page.get_by_role("link", name="Launch").first.click()
            expect(page.get_by_label("Seeds", exact=True)).to_have_value("0-2")  # the form as it was left
            worker = wait_until(lambda: live_worker(store), 30, "the local worker's heartbeat")
            running = wait_until(lambda: next((r for r in store.list_runs()
                                              if str(r.status) == "running" and 1 <= r.epochs_done <= 3), None),
                                 120, "a run past its first epoch")
            os.kill(worker.pid, signal.SIGTERM)
            wait_until(lambda: store.get_run(running.id).preemptions >= 1, 60, "the run to be preempted")
            preempted = page.get_by_text("queued · preempted, resumes").first
            expect(preempted).to_be_visible(timeout=20_000)
            preempted.scroll_into_view_if_needed()  # the queue, below the form
            page.screenshot(path=str(ARTIFACTS / "tour-preempted.png"))
            wait_until(lambda: (live_worker(store) or worker).pid != worker.pid, 60, "a restarted local worker")
            wait_until(lambda: str(store.get_run(running.id).status) == "completed", 180,
                       "the preempted run to finish")
            expect(page.get_by_text(re.compile("restarted")).first).to_be_visible(timeout=20_000)
            wait_until(lambda: all(str(r.status) == "completed" for r in store.list_runs()), 240,
                       "every run to finish")
            page.goto(f"{base}/runs?runs={running.id}")
            # The run's details line (in a tab of its own below the curves) says it was resumed.
            expect(page.locator("p", has_text=re.compile(r"completed · resumed")).first).to_be_attached()
            page.locator(".js-plotly-plot .main-svg").first.wait_for()  # the curves drawn, not placeholders
            settle(page)
            page.screenshot(path=str(ARTIFACTS / "tour-runs-done.png"), full_page=True)

            # 4. Compare: the one-line answer between the two cells, paired over the seeds.
            page.get_by_role("link", name="Compare").first.click()
            verdict = page.get_by_text(re.compile(r"(gru|lstm) − (gru|lstm): .*paired over seeds 0, 1, 2"))
            expect(verdict.first).to_be_visible(timeout=30_000)
            settle(page)
            page.screenshot(path=str(ARTIFACTS / "tour-compare.png"), full_page=True)
        except Exception:
            keep_failure_evidence(page, logs)
            raise
        finally:
            store.close()
