"""One declaration per setting: the original assignment's flags and defaults, argparse and the form built from
the same declarations, validation reading the same limits, presets on the command line."""

from __future__ import annotations

import shlex

import pytest

from seqcopy.cli.commands import build_parser
from seqcopy.cli.flags import config_from_args
from seqcopy.config import SETTINGS, RunConfig
from seqcopy.presets import BY_SLUG, PRESETS
from seqcopy.settings import Setting
from seqcopy.ui.launch_form import FIELDS, GROUPS, help_for, label_for

# The original assignment's table: short flag, long flag as it spells it, field, default.
SEED_TABLE = [
    ("-d", "--device", "device", "cpu"),
    ("-iseq", "--train_seq_len", "train_seq_len", 100),
    ("-tseq", "--test_seq_len", "test_seq_len", 100),
    ("-p", "--padding", "padding", 10),
    ("-oseq", "--train_output_len", "train_output_len", 50),
    ("-toseq", "--test_output_len", "test_output_len", 50),
    ("-b", "--batch_size", "batch_size", 32),
    ("-em", "--embedding_size", "embedding_size", 11),
    ("-hs", "--hidden_size", "hidden_size", 128),
    ("-c", "--cell", "cell", "rnn"),
    ("-ep", "--epochs", "epochs", 10),
    ("-lr", "--learning_rate", "lr", 0.1),
    ("-s", "--seed", "seed", 42),
    ("-trs", "--train_samples", "train_samples", 10_000),
    ("-ts", "--test_samples", "test_samples", 1_000),
]
# One value per seed flag that differs from its default, to see each spelling land.
OTHER_VALUE = {"device": "auto", "cell": "gru", "lr": 0.02}
SEED_EXAMPLE = ("-d cuda -l lstm_100_E32_H256_lr0.001_N50k_trial1 -iseq 100 -tseq 500 -p 3 -oseq 100 "
                "-toseq 200 -b 32 -em 16 -hs 256 -c lstm -ep 15 -lr 0.001 -s 42 -trs 50000 -ts 10000")


def parse(command: str, *words: str):
    return build_parser().parse_args([command, *words])


def test_the_seed_flags_are_the_declared_seed_fields():
    assert sorted(name for name, d in SETTINGS.items() if d.original) == sorted(field for _, _, field, _ in SEED_TABLE)


@pytest.mark.parametrize("short, long, field, default", SEED_TABLE)
def test_every_seed_flag_parses_in_each_spelling_to_one_field_with_the_seeds_default(short, long, field, default):
    assert getattr(RunConfig(), field) == default
    assert getattr(config_from_args(parse("train")), field) == default
    value = OTHER_VALUE.get(field, 7)
    spellings = [short, long, long.replace("_", "-")]
    if field == "lr":
        spellings.append("--lr")
    for spelling in spellings:
        for command in ("train", "submit"):
            assert getattr(config_from_args(parse(command, spelling, str(value))), field) == value, spelling


def test_log_names_the_experiment_with_the_seeds_default():
    assert parse("train").log == "rnn.log"
    assert parse("train", "--log", "x").log == parse("train", "-l", "x").log == "x"


def test_the_seeds_example_command_parses_unchanged():
    config = config_from_args(parse("train", *shlex.split(SEED_EXAMPLE)))
    assert config == RunConfig(
        device="cuda", train_seq_len=100, test_seq_len=500, padding=3, train_output_len=100, test_output_len=200,
        batch_size=32, embedding_size=16, hidden_size=256, cell="lstm", epochs=15, lr=0.001, seed=42,
        train_samples=50_000, test_samples=10_000,
    )
    assert config.validate(check_device=False) == {}


def test_help_says_which_defaults_are_the_seeds(capsys):
    with pytest.raises(SystemExit):
        parse("train", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "--train_seq_len" in text and "--learning_rate" in text
    assert "default: 100, the original's" in text and "default: rnn.log, the original's" in text
    assert "default: uniform)" in text  # an option beyond the original assignment: no claim to be its


def test_presets_are_reachable_and_flags_given_beside_them_win():
    for slug, preset in BY_SLUG.items():
        assert config_from_args(parse("train", "--preset", slug)) == preset.config
    quick = config_from_args(parse("submit", "--preset", "quick-demo", "-hs", "64", "--no-curriculum"))
    assert quick == BY_SLUG["quick-demo"].config.replace(hidden_size=64)
    assert set(PRESETS) == {preset.name for preset in BY_SLUG.values()}


def test_boolean_options_switch_both_ways():
    assert config_from_args(parse("train", "--curriculum")).curriculum is True
    on = config_from_args(parse("train", "--preset", "copy-20", "--no-fresh-data"))
    assert on.fresh_data is False and on.curriculum is True
    assert config_from_args(parse("train", "--reference-cells")).fused is False


def test_argparse_and_the_form_show_one_help_and_label_per_field():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    by_flag = {action.option_strings[0]: action for action in train._actions if action.option_strings}
    for name, declaration in SETTINGS.items():
        action = by_flag[declaration.flags[0]]
        assert action.dest == name and action.help.startswith(declaration.help), name
        assert list(action.option_strings[: len(declaration.flags)]) == list(declaration.flags)
    assert set(FIELDS) == set(SETTINGS) - {"cell", "seed"}  # those two are the grid
    for name in FIELDS:
        assert help_for(name) == SETTINGS[name].help and label_for(name) == SETTINGS[name].label
        assert name in GROUPS[SETTINGS[name].group]


@pytest.mark.parametrize("name", [n for n, d in SETTINGS.items() if d.kind in ("int", "float")])
def test_validation_reads_the_declared_limits(name):
    declaration: Setting = SETTINGS[name]
    base = RunConfig(train_seq_len=2000, train_output_len=1, test_seq_len=10_000, test_output_len=1,
                     train_samples=1, test_samples=1, epochs=10_000, hidden_size=8, embedding_size=8)
    if declaration.low is not None:
        below = declaration.low - (1 if declaration.kind == "int" else abs(declaration.low) / 2 or 0.5)
        assert "at least" in base.replace(**{name: below}).validate(check_device=False).get(name, ""), name
    if declaration.high is not None:
        above = declaration.high + 1 if declaration.kind == "int" else declaration.high * 2
        assert "at most" in base.replace(**{name: above}).validate(check_device=False).get(name, ""), name
        at_cap = base.replace(**{name: declaration.high}).validate(check_device=False)
        assert "at most" not in at_cap.get(name, ""), (name, at_cap)
