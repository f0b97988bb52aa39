"""Grids of runs: any declared setting swept by any of its spellings, tied settings, the cap,
every run validated before anything is queued, and every run of a grid stored with its sweep."""

from __future__ import annotations

import json

import pytest
from conftest import TINY as BASE_TINY
from conftest import assert_one_line_error, run_cli
from test_cli_store import run_count

from seqcopy.config import SETTINGS, varied_keys
from seqcopy.presets import BY_SLUG
from seqcopy.results.sweeps import (
    MAX_RUNS,
    SWEEPABLE,
    Axis,
    Grid,
    SweepError,
    Tie,
    field_named,
    grid_errors,
    parse_axis,
    parse_seeds,
    parse_tie,
)
from seqcopy.runs.store import Store
from seqcopy.ui.launch_form import SweepRow, build_configs, form_values, preset_sweep

# Small runs, with input and output lengths and the hidden size left to the sweeps (the original
# assignment's defaults where none is swept: these runs are queued, never trained).
FLAGS = ["-em", "4", "-tseq", "8", "-toseq", "4", "-trs", "64", "-ts", "16", "-b", "16", "-ep", "2"]
TINY = BASE_TINY.replace(padding=1, epochs=2)


# ---------------------------------------------------------------------------- naming a setting
@pytest.mark.parametrize("name", SWEEPABLE)
def test_every_sweepable_setting_is_named_by_its_field_and_every_flag_spelling(name):
    spellings = {name, *SETTINGS[name].flags, *(flag.lstrip("-") for flag in SETTINGS[name].flags)}
    for spelling in spellings:
        assert field_named(spelling) == name, spelling


def test_the_original_spellings_reach_their_fields():
    assert field_named("-iseq") == field_named("--train_seq_len") == field_named("train-seq-len") == "train_seq_len"
    assert field_named("lr") == field_named("learning_rate") == field_named("--learning-rate") == "lr"
    assert field_named("hs") == "hidden_size"


@pytest.mark.parametrize("text, needle", [
    ("bogus", "unknown setting 'bogus'"), ("tag", "free text"), ("cell", "--cells"), ("-s", "--seeds"),
])
def test_what_cannot_be_swept_is_named(text, needle):
    with pytest.raises(SweepError, match=needle):
        field_named(text)


# ---------------------------------------------------------------------------- axes, ties, grids
def test_values_are_read_by_each_settings_own_parser():
    assert parse_axis("lr=0.01,1e-3").values == ((0.01,), (0.001,))
    assert parse_axis("-hs=8,16,8").values == ((8,), (16,))  # a repeat is dropped
    assert parse_axis("fresh-data=on,false").values == ((True,), (False,))
    assert parse_axis("init=uniform,scaled").values == (("uniform",), ("scaled",))
    axis = parse_axis("iseq,oseq=10:5,20:20")
    assert axis == Axis(("train_seq_len", "train_output_len"), ((10, 5), (20, 20)))
    assert parse_axis(axis.describe()) == axis  # the sweep record reads back


def test_the_grid_is_the_product_of_cells_seeds_and_every_axis_in_queue_order():
    grid = Grid(TINY, ("lstm", "gru"), (0, 1, 2), (parse_axis("hidden_size=8,16"), parse_axis("lr=0.1,0.01,0.001")))
    configs = grid.configs()
    assert grid.size == len(configs) == 2 * 3 * 2 * 3
    assert len({(c.cell, c.seed, c.hidden_size, c.lr) for c in configs}) == 36
    # each point of the axes holds every cell and seed, so the first results cover every cell
    assert [(c.cell, c.seed) for c in configs[:6]] == [(cell, seed) for cell in ("lstm", "gru") for seed in (0, 1, 2)]
    assert {(c.hidden_size, c.lr) for c in configs[:6]} == {(8, 0.1)}
    assert grid.describe_size() == "2 cells × 3 seeds × 2 values of hidden_size × 3 values of lr = 36 runs"
    assert varied_keys(configs) == ["cell", "seed", "hidden_size", "lr"]


def test_tied_settings_move_together_instead_of_multiplying():
    tied = Grid(TINY, ("lstm",), (0,), (parse_axis("train_seq_len,train_output_len=4:4,8:8,16:16"),)).configs()
    assert [(c.train_seq_len, c.train_output_len) for c in tied] == [(4, 4), (8, 8), (16, 16)]
    ties = (parse_tie("train_output_len=train_seq_len"), parse_tie("test_seq_len=train_seq_len*2.5"))
    followed = Grid(TINY, ("lstm",), (0,), (parse_axis("-iseq=4,6"),), ties).configs()
    assert [(c.train_seq_len, c.train_output_len, c.test_seq_len) for c in followed] == [(4, 4, 10), (6, 6, 15)]
    assert ties[1] == Tie("test_seq_len", "train_seq_len", 2.5) and parse_tie(ties[1].describe()) == ties[1]


