"""The dashboard's own worker: ``seqcopy worker`` that also stops when its app is gone.

The app starts one of these per server process (``state.ensure_local_worker``). It is the
ordinary :class:`seqcopy.runs.worker.Worker`; the only addition is a thread that watches the app's
process and, once it has died (even by SIGKILL, when no atexit handler runs), asks the worker
to stop after the current epoch, then exits for good after a grace period. Usage:

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
import subprocess
import sys
import threading
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STOP_GRACE_S = 30.0  # after the app died: time to record the current epoch before a hard exit


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


class LocalWorker:
    """Handle on the worker process the app started."""

    def __init__(self, url: str):
        self.url = url
        self.process: subprocess.Popen | None = None
        self.starts = 0
        atexit.register(self.stop)

    def start(self) -> None:
        env = dict(os.environ, SEQCOPY_DB=self.url)  # not argv: ps shows argv to every user
        # The app may run from anywhere; the worker must import this very seqcopy.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "seqcopy.ui.local_worker", "--parent-pid", str(os.getpid())],
            cwd=os.getcwd(), env=env, stdin=subprocess.DEVNULL,
        )
        self.starts += 1

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

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
