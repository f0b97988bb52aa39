"""Faults on the wire between a worker and the real PostgreSQL server, injected by a TCP proxy
(tests/faultproxy.py): a COMMIT that lands while its reply is lost, and outages. Each scenario
ends with the run `completed`, every epoch recorded exactly once, and its checkpoint; each test
also shows that the proxy's fault fired.

Tiny runs (4 epochs of 64 sequences, hidden 8) and short leases keep each test to seconds.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import TINY as BASE_TINY
from faultproxy import FaultProxy

from seqcopy.runs.store import Store
from seqcopy.runs.worker import Worker

pytestmark = pytest.mark.postgres

TINY = BASE_TINY.replace(epochs=4)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here trains in-process on one thread."""


def nth(predicate, n: int):
    """``predicate``, true only the n-th time it is true."""
    seen = {"count": 0}

    def check(statements):
        if predicate(statements):
            seen["count"] += 1
            return seen["count"] == n
        return False

    return check


def assert_completed_once(store: Store, run_id: int, epochs: int) -> None:
    """Completed, each epoch exactly once, the checkpoint and the final results there."""
    run = store.get_run(run_id)
    assert run.status == "completed", (run.status, run.error)
    assert run.epochs_done == epochs
    assert [row["epoch"] for row in store.epochs([run_id])] == list(range(1, epochs + 1))
    assert store.checkpoint(run_id) is not None
    assert len(store.position_results([run_id])) == TINY.test_output_len
    assert store.length_results([run_id])


def test_a_lost_reply_to_an_epoch_write_neither_fails_the_run_nor_doubles_the_epoch(pg_proxy, capsys):
    proxy, url = pg_proxy
    store = Store(url)
    run_id = store.submit(TINY)
    # Epoch 2's COMMIT reaches the server and commits; its reply is lost with the connection.
    proxy.lose_commit_reply(nth(FaultProxy.ran("INSERT INTO epochs"), 2))
    assert Worker(store, worker_id="faults:epoch", lease=10, poll=0.05).run(once=True) == 1
    assert proxy.lost_replies == 1  # the fault fired
    assert "database unavailable while recording epoch 2" in capsys.readouterr().err  # and was retried
    assert_completed_once(store, run_id, TINY.epochs)
    store.close()


def test_a_lost_reply_to_the_claim_still_trains_that_run_first(pg_proxy, capsys):
    proxy, url = pg_proxy
    store = Store(url)
    first, second = store.submit_many([TINY, TINY.replace(seed=1)])
    # The claim of the first run commits; the worker never hears so.
    proxy.lose_commit_reply(FaultProxy.ran("FOR UPDATE SKIP LOCKED"))
    worker = Worker(store, worker_id="faults:claim", lease=30, poll=0.05)
    assert worker.run(idle_exit=0.2) == 2
    assert proxy.lost_replies == 1
    assert "database unavailable" in capsys.readouterr().err
    runs = {run_id: store.get_run(run_id) for run_id in (first, second)}
    for run_id in (first, second):
        assert_completed_once(store, run_id, TINY.epochs)
        assert runs[run_id].worker_id == "faults:claim"
    # Found again by its claim token, at once: not left to lapse and be requeued by the lease.
    with store.engine.connect() as conn:
        from sqlalchemy import text

        requeues = dict(conn.execute(text("SELECT id, requeues FROM runs")).all())
    assert requeues == {first: 0, second: 0}
    assert runs[first].started_at < runs[second].started_at
    store.close()


def test_an_outage_while_a_run_finishes_does_not_lose_the_finished_run(pg_proxy, capsys):
    proxy, url = pg_proxy
    store = Store(url)
    run_id = store.submit(TINY)
    # The final write (status, checkpoint, results) meets a 3 s outage: connections cut, then refused.
    proxy.outage_on(FaultProxy.ran("INSERT INTO checkpoints"), seconds=3)
    started = time.monotonic()
    assert Worker(store, worker_id="faults:outage", lease=8, poll=0.05).run(once=True) == 1
    assert proxy.outages == 1
    err = capsys.readouterr().err
    assert "while recording run" in err and "as completed" in err
    assert "Connection refused" in err  # the port really was closed for a while
    assert time.monotonic() - started >= 3
    assert_completed_once(store, run_id, TINY.epochs)
    store.close()