@pytest.mark.parametrize("build, needle", [
    (lambda: Grid(TINY, ("lstm",), (0,), (parse_axis("lr=0.1"), parse_axis("learning_rate=0.2"))), "swept twice"),
    (lambda: Grid(TINY, ("lstm",), (0,), (parse_axis("oseq=2,4"),), (parse_tie("oseq=iseq"),)), "both swept and tied"),
    (lambda: parse_tie("oseq=iseq*0"), "positive"),
    (lambda: parse_tie("init=lr"), "only numbers"),
    (lambda: parse_tie("hs=hs"), "itself"),
    (lambda: parse_axis("iseq,oseq=4:4:4"), "3 value"),
    (lambda: parse_axis("iseq"), "SETTING=V1"),
    (lambda: parse_axis("iseq="), "no values"),
])
def test_a_malformed_sweep_or_tie_is_one_line(build, needle):
    with pytest.raises(SweepError, match=needle) as caught:
        build()
    assert "\n" not in str(caught.value)


def test_the_cap_is_500_runs():
    seeds = tuple(range(10))
    Grid(TINY, ("lstm",), seeds, (parse_axis("hidden_size=" + ",".join(map(str, range(1, 51)))),)).check_size()
    too_many = Grid(TINY, ("lstm",), seeds, (parse_axis("hidden_size=" + ",".join(map(str, range(1, 52)))),))
    assert MAX_RUNS == 500
    with pytest.raises(SweepError, match="= 510 runs: at most 500 runs at once"):
        too_many.configs()


def test_every_run_is_validated_and_the_bad_one_named():
    configs = Grid(TINY, ("lstm",), (0,), (parse_axis("train_output_len=2,4,6"),)).configs()
    errors = grid_errors(configs)
    assert set(errors) == {"train_output_len"}
    assert "the output (6) cannot be longer than the input sequence (4)" in errors["train_output_len"]
    assert "(in the run with train_output_len=6)" in errors["train_output_len"]


# ---------------------------------------------------------------------------- the command line
def test_the_command_line_and_the_form_share_the_seeds_and_the_one_run_rule(db_url, capsys):
    code, _, err = run_cli(capsys, "submit", *FLAGS, "--seeds", "0-2", "--db", db_url)
    assert code == 0, err
    store = Store(db_url)
    assert sorted(run.config.seed for run in store.list_runs()) == [0, 1, 2]  # ranges, as the form takes them
    # One run given a sweep name is a sweep, on the command line and in the form alike.
    run_cli(capsys, "submit", *FLAGS, "--sweep-name", "alone", "--db", db_url)
    assert store.list_runs()[0].sweep_id is not None
    assert build_configs(form_values(TINY), ["lstm"], "0", name="alone").is_sweep
    assert not build_configs(form_values(TINY), ["lstm"], "0").is_sweep
    assert build_configs(form_values(TINY), ["lstm"], "0, 1").is_sweep
    store.close()
    assert parse_seeds("0-2; 5, 2") == [0, 1, 2, 5]
    for bad, words in (("9" * 5000, "is not a seed"), ("0-" + "9" * 5000, "is not a seed"), ("3-1", "backwards"),
                       ("0-100", "more than 100 seeds"), (" , ", "at least one seed")):
        with pytest.raises(ValueError, match=words) as caught:
            parse_seeds(bad)
        assert len(str(caught.value)) < 100


def test_submit_queues_a_sweep_and_every_run_carries_its_id(db_url, capsys):
    code, out, err = run_cli(capsys, "submit", *FLAGS, "--cells", "lstm,gru", "--seeds", "0,1",
                             "--sweep", "iseq,oseq=4:4,6:6", "--sweep", "learning_rate=0.1,0.01", "--db", db_url)
    assert code == 0, err
    ids = [int(line) for line in out.split()]
    assert len(ids) == 2 * 2 * 2 * 2
    assert "sweep 1 (" in err and "= 16 runs" in err
    store = Store(db_url)
    runs = store.list_runs()
    assert {run.sweep_id for run in runs} == {1} and sorted(run.id for run in runs) == sorted(ids)
    assert {(r.config.train_seq_len, r.config.train_output_len) for r in runs} == {(4, 4), (6, 6)}
    (sweep,) = store.list_sweeps()
    assert sweep.varied == ["cell", "seed", "train_seq_len", "train_output_len", "lr"]
    assert sweep.spec["axes"] == ["train_seq_len,train_output_len=4:4,6:6", "lr=0.1,0.01"]
    assert sweep.spec["cells"] == ["lstm", "gru"] and sweep.spec["seeds"] == [0, 1]
    assert [r.id for r in store.list_runs(sweep_id=sweep.id)] == [r.id for r in runs]
    # A second grid is a second sweep; a single run is no sweep at all.
    run_cli(capsys, "submit", *FLAGS, "--sweep", "hs=4,8", "--sweep-name", "hidden", "--db", db_url)
    run_cli(capsys, "submit", *FLAGS, "--db", db_url)
    store = Store(db_url)
    assert [(s.id, s.name) for s in store.list_sweeps()][0] == (2, "hidden")
    assert [r.sweep_id for r in store.list_runs()[:3]] == [None, 2, 2]
    store.close()


