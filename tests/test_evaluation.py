"""`seqcopy evaluate`: a saved model tested as its training run's test pass, at any length."""

import io
import json

import pytest
import torch
from conftest import assert_one_line_error, run_cli

from seqcopy.cli.commands import load_model
from seqcopy.config import MAX_TEST_SEQ, RunConfig
from seqcopy.core.evaluation import evaluate_model, with_test_settings
from seqcopy.runs.store import Store
from seqcopy.vocab import CHANCE_LEVEL


def test_evaluate_reproduces_the_training_runs_final_test_metrics_exactly(tiny_experiment):
    store = Store(tiny_experiment.db_url)
    last = store.epochs([tiny_experiment.run_id])[-1]
    positions = [row["copy_acc"] for row in store.position_results([tiny_experiment.run_id])]
    store.close()
    for source in (str(tiny_experiment.run_id), str(tiny_experiment.folder / "tiny.pth")):
        loaded = load_model(source, tiny_experiment.db_url)
        evaluation = evaluate_model(loaded, with_test_settings(loaded.config))
        assert evaluation.chunk == 3 + 1 + 3 and loaded.config.test_length == 6 + 1 + 4  # two chunks
        assert evaluation.loss == last["test_loss"]  # the very same floats, not approximately
        assert evaluation.accuracy == last["test_acc"]
        assert evaluation.copy_accuracy == last["test_copy_acc"]
        assert evaluation.sequence_accuracy == last["test_seq_acc"]
        assert evaluation.position_acc == positions and len(positions) == 4


def test_evaluate_prints_the_metrics_and_a_json_last_line(tiny_experiment, capsys):
    code, out, err = run_cli(capsys, "evaluate", str(tiny_experiment.run_id), "--db", tiny_experiment.db_url)
    assert code == 0, err
    lines = out.strip().splitlines()
    summary = json.loads(lines[-1])
    trained = tiny_experiment.summary
    for key in ("test_loss", "test_acc", "test_copy_acc", "test_seq_acc"):
        assert summary[key] == trained[key], key  # the training run's own JSON line
    assert (summary["chance"] == round(CHANCE_LEVEL, 6)
            and summary["never_copying_acc"] == round((6 + 1 + 4 / 9) / 11, 6))
    text = "\n".join(lines[:-1])
    for words in ("loss", "accuracy (all positions)", "never copying", "copy accuracy", "chance: 1/9",
                  "sequence accuracy", "copy accuracy by output position", "1-4"):
        assert words in text, words


def test_evaluate_a_file_at_new_lengths_from_another_folder(tiny_experiment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = str(tiny_experiment.folder / "tiny.pth")
    # The original assignment's spellings, long and short, and the hyphenated alias.
    code, out, err = run_cli(capsys, "evaluate", model, "--test_seq_len", "30", "--test-output-len", "25", "-p", "2",
                             "-ts", "40", "-s", "7")
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["test_seq_len"], summary["test_output_len"], summary["padding"]) == (30, 25, 2)
    assert (summary["test_samples"], summary["seed"], summary["run_id"]) == (40, 7, None)
    assert len(summary["position_acc"]) == 25 and "21-25" in out
    assert list(tmp_path.iterdir()) == []  # evaluating writes nothing


def test_evaluate_says_which_multiplicative_form_ran(tiny_experiment, tmp_path, capsys):
    from seqcopy.core import checkpoint
    from seqcopy.core.checkpoint import build_model

    assert tiny_experiment.summary["mult_form"] is None  # an LSTM: no such choice
    config = RunConfig(cell="mlstm", mult_form="input", hidden_size=8, embedding_size=4, train_seq_len=3,
                       train_output_len=3, test_seq_len=4, test_output_len=3, padding=1, test_samples=8)
    checkpoint.save_file(tmp_path / "input.pth", build_model(config), config)
    code, out, err = run_cli(capsys, "evaluate", str(tmp_path / "input.pth"))
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["mult_form"] == "input"
    assert out.startswith(f"model: {tmp_path / 'input.pth'}, mlstm (input form), hidden 8")


