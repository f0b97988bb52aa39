"""The Launch form's fields, grouped and labelled, and its values → RunConfigs (one per cell ×
seed) with every error keyed by field. Pure, so the form's rules are tested without Streamlit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import re
from dataclasses import dataclass

from ..config import CELL_NAMES, SETTINGS, RunConfig

_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")
MAX_GRID = 100  # runs one submit may queue: a typo in the seeds must not queue thousands

# The form's fields and groups come from RunConfig's declarations (seqcopy.settings); cell and
# seed are asked for as a grid (several cells, a list of seeds) above the groups.
FIELDS: list[str] = [name for name, declaration in SETTINGS.items() if declaration.group != "Grid"]
GROUPS: dict[str, list[str]] = {}
for _name in FIELDS:
    GROUPS.setdefault(SETTINGS[_name].group, []).append(_name)

GRID_FIELDS = {
    "cells": ("Cells", "one run per cell and seed is queued"),
    "seeds": ("Seeds", "comma-separated seeds or ranges, e.g. 0, 1, 2 or 0-4"),
}


def help_for(name: str) -> str:
    return GRID_FIELDS[name][1] if name in GRID_FIELDS else SETTINGS[name].help


def label_for(name: str) -> str:
    return GRID_FIELDS[name][0] if name in GRID_FIELDS else SETTINGS[name].label


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
    base = {name: value for name, value in values.items() if name in FIELDS}
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