def test_heartbeats_keep_the_lease_while_the_final_write_waits_past_it(pg_proxy, pg_url):
    proxy, url = pg_proxy
    # Long enough that a busy 2-core machine (training, the proxy's threads and the rescuer
    # share it) never stalls the heartbeat for a whole lease; the cut still outlasts it 2.5 times.
    lease = 6.0
    store = Store(url)
    run_id = store.submit(TINY)
    # Every attempt at the final write is cut for 2.5 leases, while heartbeats get through;
    # meanwhile another worker keeps looking for lapsed runs to take back.
    proxy.cut_while(FaultProxy.ran("INSERT INTO checkpoints"), seconds=2.5 * lease)
    rescuer, stop, looks = Store(pg_url), threading.Event(), []

    def take_back_lapsed_runs():
        while not stop.is_set():
            looks.append(rescuer.reclaim_expired())
            time.sleep(0.1)

    watcher = threading.Thread(target=take_back_lapsed_runs)
    watcher.start()
    try:
        assert Worker(store, worker_id="faults:beat", lease=lease, poll=0.05).run(once=True) == 1
    finally:
        stop.set()
        watcher.join()
        rescuer.close()
    assert proxy.cut_statements >= 2  # the final write was cut, and retried, more than once
    assert len(looks) > 20 and not any(looks)  # the rescuer looked all along and took nothing
    assert_completed_once(store, run_id, TINY.epochs)
    run = store.get_run(run_id)
    last_epoch = store.epochs([run_id])[-1]["wall_time"]
    assert run.finished_at - last_epoch > lease  # the final write did wait past one lease
    store.close()


# ---------------------------------------------------------------------------- the pages
PAGES = ["views/launch.py", "views/runs.py", "views/compare.py", "views/playground.py"]


def test_every_page_says_plainly_that_the_database_is_gone_and_recovers_on_retry(pg_proxy, pg_url, monkeypatch):
    import streamlit as st
    import ui_store
    from streamlit.testing.v1 import AppTest

    from seqcopy.ui import state

    proxy, url = pg_proxy
    ids = ui_store.fill(pg_url)
    # The list of runs and of sweeps keep their few-second cache for the whole test, whatever the load:
    # "what was drawn stays" below needs them still cached when the live curves fail.
    for read in ("runs", "sweeps"):
        monkeypatch.setattr(state, read, st.cache_data(show_spinner=False)(getattr(state, read).__wrapped__))
    monkeypatch.setenv("SEQCOPY_DB", url)
    monkeypatch.setenv("SEQCOPY_WORKER", "external")
    app = str(Path(__file__).resolve().parents[1] / "app.py")
    shown = {"runs": ",".join(map(str, ids["completed"][:2] + ids["running"]))}

    def open_page(page: str) -> AppTest:
        at = AppTest.from_file(app, default_timeout=60)
        at.query_params.update(shown)
        at.run()
        if page != PAGES[0]:
            at.switch_page(page).run()
        return at

    for page in PAGES:  # the app opens its store and every page draws
        at = open_page(page)
        assert not at.exception and not at.error, (page, [e.value for e in at.error])

    open_page(PAGES[1])  # Runs, with its reads fresh in the cache
    proxy.outage(None)  # the server goes away after the app opened it
    state.epochs.clear()  # the list of runs still comes from the cache; the live curves fail first
    at = open_page(PAGES[1])
    assert not at.exception
    assert [str(e.value)[:35] for e in at.error] == ["The runs database does not answer: "]  # one message
    assert "3 selected run(s)" in [str(s.value) for s in at.subheader]  # what was drawn stays

    st.cache_data.clear()  # as the reads' few-second cache lapses
    for page in PAGES:
        at = open_page(page)
        assert not at.exception, (page, [e.value for e in at.exception])
        errors = [str(e.value) for e in at.error]
        assert len(errors) == 1 and errors[0].startswith("The runs database does not answer:"), (page, errors)
        assert "Connection refused" in errors[0]
        assert "Retry" in [b.label for b in at.button]

    proxy.restore()
    at.button[[b.label for b in at.button].index("Retry")].click().run()
    assert not at.exception and not at.error
    assert "Copied right" in [m.label for m in at.metric]  # the playground is back
    assert proxy.outages == 1
