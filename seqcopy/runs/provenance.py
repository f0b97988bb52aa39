"""What made a run: the code, the libraries, the thread count and the hardware of each segment it
trained (a resumed run has one segment per worker that went on with it).

A worker records its segment as it starts training (Store.add_environment); pages and reports read
it back as lines (:func:`provenance_lines`) and compare runs on it (:func:`code_and_libraries`).
Git is asked once per process, with a short timeout, and only when the package sits in a checkout:
an installed seqcopy records its version alone.
"""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
from pathlib import Path

UNKNOWN = "unknown"
GIT_TIMEOUT = 2.0  # seconds: a slow or locked repository must not hold up a run
# What says whether two runs ran the same code and libraries (the report flags a group that differs).
CODE_AND_LIBRARIES = ("seqcopy", "git_commit", "git_dirty", "torch", "numpy", "python")


def _git(*args: str) -> str | None:
    """git's output in the package's folder, or None (not a checkout, no git, too slow)."""
    folder = Path(__file__).resolve().parent
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=GIT_TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@functools.cache
def code_version() -> dict:
    """seqcopy's version, and the git commit with whether the checkout had changes (None each
    when it is not a checkout): the same for the whole process."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("seqcopy")
    except PackageNotFoundError:
        own = None
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"seqcopy": own, "git_commit": commit.strip() if commit else None,
            "git_dirty": None if status is None else bool(status.strip())}


@functools.cache
def cpu_model() -> str | None:
    """The CPU's model name (Linux's /proc/cpuinfo, else the platform's word), or None."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def environment(from_epoch: int, device: str, worker_id: str | None = None) -> dict:
    """This process's segment entry: the epoch it goes on from (0 for a run from its start), the
    code and libraries, torch's thread count now, the CPU, the GPU (for a run on one) and host."""
    import numpy
    import torch

    gpu = None
    if str(device).startswith("cuda") and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(torch.device(device))
    return {"from_epoch": int(from_epoch), **code_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "threads": torch.get_num_threads(), "device": str(device),
            "cpu": cpu_model(), "gpu": gpu, "host": socket.gethostname(), "worker": worker_id}


def code_and_libraries(segment: dict) -> tuple:
    """What two segments must share to have run the same code with the same libraries."""
    return tuple(segment.get(name) for name in CODE_AND_LIBRARIES)


def _code(segment: dict) -> str:
    commit = segment.get("git_commit")
    version = segment.get("seqcopy") or UNKNOWN
    if not commit:
        return f"seqcopy {version} (no git checkout)"
    return f"seqcopy {version} (commit {commit[:10]}{', with uncommitted changes' if segment.get('git_dirty') else ''})"


def segment_line(segment: dict, until: int | None = None) -> str:
    """One segment as a person reads it: 'epochs 1–4: seqcopy 0.1.0 (commit 1a2b3c4d5e), torch
    2.5.1, numpy 2.1.3, Python 3.12.7, 1 thread, cpu (AMD EPYC 7B13), on box3'."""
    start = int(segment.get("from_epoch") or 0) + 1
    span = f"epochs {start}–{until}" if until is not None and until > start else (
        f"epoch {start}" if until == start else f"from epoch {start}")
    threads = segment.get("threads")
    hardware = segment.get("gpu") or segment.get("cpu") or UNKNOWN
    words = [_code(segment), f"torch {segment.get('torch') or UNKNOWN}", f"numpy {segment.get('numpy') or UNKNOWN}",
             f"Python {segment.get('python') or UNKNOWN}",
             f"{threads} thread{'s' if threads != 1 else ''}" if threads else f"threads {UNKNOWN}",
             f"{segment.get('device') or UNKNOWN} ({hardware})", f"on {segment.get('host') or UNKNOWN}"]
    line = f"{span}: " + ", ".join(words)
    if segment.get("exact") is False:
        line += f"; {segment.get('exact_note') or 'these epochs agree with the run left alone to rounding only'}"
    return line


def provenance_lines(run) -> list[str]:
    """What made the run, one line per segment it trained (a RunInfo, or anything with
    ``environments`` and ``epochs_done``); one 'unknown' line for a run recorded before seqcopy
    kept it, or not started yet."""
    segments = list(getattr(run, "environments", None) or ())
    if not segments:
        return [f"environment: {UNKNOWN} (not recorded: trained before seqcopy kept it, or not started)"]
    done = getattr(run, "epochs_done", None)
    lines = []
    for index, segment in enumerate(segments):
        after = segments[index + 1] if index + 1 < len(segments) else None
        until = int(after.get("from_epoch") or 0) if after is not None else done
        lines.append(segment_line(segment, until))
    return lines


def differs(runs) -> str | None:
    """A note when runs (RunInfo) ran different code or libraries, for a report row that pools
    them; None when every recorded segment agrees (runs with nothing recorded are not counted)."""
    kinds = {code_and_libraries(segment) for run in runs for segment in (getattr(run, "environments", None) or ())}
    if len(kinds) <= 1:
        return None
    names = [name for index, name in enumerate(CODE_AND_LIBRARIES) if len({kind[index] for kind in kinds}) > 1]
    labels = dict.fromkeys("code" if name.startswith("git") else name for name in names)
    return "runs differ in " + ", ".join(labels)


def environment_rows(run) -> dict[str, str]:
    """The run's first segment as the rows of a config diff: code, libraries, threads, hardware
    ('unknown' for a run recorded before seqcopy kept them)."""
    segments = list(getattr(run, "environments", None) or ())
    if not segments:
        return dict.fromkeys(("code", "libraries", "threads", "hardware"), UNKNOWN)
    first = segments[0]
    return {
        "code": _code(first),
        "libraries": f"torch {first.get('torch') or UNKNOWN}, numpy {first.get('numpy') or UNKNOWN}, "
                     f"Python {first.get('python') or UNKNOWN}",
        "threads": str(first.get("threads") or UNKNOWN),
        "hardware": f"{first.get('device') or UNKNOWN} ({first.get('gpu') or first.get('cpu') or UNKNOWN})",
    }

