"""Issue #24: six inputs that crashed, hung or misled, and the smaller cases beside them.

1. a tie factor so large that the tied value is infinite (or has hundreds of digits);
2. and 3. an experiment name whose files are too long in bytes, though short in characters;
4. ``evaluate`` on a FIFO, a device, or a file larger than any checkpoint;
5. a runtime log on a full disk;
6. ties that follow each other round, and chains given in any order;

and ``evaluate ""``, a loop of symbolic links, a checkpoint that ``weights_only`` refuses with a
page of advice, and a too-large evaluation blamed on the wrong flag. Every bad input: exit
status 2, one line on stderr, no traceback, nothing written and nothing queued.
"""

from __future__ import annotations

import io
import itertools
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import warnings
from pathlib import Path

import pytest
import torch
from conftest import TINY_TRAIN_FLAGS, assert_one_line_error, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli_store import run_count

from seqcopy.cli.commands import load_model, main
from seqcopy.cli.log_folder import (
    MAX_NAME,
    MAX_NAME_BYTES,
    LogFolder,
    LogFolderError,
    log_folder_name,
    own_file_names,
)
from seqcopy.cli.plots import PLOT_FILES
from seqcopy.config import RunConfig
from seqcopy.core import checkpoint
from seqcopy.core.evaluation import EvaluationError
from seqcopy.results.sweeps import Grid, SweepError, Tie, TieError, parse_tie, tie_order
from seqcopy.runs.store import Store
from seqcopy.runs.worker import StopSignals
from seqcopy.text import BIDI_CONTROLS
from seqcopy.ui.launch_form import FormTies, build_configs, form_values

REPO = Path(__file__).resolve().parents[1]
ENV = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
# The submit flags, before the tie.
SUBMIT_FLAGS = ["-p", "2", "-b", "8", "-em", "4", "-ep", "2", "-trs", "64", "-ts", "16", "-iseq", "6", "-oseq", "3",
                "-hs", "8", "-tseq", "12"]
PARTIAL = ".pth.partial"  # the longest suffix an experiment folder holds


def refused_with_nothing_queued(capsys, db_url: str, *argv: str, needles=()) -> str:
    """``seqcopy ARGV… --db URL`` on an empty store: exit 2, one line, no run queued; the line."""
    Store(db_url).close()
    code, out, err = run_cli(capsys, *argv, "--db", db_url)
    assert_one_line_error(code, err, *needles)
    assert out == "" and "Traceback" not in err and run_count(db_url) == 0
    return err.strip()


def train_in(folder: Path, monkeypatch, capsys, *flags: str) -> tuple[int, str, str]:
    """``seqcopy train`` on the tiny run, in ``folder`` (its logs/ and runs.db there)."""
    monkeypatch.chdir(folder)
    monkeypatch.setattr(StopSignals, "install", lambda signals: signals)  # pytest keeps its own handlers
    code = main(["train", *TINY_TRAIN_FLAGS, *flags])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------- 1. a huge tie factor
@pytest.mark.parametrize("factor", ["1e308", "1e300", "5000"])
def test_a_tie_past_its_targets_limits_is_one_line_with_nothing_queued(sqlite_url, capsys, factor):
    line = refused_with_nothing_queued(capsys, sqlite_url, "submit", *SUBMIT_FLAGS,
                                       "--tie", f"test_output_len=train_output_len*{factor}",
                                       needles=("--tie: the tie test_output_len=train_output_len*", "limits"))
    assert len(line) < 200  # never a number of hundreds of digits


def test_the_tied_value_is_bounded_before_it_is_rounded():
    base = RunConfig(train_output_len=3)
    assert Tie("test_output_len", "train_output_len", 2.5).value(base) == 8  # round(7.5): as before
    assert Tie("lr", "train_output_len", 0.01).value(base) == pytest.approx(0.03)
    for factor in (1e308, 1e300, 1e-300):
        with pytest.raises(TieError) as caught:
            Tie("test_output_len", "train_output_len", factor).value(base)
        assert caught.value.field == "test_output_len" and len(str(caught.value)) < 200
    for factor in (float("inf"), float("nan"), 0.0, -1.0, True):
        with pytest.raises(SweepError, match="positive number"):
            Tie("test_output_len", "train_output_len", factor)  # the form builds its ties without parse_tie


