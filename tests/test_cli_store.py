"""The command line against the runs store, on SQLite and PostgreSQL: submit, cancel, runs,
worker flags and train; bad input exits 2 with one line on stderr and writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import assert_one_line_error, run_cli
from sqlalchemy import text

from seqcopy.core import checkpoint
from seqcopy.runs.store import Store

REPO = Path(__file__).resolve().parents[1]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
TINY_FLAGS = ["-hs", "8", "-em", "4", "-iseq", "4", "-oseq", "4", "-tseq", "8", "-toseq", "4",
              "-trs", "64", "-ts", "16", "-b", "16", "-ep", "2"]


def run_count(url: str) -> int:
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM runs")).scalar_one()
    finally:
        store.close()


# ---------------------------------------------------------------------------- submit
def test_submit_queues_one_run_per_cell_and_seed(db_url, capsys):
    code, out, err = run_cli(capsys, "submit", *TINY_FLAGS, "--cells", "rnn,gru", "--seeds", "3,4", "--tag", "grid",
                             "--db", db_url)
    assert code == 0, err
    ids = [int(line) for line in out.split()]
    assert len(ids) == 4
    store = Store(db_url)
    runs = sorted(store.list_runs(), key=lambda run: run.id)
    assert [run.id for run in runs] == ids
    assert [(run.config.cell, run.config.seed) for run in runs] == [("rnn", 3), ("rnn", 4), ("gru", 3), ("gru", 4)]
    assert {run.status for run in runs} == {"queued"} and {run.tag for run in runs} == {"grid"}
    assert runs[0].config.hidden_size == 8 and runs[0].epochs_total == 2
    store.close()

    code, out, _ = run_cli(capsys, "runs", "--json", "--db", db_url)
    assert code == 0 and sorted(row["id"] for row in json.loads(out)) == ids


def test_seqcopy_db_names_the_store(db_url, capsys, monkeypatch):
    monkeypatch.setenv("SEQCOPY_DB", db_url)
    code, out, err = run_cli(capsys, "submit", *TINY_FLAGS)
    assert code == 0, err
    assert run_count(db_url) == 1


BAD_SUBMISSIONS = {
    "hidden size 0": (["-hs", "0"], "--hidden_size"),
    "embedding 0": (["-em", "0"], "--embedding_size"),
    "unknown cell": (["-c", "transformer"], "cell"),
    "unknown cell in --cells": (["--cells", "lstm,transformer"], "transformer"),
    "seed not a number": (["--seeds", "1,x"], "--seeds"),
    "empty seed list": (["--seeds", ","], "--seeds"),
    "negative seed": (["-s", "-1"], "seed"),
    "seed past PostgreSQL's 32-bit column": (["-s", "3000000000"], "-s/--seed: must be at most"),
    "output longer than input": (["-iseq", "4", "-oseq", "5"], "--train_output_len"),
    "test output longer": (["-tseq", "8", "-toseq", "9"], "--test_output_len"),
    "padding 0": (["-p", "0"], "padding"),
    "learning rate 0": (["-lr", "0"], "lr"),
    "learning rate huge": (["-lr", "1000"], "lr"),
    "no epochs": (["-ep", "0"], "epochs"),
    "batch 0": (["-b", "0"], "--batch_size"),
    "no train samples": (["-trs", "0"], "--train_samples"),
    "no test samples": (["-ts", "0"], "--test_samples"),
    "no such device": (["-d", "tpu"], "device"),
    "clip mode": (["--clip", "hard"], "clip"),
    "lr schedule": (["--lr-schedule", "sometimes"], "lr-schedule"),
    "tag too long": (["--tag", "x" * 201], "tag"),
    "not an integer": (["-hs", "abc"], "invalid int value"),
    "unknown flag": (["--bogus"], "--bogus"),
    "too much memory": (["-hs", "2048", "-b", "4096", "-iseq", "2000", "-oseq", "2000", "-trs", "1000000"], "GiB"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUBMISSIONS))
def test_bad_submissions_exit_2_with_one_line_and_write_nothing(db_url, capsys, case):
    flags, needle = BAD_SUBMISSIONS[case]
    code, out, err = run_cli(capsys, "submit", *TINY_FLAGS, *flags, "--db", db_url)
    assert_one_line_error(code, err, needle)
    assert out == ""
    assert run_count(db_url) == 0


# ---------------------------------------------------------------------------- databases
BAD_URLS = {
    "garbage": ("garbage", "not a database URL"),
    "unsupported scheme": ("mysql://user@localhost/runs", "unsupported database 'mysql'"),
    "unreachable port": ("postgresql://postgres@127.0.0.1:1/test", "Connection refused"),
    "missing folder": ("sqlite:////nonexistent-folder/sub/runs.db", "unable to open database file"),
}


@pytest.mark.parametrize("command", ["submit", "worker", "runs", "cancel"])
@pytest.mark.parametrize("case", sorted(BAD_URLS))
def test_bad_urls_exit_2_with_one_line(capsys, command, case):
    url, needle = BAD_URLS[case]
    argv = {"submit": ["submit", *TINY_FLAGS], "worker": ["worker", "--once"], "runs": ["runs"],
            "cancel": ["cancel", "1"]}[command]
    code, out, err = run_cli(capsys, *argv, "--db", url)
    if case == "missing folder" and command in ("runs", "cancel"):
        needle = "no runs store at"  # the read-only commands never create a store
    assert_one_line_error(code, err, needle)


def test_a_file_that_is_not_a_database_exits_2(tmp_path, capsys):
    path = tmp_path / "thesis.db"
    path.write_bytes(os.urandom(4096))
    before = path.read_bytes()
    code, out, err = run_cli(capsys, "submit", *TINY_FLAGS, "--db", f"sqlite:///{path}")
    assert_one_line_error(code, err, "file is not a database")
    assert path.read_bytes() == before


def test_schema_version_mismatch_exits_2_with_a_clear_message(db_url, capsys):
    Store(db_url).close()
    store = Store(db_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
    store.close()
    code, out, err = run_cli(capsys, "runs", "--db", db_url)
    assert_one_line_error(code, err, "schema version 99", "reads versions 1 to")


def test_a_real_process_prints_one_line_and_no_traceback():
    done = subprocess.run(
        [sys.executable, "-m", "seqcopy", "submit", "--db", "mysql://nobody@nowhere/x"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "seqcopy: error: unsupported database 'mysql': use sqlite:///FILE or postgresql://HOST/DB"


# ---------------------------------------------------------------------------- cancel, worker
def test_cancel_of_an_unknown_run_exits_2(db_url, capsys):
    Store(db_url).close()  # an existing, empty store
    code, out, err = run_cli(capsys, "cancel", "424242", "--db", db_url)
    assert_one_line_error(code, err, "no run with id 424242")
    code, out, err = run_cli(capsys, "cancel", "seven", "--db", db_url)
    assert_one_line_error(code, err, "not a run id: 'seven'")
    assert run_count(db_url) == 0


def test_cancel_twice_reports_the_final_status(db_url, capsys):
    run_cli(capsys, "submit", *TINY_FLAGS, "--db", db_url)
    assert run_cli(capsys, "cancel", "1", "--db", db_url)[:2] == (0, "run 1 cancelled before it started\n")
    assert run_cli(capsys, "cancel", "1", "--db", db_url)[:2] == (0, "run 1 already cancelled\n")


@pytest.mark.parametrize("flags, needle", [(["--lease", "0"], "--lease"), (["--lease", "-5"], "--lease"),
                                           (["--lease", "nan"], "--lease"), (["--idle-exit", "-1"], "--idle-exit")])
def test_worker_refuses_bad_leases(sqlite_url, capsys, flags, needle):
    code, out, err = run_cli(capsys, "worker", "--once", *flags, "--db", sqlite_url)
    assert_one_line_error(code, err, needle)


# ---------------------------------------------------------------------------- train
def test_train_records_its_run_in_the_store(db_url, tmp_path):
    target = tmp_path / "out" / "tiny" / "tiny.pth"
    done = subprocess.run(
        [sys.executable, "-m", "seqcopy", "train", *TINY_FLAGS, "-c", "gru", "-s", "5", "-l", "tiny",
         "--logs-dir", str(tmp_path / "out"), "--db", db_url],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["epochs"] == 2 and summary["cell"] == "gru"

    store = Store(db_url)
    run = store.get_run(summary["run_id"])
    assert run.status == "completed" and run.worker_id.startswith("cli:") and run.epochs_done == 2
    assert run.config.seed == 5 and run.finished_at is not None
    assert [row["epoch"] for row in store.epochs([run.id])] == [1, 2]
    assert run.latest["test_copy_acc"] == pytest.approx(summary["test_copy_acc"], abs=1e-6)
    assert len(store.position_results([run.id])) == 4 and store.length_results([run.id])
    blob = store.checkpoint(run.id)
    store.close()
    assert blob is not None and target.exists()
    from_db, config_db = checkpoint.from_bytes(blob)
    from_file, config_file = checkpoint.load_file(target)
    assert config_db == config_file == run.config
    for name, tensor in from_db.state_dict().items():
        assert torch.equal(tensor, from_file.state_dict()[name])


def test_train_with_a_bad_config_writes_nothing(db_url, capsys):
    code, out, err = run_cli(capsys, "train", *TINY_FLAGS, "-hs", "0", "--db", db_url)
    assert_one_line_error(code, err, "--hidden_size")
    assert run_count(db_url) == 0


def test_a_gpu_run_can_be_queued_from_a_machine_without_one(tmp_path, capsys):
    """The device is the training worker's business: a CPU-only machine may queue a cuda run."""
    from seqcopy.cli.commands import main
    from seqcopy.runs.store import Store

    url = f"sqlite:///{tmp_path / 'gpu.db'}"
    assert main(["submit", "-d", "cuda", "--db", url]) == 0
    (run,) = Store(url).list_runs()
    assert run.config.device == "cuda" and run.status == "queued"
