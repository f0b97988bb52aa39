"""The plan of ``seqcopy ray``: plain data, free of Ray, so the command line checks it before Ray is
imported and :mod:`seqcopy.runs.ray_workers` carries it out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RayPlan:
    """What ``seqcopy ray`` was asked for, checked by the command line before Ray is imported
    (seqcopy.runs.ray_workers.launch carries it out)."""

    address: str
    url: str
    shown_url: str  # the URL with its password masked, to print
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    device: str
    lease: float
    idle_exit: float | None
