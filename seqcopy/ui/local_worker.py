"""The dashboard's own worker: ``seqcopy worker`` that also stops when its app is gone.

The app starts one of these per server process (``state.ensure_local_worker``). It is the
ordinary :class:`seqcopy.runs.worker.Worker`; the only addition is a thread that watches the app's
process and, once it has died (even by SIGKILL, when no atexit handler runs), asks the worker
to stop after the current epoch, then exits for good after a grace period. The app, in turn,
starts it again when it exits while runs wait (:meth:`LocalWorker.supervise`), a bounded
number of times. Usage:

    SEQCOPY_DB=URL python -m seqcopy.ui.local_worker --parent-pid PID

The database URL comes through the environment, never the command line: a password in it would
show in ``ps`` to every user of the machine, while a process's environment is readable by its
owner alone.
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from seqcopy.runs.retry import logger

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STOP_GRACE_S = 30.0  # after the app died: time to record the current epoch before a hard exit
# A worker that dies at every start (a broken install, a database it cannot open) is started
# again at most this often, not every few seconds for ever; a person's Restart resets the count.
RESTART_LIMIT = 5
RESTART_WINDOW_S = 600.0
# Seconds between noticing the exit and the restart: a worker that dies at once is not restarted
# in a tight loop, and the pages' 2-second refresh shows the run preempted before it resumes.
RESTART_DELAY_S = 4.0

log = logger("ui.local_worker")


def parent_alive(parent_pid: int) -> bool:
    """True while the process that started us lives (and is still our parent)."""
    if os.getppid() != parent_pid:  # re-parented to init or a subreaper: our parent is gone
        return False
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch_parent(parent_pid: int, shutdown: threading.Event, poll: float = 1.0, grace: float = STOP_GRACE_S) -> None:
    while parent_alive(parent_pid):
        time.sleep(poll)
    print(f"seqcopy local worker: the app (pid {parent_pid}) is gone; stopping", file=sys.stderr, flush=True)
    shutdown.set()  # the worker records the epoch in progress and stops
    time.sleep(grace)
    # Still busy (a very long epoch): the run's lease lapses, and it is queued again if no epoch
    # was done, else marked failed.
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="SEQCOPY_DB=URL python -m seqcopy.ui.local_worker")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between looks at the queue")
    args = parser.parse_args(argv)

    from seqcopy.runs.store import StoreError, open_store
    from seqcopy.runs.worker import Worker

    try:
        store = open_store()  # SEQCOPY_DB
    except StoreError as error:
        print(f"seqcopy local worker: error: {error}", file=sys.stderr)
        return 2
    worker = Worker(store, poll=args.poll, origin="dashboard")
    worker.install_signal_handlers()
    threading.Thread(target=watch_parent, args=(args.parent_pid, worker.shutdown), daemon=True).start()
    print(f"seqcopy local worker {worker.worker_id} on {store.safe_url}", file=sys.stderr, flush=True)
    done = worker.run()
    print(f"seqcopy local worker stopped after {done} run(s)", file=sys.stderr, flush=True)
    return 0


@dataclass(frozen=True)
class Supervision:
    """What :meth:`LocalWorker.supervise` found and did, for the sidebar to say."""

    restarts: int  # restarts of its own within the last RESTART_WINDOW_S
    limit: int
    restarted: bool = False  # just now
    gave_up: bool = False  # it exited with runs queued, and the bound is reached: a person must restart it
    exit_code: int | None = None  # of the process that exited, while no new one runs

    @property
    def note(self) -> str:
        """The sidebar's sentence about restarts, or '' when there were none lately."""
        if self.gave_up:
            return (f"The local worker exited (code {self.exit_code}) and was restarted {self.restarts} times "
                    f"in {RESTART_WINDOW_S / 60:.0f} minutes, the most it is restarted on its own: "
                    "queued runs wait until it is restarted.")
        if self.restarts:
            return f"The local worker exited; restarted it ({self.restarts} of at most {self.limit})."
        return ""


class LocalWorker:
    """Handle on the worker process the app started; one per server process, shared by every
    session (hence the lock)."""

    def __init__(self, url: str, limit: int = RESTART_LIMIT, window: float = RESTART_WINDOW_S,
                 delay: float = RESTART_DELAY_S):
        self.url = url
        self.delay = delay
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.limit = limit
        self.window = window
        self._restarts: deque[float] = deque()  # monotonic times of the restarts of its own
        self._gave_up_told = False
        self._exit_seen: float | None = None  # monotonic time the exit was first noticed
        self._lock = threading.RLock()
        atexit.register(self.stop)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "seqcopy.ui.local_worker", "--parent-pid", str(os.getpid())]

    def start(self) -> None:
        env = dict(os.environ, SEQCOPY_DB=self.url)  # not argv: ps shows argv to every user
        # The app may run from anywhere; the worker must import this very seqcopy.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        with self._lock:
            self.process = subprocess.Popen(self.command(), cwd=os.getcwd(), env=env, stdin=subprocess.DEVNULL)
            self.starts += 1

    def restart(self) -> None:
        """A person's Restart: a fresh start, and a fresh count of restarts of its own."""
        with self._lock:
            self._restarts.clear()
            self._gave_up_told = False
            if not self.alive():
                self.start()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def worker_id(self) -> str | None:
        """The id its worker registers under (seqcopy.runs.store.worker_name, in the child)."""
        return f"{socket.gethostname()}:{self.pid}" if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def supervise(self, queued: bool, now: float | None = None) -> Supervision:
        """Start the worker again if it exited while ``queued`` (runs wait in the queue), at most
        ``limit`` times within ``window`` seconds; a worker that exited with nothing queued is
        left until a run is. Every restart, and the giving up, is logged."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._restarts and now - self._restarts[0] > self.window:
                self._restarts.popleft()
            if self.alive() or self.process is None:
                return Supervision(len(self._restarts), self.limit)
            code = self.process.returncode
            if not queued:
                return Supervision(len(self._restarts), self.limit, exit_code=code)
            if len(self._restarts) >= self.limit:
                if not self._gave_up_told:
                    log.warning("seqcopy local worker (pid %s) exited with code %s while runs are queued; "
                                "not restarting it: it was restarted %d times in %.0f s already",
                                self.pid, code, len(self._restarts), self.window)
                    self._gave_up_told = True
                return Supervision(len(self._restarts), self.limit, gave_up=True, exit_code=code)
            if self._exit_seen is None:
                self._exit_seen = now
            if now - self._exit_seen < self.delay:
                return Supervision(len(self._restarts), self.limit, exit_code=code)
            self._exit_seen = None
            old = self.pid
            self.start()
            self._restarts.append(now)
            log.warning("seqcopy local worker (pid %s) exited with code %s while runs are queued; restarted it "
                        "as pid %s (%d of at most %d in %.0f s)", old, code, self.pid, len(self._restarts),
                        self.limit, self.window)
            return Supervision(len(self._restarts), self.limit, restarted=True)

    def stop(self, wait: float = 5.0) -> None:
        """SIGTERM (the worker records the current epoch and stops); SIGKILL if it lingers."""
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(wait)
        except subprocess.TimeoutExpired:
            pass  # it is finishing an epoch; its parent watch ends it once we are gone


if __name__ == "__main__":
    sys.exit(main())
