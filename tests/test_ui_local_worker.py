"""The dashboard's local worker trains queued runs and does not outlive the app that started it,
even when the app is killed outright (no atexit handler runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from seqcopy.runs.store import Store

ROOT = Path(__file__).resolve().parents[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_the_local_worker_trains_and_exits_when_the_app_is_killed(tmp_path):
    database = f"sqlite:///{tmp_path / 'runs.db'}"
    store = Store(database)
    from ui_store import TINY

    run_id = store.submit(TINY.replace(epochs=1, train_samples=32, test_samples=8))
    # A stand-in for the app: starts the local worker the way the app does, prints its pid, waits.
    app = textwrap.dedent(f"""
        import sys, time
        from seqcopy.ui.local_worker import LocalWorker
        worker = LocalWorker({database!r})
        worker.start()
        print(worker.pid, flush=True)
        time.sleep(120)
    """)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    parent = subprocess.Popen([sys.executable, "-c", app], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        worker_pid = int(parent.stdout.readline())
        deadline = time.monotonic() + 60
        while store.get_run(run_id).status != "completed" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert store.get_run(run_id).status == "completed"
        parent.send_signal(signal.SIGKILL)  # no atexit: only the worker's own watch can end it
        parent.wait(10)
        deadline = time.monotonic() + 15
        while alive(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(worker_pid)
    finally:
        if parent.poll() is None:
            parent.kill()