def test_the_forms_ties_are_checked_the_same_way():
    values = form_values(RunConfig(train_seq_len=2000, train_output_len=1000, test_seq_len=2000, test_output_len=1000,
                                   hidden_size=8, embedding_size=4, train_samples=64, test_samples=16))
    too_far = build_configs(values, ["lstm"], "0", ties=FormTies(test_to_train=True, factor=100.0))
    assert "the tie test_seq_len=train_seq_len*100 gives 200000" in too_far.errors["test_seq_len"]
    assert not too_far.configs
    for factor in (float("inf"), float("nan")):
        broken = build_configs(values, ["lstm"], "0", ties=FormTies(test_to_train=True, factor=factor))
        assert "positive number" in broken.errors["grid"] and not broken.configs


# ---------------------------------------------------------------------------- 2. and 3. names in bytes
@pytest.mark.parametrize("name, size", [("é" * 200, 400), ("é" * 124, 248), ("🙂" * 61, 244)])
def test_a_name_whose_files_are_too_long_in_bytes_is_refused_with_nothing_written(tmp_path, monkeypatch, capsys,
                                                                                  name, size):
    assert len(name) <= MAX_NAME  # within the characters: only its bytes are too many
    code, out, err = train_in(tmp_path, monkeypatch, capsys, "-l", name)
    assert_one_line_error(code, err, f"is {size} bytes", f"NAME{PARTIAL} would be {size + len(PARTIAL)}",
                          f"at most {MAX_NAME_BYTES - len(PARTIAL)}")
    assert out == "" and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no logs folder, no runs.db


