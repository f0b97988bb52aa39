"""The search view in a real Chromium: Compare on a finished search draws Optuna's figures and the
trials table; its screenshot is test-artifacts/search-view.png (bin/docs-images keeps it in docs/images/)."""

from __future__ import annotations

from conftest import TINY
from test_browser import ARTIFACTS, chromium_page, keep_failure_evidence, serve, settle
from test_search import drain, start

from seqcopy.runs.store import Store


def test_the_search_view_draws_in_chromium(tmp_path, one_thread):
    from playwright.sync_api import expect

    database = f"sqlite:///{tmp_path / 'search.db'}"
    store = Store(database)
    sweep_id = start(store, trials_count=6, seeds=(0, 1), sampler="tpe", pruner="median",
                     base=TINY.replace(epochs=4, hidden_size=16, train_samples=256),
                     space_texts=("hidden_size=int(4,32)", "lr=log(1e-3,1e-1)"))
    drain(store)
    store.close()
    ARTIFACTS.mkdir(exist_ok=True)
    for base, _, logs in serve(tmp_path, database, with_worker=False):
        with chromium_page() as page:
            try:
                page.goto(f"{base}/compare?sweep={sweep_id}")
                expect(page.get_by_text(f"Search #{sweep_id}")).to_be_visible()
                expect(page.get_by_role("button", name="more seeds")).to_be_visible()
                page.locator(".js-plotly-plot .main-svg").first.wait_for()
                settle(page)
                page.get_by_role("tab", name="Parallel coordinates").click()
                settle(page)
                page.screenshot(path=str(ARTIFACTS / "search-view.png"), full_page=False)
            except Exception:
                keep_failure_evidence(page, logs)
                raise
