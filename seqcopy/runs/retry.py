"""Retries through a database's passing trouble, and the log lines they leave: one helper, on tenacity.

A worker retries its writes through an outage (a server restart, a cut connection), its loop waits
out an unreachable database, and the search's Optuna calls are retried while SQLite is locked by
another worker. Each is ``retry(call, when=…)`` with its own backoff and its own way to wait (an
event's ``wait``, so a signal cuts a wait short). The lines go to the ``seqcopy`` logger, which
writes them on stderr as bare lines, as the workers' users have always read them.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import tenacity

T = TypeVar("T")


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a test's capture, a redirected stream)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def logger(name: str) -> logging.Logger:
    """The ``seqcopy.NAME`` logger: warnings and up on stderr, one bare line each, unless the
    application configured a ``seqcopy`` handler of its own."""
    root = logging.getLogger("seqcopy")
    if not root.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.setLevel(logging.WARNING)
        root.addHandler(handler)
        root.propagate = False  # a root handler (pytest's, Streamlit's) would print each line twice
    return logging.getLogger(f"seqcopy.{name}")


def retry(
    call: Callable[[], T],
    *,
    when: Callable[[BaseException], bool],
    first: float,
    longest: float,
    attempts: int | None = None,
    wait: Callable[[float], object] = time.sleep,
    before_wait: Callable[[BaseException, float], None] | None = None,
) -> T:
    """``call()``, tried again while it raises an error for which ``when(error)`` holds: after
    ``first`` seconds, doubling up to ``longest``, at most ``attempts`` times in all (None: for as
    long as it takes). ``wait(seconds)`` waits (an Event's wait ends early when it is set);
    ``before_wait(error, seconds)`` is told before each wait and may raise to give up. The last
    error is raised as itself."""
    def told(state: tenacity.RetryCallState) -> None:
        if before_wait is not None:
            before_wait(state.outcome.exception(), state.upcoming_sleep)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(when),
        wait=tenacity.wait_exponential(multiplier=first, max=longest),
        stop=tenacity.stop_after_attempt(attempts) if attempts is not None else tenacity.stop_never,
        sleep=wait,
        before_sleep=told,
        reraise=True,
    )(call)


class ThrottledLog:
    """One warning per kind of trouble at most every ``every`` seconds, counting the repeats in
    between: a long outage is a few lines, not thousands."""

    def __init__(self, prefix: str, log: logging.Logger, every: float = 10.0):
        self.prefix = prefix
        self.every = every
        self.log = log
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, kind: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -1e9) < self.every:
                self._skipped[kind] = self._skipped.get(kind, 0) + 1
                return
            self._last[kind] = now
            skipped = self._skipped.pop(kind, 0)
        more = f" ({skipped} more like it since the last report)" if skipped else ""
        self.log.warning("%s: %s%s", self.prefix, message, more)
