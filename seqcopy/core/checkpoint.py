"""Checkpoints: a model's state_dict with its RunConfig, as bytes or a file.

Loading always uses ``torch.load(weights_only=True)``: a checkpoint is data, never code. Anything
that is not a checkpoint of ours raises :class:`CheckpointError` with one line saying why.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import torch

from seqcopy.config import RunConfig
from seqcopy.core.init import initialise
from seqcopy.core.model import CopyModel
from seqcopy.errors import InputError

FORMAT = 1


class CheckpointError(InputError, ValueError):
    """A file or blob that is not a loadable seqcopy checkpoint."""


def _first_line(error: Exception) -> str:
    text = str(error)
    # torch's weights_only refusal is a page of advice (with terminal escapes); its reason is
    # the line after "WeightsUnpickler error:".
    reason = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
    if reason:
        text = f"weights_only=True refused it: {reason.group(1).split('. ')[0]}"
    text = re.sub(r"\x1b\[[0-9;]*m|[\x00-\x1f\x7f]", "", text.strip().splitlines()[0] if text.strip() else "")
    return text[:160] or type(error).__name__


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
    buffer = io.BytesIO()
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    torch.save({"format": FORMAT, "config": config.to_dict(), "state_dict": state}, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes) -> tuple[CopyModel, RunConfig]:
    """Rebuild the model (on the CPU, in eval mode) and its config from checkpoint bytes."""
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for foreign or truncated files
        raise CheckpointError(f"not a readable checkpoint ({_first_line(error)})") from None
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
        raise CheckpointError(f"checkpoint does not match its config: {_first_line(error)}") from None
    return model.eval(), config


def save_file(path: str | Path, model: CopyModel, config: RunConfig) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".partial")
    temporary.write_bytes(to_bytes(model, config))
    temporary.replace(path)  # never leave a half-written checkpoint under the real name
    return path


def load_file(path: str | Path) -> tuple[CopyModel, RunConfig]:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error.strerror or error}") from None
    return from_bytes(data)
