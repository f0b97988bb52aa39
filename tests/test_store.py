"""The runs store on SQLite and on a real PostgreSQL server: queueing, claims, epochs, cancel,
recovery of runs whose worker died, and the errors a user sees for a database we cannot use."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from conftest import TINY
from sqlalchemy import text

from seqcopy.config import ConfigError
from seqcopy.runs.schema import EPOCH_METRICS, SCHEMA_VERSION
from seqcopy.runs.store import DEFAULT_LEASE, LeaseLost, Store, StoreError, UnknownRun, open_store


def epoch_row(epoch: int) -> dict:
    row = {name: 0.5 for name in EPOCH_METRICS}
    return row | {"epoch": epoch, "test_copy_acc": 0.1 * epoch, "stage_output_len": 4, "stage_seq_len": 4}


@pytest.fixture
def store(db_url):
    store = Store(db_url)
    yield store
    store.close()


def count_rows(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


# ---------------------------------------------------------------------------- opening
def test_a_fresh_database_gets_the_schema_and_opens_again(db_url):
    first = Store(db_url)
    run_id = first.submit(TINY)
    first.close()
    again = Store(db_url, create=False)
    assert again.get_run(run_id).config == TINY
    again.close()


def test_workers_opening_a_fresh_database_together_all_succeed(db_url):
    # Regression: on PostgreSQL, concurrent CREATE TABLEs failed with a pg_type unique violation.
    errors, stores = [], []

    def open_one():
        try:
            stores.append(Store(db_url))
        except Exception as error:  # noqa: BLE001 - the test reports any
            errors.append(repr(error))

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert stores[0].list_runs() == []
    for store in stores:
        store.close()


class _LockedCursor:
    """A cursor whose first ``locked`` executes fail the way SQLite's WAL switch does."""

    def __init__(self, locked: int, message: str = "database is locked"):
        self.locked, self.message, self.calls = locked, message, 0

    def execute(self, statement):
        self.calls += 1
        if self.calls <= self.locked:
            raise sqlite3.OperationalError(self.message)


def test_the_wal_switch_waits_for_a_lock_like_busy_timeout_would():
    # Regression: workers opening a fresh SQLite file together got "database is locked" at once,
    # because SQLite does not call its busy handler on that path.
    from seqcopy.runs.store import _enable_wal

    cursor = _LockedCursor(locked=3)
    _enable_wal(cursor)
    assert cursor.calls == 4
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # but not for ever
        _enable_wal(_LockedCursor(locked=10**6), patience=0.1)
    other = _LockedCursor(locked=1, message="disk I/O error")  # other errors are not retried
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _enable_wal(other)
    assert other.calls == 1


def test_schema_version_mismatch_is_refused_with_a_clear_message(store, db_url):
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = '999' WHERE key = 'schema_version'"))
    store.close()
    with pytest.raises(StoreError) as caught:
        open_store(db_url)
    message = str(caught.value)
    assert "schema version 999" in message and f"versions 1 to {SCHEMA_VERSION}" in message and "\n" not in message


def test_tables_seqcopy_did_not_write_are_refused(db_url):
    from sqlalchemy import create_engine

    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)"))
    engine.dispose()
    with pytest.raises(StoreError, match="tables that seqcopy did not write"):
        open_store(db_url)