BAD_SWEEPS = [
    (["--sweep", "hidden_size=8,0"], "-hs/--hidden_size: '0': must be at least 1, got 0"),
    (["--sweep", "-iseq=4,x"], "argument --sweep: expected one argument"),  # argparse: a leading '-' is a flag
    (["--sweep=-iseq=4,x"], "-iseq/--train_seq_len: 'x' is not a whole number"),
    (["--sweep", "lr=0.1,abc"], "'abc' is not a number"),
    (["--sweep", "init=uniform,orthogonal"], "unknown initialisation 'orthogonal'"),
    (["--sweep", "iseq,oseq=4:4,4:8"],
     "-oseq/--train_output_len: the output (8) cannot be longer than the input sequence (4)"),
    (["--sweep", "tag=a,b"], "--tag is free text"),
    (["--sweep", "cell=lstm,gru"], "give several with --cells"),
    (["--sweep", "hs=" + ",".join(map(str, range(1, 502)))], "at most 500 runs"),
    (["--sweep", "iseq=4,8", "-iseq", "4"], "-iseq/--train_seq_len is given and also swept"),
    (["--tie", "oseq=iseq", "-oseq", "4"], "is given and also tied"),
    (["--sweep", "hs=4,8", "--sweep-name", "a\tb"], "--sweep-name: cannot hold control characters"),
]


@pytest.mark.parametrize("flags, needle", BAD_SWEEPS)
def test_each_bad_sweep_is_refused_with_nothing_queued(sqlite_url, capsys, flags, needle):
    Store(sqlite_url).close()
    code, out, err = run_cli(capsys, "submit", *FLAGS, *flags, "--db", sqlite_url)
    assert_one_line_error(code, err, needle)
    assert out == "" and run_count(sqlite_url) == 0


def test_the_length_study_preset_queues_its_grid_and_flags_replace_it(sqlite_url, capsys):
    preset = BY_SLUG["length-study"]
    code, out, err = run_cli(capsys, "submit", "--preset", "length-study", "--db", sqlite_url)
    assert code == 0, err
    runs = Store(sqlite_url).list_runs()
    assert len(runs) == len(preset.cells) * len(preset.seeds) * 4 == 60
    assert {r.config.train_seq_len for r in runs} == {4, 8, 16, 40}
    assert all(c.train_seq_len == c.train_output_len == c.test_seq_len == c.test_output_len
               for c in (r.config for r in runs))
    assert {r.config.cell for r in runs} == set(preset.cells) and {r.config.seed for r in runs} == {0, 1, 2}
    code, out, err = run_cli(capsys, "submit", "--preset", "length-study", "-c", "gru", "--seeds", "7",
                             "--sweep", "iseq=6,8", "--db", sqlite_url)
    assert code == 0, err
    added = Store(sqlite_url).list_runs()[:2]
    assert {(r.config.cell, r.config.seed, r.config.train_seq_len, r.config.test_output_len) for r in added} == {
        ("gru", 7, 6, 6), ("gru", 7, 8, 8)}  # its ties kept
    code, _, err = run_cli(capsys, "submit", "--preset", "length-study", "-iseq", "30", "--db", sqlite_url)
    assert_one_line_error(code, err, "swept by the preset length-study")


# ---------------------------------------------------------------------------- the form
@pytest.mark.parametrize("slug", [slug for slug, preset in BY_SLUG.items() if preset.sweep or preset.ties])
def test_a_presets_grid_reads_the_same_in_the_form_and_on_the_command_line(slug):
    preset = BY_SLUG[slug]
    rows, ties = preset_sweep(preset)
    form = build_configs(form_values(preset.config), preset.cells, ", ".join(map(str, preset.seeds)), rows, ties)
    assert not form.errors
    command_line = Grid(preset.config, preset.cells, preset.seeds, tuple(map(parse_axis, preset.sweep)),
                        tuple(map(parse_tie, preset.ties))).configs()
    assert form.configs == command_line
    assert form.grid.spec() == json.loads(json.dumps(form.grid.spec()))  # stored as JSON


def test_the_form_refuses_a_bad_row_a_repeat_and_a_grid_above_the_cap():
    values = form_values(TINY)
    bad = build_configs(values, ["lstm"], "0", [SweepRow("hidden_size", "8, 0"), SweepRow("hidden_size", "4")])
    assert bad.errors["sweep_0"] == "'0': must be at least 1, got 0" and "another row" in bad.errors["sweep_1"]
    assert not bad.configs
    big = build_configs(values, ["lstm", "gru"], "0-99", [SweepRow("lr", "0.1, 0.01, 0.001")])
    assert "600 runs: at most 500" in big.errors["grid"] and not big.configs
    fine = build_configs(values, ["lstm"], "0-1", [SweepRow("hidden_size", "4, 8"), SweepRow(None, "ignored")])
    assert not fine.errors and len(fine.configs) == 4 and fine.swept == {"hidden_size": "4, 8"}
