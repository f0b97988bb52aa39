"""``seqcopy ray``: the same workers as Ray actors, placed on an existing Ray cluster.

Ray only places processes; the runs store stays the one source of truth. Each actor runs the
ordinary :class:`seqcopy.worker.Worker` loop against the shared PostgreSQL store: it claims the
runs its device serves, records every epoch, and exits once the queue has stayed empty for
``--idle-exit`` seconds, so an autoscaling cluster shrinks again. Each actor asks Ray for
``--cpus-per-worker`` CPUs and ``--gpus-per-worker`` GPUs, so Ray puts GPU workers on GPU nodes
(and hides the GPUs from a worker that asked for none).

The command prints where each worker went and waits for them. Ctrl-C (SIGINT) or SIGTERM (``ray
job stop``) asks every actor to stop as a signal stops a plain worker: it finishes the epoch in
progress, records it and marks its run ``cancelled``, epochs and checkpoint kept; a second signal
stops at the next batch. An actor the cluster kills (a lost node, a preempted machine) stops
beating, and its run is taken back by the lease as for any dead worker.

This module is the only one that imports Ray, and only ``seqcopy ray`` imports it.
"""

from __future__ import annotations

import logging
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass

import ray

from .errors import InputError
from .store import open_store
from .worker import Worker

PLACEMENT_PATIENCE_S = 30.0  # then say which workers still wait for a node with room
PROBE_TIMEOUT_S = 5.0


class ClusterUnreachable(InputError):
    """No Ray cluster answers at the address given."""


@dataclass(frozen=True)
class Plan:
    """What ``seqcopy ray`` was asked for, checked by the command line."""

    address: str
    url: str
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    device: str
    lease: float
    idle_exit: float | None


class WorkerActor:
    """One seqcopy worker in a Ray actor process. ``run`` holds one of the actor's two threads
    for the worker's whole life; ``stop`` and ``where`` are answered on the other."""

    def __init__(self, url: str, lease: float, device: str, threads: int):
        import torch

        torch.set_num_threads(threads)
        context = ray.get_runtime_context()
        self.node_id = context.get_node_id()
        self.node_ip = ray.util.get_node_ip_address()
        self.gpus = [str(gpu) for gpu in ray.get_gpu_ids()]
        self.store = open_store(url)
        origin = f"ray node {self.node_ip} ({self.node_id[:8]})"
        self.worker = Worker(self.store, lease=lease, device=device, origin=origin)

    def where(self) -> dict:
        return {
            "worker_id": self.worker.worker_id, "host": socket.gethostname(), "node_ip": self.node_ip,
            "node_id": self.node_id, "gpus": self.gpus, "serves": list(self.worker.serves),
        }

    def run(self, idle_exit: float | None) -> int:
        try:
            return self.worker.run(idle_exit=idle_exit)
        finally:
            self.store.close()

    def stop(self) -> None:
        self.worker.stop()


