"""``seqcopy ray``: the same workers as Ray actors, placed on an existing Ray cluster.

Ray only places processes; the runs store stays the one source of truth. Each actor runs the
ordinary :class:`seqcopy.runs.worker.Worker` loop against the shared PostgreSQL store: it claims the
runs its device serves, records every epoch, and exits once the queue has stayed empty for
``--idle-exit`` seconds, so an autoscaling cluster shrinks again. Each actor asks Ray for
``--cpus-per-worker`` CPUs and ``--gpus-per-worker`` GPUs, so Ray puts GPU workers on GPU nodes
(and hides the GPUs from a worker that asked for none).

The command prints where each worker went and waits for them. Ctrl-C (SIGINT) or SIGTERM (``ray
job stop``) asks every actor to stop as a signal stops a plain worker: it finishes the epoch in
progress, records it with the run's resume state and puts the run back in the queue, to be resumed
by the next free worker; a second signal stops at the next batch. An actor the cluster kills (a
lost node, a preempted machine) stops beating, and its run is taken back by the lease as for any
dead worker: queued again, and another actor resumes it from its last epoch (up to --max-restarts).

This module is the only one that imports Ray, and only ``seqcopy ray`` imports it, once its
flags and store have been checked (seqcopy.cli.RayPlan).
"""

from __future__ import annotations

import logging
import re
import socket
import sys
import time
from typing import TYPE_CHECKING

import ray

from seqcopy.errors import InputError
from seqcopy.runs.store import open_store
from seqcopy.runs.worker import StopSignals, Worker

if TYPE_CHECKING:
    from seqcopy.runs.ray_plan import RayPlan

PLACEMENT_PATIENCE_S = 30.0  # then say which workers still wait for a node with room
PROBE_TIMEOUT_S = 5.0


class ClusterUnreachable(InputError):
    """No Ray cluster answers at the address given."""


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


def launch(plan: RayPlan, out=sys.stdout) -> int:
    """Start the workers on the cluster, report where they went, and wait for them; 0 when every
    worker ended by itself or by a signal, 1 when the cluster lost one (its run is taken back by
    the lease)."""
    signals = StopSignals().install()  # from the start: a Ctrl-C while connecting stops here
    try:
        connect(plan.address)
        try:
            if signals.count:  # Ctrl-C while connecting: start no worker only to stop it
                print("seqcopy ray: stopped before any worker started", file=out, flush=True)
                return 0
            return Supervisor(plan, out).wait(signals)
        finally:
            ray.shutdown()
    finally:
        signals.restore()


class Supervisor:
    """The driver's side: the actors, which of them Ray has placed, and which still run."""

    def __init__(self, plan: RayPlan, out):
        self.plan, self.out = plan, out
        self.started = time.monotonic()
        actor_class = ray.remote(WorkerActor).options(
            num_cpus=plan.cpus_per_worker, num_gpus=plan.gpus_per_worker, max_concurrency=2, max_restarts=0,
        )
        threads = max(1, int(plan.cpus_per_worker))
        self.actors = [actor_class.remote(plan.url, plan.lease, plan.device, threads) for _ in range(plan.workers)]
        self.resources = f"{plan.cpus_per_worker:g} CPU" + (
            f", {plan.gpus_per_worker:g} GPU" if plan.gpus_per_worker else ""
        )
        self.say(f"seqcopy ray: {plan.workers} worker(s) asked of the cluster, {self.resources} each, serving "
                 f"{plan.device} runs of {plan.shown_url} (Ctrl-C stops them after their epoch)")
        self.placing = {actor.where.remote(): number for number, actor in enumerate(self.actors, 1)}
        self.running = {actor.run.remote(plan.idle_exit): number for number, actor in enumerate(self.actors, 1)}
        self.names = {number: f"worker {number}" for number in range(1, plan.workers + 1)}
        self.never_placed: set[int] = set()
        self.lost = 0

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def wait(self, signals: StopSignals) -> int:
        stops_sent, warned = 0, False
        while self.running:
            ready, _ = ray.wait([*self.placing, *self.running], num_returns=1, timeout=0.5)
            for ref in ready:
                if ref in self.placing:
                    self._placed(self.placing.pop(ref), ref)
                else:
                    self._ended(self.running.pop(ref), ref)
            if signals.count > stops_sent:
                self._stop(first=stops_sent == 0, times=min(2, signals.count) - min(2, stops_sent))
                stops_sent = signals.count
            if self.placing and not warned and time.monotonic() - self.started > PLACEMENT_PATIENCE_S:
                warned = True
                waiting = ", ".join(str(n) for n in sorted(self.placing.values()))
                self.say(f"seqcopy ray: worker(s) {waiting} still wait for a node with {self.resources} free "
                         "(an autoscaler may add one)")
        return 1 if self.lost else 0

    def _placed(self, number: int, ref) -> None:
        try:
            where = ray.get(ref)
        except Exception:  # noqa: BLE001 - the same error ends its run, reported there
            return
        self.names[number] = f"worker {number} ({where['worker_id']})"
        gpus = f", GPU {','.join(where['gpus'])}" if where["gpus"] else ""
        self.say(f"{self.names[number]}: on {where['host']}, node {where['node_ip']} ({where['node_id'][:8]}){gpus}, "
                 f"serves {','.join(where['serves'])}, placed after {time.monotonic() - self.started:.1f} s")

    def _ended(self, number: int, ref) -> None:
        try:
            self.say(f"{self.names[number]}: stopped after {ray.get(ref)} run(s)")
        except Exception as error:  # noqa: BLE001 - killed by the cluster, or it could not start
            self.placing = {r: n for r, n in self.placing.items() if n != number}
            if number in self.never_placed:
                self.say(f"{self.names[number]}: never placed, given up")
                return
            self.lost += 1
            self.say(
                f"{self.names[number]}: lost ({_reason(error)}); a run it held is taken back when its lease lapses"
            )

    def _stop(self, first: bool, times: int) -> None:
        """Each running worker's stop(), ``times`` times (the first finishes its epoch, a second
        stops at the next batch); workers Ray has not placed yet hold no run and are given up.
        A worker whose placement the driver has not read yet may be placed already, and hold a
        run: its answer is read first, so it is stopped like the others, not killed."""
        if first:
            self.say("seqcopy ray: stopping the workers: each records its epoch in progress and puts its run "
                     "back in the queue to resume (Ctrl-C again: stop at the next batch)")
            if self.placing:
                placed, _ = ray.wait(list(self.placing), num_returns=len(self.placing), timeout=0)
                for ref in placed:
                    self._placed(self.placing.pop(ref), ref)
            for number in self.placing.values():
                self.never_placed.add(number)
                ray.kill(self.actors[number - 1])
        for _ in range(times):
            for number in self.running.values():
                if number not in self.never_placed:
                    self.actors[number - 1].stop.remote()
