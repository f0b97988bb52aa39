"""seqcopy's dashboard: `streamlit run app.py`.

The entry point only frames the pages: page config, navigation, the database and the local
worker. Each page is a thin script over seqcopy.ui.
"""

import streamlit as st

from seqcopy.store import StoreError
from seqcopy.ui import state
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
except StoreError as error:  # a bad SEQCOPY_DB: say so on one line, no traceback
    st.error(f"The runs database cannot be used: {error}")
    st.caption("Set SEQCOPY_DB to a SQLAlchemy URL (default sqlite:///runs.db) and restart the app.")
    st.stop()

with st.sidebar:
    st.caption(f"Database: `{store.safe_url}`")
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
finally:  # also after st.stop(): once the page is drawn, import the Playground's torch off its critical path
    warm_up_in_background()
