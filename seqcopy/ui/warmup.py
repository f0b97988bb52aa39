"""Load the heavy imports of the pages opened after the first in the background, once per
server process, after the first page has been drawn: Compare's scipy (its verdicts, intervals and
solve rates), then the Playground's torch and model code.

Importing scipy.stats is most of Compare's first open (about two seconds), and torch most of the
Playground's (a second or two; the rest is tens of milliseconds). Started after a page's script
has finished, the imports cost that page nothing, and a page opened later finds them loaded.
Compare comes first because a tour reaches it before the Playground. Only a page opened as the
very first of a fresh server still waits for its own. No Streamlit here.
"""

from __future__ import annotations

import importlib
import threading

MODULES = (
    "scipy.stats",
    "seqcopy.results.verdicts",
    "seqcopy.ui.sweep_figures",
    "torch",
    "seqcopy.core.checkpoint",
    "seqcopy.ui.playground",
    "seqcopy.ui.saliency",
    "seqcopy.ui.playground_figures",
)
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _import_all() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the page that needs the module reports its error itself
            continue  # the other pages' imports still help them


def warm_up_in_background() -> threading.Thread:
    """Start the imports in a daemon thread, the first time only; the thread, for tests."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_import_all, name="seqcopy-warm-up", daemon=True)
            _thread.start()
        return _thread
