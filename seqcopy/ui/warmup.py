"""Load the Playground's heavy imports (torch and the model code) in the background, once per
server process, after the first page has been drawn.

Importing torch is most of the Playground's first open (a second or two; the rest is tens of
milliseconds). Started after a page's script has finished, the import costs that page nothing,
and the Playground opened later finds torch loaded. Only a Playground opened as the very first
page of a fresh server still waits for it. No Streamlit here.
"""

from __future__ import annotations

import importlib
import threading

MODULES = (
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
            return


def warm_up_in_background() -> threading.Thread:
    """Start the imports in a daemon thread, the first time only; the thread, for tests."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_import_all, name="seqcopy-warm-up", daemon=True)
            _thread.start()
        return _thread
