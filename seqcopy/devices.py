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

GPUS = ("cuda", "mps")  # best first
DEVICE_NAMES = {"cpu": "CPU", "cuda": "CUDA", "mps": "MPS (Apple GPU)", "auto": "any"}


def device_problem(device: str) -> str | None:
    """Why the known device name ``device`` cannot be used on this machine, or None."""
    if device not in ("cuda", "mps"):
        return None  # the CPU is always there, and 'auto' takes what is
    import torch  # only here, and only for a GPU: the store, the listing commands and the form need no torch

    if device == "cuda" and not torch.cuda.is_available():
        return "no CUDA device is available on this machine"
    if device == "mps" and not torch.backends.mps.is_available():
        return "no MPS (Apple GPU) device is available on this machine"
    return None


def resolve_device(device: str) -> str:
    """'auto' → the best device present; any other name as it is."""
    if device != "auto":
        return device
    return present()[0]


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