def probe(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """ClusterUnreachable unless something listens at ``address`` (host:port, or ray://host:port).
    Ray itself retries an unreachable address for minutes; 'auto' is left to Ray, which answers
    at once when no cluster runs here."""
    if address in ("", "auto", "local"):
        return
    hostport = address.removeprefix("ray://").rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdecimal():
        raise ClusterUnreachable(f"--address: expected HOST:PORT, ray://HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ClusterUnreachable(f"no Ray cluster answers at {address} ({reason})") from None


def connect(address: str) -> None:
    probe(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
    except Exception as error:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError…
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ClusterUnreachable(f"cannot connect to a Ray cluster at {address!r}: {first}") from None


def _reason(error: BaseException) -> str:
    """Why an actor ended, on one line: Ray's errors hold a whole traceback, whose last
    'SomethingError: …' line is the cause (e.g. seqcopy not installed on that node)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Exit)\b.*:", line)]
    text = (causes or lines or [""])[-1 if causes else 0]
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


class Signals:
    """Counts SIGINT/SIGTERM while the workers run (the first stops them cleanly, the second
    hurries them); the handlers before are put back by :meth:`restore`."""

    def __init__(self):
        self.count = 0
        self._before = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _on_signal(self, _signum, _frame) -> None:
        self.count += 1

    def restore(self) -> None:
        for sig, handler in self._before.items():
            signal.signal(sig, handler)


def launch(plan: Plan, out=sys.stdout) -> int:
    """Start the workers on the cluster, report where they went, and wait for them; 0 when every
    worker ended by itself or by a signal, 1 when the cluster lost one (its run is taken back by
    the lease)."""
    connect(plan.address)
    try:
        return _supervise(plan, out)
    finally:
        ray.shutdown()


def _say(out, line: str) -> None:
    print(line, file=out, flush=True)


def _supervise(plan: Plan, out) -> int:
    gpus = f", {plan.gpus_per_worker:g} GPU" if plan.gpus_per_worker else ""
    threads = max(1, int(plan.cpus_per_worker))
    actor_class = ray.remote(WorkerActor).options(
        num_cpus=plan.cpus_per_worker, num_gpus=plan.gpus_per_worker, max_concurrency=2, max_restarts=0,
    )
    started = time.monotonic()
    actors = [actor_class.remote(plan.url, plan.lease, plan.device, threads) for _ in range(plan.workers)]
    _say(out, f"seqcopy ray: {plan.workers} worker(s) asked of the cluster, {plan.cpus_per_worker:g} CPU{gpus} "
              f"each, serving {plan.device} runs (Ctrl-C stops them after their epoch)")
    placing = {actor.where.remote(): number for number, actor in enumerate(actors, 1)}
    running = {actor.run.remote(plan.idle_exit): number for number, actor in enumerate(actors, 1)}
    names = {number: f"worker {number}" for number in range(1, plan.workers + 1)}
    signals, stops_sent, warned, lost = Signals(), 0, False, 0
    try:
        while running:
            ready, _ = ray.wait([*placing, *running], num_returns=1, timeout=0.5)
            for ref in ready:
                if ref in placing:
                    number = placing.pop(ref)
                    try:
                        where = ray.get(ref)
                    except Exception:  # noqa: BLE001 - the same error ends its run; reported there
                        continue
                    names[number] = f"worker {number} ({where['worker_id']})"
                    gpu_ids = f", GPU {','.join(where['gpus'])}" if where["gpus"] else ""
                    _say(out, f"{names[number]}: on {where['host']}, node {where['node_ip']} "
                              f"({where['node_id'][:8]}){gpu_ids}, serves {','.join(where['serves'])}, "
                              f"placed after {time.monotonic() - started:.1f} s")
                else:
                    number = running.pop(ref)
                    try:
                        done = ray.get(ref)
                        _say(out, f"{names[number]}: stopped after {done} run(s)")
                    except Exception as error:  # noqa: BLE001 - killed by the cluster, or never started
                        lost += 1
                        placing = {r: n for r, n in placing.items() if n != number}
                        _say(out, f"{names[number]}: lost ({_reason(error)}); a run it held is taken "
                                  "back when its lease lapses")
            if signals.count > stops_sent:
                if stops_sent == 0:
                    _say(out, "seqcopy ray: stopping the workers: each records its epoch in progress and marks "
                              "its run cancelled (Ctrl-C again: stop at the next batch)")
                # A worker's first stop finishes its epoch, a second one stops at the next batch.
                for _ in range(min(2, signals.count) - min(2, stops_sent)):
                    for number in running.values():
                        actors[number - 1].stop.remote()
                stops_sent = signals.count
            if placing and not warned and time.monotonic() - started > PLACEMENT_PATIENCE_S:
                warned = True
                waiting = ", ".join(str(n) for n in sorted(placing.values()))
                _say(out, f"seqcopy ray: worker(s) {waiting} still wait for a node with {plan.cpus_per_worker:g} "
                          f"free CPU{gpus} (an autoscaler may add one)")
    finally:
        signals.restore()
    return 1 if lost else 0
