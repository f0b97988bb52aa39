"""Grids of runs: cells × seeds × any swept setting, with tied settings, expanded and checked
before anything is queued.

A sweep works for every RunConfig field its declaration calls sweepable (seqcopy.settings), with
no list of its own: a setting is named by its field name or any of its flags (``train_seq_len``,
``--train_seq_len``, ``-iseq``, ``lr``, ``learning_rate``), and each value is read with the
setting's own ``parse`` and checked with its own ``problem``.

- An **axis** sweeps one setting (``train_seq_len=10,20,40``) or several that move together
  (``train_seq_len,train_output_len=10:10,20:20,40:40``: three runs, not nine).
- A **tie** makes one setting follow another in every run (``train_output_len=train_seq_len``,
  ``test_seq_len=train_seq_len*2``): the form's "tie N to K".
- The **grid** is the product of the axes, each point with every cell and every seed; at most
  :data:`MAX_RUNS` runs, and every run is validated before any is queued.

Pure: no database, no Streamlit.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from seqcopy.config import SETTINGS, RunConfig, varied_keys
from seqcopy.text import shorten

MAX_RUNS = 500  # one submit: a typo in a sweep must not queue thousands of runs
MAX_SEEDS = 100  # seeds one range may give: a typo must not list thousands (the grid's cap is MAX_RUNS)
CELL_FIELD, SEED_FIELD = "cell", "seed"
GRID_FIELDS = (CELL_FIELD, SEED_FIELD)  # the grid's own axes (--cells, --seeds; the form's Cells and Seeds)
# The grid's options beside the settings' declarations: the form's label and the help that the
# form and ``submit`` show.
GRID_OPTIONS = {
    "cells": ("Cells", "one run per cell and seed is queued"),
    "seeds": ("Seeds", "comma-separated seeds or ranges, e.g. 0, 1, 2 or 0-4"),
    "grid": ("Grid", "cells × seeds × every swept setting"),
    "sweep_name": ("Sweep name", "shown on Runs and Compare; empty: made from the grid"),
}
_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")


class SweepError(ValueError):
    """A sweep, tie or grid that cannot be queued; the message is one line."""


def _spellings() -> dict[str, str]:
    names: dict[str, str] = {}
    for name, declaration in SETTINGS.items():
        for spelling in (name, name.replace("_", "-"), *declaration.flags):
            names[spelling] = name
            names[spelling.lstrip("-")] = name
    return names


SPELLINGS = _spellings()
SWEEPABLE = [name for name, d in SETTINGS.items() if d.sweepable and name not in GRID_FIELDS]


def setting_named(text: str) -> str:
    """The RunConfig field a name or any flag spelling means; SweepError if none."""
    spelling = text.strip()
    name = SPELLINGS.get(spelling)
    if name is None:
        raise SweepError(f"unknown setting {spelling!r}: use a field or flag name such as "
                         f"train_seq_len, -iseq, hidden_size or lr")
    return name


def field_named(text: str) -> str:
    """The field a name or flag spelling means, if it can be swept; SweepError otherwise."""
    name = setting_named(text)
    if name in GRID_FIELDS:
        raise SweepError(f"{name} is an axis of every grid already: give several with --{name}s")
    if not SETTINGS[name].sweepable:
        raise SweepError(f"{SETTINGS[name].spelling} is free text and cannot be swept")
    return name


def parse_value(name: str, text: str):
    """One value of the setting ``name`` from text, checked against its declared limits;
    SweepError naming the value."""
    declaration = SETTINGS[name]
    try:
        value = declaration.parse(text)
    except ValueError as error:
        raise SweepError(str(error)) from None
    problem = declaration.problem(value)
    if problem:
        raise SweepError(f"{text.strip()!r}: {problem}")
    return value


def parse_seeds(text: str) -> list[int]:
    """'0, 1, 5-7' → [0, 1, 5, 6, 7], repeats dropped (the form's Seeds and ``--seeds``);
    ValueError with one line for anything else."""
    seeds: list[int] = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        span = _RANGE.fullmatch(part)
        try:  # int() also refuses thousands of digits
            low, high = (int(span[1]), int(span[2])) if span else (int(part), None)
        except ValueError:
            raise ValueError(f"{shorten(part)!r} is not a seed or a range like 0-4") from None
        if high is None:
            seeds.append(low)
            continue
        if high < low:
            raise ValueError(f"the range {part} runs backwards")
        if high - low >= MAX_SEEDS:
            raise ValueError(f"the range {shorten(part)} holds more than {MAX_SEEDS} seeds")
        seeds.extend(range(low, high + 1))
    if not seeds:
        raise ValueError("give at least one seed, e.g. 0 or 0, 1, 2")
    return _unique(seeds)  # a repeat would queue the very same run twice


def _unique(items: Iterable) -> list:
    """Repeats dropped, order kept (as the seeds list does)."""
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class Axis:
    """Settings swept together: ``values`` holds one tuple per point, a value per field."""

    fields: tuple[str, ...]
    values: tuple[tuple, ...]

    def __len__(self) -> int:
        return len(self.values)

    def describe(self) -> str:
        """As ``--sweep`` takes it (parse_axis reads it back)."""
        points = ",".join(":".join(_text(v) for v in point) for point in self.values)
        return f"{','.join(self.fields)}={points}"


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def axis_of(name: str, values_text: str) -> Axis:
    """One setting and its comma-separated values (the form's sweep row); SweepError naming the
    bad value."""
    points = [parse_value(name, part) for part in values_text.split(",") if part.strip()]
    if not points:
        raise SweepError("give at least one value, separated by commas")
    return Axis((name,), tuple((value,) for value in _unique(points)))


def parse_axis(text: str) -> Axis:
    """``FIELD=V1,V2,…`` or tied ``F1,F2=a1:b1,a2:b2,…``; SweepError naming the flag and value."""
    names_text, equals, values_text = text.partition("=")
    if not equals or not names_text.strip():
        raise SweepError(f"{text!r}: write SETTING=V1,V2,… (settings that move together: A,B=a1:b1,a2:b2)")
    fields = tuple(field_named(part) for part in names_text.split(","))
    if len(set(fields)) < len(fields):
        raise SweepError(f"{text!r} names one setting twice")
    points = []
    for part in values_text.split(","):
        if not part.strip():
            continue
        pieces = part.split(":")
        if len(pieces) != len(fields):
            raise SweepError(f"{part.strip()!r} gives {len(pieces)} value(s) for the {len(fields)} setting(s) "
                             f"{', '.join(fields)}")
        point = []
        for name, piece in zip(fields, pieces, strict=True):
            try:
                point.append(parse_value(name, piece))
            except SweepError as error:
                raise SweepError(f"{SETTINGS[name].spelling}: {error}") from None
        points.append(tuple(point))
    if not points:
        raise SweepError(f"{text!r} gives no values")
    return Axis(fields, tuple(_unique(points)))


class TieError(SweepError):
    """A tie whose result its target cannot take; ``field`` is the target (the form shows it there)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Tie:
    """``target`` takes ``source`` × ``factor`` in every run (rounded for a whole-number setting)."""

    target: str
    source: str
    factor: float = 1.0

    def __post_init__(self):
        # The form builds its ties without parse_tie: the same rule for both.
        if isinstance(self.factor, bool) or not isinstance(self.factor, (int, float)) or not (
                math.isfinite(self.factor) and self.factor > 0):
            raise SweepError(f"{self.target}={self.source}: the factor must be a positive number, got {self.factor!r}")

    def describe(self) -> str:
        return f"{self.target}={self.source}" + ("" if self.factor == 1 else f"*{self.factor:g}")

    def value(self, config: RunConfig):
        """The target's value in ``config``; TieError (one line) when the product lies outside
        the target's declared limits. It is bounded before it is rounded: ``int()`` of an
        infinity raises, and of 1e308 makes a number of 309 digits."""
        source = getattr(config, self.source)
        product = source * self.factor
        declaration = SETTINGS[self.target]
        low, high = declaration.low, declaration.high
        value = product
        if math.isfinite(product) and (high is None or product <= high + 1) and (low is None or product >= low - 1):
            value = int(round(product)) if declaration.kind == "int" else product
            if not declaration.problem(value):
                return value
        limits = " to ".join(_text(limit) for limit in (low, high) if limit is not None)
        raise TieError(self.target, f"the tie {self.describe()} gives {_text(value)} ({self.source} {_text(source)} × "
                                    f"{self.factor:g}), outside the limits of {self.target}, {limits}")


def tie_order(ties: Sequence[Tie]) -> tuple[Tie, ...]:
    """The ties in the order they must be applied: a tie after the tie that sets its source
    (``a=b, b=c``: ``b=c`` first), whatever order they were given in; otherwise as given.
    SweepError naming the cycle when settings follow each other round (``a=b, b=a``). Each
    target is tied once (Grid checks), so following sources from a tie walks one path."""
    by_target = {tie.target: tie for tie in ties}
    depths = {}
    for tie in ties:
        path = [tie.target]
        while path[-1] in by_target:
            following = by_target[path[-1]].source
            if following in path:
                cycle = path[path.index(following):] + [following]
                raise SweepError(f"the ties {', '.join(by_target[name].describe() for name in cycle[:-1])} make a "
                                 f"cycle ({' → '.join(cycle)}): each setting would follow itself; drop one")
            path.append(following)
        depths[tie] = len(path)  # the ties it waits for, plus one
    return tuple(sorted(ties, key=depths.__getitem__))  # stable: independent ties keep their order


def parse_tie(text: str) -> Tie:
    """``TARGET=SOURCE`` or ``TARGET=SOURCE*FACTOR``; SweepError otherwise."""
    target_text, equals, rest = text.partition("=")
    source_text, star, factor_text = rest.partition("*")
    if not equals or not source_text.strip():
        raise SweepError(f"{text!r}: write SETTING=OTHER or SETTING=OTHER*FACTOR, e.g. train_output_len=train_seq_len")
    target, source = field_named(target_text), field_named(source_text)
    numbers = ("int", "float")
    if SETTINGS[target].kind not in numbers or SETTINGS[source].kind not in numbers:
        raise SweepError(f"{text!r}: only numbers can be tied")
    if target == source:
        raise SweepError(f"{text!r} ties a setting to itself")
    factor = 1.0
    if star:
        try:
            factor = float(factor_text)
        except ValueError:
            raise SweepError(f"{text!r}: {factor_text.strip()!r} is not a number") from None
        if not (math.isfinite(factor) and factor > 0):
            raise SweepError(f"{text!r}: the factor must be a positive number")
    return Tie(target, source, factor)


@dataclass(frozen=True)
class Grid:
    """Every run one submit queues: each point of the axes × each cell × each seed, ties applied."""

    base: RunConfig
    cells: tuple[str, ...]
    seeds: tuple[int, ...]
    axes: tuple[Axis, ...] = ()
    ties: tuple[Tie, ...] = ()

    def __post_init__(self):
        swept = [name for axis in self.axes for name in axis.fields]
        repeated = sorted({name for name in swept if swept.count(name) > 1})
        if repeated:
            raise SweepError(f"{SETTINGS[repeated[0]].spelling} is swept twice: give its values in one --sweep")
        for tie in self.ties:
            if tie.target in swept:
                raise SweepError(
                    f"{SETTINGS[tie.target].spelling} is both swept and tied to "
                    f"{SETTINGS[tie.source].spelling}: drop one"
                )
        targets = [tie.target for tie in self.ties]
        if len(set(targets)) < len(targets):
            raise SweepError("a setting is tied twice")
        tie_order(self.ties)  # a cycle is refused here, before any run is built

    @property
    def size(self) -> int:
        return len(self.cells) * len(self.seeds) * math.prod(len(axis) for axis in self.axes)

    def describe_size(self) -> str:
        """'2 cells × 3 seeds × 3 values of train_seq_len = 18 runs'."""
        parts = [_count(len(self.cells), "cell"), _count(len(self.seeds), "seed")]
        parts += [f"{_count(len(axis), 'value')} of {'+'.join(axis.fields)}" for axis in self.axes]
        return f"{' × '.join(parts)} = {_count(self.size, 'run')}"

    def is_sweep(self, name_given: bool) -> bool:
        """Whether its runs are recorded as one sweep: several runs, or one given a sweep name."""
        return self.size > 1 or name_given

    def check_size(self) -> None:
        if self.size > MAX_RUNS:
            raise SweepError(
                f"{self.describe_size()}: at most {MAX_RUNS} runs at once; sweep fewer values or split the grid"
            )
        if self.size == 0:
            raise SweepError("the grid is empty: give at least one cell and one seed")

    def configs(self) -> list[RunConfig]:
        """The grid's runs, in queue order: each point of the axes in turn, its cells and seeds
        within it (so the first results cover every cell), the ties applied in dependency order.
        SweepError above the cap; TieError for a tie whose result its target cannot take."""
        self.check_size()
        ties = tie_order(self.ties)
        runs = []
        for point in itertools.product(*(axis.values for axis in self.axes)):
            changes = {
                name: value
                for axis, values in zip(self.axes, point, strict=True)
                for name, value in zip(axis.fields, values, strict=True)
            }
            for cell in self.cells:
                for seed in self.seeds:
                    config = self.base.replace(**changes, cell=cell, seed=seed)
                    for tie in ties:
                        config = config.replace(**{tie.target: tie.value(config)})
                    runs.append(config)
        return runs

    def spec(self) -> dict:
        """What the sweep record keeps: the axes and ties as --sweep/--tie take them."""
        return {
            "cells": list(self.cells), "seeds": list(self.seeds),
            "axes": [axis.describe() for axis in self.axes], "ties": [tie.describe() for tie in self.ties],
        }

    def default_name(self) -> str:
        """'train_seq_len 4–32 × 5 cells × 3 seeds' or 'lstm, gru × 3 seeds'."""
        parts = []
        for axis in self.axes:
            values = [point[0] for point in axis.values]
            shown = f"{_text(values[0])}–{_text(values[-1])}" if len(values) > 2 else ", ".join(map(_text, values))
            parts.append(f"{'+'.join(axis.fields)} {shown}")
        parts.append(", ".join(self.cells) if len(self.cells) <= 2 else _count(len(self.cells), "cell"))
        parts.append(_count(len(self.seeds), "seed"))
        return " × ".join(parts)[:200]


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def grid_errors(configs: Sequence[RunConfig], check_device: bool = True) -> dict[str, str]:
    """RunConfig.validate over every run of the grid: the first message per field, with the
    swept values of the run it came from, so a bad value is named."""
    varied = [name for name in varied_keys(configs) if name != "seed"]
    errors: dict[str, str] = {}
    for config in configs:
        problems = config.validate(check_device)
        for name, message in problems.items():
            if name in errors:
                continue
            context = ", ".join(f"{key}={_text(getattr(config, key))}" for key in varied)
            errors[name] = message + (f" (in the run with {context})" if context else "")
        if len(errors) == len(SETTINGS):
            break
    return errors


def first_error_line(errors: dict[str, str]) -> str:
    """A grid's errors on one line for the command line, the flag first."""
    name, message = next(iter(errors.items()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{SETTINGS[name].spelling}: {message}{more}"