def test_the_longest_name_that_fits_trains_and_writes_every_output(tmp_path, monkeypatch, capsys):
    name = "é" * ((MAX_NAME_BYTES - len(PARTIAL)) // 2)  # 121 × 2 bytes: NAME.pth.partial is 254
    code, _out, err = train_in(tmp_path, monkeypatch, capsys, "-l", name)
    assert code == 0, err
    assert {path.name for path in (tmp_path / "logs" / name).iterdir()} == {
        f"{name}.log", f"{name}.pth", "config.json", *PLOT_FILES}
    assert checkpoint.load_file(tmp_path / "logs" / name / f"{name}.pth")[1].hidden_size == 8


def test_a_file_system_with_a_shorter_limit_refuses_the_name_before_training(tmp_path, monkeypatch):
    """The probe file in prepare() is as long as the folder's longest file, so a limit below 255
    (eCryptfs has 143) is met there, before anything is trained."""
    real_write = Path.write_bytes

    def short_names(path, data):
        if len(os.fsencode(path.name)) > 143:
            raise OSError(36, "File name too long")
        return real_write(path, data)

    monkeypatch.setattr(Path, "write_bytes", short_names)
    experiment = LogFolder("n" * 140, tmp_path / "logs")
    with pytest.raises(LogFolderError, match="File name too long"):
        experiment.prepare()
    assert list(tmp_path.iterdir()) == []


def expected_name(log: str) -> str | None:
    """The experiment name an -l value gives, by the rules stated independently of the code:
    None when it must be refused."""
    name = log.removesuffix(".log")
    forbidden = any(unicodedata.category(c) in ("Cc", "Cs") or c in BIDI_CONTROLS for c in name)
    if not name or len(name) > MAX_NAME or forbidden or "/" in name or "\\" in name or name in (".", ".."):
        return None
    every_file = [name, f"{name}.log", f"{name}.pth", f"{name}{PARTIAL}", *PLOT_FILES, "config.json"]
    return name if all(len(file.encode("utf-8")) <= MAX_NAME_BYTES for file in every_file) else None


ANY_CHARACTER = st.characters(codec=None, exclude_categories=())  # all of Unicode, surrogates included
WIDE = st.sampled_from("aé東🙂\u0301\U0010fffd")  # 1 to 4 bytes each: names near the limit
NAMES = st.one_of(st.text(ANY_CHARACTER, max_size=MAX_NAME + 10), st.text(WIDE, min_size=55, max_size=MAX_NAME + 5),
                  st.builds(lambda text: text + ".log", st.text(WIDE, min_size=55, max_size=130)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NAMES)
def test_a_name_is_accepted_iff_every_file_of_its_folder_fits_and_then_each_can_be_created(log):
    expected = expected_name(log)
    try:
        name = log_folder_name(log)
    except LogFolderError as error:
        assert expected is None, (log, error)
        assert "\n" not in str(error)
        return
    assert name == expected
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / name
        folder.mkdir()
        files = {*own_file_names(name)[1:], *PLOT_FILES, "config.json"}
        for file in files:
            (folder / file).write_bytes(b"")
        assert {path.name for path in folder.iterdir()} == files


# ---------------------------------------------------------------------------- 4. files that are no checkpoint
def test_evaluate_on_a_fifo_returns_at_once(tmp_path):
    fifo = tmp_path / "f.pth"
    os.mkfifo(fifo)
    outcome = {}

    def load():
        try:
            load_model(str(fifo))
        except Exception as error:  # noqa: BLE001 - what it raises is the test's answer
            outcome["error"] = error

    worker = threading.Thread(target=load, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # a writer ends the wait, so this test never hangs
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("load_model blocked on a FIFO")
    assert time.monotonic() - started < 1
    assert isinstance(outcome["error"], checkpoint.CheckpointError) and "named pipe" in str(outcome["error"])

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "seqcopy", "evaluate", str(fifo)], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=10, check=False)
    assert time.monotonic() - started < 10
    assert_one_line_error(done.returncode, done.stderr, "is a named pipe (FIFO), not a checkpoint file")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["f.pth"]  # nothing written


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
def test_evaluate_on_a_device_is_refused_without_reading_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _out, err = run_cli(capsys, "evaluate", "/dev/zero")
    assert_one_line_error(code, err, "/dev/zero is a character device, not a checkpoint file")
    assert list(tmp_path.iterdir()) == []


def test_a_file_larger_than_any_checkpoint_is_refused_unread(tmp_path, monkeypatch, capsys):
    huge = tmp_path / "huge.pth"
    with huge.open("wb") as file:  # sparse: nothing is written, it only says it is this long
        file.truncate(checkpoint.MAX_FILE_BYTES + 1)
    code, _out, err = run_cli(capsys, "evaluate", str(huge))
    assert_one_line_error(code, err, "larger than any checkpoint")

    config = RunConfig(hidden_size=8, embedding_size=4)
    small = checkpoint.save_file(tmp_path / "small.pth", checkpoint.build_model(config), config)
    monkeypatch.setattr(checkpoint, "MAX_FILE_BYTES", small.stat().st_size - 1)
    with pytest.raises(checkpoint.CheckpointError, match="larger than any checkpoint"):
        checkpoint.load_file(small)
    monkeypatch.undo()
    assert checkpoint.load_file(small)[1] == config  # and within the cap it loads


def test_the_cap_is_a_generous_multiple_of_the_largest_model_the_caps_allow():
    from seqcopy.config import MAX_EMBEDDING, MAX_HIDDEN
    from seqcopy.costs import parameter_count

    largest = 4 * parameter_count("mlstm", MAX_EMBEDDING, MAX_HIDDEN)
    assert checkpoint.MAX_FILE_BYTES >= 2 * largest and checkpoint.MAX_FILE_BYTES < 2**30


def test_a_checkpoint_that_fails_to_save_leaves_no_partial_file(tmp_path, monkeypatch):
    def disk_full(self, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", disk_full)
    config = RunConfig(hidden_size=8, embedding_size=4)
    with pytest.raises(OSError, match="No space"):
        checkpoint.save_file(tmp_path / "m.pth", checkpoint.build_model(config), config)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- 5. a full disk under the log
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_log_on_a_full_disk_is_one_line_and_the_run_completes(tmp_path, monkeypatch, capsys):
    (tmp_path / "logs" / "full").mkdir(parents=True)
    (tmp_path / "logs" / "full" / "full.log").symlink_to("/dev/full")
    code, out, err = train_in(tmp_path, monkeypatch, capsys, "-l", "full")
    assert code == 0, err
    assert err.splitlines() == ["runtime log not written to logs/full/full.log: No space left on device"]
    assert '"status": "completed"' in out.splitlines()[-1]
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    (run,) = store.list_runs()
    store.close()
    assert run.status == "completed" and not run.error  # not the run's failure, and no traceback stored
    assert {"full.pth", "config.json", *PLOT_FILES} <= {path.name for path in (tmp_path / "logs" / "full").iterdir()}


def test_every_write_of_the_log_is_handled_and_said_once(tmp_path):
    said = []
    experiment = LogFolder("x", tmp_path, warn=said.append)
    experiment.prepare()
    experiment.start_log(1, RunConfig(), "sqlite:///x")
    experiment.close_log()

    class FullDisk(io.StringIO):
        def flush(self):
            raise OSError(28, "No space left on device")

        def close(self):
            raise OSError(28, "No space left on device")

    experiment._log = FullDisk()
    experiment.log("epoch 1")  # neither raises
    experiment.log("epoch 2")
    experiment.close_log()
    assert said == [f"runtime log not written to {experiment.log_path}: No space left on device"]
    assert experiment.log_error == said[0]

    unopenable = LogFolder("y", tmp_path, warn=said.append)
    unopenable.prepare()
    unopenable.log_path.mkdir()  # in the way after prepare(): opening it fails
    unopenable.start_log(1, RunConfig(), "sqlite:///x")
    unopenable.log("never raises")
    unopenable.close_log()
    assert len(said) == 2 and said[1].startswith(f"runtime log not written to {unopenable.log_path}: ")


# ---------------------------------------------------------------------------- 6. tie graphs
def test_a_tie_cycle_is_refused_in_one_line_whatever_the_order(sqlite_url, capsys):
    ties = ["train_output_len=train_seq_len", "train_seq_len=train_output_len"]
    for order in (ties, ties[::-1]):
        line = refused_with_nothing_queued(capsys, sqlite_url, "submit", "-hs", "8", "-tseq", "12", "-toseq", "6",
                                           *itertools.chain.from_iterable(("--tie", tie) for tie in order),
                                           needles=("make a cycle", *ties))
        assert "train_output_len → train_seq_len → train_output_len" in line or \
            "train_seq_len → train_output_len → train_seq_len" in line


def test_a_chain_of_ties_is_resolved_in_dependency_order_whatever_the_flag_order(sqlite_url, capsys):
    ties = ["test_output_len=train_output_len", "train_output_len=train_seq_len*0.4"]
    queued = []
    for order in (ties, ties[::-1]):
        code, out, err = run_cli(capsys, "submit", "-hs", "8", "-em", "4", "-tseq", "60", "-trs", "64", "-ts", "16",
                                 *itertools.chain.from_iterable(("--tie", tie) for tie in order), "--db", sqlite_url)
        assert code == 0, err
        queued.append(int(out.split()[0]))
    store = Store(sqlite_url)
    configs = [store.get_run(run_id).config for run_id in queued]
    store.close()
    assert configs[0] == configs[1]
    # Applied in the order given, the first would have copied N before its own tie set it (50).
    assert (configs[0].train_seq_len, configs[0].train_output_len, configs[0].test_output_len) == (100, 40, 40)


TIE_FIELDS = ("train_seq_len", "train_output_len", "test_seq_len", "test_output_len", "padding", "hidden_size",
              "embedding_size", "epochs")
BASE = RunConfig(train_seq_len=100, train_output_len=50, test_seq_len=12, test_output_len=6, padding=3, hidden_size=8,
                 embedding_size=4, epochs=5)  # every field a different value, so an order shows


@st.composite
def tie_graphs(draw):
    """Random ties: some fields, each following another field, each tied once; and an order."""
    targets = draw(st.lists(st.sampled_from(TIE_FIELDS), min_size=1, max_size=len(TIE_FIELDS), unique=True))
    ties = [Tie(target, draw(st.sampled_from([f for f in TIE_FIELDS if f != target]))) for target in targets]
    return ties, draw(st.permutations(ties))


def follows(ties: list[Tie]) -> dict[str, str]:
    return {tie.target: tie.source for tie in ties}


def has_cycle(ties: list[Tie]) -> bool:
    graph = follows(ties)
    for start in graph:
        seen, node = set(), start
        while node in graph:
            if node in seen:
                return True
            seen.add(node)
            node = graph[node]
    return False


@settings(max_examples=300, deadline=None)
@given(tie_graphs())
def test_random_tie_graphs_chains_resolve_alike_in_every_order_and_cycles_are_refused(graph):
    ties, shuffled = graph
    if has_cycle(ties):
        for order in (ties, shuffled):
            with pytest.raises(SweepError, match="make a cycle") as caught:
                Grid(BASE, ("lstm",), (0,), (), tuple(order))
            assert "\n" not in str(caught.value)
        return
    runs = [Grid(BASE, ("lstm",), (0,), (), tuple(order)).configs() for order in (ties, shuffled)]
    assert runs[0] == runs[1]
    (config,) = runs[0]
    graph_of = follows(ties)
    for tie in ties:
        root = tie.target
        while root in graph_of:  # with factor 1, a chain's every field takes its root's value
            root = graph_of[root]
        assert getattr(config, tie.target) == getattr(BASE, root), (tie, root)
    order = tie_order(shuffled)
    for index, tie in enumerate(order):  # each tie after the one that sets its source
        assert all(later.target != tie.source for later in order[index:])


def test_the_presets_and_the_forms_chains_are_unchanged():
    ties = (parse_tie("train_output_len=train_seq_len"), parse_tie("test_seq_len=train_seq_len*2"),
            parse_tie("test_output_len=train_output_len*2"))
    assert tie_order(ties) == ties  # already in dependency order: kept as given
    assert FormTies(n_to_k=True, test_to_train=True, factor=2.0).ties() == ties


# ---------------------------------------------------------------------------- the smaller cases
def test_evaluate_an_empty_name_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _out, err = run_cli(capsys, "evaluate", "", "--db", f"sqlite:///{tmp_path / 'runs.db'}")
    assert_one_line_error(code, err, "the model is an empty name")
    assert "is a folder" not in err and list(tmp_path.iterdir()) == []


def test_evaluate_a_loop_of_symbolic_links_names_the_loop(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.pth").symlink_to("b.pth")
    (tmp_path / "b.pth").symlink_to("a.pth")
    code, _out, err = run_cli(capsys, "evaluate", "a.pth")
    assert_one_line_error(code, err, "'a.pth': ", "symbolic links")
    assert "no such file" not in err
    with pytest.raises(EvaluationError, match="no such file"):
        load_model(str(tmp_path / "dangling.pth"))  # a link to nowhere is still no such file
    (tmp_path / "dangling.pth").symlink_to("nowhere.pth")
    with pytest.raises(EvaluationError, match="no such file"):
        load_model(str(tmp_path / "dangling.pth"))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.pth", "b.pth", "dangling.pth"]


class BlockedModule:
    def __reduce__(self):
        return (os.system, ("echo executed",))


@pytest.mark.parametrize("payload, words", [
    (lambda: _saved({"format": 1, "payload": BlockedModule()}), "weights_only=True refused it: Trying to load"),
    (lambda: pickle.dumps({"format": 1}, protocol=4), "weights_only=True refused it: Unsupported operand"),
])
def test_a_checkpoint_weights_only_refuses_is_the_projects_one_line(tmp_path, capsys, payload, words):
    path = tmp_path / "crafted.pth"
    path.write_bytes(payload())
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        code, out, err = run_cli(capsys, "evaluate", str(path))
    assert_one_line_error(code, err, words)
    assert not [w for w in shown if "pickle protocol" in str(w.message)]  # torch's warning would be a second line
    assert "PyTorch 2.6" not in err and "\x1b" not in err and len(err) < 250
    assert "executed" not in out


def _saved(payload) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def test_a_too_large_evaluation_blames_the_test_set_not_the_batch(tiny_experiment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = str(tiny_experiment.folder / "tiny.pth")
    code, _out, err = run_cli(capsys, "evaluate", model, "-ts", "1000000", "-tseq", "10000", "-toseq", "1")
    assert_one_line_error(code, err, "-ts/--test_samples: ", "GiB", "the test set")
    assert "batch" not in err and list(tmp_path.iterdir()) == []
    # A run too large for its training data or batch still names the batch, as before.
    training = RunConfig(train_samples=1_000_000, train_seq_len=1000, train_output_len=1000, hidden_size=2048)
    assert set(training.validate(check_device=False)) == {"batch_size"}
