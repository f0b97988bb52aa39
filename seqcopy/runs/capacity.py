"""The capacity there is: the registered workers as rows to show (``seqcopy workers`` and the
Launch page print the same), and why a queued run waits.

Pure functions of :class:`seqcopy.runs.store.WorkerInfo` lists and a time: no database, no torch.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from seqcopy.devices import DEVICE_NAMES, can_serve
from seqcopy.runs.states import WorkerPresence
from seqcopy.runs.store import WorkerInfo

RECENT_S = 24 * 3600  # workers that stopped or vanished longer ago are left out unless asked for
STATES = tuple(WorkerPresence)  # the order they are listed in


def ago(seconds: float) -> str:
    """'4 s', '3 min', '2.5 h', '3 d': how long since."""
    seconds = max(0.0, seconds)
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


def worker_rows(workers: Sequence[WorkerInfo], now: float | None = None) -> list[dict]:
    """One dict a worker, live ones first (then vanished, then stopped), newest first within."""
    now = time.time() if now is None else now
    rows = [
        {
            "worker": w.id, "state": w.state(now), "device": w.device, "serves": w.serves,
            "threads": w.threads, "origin": w.origin or "", "run": w.run_id, "runs_done": w.runs_done,
            "started_at": w.started_at, "heartbeat_at": w.heartbeat_at,
            "last_seen_s": round(now - w.heartbeat_at, 1), "stopped_at": w.stopped_at,
        }
        for w in workers
    ]
    return sorted(rows, key=lambda row: (STATES.index(row["state"]), -row["started_at"]))


def summary(workers: Sequence[WorkerInfo], now: float | None = None) -> str:
    """'3 live workers (2 CPU, 1 CUDA), 2 busy · 1 vanished · 4 stopped'."""
    now = time.time() if now is None else now
    states = Counter(w.state(now) for w in workers)
    live = [w for w in workers if w.state(now) == WorkerPresence.LIVE]
    devices = Counter(w.device for w in live)
    kinds = ", ".join(f"{count} {DEVICE_NAMES.get(device, device)}" for device, count in sorted(devices.items()))
    busy = sum(1 for w in live if w.run_id is not None)
    parts = [f"{len(live)} live worker{'s' if len(live) != 1 else ''}" + (f" ({kinds}), {busy} busy" if live else "")]
    parts += [f"{states[state]} {state}" for state in (WorkerPresence.VANISHED, WorkerPresence.STOPPED)
              if states[state]]
    return " · ".join(parts)


def waiting_reason(device: str, workers: Sequence[WorkerInfo], now: float | None = None) -> str:
    """Why a run queued for ``device`` is not running yet, from the live workers' devices."""
    now = time.time() if now is None else now
    live = [w for w in workers if w.state(now) == WorkerPresence.LIVE]
    if not live:
        return "waiting for a worker: none is live"
    able = [w for w in live if can_serve(device, w.devices)]
    if not able:
        name = DEVICE_NAMES.get(device, device)
        served = ", ".join(sorted({d for w in live for d in w.devices}))
        serve = "s serve" if len(live) != 1 else " serves"
        return f"waiting for a {name} worker (the {len(live)} live one{serve} {served})"
    if all(w.run_id is not None for w in able):
        return f"waiting for a free worker ({len(able)} that can run it, all busy)"
    return "next in line for a free worker"