def crafted(path, payload):
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path.write_bytes(buffer.getvalue())
    return str(path)


class Evil:
    def __reduce__(self):
        return (print, ("executed",))


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d: str(d / "absent.pth"), "no such file"),
        (lambda d: str(d), "is a folder"),
        (lambda d: crafted(d / "evil.pth", {"format": 1, "payload": Evil()}), "weights_only=True refused it"),
        (lambda d: crafted(d / "huge.pth", {"format": 1, "config": {"hidden_size": 10**6}, "state_dict": {}}),
         "invalid config"),
        (lambda d: crafted(d / "foreign.pth", {"weights": torch.zeros(2)}), "not a seqcopy checkpoint"),
        (lambda d: (d / "text.pth").write_text("{}") and str(d / "text.pth"), "not a readable checkpoint"),
    ],
)
def test_missing_and_crafted_files_are_refused_in_one_line(tmp_path, capsys, make, words):
    code, out, err = run_cli(capsys, "evaluate", make(tmp_path))
    assert_one_line_error(code, err, words)
    assert out == "" and "\x1b" not in err  # no terminal escapes from torch's message


def test_unknown_runs_and_runs_without_a_checkpoint_are_refused(sqlite_url, tiny_experiment, capsys):
    code, out, err = run_cli(capsys, "evaluate", "424242", "--db", tiny_experiment.db_url)
    assert_one_line_error(code, err, "no run with id 424242")
    store = Store(tiny_experiment.db_url)
    config = store.get_run(tiny_experiment.run_id).config
    store.close()
    store = Store(sqlite_url)
    queued = store.submit(config)  # queued: no checkpoint yet
    store.close()
    code, out, err = run_cli(capsys, "evaluate", str(queued), "--db", sqlite_url)
    assert_one_line_error(code, err, f"run {queued} (queued) has no checkpoint")


@pytest.mark.parametrize("source, words", [
    ("9" * 20_000, "not a run id"), ("9223372036854775808", "not a run id"), ("0", "not a run id"),
    ("x" * 300, "too long"),
])
def test_ids_past_the_stores_range_and_names_past_the_systems_are_one_line(tiny_experiment, capsys, source, words):
    code, out, err = run_cli(capsys, "evaluate", source, "--db", tiny_experiment.db_url)
    assert_one_line_error(code, err, words)


@pytest.mark.parametrize(
    "flags, words",
    [
        (["-tseq", str(MAX_TEST_SEQ + 1)], "-tseq/--test_seq_len: must be at most"),
        (["-tseq", "5", "-toseq", "6"], "cannot be longer"),
        (["-ts", "0"], "-ts/--test_samples: must be at least"),
        (["-ts", "2000000"], "-ts/--test_samples: must be at most"),
        (["-p", "0"], "padding"),
        (["-d", "tpu"], "unknown device"),
        (["-s", "-1"], "seed"),
        (["-tseq", "many"], "invalid int value"),
    ],
)
def test_lengths_past_the_caps_are_refused(tiny_experiment, capsys, flags, words):
    code, out, err = run_cli(capsys, "evaluate", str(tiny_experiment.folder / "tiny.pth"), *flags)
    assert_one_line_error(code, err, words)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_device_this_machine_lacks_is_refused(tiny_experiment, capsys):
    code, out, err = run_cli(capsys, "evaluate", str(tiny_experiment.folder / "tiny.pth"), "-d", "cuda")
    assert_one_line_error(code, err, "no CUDA device")


def test_a_model_trained_on_a_gpu_is_tested_on_the_cpu_here(tiny_experiment):
    loaded = load_model(str(tiny_experiment.folder / "tiny.pth"))
    gpu_trained = loaded.config.replace(device="cuda")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert with_test_settings(gpu_trained).device == expected
    assert with_test_settings(gpu_trained, device="cpu", test_seq_len=9).test_seq_len == 9