def test_a_file_that_is_not_a_database_is_one_line(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(StoreError) as caught:
        open_store(f"sqlite:///{path}")
    assert "not a database" in str(caught.value) and "\n" not in str(caught.value)
    assert path.read_bytes().startswith(b"these are my notes")  # left untouched


@pytest.mark.parametrize(
    "url, expected",
    [
        ("garbage", "not a database URL"),
        ("mysql://user@host/db", "unsupported database 'mysql'"),
        ("postgresql://postgres@127.0.0.1:1/test", "Connection refused"),
        ("sqlite:////nonexistent-folder/sub/runs.db", "unable to open database file"),
    ],
)
def test_unusable_urls_raise_store_error_on_one_line(url, expected):
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


# ---------------------------------------------------------------------------- queueing
def test_submit_many_queues_in_order_with_config_and_totals(store):
    configs = [TINY.replace(cell=cell, seed=seed) for cell in ("rnn", "gru") for seed in (0, 1)]
    ids = store.submit_many(configs)
    assert ids == sorted(ids) and len(set(ids)) == 4
    runs = {run.id: run for run in store.list_runs()}
    for run_id, config in zip(ids, configs, strict=True):
        run = runs[run_id]
        assert (run.config, run.status, run.epochs_total, run.epochs_done) == (config, "queued", 3, 0)
        assert run.batch_total == config.batches_per_epoch
    assert [run.status for run in store.list_runs()] == ["queued"] * 4


INVALID = {
    "cell": "transformer",
    "hidden_size": 0,
    "embedding_size": -1,
    "train_seq_len": 0,
    "train_output_len": 5,  # longer than train_seq_len 4
    "test_output_len": 9,  # longer than test_seq_len 8
    "padding": 0,
    "batch_size": 0,
    "epochs": 0,
    "lr": 0.0,
    "seed": -1,
    "train_samples": 0,
    "test_samples": 0,
    "device": "tpu",
    "lr_schedule": "sometimes",
    "clip": "hard",
    "curriculum_threshold": 1.5,
    "tag": "x" * 201,
}


@pytest.mark.parametrize("field", sorted(INVALID))
def test_submit_many_validates_everything_and_writes_nothing_on_error(store, field):
    good = TINY.replace(seed=7)
    bad = TINY.replace(**{field: INVALID[field]})
    with pytest.raises(ConfigError) as caught:
        store.submit_many([good, bad, good])
    assert field in caught.value.errors
    assert count_rows(store, "runs") == 0


# ---------------------------------------------------------------------------- claims
def test_claim_takes_the_oldest_queued_run_then_none(store):
    first, second = store.submit_many([TINY, TINY.replace(seed=1)])
    run = store.claim("w1", lease=30)
    assert run.id == first and run.status == "running" and run.worker_id == "w1"
    assert run.heartbeat_at is not None and run.started_at is not None
    assert store.claim("w2").id == second
    assert store.claim("w3") is None


def test_concurrent_claims_never_hand_out_a_run_twice(db_url):
    Store(db_url).submit_many([TINY.replace(seed=s) for s in range(30)])
    claimed: dict[str, list[int]] = {}
    errors = []

    def claimer(name):
        store = Store(db_url)
        try:
            while (run := store.claim(name)) is not None:
                claimed.setdefault(name, []).append(run.id)
        except Exception as error:  # noqa: BLE001 - the test reports any
            errors.append(repr(error))
        finally:
            store.close()

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    every = [run_id for ids in claimed.values() for run_id in ids]
    assert sorted(every) == sorted(set(every)) and len(every) == 30
    check = Store(db_url)
    assert {run.worker_id for run in check.list_runs()} <= set(claimed)
    check.close()


# ---------------------------------------------------------------------------- a run's life
def test_record_epoch_writes_row_latest_metrics_and_heartbeat(store):
    run_id = store.submit(TINY)
    claimed = store.claim("w1")
    time.sleep(0.01)
    assert store.record_epoch(run_id, "w1", epoch_row(1)) is False
    run = store.get_run(run_id)
    assert run.epochs_done == 1 and run.latest["test_copy_acc"] == pytest.approx(0.1)
    assert run.heartbeat_at > claimed.heartbeat_at
    [row] = store.epochs([run_id])
    assert row["epoch"] == 1 and row["stage_seq_len"] == 4


def test_finish_stores_checkpoint_and_final_results(store):
    run_id = store.submit(TINY)
    store.claim("w1")
    for epoch in (1, 2, 3):
        store.record_epoch(run_id, "w1", epoch_row(epoch))
    store.finish(run_id, "w1", "completed", checkpoint=b"weights", position_acc=[0.5, 0.25],
                 length_acc=[{"seq_len": 4, "output_len": 4, "copy_acc": 0.5, "seq_acc": 0.1}])
    run = store.get_run(run_id)
    assert run.status == "completed" and run.finished_at is not None and run.error is None
    assert store.checkpoint(run_id) == b"weights" and store.checkpoint_ids() == {run_id}
    assert [r["copy_acc"] for r in store.position_results([run_id])] == [0.5, 0.25]
    assert store.length_results([run_id])[0]["seq_len"] == 4


def test_only_the_holding_worker_may_write(store):
    run_id = store.submit(TINY)
    store.claim("w1")
    with pytest.raises(LeaseLost):
        store.heartbeat(run_id, "intruder")
    with pytest.raises(LeaseLost):
        store.record_epoch(run_id, "intruder", epoch_row(1))
    with pytest.raises(LeaseLost):
        store.finish(run_id, "intruder", "completed")
    assert store.epochs([run_id]) == [] and store.get_run(run_id).status == "running"


def test_cancel_of_a_queued_run_is_immediate(store):
    run_id = store.submit(TINY)
    assert store.request_cancel(run_id) == "cancelled"
    run = store.get_run(run_id)
    assert run.status == "cancelled" and run.finished_at is not None and run.epochs_done == 0
    assert store.claim("w1") is None  # never handed out
    assert store.epochs([run_id]) == []


def test_cancel_of_a_running_run_is_a_request_seen_by_the_heartbeat(store):
    run_id = store.submit(TINY)
    store.claim("w1")
    assert store.heartbeat(run_id, "w1") is False
    assert store.request_cancel(run_id) == "running"
    assert store.heartbeat(run_id, "w1", 2, 4) is True
    assert store.record_epoch(run_id, "w1", epoch_row(1)) is True
    store.finish(run_id, "w1", "cancelled", error="cancelled by request")
    assert store.request_cancel(run_id) == "cancelled"  # already finished: unchanged


def test_cancel_of_an_unknown_run(store):
    with pytest.raises(UnknownRun, match="no run with id 424242"):
        store.request_cancel(424242)


def test_reclaim_fails_lapsed_runs_with_the_reason_and_keeps_epochs(store):
    # No restarts allowed: a lapsed lease after an epoch fails the run (tests/test_resume.py
    # has the default, which resumes it up to three times).
    dead, alive = store.submit_many([TINY, TINY.replace(seed=1)], max_restarts=0)
    store.claim("host:111", lease=2)
    store.claim("host:222", lease=60)
    store.record_epoch(dead, "host:111", epoch_row(1))
    assert store.reclaim_expired() == []  # nobody lapsed yet
    later = time.time() + 10
    assert store.reclaim_expired(now=later) == [dead]
    run = store.get_run(dead)
    assert run.status == "failed" and "host:111" in run.error and "no heartbeat" in run.error
    assert run.finished_at == later and [e["epoch"] for e in store.epochs([dead])] == [1]
    assert store.get_run(alive).status == "running"
    with pytest.raises(LeaseLost):  # the dead worker, should it wake, may not write any more
        store.record_epoch(dead, "host:111", epoch_row(2))
    assert store.reclaim_expired(now=later) == []


def test_tag_and_delete(store):
    run_id = store.submit(TINY)
    store.set_tag(run_id, "baseline")
    assert store.get_run(run_id).tag == "baseline"
    store.delete_run(run_id)
    with pytest.raises(UnknownRun):
        store.get_run(run_id)


# ---------------------------------------------------------------------------- upgrading an old store
def test_a_store_written_at_schema_version_1_is_upgraded_in_place_and_keeps_its_runs(db_url):
    """A v1 store (the old tables, copied in tests/schema_v1.py) with a finished run and a queued
    one opens: the new columns are added, the version bumped, nothing lost, and it is usable."""
    import json

    import schema_v1
    from sqlalchemy import create_engine, insert

    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    tables = schema_v1.metadata.tables
    row = dict(cell="lstm", seed=0, tag="old", created_at=1.0, lease_seconds=120.0, cancel_requested=False,
               epochs_total=3, batch_done=0, batch_total=4, config=json.dumps(TINY.to_dict()))
    with engine.begin() as conn:
        schema_v1.metadata.create_all(conn)
        conn.execute(insert(tables["meta"]).values(key="schema_version", value="1"))
        # Ids from the table's own sequence, as v1 gave them (1 and 2 in a fresh database).
        conn.execute(insert(tables["runs"]).values(
            **row, status="completed", epochs_done=2, worker_id="old:1", finished_at=2.0, test_copy_acc=0.2))
        conn.execute(insert(tables["runs"]).values(**row, status="queued", epochs_done=0))
        conn.execute(insert(tables["epochs"]), [
            {"run_id": 1, "wall_time": 1.5, **epoch_row(e)} for e in (1, 2)
        ])
        conn.execute(insert(tables["checkpoints"]).values(run_id=1, data=b"weights", size=7, epoch=2))
    engine.dispose()

    store = Store(db_url, create=False)  # a read-only command (runs, cancel) upgrades it too
    with store.engine.connect() as conn:
        assert (conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar_one()
                == str(SCHEMA_VERSION))
        assert conn.execute(text("SELECT requeues FROM runs ORDER BY id")).scalars().all() == [0, 0]
    old = store.get_run(1)
    assert (old.status, old.tag, old.epochs_done, old.claim_token, old.latest["test_copy_acc"]) == (
        "completed", "old", 2, None, 0.2)
    assert [e["epoch"] for e in store.epochs([1])] == [1, 2] and store.checkpoint(1) == b"weights"
    claimed = store.claim("new:1", token="t-upgrade")  # the queued v1 run trains under the new schema
    assert claimed.id == 2 and claimed.claim_token == "t-upgrade"
    store.record_epoch(2, "new:1", epoch_row(1), token="t-upgrade")
    store.finish(2, "new:1", "completed", checkpoint=b"new", token="t-upgrade")
    assert store.get_run(2).status == "completed" and store.checkpoint(2) == b"new"
    assert store.submit(TINY) == 3
    # runs.sweep_id as a fresh store has it: a key to sweeps, emptied when its sweep goes.
    sweep_id, (in_sweep,) = store.submit_sweep([TINY], "upgraded", {})
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM sweeps WHERE id = :id"), {"id": sweep_id})
    assert store.get_run(in_sweep).sweep_id is None
    store.delete_run(in_sweep)
    store.close()
    Store(db_url).close()  # opening again: already current, nothing to do


def test_the_upgrade_adds_any_table_column_and_index_the_schema_gained(db_url, monkeypatch):
    """Generic: a column and a table added to schema.py (as a later version would) are created in
    an existing store; a new column that could not be added to old rows is a programming error."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, inspect

    from seqcopy.runs import schema
    from seqcopy.runs.store import upgrade_schema

    Store(db_url).close()
    metadata = MetaData()
    for table in schema.Base.metadata.sorted_tables:
        table.to_metadata(metadata)
    metadata.tables["runs"].append_column(Column("note", String(40), nullable=True))
    Table("annotations", metadata, Column("id", Integer, primary_key=True), Column("text", String(40)))
    monkeypatch.setattr(schema.Base, "metadata", metadata)
    store = Store(db_url, create=False)
    with store._write() as conn:
        upgrade_schema(conn)
        assert "note" in {c["name"] for c in inspect(conn).get_columns("runs")}
        assert "annotations" in inspect(conn).get_table_names()
    metadata.tables["runs"].append_column(Column("required", Integer, nullable=False))
    with pytest.raises(RuntimeError, match="nullable=True or a server_default"):
        with store._write() as conn:
            upgrade_schema(conn)
    store.close()


def test_a_store_written_by_a_newer_seqcopy_is_refused(store, db_url):
    with store.engine.begin() as conn:
        conn.execute(text(f"UPDATE meta SET value = '{SCHEMA_VERSION + 1}' WHERE key = 'schema_version'"))
    store.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, and this seqcopy reads versions 1 to"):
        open_store(db_url)


# ---------------------------------------------------------------------------- writes safe to repeat
def test_a_repeated_epoch_write_lands_once(store):
    run_id = store.submit(TINY)
    token = store.claim("w1").claim_token
    store.record_epoch(run_id, "w1", epoch_row(1), token=token)
    store.record_epoch(run_id, "w1", epoch_row(1), token=token)  # the retry after a lost reply
    assert [row["epoch"] for row in store.epochs([run_id])] == [1]
    assert store.get_run(run_id).epochs_done == 1


def test_a_landed_claim_is_found_by_its_token(store):
    first, second = store.submit_many([TINY, TINY.replace(seed=1)])
    assert store.held("w1", "token-a") is None  # nothing claimed yet
    run = store.claim("w1", token="token-a")
    again = store.held("w1", "token-a")  # the claim's reply was lost: what did it take?
    assert run.id == again.id == first and again.claim_token == "token-a"
    assert store.get_run(second).status == "queued"  # no second run taken
    assert store.held("w2", "token-a") is None  # a token is one worker's own
    store.finish(first, "w1", "completed", token="token-a")
    assert store.held("w1", "token-a") is None  # held while running only


def test_a_repeated_final_write_with_its_token_is_recognised(store):
    run_id = store.submit(TINY)
    token = store.claim("w1").claim_token
    store.record_epoch(run_id, "w1", epoch_row(1), token=token)
    results = dict(checkpoint=b"weights", position_acc=[0.5], token=token,
                   length_acc=[{"seq_len": 4, "output_len": 4, "copy_acc": 0.5, "seq_acc": 0.1}])
    store.finish(run_id, "w1", "completed", **results)
    store.finish(run_id, "w1", "completed", **results)  # landed, reply lost, retried: fine
    assert store.checkpoint(run_id) == b"weights" and len(store.position_results([run_id])) == 1
    with pytest.raises(LeaseLost):
        store.finish(run_id, "w1", "completed")  # without the token there is no telling: refused
    with pytest.raises(LeaseLost):
        store.finish(run_id, "w1", "failed", error="x", token=token)  # not what landed
    with pytest.raises(LeaseLost):
        store.record_epoch(run_id, "w1", epoch_row(2), token="another claim")


def test_finish_refuses_an_unknown_status(store):
    run_id = store.submit(TINY)
    store.claim("w1")
    with pytest.raises(ValueError, match="not 'done'"):
        store.finish(run_id, "w1", "done")
    assert store.get_run(run_id).status == "running"


def test_a_run_lapsed_before_its_first_epoch_is_queued_again_once(store):
    run_id = store.submit(TINY)
    assert store.claim("host:1", lease=2, token="first").device_used == "cpu"
    later = time.time() + 10
    assert store.reclaim_expired(now=later) == [run_id]
    run = store.get_run(run_id)
    assert run.status == "queued" and run.worker_id is None and run.claim_token is None
    assert run.device_used is None  # the dead claim's device is not shown while it waits again
    assert "host:1 stopped responding" in run.error and "queued again" in run.error
    with pytest.raises(LeaseLost):  # the old claim, should its worker wake, writes nothing
        store.heartbeat(run_id, "host:1", token="first")
    assert store.claim("host:2", lease=2, token="second").id == run_id
    assert store.reclaim_expired(now=time.time() + 10) == [run_id]
    run = store.get_run(run_id)
    assert run.status == "failed" and "host:2 stopped responding" in run.error  # only once


def test_a_run_trained_here_and_now_is_never_handed_to_another_worker(store):
    """``seqcopy train`` records its run as running in its own process: should that process die
    (or sleep past the lease) before a first epoch, the run fails; a background worker never
    trains it, without the outputs (logs/NAME/) the command was asked for."""
    run_id = store.submit(TINY, status="running", worker_id="cli:host:1", device_used="cpu")
    assert store.reclaim_expired(now=time.time() + DEFAULT_LEASE + 10) == [run_id]
    run = store.get_run(run_id)
    assert run.status == "failed" and "cli:host:1 stopped responding" in run.error
    assert store.claim("host:2") is None


def test_a_cancelled_run_lapsed_before_its_first_epoch_is_not_queued_again(store):
    run_id = store.submit(TINY)
    store.claim("host:1", lease=2)
    store.request_cancel(run_id)
    assert store.reclaim_expired(now=time.time() + 10) == [run_id]
    assert store.get_run(run_id).status == "failed"


def test_an_error_text_the_database_cannot_hold_is_stored_escaped(store):
    run_id = store.submit(TINY)
    store.claim("w1")
    store.finish(run_id, "w1", "failed", error="bad byte \x00 and a lone \ud800 surrogate")
    assert store.get_run(run_id).error == "bad byte \\x00 and a lone \\ud800 surrogate"
