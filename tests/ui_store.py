"""A small runs store holding every kind of run, written directly through Store, for the
dashboard's tests: completed runs of several cells and seeds (with checkpoints and final
results), a single-seed group, a running run, a failed one, a cancelled one and a queued one."""

from __future__ import annotations

import math

from conftest import TINY as BASE_TINY

from seqcopy.config import RunConfig
from seqcopy.core import checkpoint
from seqcopy.runs.schema import EPOCH_METRICS
from seqcopy.runs.store import Store

WORKER = "test-host:1"
TINY = BASE_TINY.replace(test_seq_len=6, padding=1, tag="fixture")


def epoch_row(epoch: int, seed: int, cell: str, stage_output_len: int = 4) -> dict:
    """Made-up but plausible metrics: copy accuracy climbs from chance, differently per seed."""
    pace = {"lstm": 1.5, "gru": 1.0, "rnn": 4.0, "mgru": 2.0, "mlstm": 1.2}[cell]
    rise = 1 - math.exp(-epoch / (pace + seed / 2))
    copy = 1 / 9 + (0.85 - 1 / 9) * rise
    values = {
        "train_loss": 2.0 * (1 - rise) + 0.1, "test_loss": 2.1 * (1 - rise) + 0.12,
        "train_acc": 0.6 + 0.35 * rise, "test_acc": 0.58 + 0.35 * rise,
        "train_copy_acc": copy + 0.02, "test_copy_acc": copy,
        "train_seq_acc": copy ** 4, "test_seq_acc": copy ** 4,
        "seconds": 0.5, "samples_per_sec": 128.0, "lr": 0.001,
    }
    assert set(values) == set(EPOCH_METRICS)
    return {"epoch": epoch, "stage_output_len": stage_output_len, "stage_seq_len": 4, **values}


def add_run(store: Store, config: RunConfig, final: str, epochs: int | None = None,
            with_checkpoint: bool = True) -> int:
    """Queue, claim and record one run, ending in ``final`` (a status, or 'queued')."""
    run_id = store.submit(config)
    if final == "queued":
        return run_id
    return record(store, run_id, config, final, epochs, with_checkpoint)


def record(store: Store, run_id: int, config: RunConfig, final: str, epochs: int | None = None,
           with_checkpoint: bool = True) -> int:
    """Claim the queued run ``run_id`` (the oldest queued) and record it, ending in ``final``."""
    claimed = store.claim(WORKER)
    assert claimed.id == run_id
    for epoch in range(1, (config.epochs if epochs is None else epochs) + 1):
        stage = 2 if (config.curriculum and epoch == 1) else config.train_output_len
        store.record_epoch(run_id, WORKER, epoch_row(epoch, config.seed, config.cell, stage))
    if final == "running":
        store.heartbeat(run_id, WORKER, 2, 4)
        return run_id
    blob = checkpoint.to_bytes(checkpoint.build_model(config), config) if with_checkpoint else None
    results = {}
    if final == "completed":
        n = config.test_output_len
        results = dict(
            position_acc=[0.9 - 0.1 * i / n - 0.02 * config.seed for i in range(n)],
            length_acc=[{"seq_len": k, "output_len": k, "copy_acc": 0.9 / f - 0.01 * config.seed, "seq_acc": 0.5 / f}
                        for f, k in ((1, 4), (2, 8), (5, 20))],
        )
    error = {"failed": "RuntimeError: made-up failure for the tests\n  at line 1",
             "cancelled": "cancelled by request after 1 epoch(s)"}.get(final)
    store.finish(run_id, WORKER, final, error=error, checkpoint=blob, **results)
    return run_id


def fill(url: str) -> dict[str, list[int]]:
    """Every kind of run; returns their ids by kind."""
    store = Store(url)
    ids: dict[str, list[int]] = {"completed": []}
    for cell in ("lstm", "gru", "rnn"):
        for seed in (0, 1, 2):
            ids["completed"].append(add_run(store, TINY.replace(cell=cell, seed=seed), "completed"))
    ids["single"] = [add_run(store, TINY.replace(cell="mgru", seed=0, curriculum=True, curriculum_start=2),
                             "completed")]
    ids["running"] = [add_run(store, TINY.replace(cell="lstm", seed=7, epochs=5), "running", epochs=2)]
    ids["failed"] = [add_run(store, TINY.replace(cell="gru", seed=7), "failed", epochs=1, with_checkpoint=False)]
    ids["cancelled"] = [add_run(store, TINY.replace(cell="rnn", seed=7), "cancelled", epochs=1)]
    ids["queued"] = [add_run(store, TINY.replace(cell="mlstm", seed=7), "queued")]
    store.close()
    return ids


def add_sweep(url: str) -> tuple[int, list[int]]:
    """A completed sweep: lstm and gru × seeds 0–2 × K = N ∈ {4, 8}, queued as one grid; and a
    run outside it. Returns (sweep id, its run ids)."""
    from seqcopy.results.sweeps import Grid, parse_axis, parse_tie

    store = Store(url)
    add_run(store, TINY.replace(cell="rnn", seed=5, tag="alone"), "completed")
    grid = Grid(TINY.replace(tag="sweep"), ("lstm", "gru"), (0, 1, 2), (parse_axis("train_seq_len=4,8"),),
                (parse_tie("train_output_len=train_seq_len"),))
    configs = grid.configs()
    sweep_id, ids = store.submit_sweep(configs, "K *sweep* of [tiny] runs", grid.spec())
    for run_id, config in zip(ids, configs, strict=True):
        record(store, run_id, config, "completed")
    store.close()
    return sweep_id, ids
