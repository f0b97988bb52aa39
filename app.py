"""seqcopy's dashboard: `streamlit run app.py`.

The entry point only frames the pages: page config, navigation, the database and the local
worker. Each page is a thin script over seqcopy.ui.
"""

import streamlit as st
from sqlalchemy.exc import DBAPIError

from seqcopy.runs.store import StoreError
from seqcopy.ui import escape, state
from seqcopy.ui.warmup import warm_up_in_background

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
    worker = state.ensure_local_worker()
    if worker is None:
        st.caption("Workers: external (SEQCOPY_WORKER=external)")
    elif worker.alive():
        st.caption(f"Local worker: running (pid {worker.pid})")
    else:
        st.warning("The local worker has stopped; queued runs wait.")
        if st.button("Restart the local worker"):
            worker.start()
            st.rerun()

try:
    page.run()
except DBAPIError as error:  # the database went away after the app opened it
    state.show_database_trouble(error)
finally:  # also after st.stop(): once the page is drawn, import the Playground's torch off its critical path
    warm_up_in_background()
