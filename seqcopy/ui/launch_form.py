"""The Launch form's fields, grouped and labelled, and its values → RunConfigs (one per cell ×
seed) with every error keyed by field. Pure, so the form's rules are tested without Streamlit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import re
from dataclasses import dataclass, fields

from ..config import CELL_NAMES, CLIP_MODES, DEVICES, FIELD_HELP, INIT_SCHEMES, LR_SCHEDULES, RunConfig

_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")
MAX_GRID = 100  # runs one submit may queue: a typo in the seeds must not queue thousands

# Field → (label, kind); kind picks the widget: int, float, choice, bool, text.
FIELDS: dict[str, tuple[str, str]] = {
    "train_seq_len": ("Input length K (train)", "int"),
    "train_output_len": ("Output length N (train)", "int"),
    "padding": ("Padding P ('$' delimiters)", "int"),
    "test_seq_len": ("Input length K (test)", "int"),
    "test_output_len": ("Output length N (test)", "int"),
    "curriculum": ("Curriculum", "bool"),
    "curriculum_start": ("Curriculum: first output length", "int"),
    "curriculum_threshold": ("Curriculum: copy accuracy to advance", "float"),
    "curriculum_step": ("Curriculum: lengthen by (0 = double)", "int"),
    "embedding_size": ("Embedding size", "int"),
    "hidden_size": ("Hidden size", "int"),
    "init": ("Initialisation", "choice"),
    "fused": ("Fast fused kernels", "bool"),
    "epochs": ("Epochs", "int"),
    "batch_size": ("Batch size", "int"),
    "lr": ("Learning rate", "float"),
    "lr_schedule": ("Learning-rate schedule", "choice"),
    "warmup_epochs": ("Warm-up epochs", "int"),
    "clip": ("Gradient clipping", "choice"),
    "device": ("Device", "choice"),
    "train_samples": ("Training sequences", "int"),
    "fresh_data": ("Fresh data each epoch", "bool"),
    "test_samples": ("Test sequences", "int"),
    "tag": ("Tag", "text"),
}
CHOICES = {"lr_schedule": LR_SCHEDULES, "clip": CLIP_MODES, "init": INIT_SCHEMES, "device": DEVICES}

GROUPS: dict[str, list[str]] = {
    "Task": ["train_seq_len", "train_output_len", "padding", "test_seq_len", "test_output_len",
             "curriculum", "curriculum_start", "curriculum_threshold", "curriculum_step"],
    "Model": ["embedding_size", "hidden_size", "init", "fused"],
    "Training": ["epochs", "batch_size", "lr", "lr_schedule", "warmup_epochs", "clip", "device"],
    "Data": ["train_samples", "test_samples", "fresh_data", "tag"],
}

EXTRA_HELP = {
    "curriculum": "start with short outputs and lengthen them as copying is learnt",
    "curriculum_start": "output length of the curriculum's first stage",
    "curriculum_threshold": "training copy accuracy that moves the curriculum to the next stage",
    "curriculum_step": "each stage's output is this many symbols longer than the last; 0 doubles it",
    "lr_schedule": "constant; cosine decay to 0; or halve on a plateau of test copy accuracy",
    "warmup_epochs": "epochs of linear learning-rate warm-up",
    "clip": "value: clamp each gradient to [-1, 1] (the original); norm: total gradient norm ≤ 1",
    "init": "uniform: torch's default, as the original; scaled: orthogonal recurrent weights, forget bias 1",
    "fused": "off trains the readable reference cells (slower, same maths)",
    "fresh_data": "draw new training sequences every epoch, so the model cannot memorise a fixed set",
    "tag": "a short note stored with the runs, to find and group them later",
    "cells": "one run per cell and seed is queued",
    "seeds": "comma-separated seeds or ranges, e.g. 0, 1, 2 or 0-4",
}


def help_for(name: str) -> str:
    return FIELD_HELP.get(name) or EXTRA_HELP.get(name, "")


def label_for(name: str) -> str:
    if name == "cells":
        return "Cells"
    if name == "seeds":
        return "Seeds"
    return FIELDS.get(name, (name.replace("_", " "), ""))[0]


def form_values(config: RunConfig) -> dict:
    """The form's values for a config (the widgets' initial state, or a preset)."""
    return {name: getattr(config, name) for name in FIELDS}


def parse_seeds(text: str) -> list[int]:
    """'0, 1, 5-7' → [0, 1, 5, 6, 7]; ValueError with one line for anything else."""
    seeds: list[int] = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        span = _RANGE.fullmatch(part)
        if span:
            low, high = int(span[1]), int(span[2])
            if high < low:
                raise ValueError(f"the range {part} runs backwards")
            if high - low >= MAX_GRID:
                raise ValueError(f"the range {part} holds more than {MAX_GRID} seeds")
            seeds.extend(range(low, high + 1))
            continue
        try:
            seeds.append(int(part))
        except ValueError:
            raise ValueError(f"{part!r} is not a seed or a range like 0-4") from None
    if not seeds:
        raise ValueError("give at least one seed, e.g. 0 or 0, 1, 2")
    return list(dict.fromkeys(seeds))  # drop repeats, keep order


@dataclass(frozen=True)
class FormResult:
    configs: list[RunConfig]
    errors: dict[str, str]  # field → message; empty when every config is valid


def build_configs(values: Mapping, cells: Iterable[str], seeds_text: str) -> FormResult:
    """One RunConfig per cell × seed from the form's values, validated with RunConfig.validate();
    errors are keyed by form field (cells, seeds, or a RunConfig field)."""
    errors: dict[str, str] = {}
    cells = list(cells)
    if not cells:
        errors["cells"] = f"choose at least one cell ({', '.join(CELL_NAMES)})"
    try:
        seeds = parse_seeds(seeds_text)
    except ValueError as error:
        errors["seeds"] = str(error)
        seeds = []
    known = {f.name for f in fields(RunConfig)}
    base = {name: value for name, value in values.items() if name in known and name not in ("cell", "seed")}
    if len(cells) * len(seeds) > MAX_GRID:
        errors["seeds"] = f"{len(cells)} cells × {len(seeds)} seeds = {len(cells) * len(seeds)} runs: at most {MAX_GRID} at once"
    # Every field is checked even when the grid itself is wrong, so all errors show at once:
    # each cell with the first seed, and each seed with the first cell, stand in for the grid.
    probe_cells, probe_seeds = cells or ["lstm"], seeds[:MAX_GRID] or [0]
    probes = [(cell, probe_seeds[0]) for cell in probe_cells] + [(probe_cells[0], seed) for seed in probe_seeds[1:]]
    for cell, seed in probes:
        for name, message in RunConfig(**base, cell=cell, seed=seed).validate().items():
            errors.setdefault(name, message)
    if errors:
        return FormResult(configs=[], errors=errors)
    return FormResult(configs=[RunConfig(**base, cell=cell, seed=seed) for cell in cells for seed in seeds], errors={})
