"""Which runs a worker can serve: the devices it trains on, and where an 'auto' run goes.

A run asks for a device in its config (cpu, cuda, mps or auto). A worker claims only the runs
whose device it serves, so a CPU-only machine never takes a run queued for a GPU and fails it;
such a run waits for a worker that serves its device. An 'auto' run is served by every worker
and trains on that worker's best device, which the claim records (runs.device_used).

``worker --device``:
- ``auto`` (the default): whatever this machine has: CUDA and/or MPS when present, and the CPU
  always; 'auto' runs go to the best (CUDA, else MPS, else the CPU);
- ``cuda``, ``mps``: that GPU only (with 'auto' runs), so a GPU is never busy with a CPU run;
- ``cpu``: CPU runs (and 'auto' runs, on the CPU), even on a machine with a GPU.
"""

from __future__ import annotations

from .config import device_problem

GPUS = ("cuda", "mps")  # best first
DEVICE_NAMES = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS (Apple GPU)", "auto": "any"}


class DeviceUnavailable(ValueError):
    """The device a worker was told to serve is not on this machine."""


def present() -> tuple[str, ...]:
    """The devices of this machine, best first; the CPU always (imports torch for the GPUs)."""
    return (*(gpu for gpu in GPUS if device_problem(gpu) is None), "cpu")


def serving(choice: str) -> tuple[str, tuple[str, ...]]:
    """(the device 'auto' runs train on, the devices whose runs are claimed) of a worker told
    ``--device choice``; DeviceUnavailable for a GPU this machine lacks."""
    if choice == "auto":
        devices = present()
        return devices[0], devices
    if choice not in (*GPUS, "cpu"):
        raise DeviceUnavailable(f"unknown device {choice!r}: cpu, cuda, mps or auto")
    problem = device_problem(choice)
    if problem:
        raise DeviceUnavailable(problem)
    return choice, (choice,)


def can_serve(requested: str, serves: tuple[str, ...]) -> bool:
    """Whether a worker serving ``serves`` claims a run that asks for ``requested``."""
    return requested == "auto" or requested in serves
