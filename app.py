"""seqcopy's dashboard: `streamlit run app.py`.

The entry point only frames the pages: page config, navigation, the database and the local
worker. Each page is a thin script over seqcopy.ui.
"""

import streamlit as st
from sqlalchemy.exc import DBAPIError

from seqcopy.runs.store import StoreError
from seqcopy.ui import escape, state
from seqcopy.ui.warmup import warm_up_in_background
from seqcopy.ui.workers import local_worker_line, workers_view


@st.fragment(run_every=state.LIVE_REFRESH_S)
def render_worker_state() -> None:
    """Who trains the queued runs, as the store's heartbeats say, on the live parts' timer; the
    local worker started again when it exited with runs waiting (state.supervise_local_worker)."""
    try:
        worker, supervision = state.supervise_local_worker()
        workers = state.workers(state.url())
    except DBAPIError:  # the page says why; the sidebar only that it cannot tell
        st.caption("Workers: unknown while the runs database does not answer")
        return
    if worker is None:
        st.caption(f"Workers: external (SEQCOPY_WORKER=external) · {workers_view(workers).summary}")
        return
    line = local_worker_line(worker.worker_id, worker.pid, worker.alive(), workers)
    (st.caption if line.ok else st.warning)(line.text)
    if supervision.note:
        (st.warning if supervision.gave_up else st.caption)(supervision.note)
    elif supervision.exit_code is not None:
        st.caption("Nothing waits in the queue: it starts again when a run is queued.")
    if not worker.alive():
        # A callback: it runs before the rerun its click makes, which then draws the new worker.
        st.button("Restart the local worker", key="restart_local_worker", on_click=worker.restart)


st.set_page_config(page_title="seqcopy", page_icon="🔁", layout="wide")

pages = [
    st.Page("views/launch.py", title="Launch", icon=":material/rocket_launch:", default=True),
    st.Page("views/runs.py", title="Runs", icon=":material/monitoring:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("views/playground.py", title="Playground", icon=":material/keyboard:"),
]
page = st.navigation(pages)

try:
    store = state.get_store()
except StoreError as error:  # a bad SEQCOPY_DB, or a server down: say so on one line, no traceback
    st.error(f"The runs database cannot be used: {escape.markdown(error)}")
    st.caption("Set SEQCOPY_DB to a SQLAlchemy URL (default sqlite:///runs.db) and restart the app; "
               "if the server is only down for now, retry once it answers.")
    st.button("Retry", icon=":material/refresh:")  # a click reruns the app, which opens the store again
    st.stop()

with st.sidebar:
    st.caption(f"Database: {escape.code_span(store.safe_url)}")  # password masked (seqcopy.runs.redact)
    render_worker_state()

try:
    page.run()
except DBAPIError as error:  # the database went away after the app opened it
    state.show_database_trouble(error)
finally:  # also after st.stop(): once the page is drawn, import the Playground's torch off its critical path
    warm_up_in_background()
