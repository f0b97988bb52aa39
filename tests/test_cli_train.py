"""The original assignment's command line: flags, defaults, refusals, the JSON summary and the checkpoint."""

import json
import subprocess
import sys

import pytest
import torch

from seqcopy.cli.commands import main
from seqcopy.config import RunConfig
from seqcopy.core import checkpoint
from seqcopy.core.model import CopyModel

TINY_FLAGS = ["-iseq", "4", "-tseq", "6", "-p", "2", "-oseq", "4", "-toseq", "5", "-b", "8",
              "-em", "4", "-hs", "8", "-ep", "2", "-trs", "32", "-ts", "8"]


@pytest.mark.parametrize(
    "flags, words",
    [
        (["-c", "transformer"], "unknown cell"),
        (["-hs", "0"], "-hs/--hidden_size"),
        (["-em", "0"], "-em/--embedding_size"),
        (["-b", "0"], "-b/--batch_size"),
        (["-p", "0"], "padding"),
        (["-lr", "0"], "-lr/--learning_rate: must be at least"),
        (["-lr", "-0.1"], "-lr/--learning_rate: must be at least"),
        (["-lr", "1e-320"], "-lr/--learning_rate: must be at least"),
        (["-lr", "nan"], "finite"),
        (["-iseq", "5", "-oseq", "6"], "cannot be longer"),
        (["-tseq", "5", "-toseq", "6"], "cannot be longer"),
        (["-trs", "0"], "-trs/--train_samples"),
        (["-ts", "0"], "-ts/--test_samples"),
        (["-ep", "0"], "epochs"),
        (["-d", "tpu"], "unknown device"),
        (["-hs", "ten"], "invalid int value"),
        (["--bogus"], "unrecognized"),
        (["-hs", "999999"], "at most"),
    ],
)
def test_bad_flags_exit_2_with_one_line(flags, words, capsys, tmp_path):
    db = tmp_path / "runs.db"
    code = main(["train", *flags, "--db", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and words in err
    assert not db.exists()  # nothing written


def test_train_prints_progress_and_a_json_summary_and_saves_a_loadable_checkpoint(tmp_path):
    target = tmp_path / "logs" / "tiny" / "tiny.pth"
    out = subprocess.run(
        [sys.executable, "-m", "seqcopy", "train", *TINY_FLAGS, "-c", "mgru", "-s", "3",
         "-l", "tiny", "--logs-dir", str(tmp_path / "logs"), "--db", f"sqlite:///{tmp_path / 'runs.db'}"],
        capture_output=True, text=True, timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 2
    summary = json.loads(lines[-1])
    for key in ["cell", "seed", "epochs", "train_loss", "test_loss", "train_acc", "test_acc",
                "train_copy_acc", "test_copy_acc", "test_seq_acc", "seconds"]:
        assert key in summary
    assert summary["cell"] == "mgru" and summary["seed"] == 3 and summary["epochs"] == 2
    assert summary["mult_form"] == "krause"  # which form ran (issue 15)
    payload = torch.load(target, weights_only=True)  # plain data: loads without unpickling code
    assert payload["config"]["cell"] == "mgru"
    model, config = checkpoint.load_file(target)
    assert isinstance(model, CopyModel) and config.hidden_size == 8


def test_checkpoint_round_trip_gives_the_same_logits(tmp_path):
    config = RunConfig(cell="mlstm", embedding_size=4, hidden_size=8)
    model = checkpoint.build_model(config).eval()
    path = checkpoint.save_file(tmp_path / "a.pt", model, config)
    loaded, loaded_config = checkpoint.load_file(path)
    x = torch.randint(0, 11, (2, 9))
    torch.testing.assert_close(loaded(x)[0], model(x)[0])
    assert loaded_config == config


@pytest.mark.parametrize(
    "content, words",
    [(b"not a checkpoint at all", "not a readable checkpoint"), (b"", "not a readable checkpoint")],
)
def test_bad_checkpoint_files_give_one_line(tmp_path, content, words):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(checkpoint.CheckpointError, match=words) as info:
        checkpoint.load_file(path)
    assert "\n" not in str(info.value)


def test_checkpoint_that_does_not_match_its_config(tmp_path):
    config = RunConfig(embedding_size=4, hidden_size=8)
    blob = checkpoint.to_bytes(checkpoint.build_model(config), config.replace(hidden_size=16))
    with pytest.raises(checkpoint.CheckpointError, match="does not match"):
        checkpoint.from_bytes(blob)


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": Evil()}, path)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load_file(path)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="cannot read"):
        checkpoint.load_file(tmp_path / "absent.pt")


def test_an_unwritable_location_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    db = tmp_path / "runs.db"
    code = main(["train", *TINY_FLAGS, "-l", "sub", "--logs-dir", str(blocker), "--db", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot write in" in err and len(err.strip().splitlines()) == 1
    assert not db.exists()  # refused before any run was recorded


def test_the_summary_is_valid_json_even_for_a_diverged_run():
    from seqcopy.cli.commands import _json_safe

    line = json.dumps(_json_safe({"train_loss": float("nan"), "test_loss": float("inf"), "epochs": 3}))
    assert json.loads(line) == {"train_loss": None, "test_loss": None, "epochs": 3}


@pytest.mark.parametrize(
    "config, words",
    [
        ({"cell": "lstm", "hidden_size": 10**6}, "invalid config"),  # would ask for terabytes
        ("not a dict", "does not match"),
    ],
)
def test_crafted_checkpoint_configs_are_refused(config, words):
    import io

    buffer = io.BytesIO()
    torch.save({"format": 1, "config": config, "state_dict": {}}, buffer)
    with pytest.raises(checkpoint.CheckpointError, match=words):
        checkpoint.from_bytes(buffer.getvalue())
