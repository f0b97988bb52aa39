"""What writing the resume state costs, per epoch, at three sizes, on SQLite and PostgreSQL.

For each size (the presets quick-demo, original-defaults and original-final) it trains a couple
of epochs of a few batches (so the run stays short), takes the resume state after epoch 1, and
times (a) serialising the state, (b) the epoch's write with the state, against (c) the same write
without it, on a SQLite file and, when one answers, a PostgreSQL database. The epoch time is
estimated from the training throughput of those batches times the preset's real training-set
size (the test pass left out, so the percentage is an upper bound). It prints a markdown table:
ms, % of an epoch, and the state's size (the store's growth per run: one state a run, replaced
each epoch, beside its one checkpoint).

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/bench_state.py [--pg postgresql://postgres@127.0.0.1/test] [--writes 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import torch

from seqcopy.core.train import Stopped, train
from seqcopy.presets import BY_SLUG
from seqcopy.runs.store import Store

SIZES = ("quick-demo", "original-defaults", "original-final")
BATCHES = 3  # training batches per short epoch


def short(slug: str):
    """The preset's config cut to a few batches and a small test set, and its real training-set size."""
    config = BY_SLUG[slug].config
    return config.replace(train_samples=config.batch_size * BATCHES, test_samples=8, epochs=2,
                          device="cpu"), config.train_samples


def state_after_one_epoch(config) -> tuple[bytes, float, float, dict]:
    """(state bytes, seconds to serialise it, training samples per second, the epoch's row)."""
    found = {}

    def grab(result, state, final):
        started = time.perf_counter()
        found["state"] = state()
        found["serialise"] = time.perf_counter() - started
        found["rate"] = result.samples_per_sec
        found["row"] = result.to_dict()
        raise Stopped

    train(config, on_epoch_state=grab)
    return found["state"], found["serialise"], found["rate"], found["row"]


def write_ms(url: str, config, row: dict, state: bytes | None, writes: int) -> float:
    """Median ms of record_epoch (with ``state`` or without) on a fresh run of the store at ``url``."""
    store = Store(url)
    try:
        run_id = store.submit(config)
        run = store.claim("bench:1", lease=600)
        assert run is not None and run.id == run_id
        times = []
        for epoch in range(1, writes + 1):
            started = time.perf_counter()
            store.record_epoch(run_id, "bench:1", row | {"epoch": epoch}, token=run.claim_token, state=state)
            times.append(time.perf_counter() - started)
        return 1000 * statistics.median(times)
    finally:
        store.close()


def pg_database(admin_url: str) -> tuple[str, callable]:
    """A fresh database on the server of ``admin_url`` and a function that drops it."""
    import psycopg

    name = f"seqcopy_bench_{uuid.uuid4().hex[:8]}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return plain.rsplit("/", 1)[0] + f"/{name}", drop


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="an admin URL of a PostgreSQL server (a scratch database is made and dropped); "
                             "'' to skip")
    parser.add_argument("--writes", type=int, default=5, help="timed writes per store and size (median)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
          f"state written in the epoch's own transaction (Store.record_epoch)\n")
    header = ("| size | state | serialise | SQLite write (+ state) | PostgreSQL write (+ state) | epoch (est.) "
              "| state cost, % of epoch |")
    print(header)
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        pg, drop = (None, None)
        if args.pg:
            try:
                pg, drop = pg_database(args.pg)
            except Exception as error:  # noqa: BLE001 - no server: SQLite only, said so
                print(f"(PostgreSQL skipped: {error})", file=sys.stderr)
        try:
            for slug in SIZES:
                config, samples = short(slug)
                state, serialise, rate, row = state_after_one_epoch(config)
                epoch_s = samples / rate
                sqlite = f"sqlite:///{Path(folder) / (slug + '.db')}"
                costs = {"sqlite": (write_ms(sqlite, config, row, state, args.writes),
                                    write_ms(sqlite, config, row, None, args.writes))}
                if pg:
                    costs["pg"] = (write_ms(pg, config, row, state, args.writes),
                                   write_ms(pg, config, row, None, args.writes))
                shown = {k: f"{w:.1f} ms (+{w - b:.1f})" for k, (w, b) in costs.items()}
                worst = max(w - b for w, b in costs.values()) + 1000 * serialise
                print(f"| {slug} | {len(state) / 1024:.0f} KiB | {1000 * serialise:.1f} ms | {shown['sqlite']} "
                      f"| {shown.get('pg', '—')} | {epoch_s:.1f} s | {100 * worst / 1000 / epoch_s:.3f} % |")
        finally:
            if drop:
                drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
