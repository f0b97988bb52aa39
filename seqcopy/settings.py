"""How a RunConfig field is set, declared once beside the field.

A field of :class:`seqcopy.config.RunConfig` is written ``name: int = setting(default, …)``: its
label, its one-line help, the form's group, its command-line spellings and its limits live in that
one declaration. The command line (:mod:`seqcopy.cli.flags`), the Launch form
(:mod:`seqcopy.ui.launch_form`) and validation (``RunConfig.validate``) all read it, so a setting's
flag, label, help and limits can never disagree between them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from seqcopy.text import text_problem


@dataclass(frozen=True)
class Setting:
    """The declaration of one RunConfig field."""

    label: str  # the form's label
    help: str  # one line: the form's tooltip and the flag's --help text
    group: str  # the form's box ("Grid" for cell and seed, which the form asks for as a grid)
    flags: tuple[str, ...] = ()  # command-line spellings, the short one first
    low: float | None = None  # smallest value allowed
    high: float | None = None  # largest value allowed (for text: its length); a cap of this machine
    choices: tuple[str, ...] = ()
    original: bool = False  # one of the original assignment's sixteen flags, with its default
    step: float | None = None  # the form's increment for a number
    kind: str = ""  # int, float, bool, choice or text: filled in from the field's type

    def problem(self, value) -> str | None:
        """Why ``value`` cannot be this setting's value, in one line; None if it can."""
        if self.kind == "choice":
            if value not in self.choices:
                return f"unknown {self.label.lower()} {value!r}: choose one of {', '.join(self.choices)}"
            return None
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
        if self.kind == "text":
            return text_problem(value, int(self.high) if self.high else None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a {'whole number' if self.kind == 'int' else 'number'}, got {value!r}"
        if self.kind == "int" and not isinstance(value, int):
            return f"must be a whole number, got {value!r}"
        if not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        if self.low is not None and value < self.low:
            return f"must be at least {_number(self.low)}, got {_number(value)}"
        if self.high is not None and value > self.high:
            return f"must be at most {_number(self.high)} on this machine, got {_number(value)}"
        return None

    @property
    def spelling(self) -> str:
        """How the setting is spelled on the command line, for messages: '-hs/--hidden_size'."""
        flags = self.flags
        return "/".join(flags[:2]) if flags[0].startswith("-") and not flags[0].startswith("--") else flags[0]

    def long_flag(self, value=None) -> str:
        """The setting as a long flag with its value, as a command line would give it:
        '--embedding_size 16', '--curriculum', '--no-fused'."""
        flag = next(f for f in self.flags if f.startswith("--"))
        if isinstance(value, bool):
            return flag if value else "--no-" + flag[2:]
        return flag if value is None else f"{flag} {value}"

    @property
    def sweepable(self) -> bool:
        """Whether a grid may take several values of this setting (everything but free text)."""
        return self.kind != "text"

    def parse(self, text: str):
        """One value of this setting from the command line or the form's sweep box; ValueError
        with one line for text that is not one."""
        text = text.strip()
        if self.kind == "int":
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"{text!r} is not a whole number") from None
        if self.kind == "float":
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"{text!r} is not a number") from None
        if self.kind == "bool":
            lowered = text.lower()
            if lowered in ("true", "on", "yes", "1"):
                return True
            if lowered in ("false", "off", "no", "0"):
                return False
            raise ValueError(f"{text!r} is not true or false")
        return text


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:g}"


def setting(default, **declaration) -> dataclasses.Field:
    """A dataclass field with its default and its :class:`Setting`."""
    return dataclasses.field(default=default, metadata={"setting": Setting(**declaration)})


_KIND_OF_TYPE = {"int": "int", "float": "float", "bool": "bool", "str": "text"}


def declared(cls) -> dict[str, Setting]:
    """Every field of the dataclass ``cls`` with its Setting, in declaration order, the kind
    filled in from the field's type (``from __future__ import annotations`` keeps it a string)."""
    found = {}
    for field in dataclasses.fields(cls):
        declaration = field.metadata["setting"]
        kind = "choice" if declaration.choices else _KIND_OF_TYPE[str(field.type)]
        found[field.name] = dataclasses.replace(declaration, kind=kind)
    return found
