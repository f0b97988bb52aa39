"""`train -l/--log NAME`: the original assignment's log folder, its refusals, the plots and the progress line."""

import io
import json
import sys

import pytest
import torch
from conftest import TINY_TRAIN_FLAGS

from seqcopy.cli import commands as cli
from seqcopy.cli.commands import main
from seqcopy.cli.flags import config_from_args
from seqcopy.cli.log_folder import LogFolder, LogFolderError, epoch_line, log_folder_name
from seqcopy.cli.plots import PLOT_FILES, accuracy_figure, copy_accuracy_figure, write_training_plots
from seqcopy.config import RunConfig
from seqcopy.core import checkpoint
from seqcopy.core.metrics import blank_baseline_accuracy
from seqcopy.core.train import EpochResult
from seqcopy.runs.store import Store
from seqcopy.runs.worker import StopSignals
from seqcopy.vocab import CHANCE_LEVEL

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SEED_EXAMPLE = ("-d cuda -l lstm_100_E32_H256_lr0.001_N50k_trial1 -iseq 100 -tseq 500 -p 3 -oseq 100 -toseq 200 "
                "-b 32 -em 16 -hs 256 -c lstm -ep 15 -lr 0.001 -s 42 -trs 50000 -ts 10000").split()


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, path


# ---------------------------------------------------------------------------- the folder
def test_train_l_name_writes_the_seeds_outputs(tiny_experiment):
    folder = tiny_experiment.folder
    names = {path.name for path in folder.iterdir()}
    assert names == {"tiny.log", "tiny.pth", "config.json", *PLOT_FILES}
    for name in PLOT_FILES:
        assert_png(folder / name)

    log = (folder / "tiny.log").read_text().splitlines()
    assert log[0].startswith(f"seqcopy run {tiny_experiment.run_id}, recorded in sqlite:///")
    config_line = next(line for line in log if line.startswith("config "))
    epoch_lines = [line for line in log if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/2", "2/2"]
    assert json.loads(log[-1]) == tiny_experiment.summary  # the final summary, as printed
    stdout_epochs = [line for line in tiny_experiment.stdout.splitlines() if line.startswith("epoch ")]
    assert epoch_lines == stdout_epochs

    store = Store(tiny_experiment.db_url)
    run = store.get_run(tiny_experiment.run_id)  # still recorded in the store
    blob = store.checkpoint(run.id)
    store.close()
    assert run.status == "completed"
    assert RunConfig.from_dict(json.loads(config_line[len("config "):])) == run.config
    assert RunConfig.from_dict(json.loads((folder / "config.json").read_text())) == run.config

    payload = torch.load(folder / "tiny.pth", weights_only=True)  # plain data, no code
    assert set(payload) >= {"config", "state_dict"} and payload["config"]["hidden_size"] == 8
    from_file, config = checkpoint.load_file(folder / "tiny.pth")
    from_store, _ = checkpoint.from_bytes(blob)
    assert config == run.config
    for name, tensor in from_store.state_dict().items():
        assert torch.equal(tensor, from_file.state_dict()[name])


def test_the_default_name_is_the_seeds_rnn_log(tmp_path):
    args = cli.build_parser().parse_args(["train"])
    assert (args.log, args.logs_dir) == ("rnn.log", "logs")
    experiment = LogFolder(args.log, tmp_path / args.logs_dir)
    assert experiment.folder == tmp_path / "logs" / "rnn"
    assert experiment.log_path.name == "rnn.log" and experiment.model_path.name == "rnn.pth"


@pytest.mark.parametrize(
    "log, name",
    [("rnn.log", "rnn"), ("lstm_100_E32_H256_lr0.001_N50k_trial1", "lstm_100_E32_H256_lr0.001_N50k_trial1"),
     ("a.log.log", "a.log"), ("x..y", "x..y"), ("écrit", "écrit"), ("n" * 200, "n" * 200)],
)
def test_good_names(log, name):
    assert log_folder_name(log) == name


@pytest.mark.parametrize(
    "log, words",
    [("", "empty"), (".log", "empty"), ("a/b", "path separator"), ("a\\b", "path separator"),
     ("../up", "path separator"), ("/tmp/x", "path separator"), ("..", "name folders"), (".", "name folders"),
     ("a\tb", "control character"), ("a\nb", "control character"), ("a\x00b", "control character"),
     ("n" * 201, "at most 200")],
)
def test_bad_names_are_refused_with_nothing_written(log, words, tmp_path, monkeypatch, capsys):
    with pytest.raises(LogFolderError, match=words):
        log_folder_name(log)
    monkeypatch.chdir(tmp_path)
    code = main(["train", *TINY_TRAIN_FLAGS, "-l", log])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no logs folder, no runs.db


def test_a_folder_named_like_the_model_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "logs" / "clash" / "clash.pth").mkdir(parents=True)
    db = tmp_path / "runs.db"
    code = main(["train", *TINY_TRAIN_FLAGS, "-l", "clash", "--logs-dir", str(tmp_path / "logs"), "--db", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 2 and "a folder of that name is in the way" in err and len(err.strip().splitlines()) == 1
    assert not db.exists()


def test_a_refused_store_leaves_no_experiment_folder(tmp_path, capsys):
    logs = tmp_path / "new" / "logs"
    code = main(["train", *TINY_TRAIN_FLAGS, "-l", "x", "--logs-dir", str(logs), "--db", "mysql://nobody@nowhere/x"])
    assert code == 2 and "unsupported database" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # the folders made for the check are gone again


# ---------------------------------------------------------------------------- the original assignment's example
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the example would train")
def test_the_seeds_cuda_example_fails_in_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", *SEED_EXAMPLE])  # the original assignment's `python rnn.py …` example, unchanged
    err = capsys.readouterr().err
    assert code == 2 and err == "seqcopy: error: -d/--device: no CUDA device is available on this machine\n"
    assert list(tmp_path.iterdir()) == []  # no log folder, no runs.db


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has an Apple GPU")
def test_the_seeds_mps_advice_fails_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", *TINY_TRAIN_FLAGS, "-d", "mps"])
    assert code == 2 and "no MPS" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_seeds_example_is_a_valid_run_on_the_cpu():
    """The same command with -d cpu would train: every value passes validation."""
    args = cli.build_parser().parse_args(["train", *SEED_EXAMPLE, "-d", "cpu"])
    config = config_from_args(args)
    assert config.validate() == {}
    assert (config.cell, config.train_seq_len, config.test_seq_len, config.train_samples) == ("lstm", 100, 500, 50_000)
    assert LogFolder(args.log, args.logs_dir).name == "lstm_100_E32_H256_lr0.001_N50k_trial1"


# ---------------------------------------------------------------------------- stopped and diverged runs
def test_a_stopped_run_keeps_its_log_plots_and_model(tmp_path, monkeypatch, capsys):
    # As if SIGINT came during the first epoch: it finishes, is recorded, and the run stops.
    monkeypatch.setattr(StopSignals, "install", lambda signals: signals.stop() or signals)
    logs = tmp_path / "logs"
    code = main(["train", *TINY_TRAIN_FLAGS, "-l", "stop", "--logs-dir", str(logs),
                 "--db", f"sqlite:///{tmp_path / 'r.db'}"])
    out, err = capsys.readouterr()
    assert code == 0 and "was stopped after 1 epoch(s)" in err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "cancelled"
    log = (logs / "stop" / "stop.log").read_text()
    assert "epoch 1/2" in log and "epoch 2/2" not in log and "was stopped after 1 epoch(s)" in log
    for name in PLOT_FILES:
        assert_png(logs / "stop" / name)
    assert checkpoint.load_file(logs / "stop" / "stop.pth")[1].epochs == 2


def test_a_diverged_run_still_leaves_its_log(tmp_path, monkeypatch, capsys, nan_loss_from_batch):
    monkeypatch.setattr(StopSignals, "install", lambda signals: signals)  # pytest keeps its own handlers
    nan_loss_from_batch(9)  # 8 batches an epoch: the second epoch's first batch is NaN
    logs = tmp_path / "logs"
    code = main(["train", *TINY_TRAIN_FLAGS, "-l", "nan", "--logs-dir", str(logs),
                 "--db", f"sqlite:///{tmp_path / 'r.db'}"])
    err = capsys.readouterr().err
    assert code == 1 and "training diverged at epoch 2, batch 1" in err
    log = (logs / "nan" / "nan.log").read_text().splitlines()
    assert any(line.startswith("epoch 1/2") for line in log)
    assert "training diverged at epoch 2, batch 1" in log[-1]
    assert_png(logs / "nan" / "train_loss.png")  # the epoch before the divergence


# ---------------------------------------------------------------------------- the epoch line and the bar
def epoch(n: int, stage_k: int = 3, stage_n: int = 3, copy: float = 0.5) -> EpochResult:
    return EpochResult(
        epoch=n, train_loss=1.0 / n, train_acc=0.6, train_copy_acc=copy, train_seq_acc=0.1, test_loss=1.1 / n,
        test_acc=0.65, test_copy_acc=copy, test_seq_acc=0.1, seconds=0.5, samples_per_sec=1000.0, lr=0.01,
        stage_output_len=stage_n, stage_seq_len=stage_k,
    )


def test_the_epoch_line_shows_copy_accuracy_and_chance_beside_accuracy():
    config = RunConfig(test_seq_len=6, padding=1, test_output_len=4, epochs=2)
    line = epoch_line(epoch(1), config)
    assert line.startswith("epoch 1/2 ")
    assert "acc 0.650 (never copying 0.677)" in line and "copy acc 0.500 (chance 0.111)" in line


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_shows_on_a_terminal_only(tmp_path, monkeypatch, capsys):
    config = RunConfig(epochs=2)
    experiment = LogFolder("bar", tmp_path)
    experiment.prepare()
    experiment.start_log(1, config, "sqlite:///x")
    monkeypatch.setattr("sys.stderr", FakeTerminal())
    on_terminal = cli.ProgressPrinter(config, experiment)
    for done in range(1, 5):
        on_terminal.on_batch(done, 4)
    on_terminal.on_epoch(epoch(1))
    bar = sys.stderr.getvalue()
    assert "epoch 1/2:" in bar and "/4 [" in bar  # tqdm's bar (it redraws at most 10 times a second)
    assert bar.endswith("\r")  # and it is cleared before the epoch's line
    monkeypatch.undo()

    piped = cli.ProgressPrinter(config, experiment)
    piped.on_batch(1, 4)
    piped.on_epoch(epoch(2))
    out, err = capsys.readouterr()
    assert err == ""  # no bar in a pipe or a file
    assert [line.split()[1] for line in out.splitlines()] == ["1/2", "2/2"]
    experiment.close_log()
    assert experiment.log_path.read_text().count("\nepoch ") == 2


# ---------------------------------------------------------------------------- the plots
def test_plots_carry_the_chance_line_and_the_never_copying_baseline(tmp_path):
    config = RunConfig(train_seq_len=8, train_output_len=8, test_seq_len=12, test_output_len=10, padding=2, epochs=3,
                       curriculum=True)
    epochs = [epoch(1, 2, 2, 0.2), epoch(2, 4, 4, 0.6), epoch(3, 8, 8, 0.9)]
    copy_lines = {line.get_label(): line for line in copy_accuracy_figure(epochs).axes[0].get_lines()}
    assert set(copy_lines) == {"train", "test", "chance 1/9 = 0.111"}
    assert list(copy_lines["chance 1/9 = 0.111"].get_ydata()) == [CHANCE_LEVEL, CHANCE_LEVEL]
    assert list(copy_lines["test"].get_ydata()) == [0.2, 0.6, 0.9]

    accuracy_lines = {line.get_label(): line for line in accuracy_figure(epochs, config).axes[0].get_lines()}
    # The curriculum changes the training lengths, so the training baseline moves with the stage.
    assert list(accuracy_lines["never copying, train lengths"].get_ydata()) == [
        blank_baseline_accuracy(k, 2, k) for k in (2, 4, 8)
    ]
    assert accuracy_lines["never copying, test lengths"].get_ydata()[0] == blank_baseline_accuracy(12, 2, 10)

    paths = write_training_plots(tmp_path, epochs, config)
    assert [path.name for path in paths] == list(PLOT_FILES)
    for path in paths:
        assert_png(path)
