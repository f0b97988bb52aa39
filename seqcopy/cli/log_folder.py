"""The original assignment's log folder: ``train -l/--log NAME`` keeps a run's outputs under ``logs/NAME/``.

As the original assignment's rnn.py did, the name of the log names the experiment (``rnn.log`` → ``logs/rnn/``):

    logs/NAME/NAME.log                 the runtime log: run id and config, one line per epoch as it
                                       ends (flushed, so ``tail -f`` follows it), the final summary
    logs/NAME/train_loss.png           train and test loss per epoch
    logs/NAME/train_accuracy.png       accuracy over all positions, with the never-copying baseline
    logs/NAME/train_copy_accuracy.png  copy accuracy, with the chance level 1/9
    logs/NAME/NAME.pth                 the model: state_dict + config (loads with weights_only=True)
    logs/NAME/config.json              the run's config

The folder is checked before training, so a bad name or a folder that cannot be written is refused
while nothing has been spent on it. The same name again replaces the outputs (the store keeps every
run).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from seqcopy.cli import plots
from seqcopy.config import RunConfig
from seqcopy.core import checkpoint
from seqcopy.core.metrics import blank_baseline_accuracy
from seqcopy.core.train import EpochResult, TrainResult
from seqcopy.errors import InputError
from seqcopy.text import shorten, text_problem
from seqcopy.vocab import CHANCE_LEVEL

MAX_NAME = 200
# File systems count a file name in bytes: 255 on ext4, XFS, Btrfs, ZFS and APFS, 255 UTF-16 units
# (never more than its UTF-8 bytes) on NTFS. Every file of the folder must fit, the longest being
# checkpoint.save_file's NAME.pth.partial.
MAX_NAME_BYTES = 255
CONFIG_FILE = "config.json"


class LogFolderError(InputError):
    """An experiment name or folder that cannot be used."""


def log_folder_name(log: str) -> str:
    """The experiment's name from the ``-l/--log`` value: the value less a trailing ``.log``.
    Refuses what is not a plain file name, so the outputs stay inside the logs folder."""
    name = log[: -len(".log")] if log.endswith(".log") else log
    text = text_problem(name, MAX_NAME)  # too long, or a control character: a tag's rules
    if not name:
        problem = "the experiment name is empty"
    elif text:
        problem = f"the experiment name {text}"
    elif "/" in name or "\\" in name or (os.altsep and os.altsep in name):
        problem = "the experiment name contains a path separator (--logs-dir chooses the place)"
    elif name in (".", ".."):
        problem = "'.' and '..' name folders, not experiments"
    else:
        problem = name_bytes_problem(name)
        if problem is None:
            return name
    raise LogFolderError(f"-l/--log {shorten(log, 60)!r}: {problem}")


def own_file_names(name: str) -> list[str]:
    """The names in the experiment's folder that carry the experiment's name, the folder's own
    first: NAME, NAME.log, NAME.pth and the NAME.pth.partial it is written to (the longest)."""
    return [name, f"{name}.log", f"{name}.pth", checkpoint.temporary_path(f"{name}.pth").name]


def name_bytes_problem(name: str, limit: int = MAX_NAME_BYTES) -> str | None:
    """Why a file system cannot hold every file of the experiment ``name`` (a name is at most
    ``limit`` bytes), on one line, or None. Checked before anything is written, so that a name
    that passes cannot leave the folder half-written."""
    try:
        sizes = {file: len(os.fsencode(file)) for file in own_file_names(name)}
    except UnicodeEncodeError:  # a file system encoding that cannot spell it
        return f"the experiment name cannot be written as a file name here (encoding {sys.getfilesystemencoding()})"
    longest = max(sizes, key=sizes.__getitem__)
    if sizes[longest] <= limit:
        return None
    suffix = longest[len(name):]
    return (f"the experiment name is {sizes[name]} bytes as a file name, so NAME{suffix} would be {sizes[longest]}: "
            f"a file name holds at most {limit} bytes, so the name at most {limit - len(suffix)}")


def _on_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def epoch_line(epoch: EpochResult, config: RunConfig) -> str:
    """One epoch as the command line prints it and the runtime log keeps it: copy accuracy and its
    chance level beside the accuracy over all positions, whose never-copying baseline is shown."""
    baseline = blank_baseline_accuracy(config.test_seq_len, config.padding, config.test_output_len)
    stage = f" stage K={epoch.stage_seq_len} N={epoch.stage_output_len}" if config.curriculum else ""
    return (
        f"epoch {epoch.epoch}/{config.epochs}  train loss {epoch.train_loss:.4f}  test loss {epoch.test_loss:.4f}  "
        f"acc {epoch.test_acc:.3f} (never copying {baseline:.3f})  "
        f"copy acc {epoch.test_copy_acc:.3f} (chance {CHANCE_LEVEL:.3f})  seq acc {epoch.test_seq_acc:.3f}  "
        f"{epoch.seconds:.1f}s  {epoch.samples_per_sec:,.0f} samples/s{stage}"
    )


class LogFolder:
    """The folder of one named experiment and the files in it."""

    def __init__(self, log: str, logs_dir: str | Path, warn: Callable[[str], None] | None = None):
        self.name = log_folder_name(log)
        self.folder = Path(logs_dir) / self.name
        self._created: list[Path] = []  # folders that prepare() made, removed by discard()
        self._log = None
        self.warn = warn or _on_stderr  # says, once, that the runtime log could not be written
        self.log_error: str | None = None  # that line, once said

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name}.log"

    @property
    def model_path(self) -> Path:
        return self.folder / f"{self.name}.pth"

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG_FILE

    def output_paths(self) -> list[Path]:
        return [self.log_path, *(self.folder / name for name in plots.PLOT_FILES), self.model_path, self.config_path]

    def written_paths(self) -> list[Path]:
        """Every path the run writes: the outputs and the checkpoint's temporary file."""
        return [*self.output_paths(), checkpoint.temporary_path(self.model_path)]

    # ------------------------------------------------------------------ before training
    def prepare(self) -> None:
        """Make the folder and prove it writable, or raise LogFolderError with one line. The probe
        file's name is as long as the longest the folder will hold, so that a file system with a
        shorter limit than MAX_NAME_BYTES refuses it here, before training."""
        for path in self.written_paths():
            if path.is_dir():
                raise LogFolderError(f"-l/--log: cannot write {path}: a folder of that name is in the way")
            if path.exists() and not os.access(path, os.W_OK):
                raise LogFolderError(f"-l/--log: cannot replace {path}: it is read-only")
        missing = [parent for parent in (self.folder, *self.folder.parents) if not parent.exists()]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._created = [path for path in missing if path.is_dir()]
            probe = self.folder / self._probe_name()
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            self.discard()
            raise LogFolderError(f"-l/--log: cannot write in {self.folder}: {error.strerror or error}") from None

    def _probe_name(self) -> str:
        """A hidden name of this process, padded to the byte length of the folder's longest file."""
        name = f".seqcopy-write-test-{os.getpid()}"
        longest = max(len(os.fsencode(file)) for file in own_file_names(self.name))
        return name + "-" * max(0, longest - len(name))

    def discard(self) -> None:
        """Remove the folders prepare() made, if nothing was written in them (a run refused later)."""
        for folder in self._created:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        self._created = []

    # ------------------------------------------------------------------ the runtime log
    # A write that fails (a full disk; the log a link to /dev/full) ends the log, said once in
    # one line, and the run goes on: as a plot that cannot be written, never the run's failure.
    def start_log(self, run_id: int, config: RunConfig, store_url: str) -> None:
        """Open the runtime log (replacing an earlier one of this name) and write its header."""
        try:
            self._log = self.log_path.open("w", encoding="utf-8")
        except OSError as error:
            self._lose_log(error)
            return
        self.log(f"seqcopy run {run_id}, recorded in {store_url}, started {time.strftime('%Y-%m-%d %H:%M:%S %z')}")
        self.log(f"outputs in {self.folder}")
        self.log(f"config {config.to_json()}")

    def log(self, line: str) -> None:
        """Append a line to the runtime log, if it is open; never raises OSError."""
        if self._log is not None:
            try:
                self._log.write(line + "\n")
                self._log.flush()  # the log is read while the run goes on
            except OSError as error:
                self._lose_log(error)

    def close_log(self) -> None:
        """Close the runtime log; never raises OSError (closing flushes, which may fail too)."""
        if self._log is not None:
            log, self._log = self._log, None
            try:
                log.close()
            except OSError as error:
                self._lose_log(error)

    def _lose_log(self, error: OSError) -> None:
        """Stop writing the log after ``error``, closing it quietly (its last words would fail
        again), and say so the first time."""
        log, self._log = self._log, None
        if log is not None:
            try:
                log.close()
            except OSError:
                pass  # the same fault, once more
        if self.log_error is None:
            self.log_error = f"runtime log not written to {self.log_path}: {error.strerror or error}"
            self.warn(self.log_error)

    # ------------------------------------------------------------------ after training
    def save_results(self, result: TrainResult) -> list[Path]:
        """The plots, the model and its config, for the epochs the run finished."""
        plots.write_training_plots(self.folder, result.epochs, result.config)
        checkpoint.save_file(self.model_path, result.model, result.config)
        self.config_path.write_text(
            json.dumps(result.config.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
        return [self.folder / name for name in plots.PLOT_FILES] + [self.model_path, self.config_path]
