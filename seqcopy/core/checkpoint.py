"""Checkpoints: a model's state_dict with its RunConfig, as bytes or a file.

Loading always uses ``torch.load(weights_only=True)``: a checkpoint is data, never code. Anything
that is not a checkpoint of ours raises :class:`CheckpointError` with one line saying why.
"""

from __future__ import annotations

import io
import os
import re
import stat
import warnings
from pathlib import Path

import torch

from seqcopy.config import CELL_NAMES, MAX_EMBEDDING, MAX_HIDDEN, MULT_FORMS, RunConfig
from seqcopy.core.init import initialise
from seqcopy.core.model import CopyModel
from seqcopy.costs import parameter_count
from seqcopy.errors import InputError

FORMAT = 1
PARTIAL_SUFFIX = ".partial"  # save_file writes NAME.pth.partial, then renames it
# The largest checkpoint a run within the caps can write is its float32 weights and a little
# more (the config, the zip's index); a file larger than a generous multiple of that is none of
# ours, and is refused before it is read (load_file).
LARGEST_WEIGHTS_BYTES = 4 * max(parameter_count(cell, MAX_EMBEDDING, MAX_HIDDEN, form)
                                for cell in CELL_NAMES for form in MULT_FORMS)
MAX_FILE_BYTES = 4 * LARGEST_WEIGHTS_BYTES + 2**24


class CheckpointError(InputError, ValueError):
    """A file or blob that is not a loadable seqcopy checkpoint."""


def first_line(error: Exception) -> str:
    text = str(error)
    if text.startswith("Weights only load failed") or "WeightsUnpickler error:" in text:
        text = "weights_only=True refused it" + _weights_only_reason(error, text)
    text = re.sub(r"\x1b\[[0-9;]*m|[\x00-\x1f\x7f]", "", text.strip().splitlines()[0] if text.strip() else "")
    return text[:160] or type(error).__name__


def _weights_only_reason(error: Exception, text: str) -> str:
    """': REASON' from torch's weights_only refusal, or ''. The refusal is a page of advice (with
    terminal escapes), the unpickler's reason somewhere in it: after "WeightsUnpickler error:",
    or after the advice alone (a blocked module such as os). torch raises it ``from None``, so
    the unpickler's own error, the reason and nothing else, is still its context."""
    reason = str(error.__context__ or "").strip()
    if not reason:
        found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
        reason = found.group(1) if found else ""
    return f": {reason.split('. ')[0].rstrip('.')}" if reason else ""


def build_model(config: RunConfig, initialised: bool = True) -> CopyModel:
    """A freshly initialised model for ``config`` (seed torch's generator first); with
    ``initialised=False`` the scheme is skipped, for weights about to be loaded."""
    model = CopyModel(
        config.cell,
        embedding_size=config.embedding_size,
        hidden_size=config.hidden_size,
        fused=config.fused,
        mult_form=config.mult_form,  # a config stored before the choice existed reads as Krause's
        norm_m=config.norm_m,
    )
    if initialised:
        initialise(model, config.init, forget_bias=config.forget_bias, delay_factor=config.delay_factor,
                   span=config.train_length)
    return model


def to_bytes(model: CopyModel, config: RunConfig) -> bytes:
    return weights_to_bytes(model.state_dict(), config)


def weights_to_bytes(state_dict: dict, config: RunConfig) -> bytes:
    """Checkpoint bytes of a model's state_dict (a live model's, or one a resume state holds)."""
    buffer = io.BytesIO()
    state = {name: tensor.detach().cpu() for name, tensor in state_dict.items()}
    torch.save({"format": FORMAT, "config": config.to_dict(), "state_dict": state}, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes) -> tuple[CopyModel, RunConfig]:
    """Rebuild the model (on the CPU, in eval mode) and its config from checkpoint bytes."""
    try:
        with warnings.catch_warnings():  # torch warns on stderr of a foreign pickle protocol: the error says enough
            warnings.simplefilter("ignore")
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for foreign or truncated files
        raise CheckpointError(f"not a readable checkpoint ({first_line(error)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError("not a seqcopy checkpoint (missing or unknown format marker)")
    try:
        config = RunConfig.from_dict(payload["config"])
        # Validate before building: a crafted config could ask for terabytes. The device is
        # not checked, so a model trained on a GPU loads on a CPU-only machine.
        problems = config.validate(check_device=False)
        if problems:
            field, message = next(iter(problems.items()))
            raise CheckpointError(f"checkpoint holds an invalid config ({field}: {message})")
        model = build_model(config, initialised=False)
        model.load_state_dict(payload["state_dict"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"checkpoint does not match its config: {first_line(error)}") from None
    return model.eval(), config


def temporary_path(path: str | Path) -> Path:
    """Where :func:`save_file` writes ``path`` before renaming it: ``NAME.pth.partial``, the
    longest name an experiment folder holds (seqcopy.cli.log_folder checks it before training)."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def save_file(path: str | Path, model: CopyModel, config: RunConfig) -> Path:
    """Write the checkpoint to ``path`` whole or not at all: an OSError (a full disk) leaves no
    partial file behind, and never a half-written checkpoint under the real name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        temporary.write_bytes(to_bytes(model, config))
        temporary.replace(path)
    except OSError:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass  # the first fault is the one to report
        raise
    return path


def load_file(path: str | Path) -> tuple[CopyModel, RunConfig]:
    """The model and config of a checkpoint file. Only a regular file is read, and at most
    :data:`MAX_FILE_BYTES` of it: a FIFO would block for ever and /dev/zero never ends."""
    try:
        data = _read_regular_file(Path(path), MAX_FILE_BYTES)
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror or error}") from None
    return from_bytes(data)


def _read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, if it is a regular file of at most ``limit`` bytes; CheckpointError
    otherwise. It is opened without blocking (opening a FIFO waits for a writer) and checked
    again once open, so a file swapped in between is caught too."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):  # before opening: opening a device may act on it
        raise CheckpointError(f"{path} is {_kind(mode)}, not a checkpoint file")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    with os.fdopen(os.open(path, flags), "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(f"{path} is {_kind(info.st_mode)}, not a checkpoint file")
        if info.st_size > limit:
            raise CheckpointError(f"{path} is {info.st_size / 2**20:,.0f} MiB, larger than any checkpoint "
                                  f"(at most {limit / 2**20:,.0f} MiB)")
        data = file.read(limit + 1)  # a file that grows while it is read is cut off here
    if len(data) > limit:
        raise CheckpointError(f"{path} is larger than any checkpoint (at most {limit / 2**20:,.0f} MiB)")
    return data


def _kind(mode: int) -> str:
    """What a file that is not a regular one is, for a message."""
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"
