"""Store URLs for the store, worker and CLI tests: a temporary SQLite file, and a fresh database
on the real PostgreSQL server at 127.0.0.1:5432.

PostgreSQL tests are skipped only when no server answers there; with the environment variable CI
set they fail instead, so continuous integration can never silently skip them. Each test gets
its own database ``seqcopy_test_<session>_<n>``, created on the ``test`` database in autocommit
and dropped afterwards (with any leftovers of this session at its end).
"""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # plain `pytest` as well as `python -m pytest` from the root
    sys.path.insert(0, str(REPO))

PG_HOST = os.environ.get("SEQCOPY_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SEQCOPY_TEST_PG_PORT", "5432"))
PG_ADMIN_DB = "test"
PG_USERS = ("postgres", "root")
SESSION = uuid.uuid4().hex[:8]
_counter = itertools.count(1)


def _connect_admin():
    """(user, autocommit connection to the ``test`` database) for the first user that works."""
    import psycopg

    last: Exception | None = None
    for user in PG_USERS:
        try:
            conn = psycopg.connect(
                host=PG_HOST, port=PG_PORT, dbname=PG_ADMIN_DB, user=user, autocommit=True, connect_timeout=3
            )
            return user, conn
        except psycopg.OperationalError as error:
            last = error
    raise last  # type: ignore[misc]


@pytest.fixture(scope="session")
def pg_admin():
    """The PostgreSQL server's (user, admin connection); skip (fail under CI) when none answers."""
    try:
        user, conn = _connect_admin()
    except Exception as error:  # noqa: BLE001 - no driver, refused, no such user…: skip or fail with the reason
        message = f"no PostgreSQL server answers on {PG_HOST}:{PG_PORT} ({' '.join(str(error).split())[:200]})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must not skip the PostgreSQL tests", pytrace=False)
        pytest.skip(message)
    yield user, conn
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"seqcopy_test_{SESSION}_%",)
    ).fetchall()
    for (name,) in rows:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture
def pg_url(pg_admin):
    """A fresh, empty PostgreSQL database for one test, dropped after it."""
    user, conn = pg_admin
    name = f"seqcopy_test_{SESSION}_{next(_counter)}"
    conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{name}"
    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path):
    """A fresh SQLite file for one test."""
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request):
    """The URL of a fresh, empty runs store: once on SQLite, once on PostgreSQL."""
    return request.getfixturevalue(f"{'pg' if request.param == 'postgresql' else 'sqlite'}_url")


@pytest.fixture
def one_thread():
    """In-process training on one thread, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def nan_loss_from_batch(monkeypatch):
    """Call with n: the training loss turns NaN from the n-th batch on (counted from 1)."""
    import seqcopy.core.train as train_module

    real_loss, calls = train_module.sequence_loss, {"n": 0}

    def make_nan_from(first_bad: int) -> None:
        def loss(logits, targets):
            calls["n"] += 1
            value = real_loss(logits, targets)
            return value * float("nan") if calls["n"] >= first_bad else value

        monkeypatch.setattr(train_module, "sequence_loss", loss)

    return make_nan_from


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``seqcopy ARGV…`` in this process: (exit status, stdout, stderr)."""
    from seqcopy.cli import commands as cli

    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    """Bad input: exit status 2 and one line on stderr, ``seqcopy: error: …`` holding every needle."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqcopy: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _tiny():
    from seqcopy.config import RunConfig

    return RunConfig(hidden_size=8, embedding_size=4, train_seq_len=4, train_output_len=4, test_seq_len=8,
                     test_output_len=4, train_samples=64, test_samples=16, batch_size=16, epochs=3)


# The run most tests queue or train: a few milliseconds an epoch on one thread (padding 10, the
# original assignment's). A module that needs another shape says so with TINY.replace(...).
TINY = _tiny()


# A tiny model trained once per session by `seqcopy train -l tiny` in a real process: its
# experiment folder, its store and its final summary (tests/test_experiment.py, test_evaluation.py).
# The test lengths are longer than the training ones, so the test pass feeds two chunks.
TINY_TRAIN_FLAGS = ["-iseq", "3", "-oseq", "3", "-tseq", "6", "-toseq", "4", "-p", "1", "-hs", "8", "-em", "4",
                    "-b", "8", "-trs", "64", "-ts", "32", "-ep", "2", "-c", "lstm", "-lr", "0.05", "-s", "3"]


@pytest.fixture(scope="session")
def tiny_experiment(tmp_path_factory):
    import json
    import subprocess
    from types import SimpleNamespace

    root = tmp_path_factory.mktemp("tiny-experiment")
    db_url = f"sqlite:///{root / 'runs.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "seqcopy", "train", *TINY_TRAIN_FLAGS, "-l", "tiny.log", "--db", db_url],
        cwd=root, capture_output=True, text=True, timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return SimpleNamespace(root=root, folder=root / "logs" / "tiny", db_url=db_url, run_id=summary["run_id"],
                           summary=summary, stdout=done.stdout, stderr=done.stderr)


@pytest.fixture
def pg_proxy(pg_url):
    """(FaultProxy in front of the PostgreSQL server, a fresh database's URL through it)."""
    from faultproxy import FaultProxy

    proxy = FaultProxy((PG_HOST, PG_PORT))
    yield proxy, proxy.url(pg_url)
    proxy.close()
