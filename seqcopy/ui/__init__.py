"""The dashboard's helpers.

``frames``, ``figures``, ``playground``, ``estimates`` and ``launch_form`` are pure (pandas,
plotly, torch) and know nothing of Streamlit, so they are unit-tested without a server;
``state`` and ``local_worker`` are the Streamlit-side glue (cached store and reads, the local
worker process).
"""
