"""The command-line flags of a RunConfig, generated from its declarations (seqcopy.settings).

The original assignment's sixteen flags keep their short names, their long names as it spells them
(``--train_seq_len``, ``--learning_rate``, …, with the hyphenated spellings as aliases) and its
defaults; ``-l/--log`` names the experiment (train only). Every other option comes from the
same declarations. ``--preset NAME`` starts from a preset instead of the original assignment's defaults: flags
are parsed with no default of their own, so exactly the flags a person typed override it.
"""

from __future__ import annotations

import argparse

from seqcopy.config import SETTINGS, RunConfig
from seqcopy.errors import InputError
from seqcopy.presets import BY_SLUG
from seqcopy.runs.queueing import stop_at_problem

DEFAULTS = RunConfig()
DEFAULT_LOG = "rnn.log"  # the original assignment's


def _default_text(name: str) -> str:
    value = getattr(DEFAULTS, name)
    if isinstance(value, bool):
        value = "on" if value else "off"
    elif value == "":
        value = "none"
    return f"default: {value}, the original's" if SETTINGS[name].original else f"default: {value}"


def add_config_flags(parser: argparse.ArgumentParser, with_log: bool = True) -> None:
    """Every RunConfig field's flags on ``parser``; ``with_log`` adds train's -l/--log."""
    original = parser.add_argument_group("the original assignment's flags")
    extra = parser.add_argument_group("options beyond the original assignment")
    if with_log:
        original.add_argument("-l", "--log", default=DEFAULT_LOG, metavar="NAME",
                          help=f"name of the experiment: its log, plots and model go to logs/NAME/ "
                               f"(default: {DEFAULT_LOG}, the original's, so logs/rnn/)")
        extra.add_argument(
            "--logs-dir", default="logs", metavar="DIR", help="folder of the experiments' folders (default: logs)"
        )
    for name, declaration in SETTINGS.items():
        add_setting_flag(
            original if declaration.original else extra, name, f"{declaration.help} ({_default_text(name)})"
        )
    # The readable cells' older spelling.
    extra.add_argument("--reference-cells", dest="fused", action="store_false", default=argparse.SUPPRESS,
                       help="the same as --no-fused")
    extra.add_argument("--preset", choices=sorted(BY_SLUG), default=None,
                       help="start from a preset's settings instead of the original assignment's defaults; "
                            "flags given beside it override it")


def add_setting_flag(group, name: str, text: str | None = None) -> None:
    """The flags of one RunConfig field, as its declaration spells them. A flag left out is
    absent from the parsed arguments (no default of its own)."""
    declaration = SETTINGS[name]
    common = dict(dest=name, default=argparse.SUPPRESS, help=text or declaration.help)
    if declaration.kind == "bool":
        group.add_argument(*declaration.flags, action=argparse.BooleanOptionalAction, **common)
    elif declaration.kind == "choice":
        # Checked by RunConfig.validate, so a bad value reads the same as in the form.
        group.add_argument(*declaration.flags, metavar="{" + ",".join(declaration.choices) + "}", **common)
    else:
        kind = {"int": int, "float": float, "text": str}[declaration.kind]
        metavar = {"int": "N", "float": "X", "text": "TEXT"}[declaration.kind]
        group.add_argument(*declaration.flags, type=kind, metavar=metavar, **common)


def config_from_args(args: argparse.Namespace, base: RunConfig | None = None, **overrides) -> RunConfig:
    """The RunConfig the flags describe: ``base`` (a fork's parent's), else the preset's, else the original
    assignment's defaults; then every flag given, then ``overrides``."""
    preset = getattr(args, "preset", None)
    if base is None:
        base = BY_SLUG[preset].config if preset else DEFAULTS
    given = {name: getattr(args, name) for name in SETTINGS if hasattr(args, name)}
    config = base.replace(**given, **overrides)
    problem = stop_at_problem(config.stop_at)
    if problem:
        raise InputError(f"--stop-at: {problem}")
    return config
