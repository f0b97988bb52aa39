"""The Launch form's fields, grouped and labelled, and its values → RunConfigs (one per cell ×
seed × point of the sweep) with every error keyed by field. Pure, so the form's rules are tested
without Streamlit. The grid itself is seqcopy.results.sweeps', shared with ``submit``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from seqcopy.config import CELL_NAMES, SETTINGS, RunConfig
from seqcopy.presets import Preset
from seqcopy.results.sweeps import (
    GRID_OPTIONS,
    SWEEPABLE,
    Axis,
    Grid,
    SweepError,
    Tie,
    TieError,
    axis_of,
    grid_errors,
    parse_axis,
    parse_seeds,
    parse_tie,
)
from seqcopy.runs.store import sweep_name_problem

# The form's fields and groups come from RunConfig's declarations (seqcopy.settings); cell and
# seed are asked for as a grid (several cells, a list of seeds) above the groups.
FIELDS: list[str] = [name for name, declaration in SETTINGS.items() if declaration.group != "Grid"]
GROUPS: dict[str, list[str]] = {}
for _name in FIELDS:
    GROUPS.setdefault(SETTINGS[_name].group, []).append(_name)

def help_for(name: str) -> str:
    return GRID_OPTIONS[name][1] if name in GRID_OPTIONS else SETTINGS[name].help


def label_for(name: str) -> str:
    if name.startswith("sweep_") and name[len("sweep_"):].isdigit():
        return f"Sweep, row {int(name[len('sweep_'):]) + 1}"
    return GRID_OPTIONS[name][0] if name in GRID_OPTIONS else SETTINGS[name].label


def form_values(config: RunConfig) -> dict:
    """The form's values for a config (the widgets' initial state, or a preset)."""
    return {name: getattr(config, name) for name in FIELDS}


@dataclass(frozen=True)
class SweepRow:
    """One row of the form's Sweep section: a setting and its comma-separated values."""

    field: str | None  # None: the row is unused
    values: str = ""


@dataclass(frozen=True)
class FormTies:
    """The form's two ties: N follows K, and the test lengths follow the training lengths × factor."""

    n_to_k: bool = False
    test_to_train: bool = False
    factor: float = 1.0

    def ties(self) -> tuple[Tie, ...]:
        found = [Tie("train_output_len", "train_seq_len")] if self.n_to_k else []
        if self.test_to_train:
            found += [
                Tie("test_seq_len", "train_seq_len", self.factor),
                Tie("test_output_len", "train_output_len", self.factor),
            ]
        return tuple(found)

    def targets(self) -> dict[str, str]:
        """Each tied field → what it follows, as the form says it."""
        return {tie.target: f"follows {label_for(tie.source)}" + ("" if tie.factor == 1 else f" × {tie.factor:g}")
                for tie in self.ties()}


SWEEP_ROWS = 3  # settings one form can sweep at once (the command line takes any number)
SWEEP_FIELDS = [name for name in FIELDS if name in SWEEPABLE]


@dataclass(frozen=True)
class FormResult:
    configs: list[RunConfig]
    errors: dict[str, str]  # field (or cells, seeds, sweep_<row>, grid) → message; empty when all valid
    grid: Grid | None = None  # what the configs expand, for its size and the sweep record
    name: str = ""  # the sweep's name: the one given, or one made from the grid
    is_sweep: bool = False  # recorded as one sweep (Grid.is_sweep)

    @property
    def swept(self) -> dict[str, str]:
        """Each swept field → its values as the form shows them."""
        if self.grid is None:
            return {}
        return {name: ", ".join(str(point[i]) for point in axis.values)
                for axis in self.grid.axes for i, name in enumerate(axis.fields)}


def sweep_axes(rows: Sequence[SweepRow]) -> tuple[list[Axis], dict[str, str]]:
    """The axes of the form's sweep rows, and an error per bad row (keyed sweep_<index>)."""
    axes, errors, seen = [], {}, set()
    for index, row in enumerate(rows):
        if row.field is None:
            continue
        if row.field in seen:
            errors[f"sweep_{index}"] = f"{label_for(row.field)} is swept in another row already"
            continue
        seen.add(row.field)
        try:
            axes.append(axis_of(row.field, row.values))
        except SweepError as error:
            errors[f"sweep_{index}"] = str(error)
    return axes, errors


def build_configs(values: Mapping, cells: Iterable[str], seeds_text: str, rows: Sequence[SweepRow] = (),
                  ties: FormTies = FormTies(), name: str = "") -> FormResult:
    """One RunConfig per cell × seed × point of the sweep, ties applied, every run validated with
    RunConfig.validate(); errors are keyed by form field (cells, seeds, sweep_<row>, grid, or a
    RunConfig field)."""
    errors: dict[str, str] = {}
    cells = list(cells)
    if not cells:
        errors["cells"] = f"choose at least one cell ({', '.join(CELL_NAMES)})"
    try:
        seeds = parse_seeds(seeds_text)
    except ValueError as error:
        errors["seeds"] = str(error)
        seeds = []
    axes, row_errors = sweep_axes(rows)
    errors |= row_errors
    base = RunConfig(**{name: value for name, value in values.items() if name in FIELDS})
    try:
        grid = Grid(base, tuple(cells or ["lstm"]), tuple(seeds or [0]), tuple(axes), ties.ties())
        grid.check_size()
    except SweepError as error:
        errors["grid"] = str(error)
        grid = Grid(base, tuple(cells or ["lstm"]), tuple(seeds[:1] or [0]))
    is_sweep = grid.is_sweep(name_given=bool(name.strip()))
    name = name.strip() or grid.default_name()
    problem = sweep_name_problem(name)  # the store's own check, shown beside the field
    if problem:
        errors["sweep_name"] = problem
    # Every field is checked even when the grid itself is wrong, so all errors show at once.
    try:
        configs = grid.configs()
    except TieError as error:  # a tie past its target's limits: shown at the tied field
        errors.setdefault(error.field, str(error))
        configs = replace(grid, ties=()).configs()
    errors |= {field: message for field, message in grid_errors(configs).items() if field not in errors}
    if errors:
        return FormResult(configs=[], errors=errors, grid=grid, name=name)
    return FormResult(configs=configs, errors={}, grid=grid, name=name, is_sweep=is_sweep)


def preset_sweep(preset: Preset) -> tuple[list[SweepRow], FormTies]:
    """A preset's grid as the form's sweep rows and ties; ValueError for a grid the form cannot
    show (a preset's sweep must stay within what the form offers)."""
    rows = []
    for text in preset.sweep:
        axis = parse_axis(text)
        if len(axis.fields) != 1:
            raise ValueError(f"the form sweeps one setting per row, not {text!r}")
        rows.append(SweepRow(axis.fields[0], ", ".join(str(point[0]) for point in axis.values)))
    if len(rows) > SWEEP_ROWS:
        raise ValueError(f"the form has {SWEEP_ROWS} sweep rows")
    ties = {parse_tie(text) for text in preset.ties}
    factor = next((tie.factor for tie in ties if tie.target == "test_seq_len"), 1.0)
    form = FormTies(n_to_k=Tie("train_output_len", "train_seq_len") in ties,
                    test_to_train=any(tie.target == "test_seq_len" for tie in ties), factor=factor)
    if set(form.ties()) != ties:
        raise ValueError(f"the form cannot show the ties {sorted(preset.ties)}")
    return rows, form
