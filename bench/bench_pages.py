"""Server-side render time of each dashboard page on a big store: 1,000 runs × 50 epochs.

    .venv/bin/python bench/bench_pages.py [--runs 1000] [--epochs 50]

Fills a temporary SQLite store with bulk inserts (seconds, not a real training), then times
AppTest runs of every page, Runs with 20 and with 200 runs selected: with the read caches empty
("cold"), then again within their few-second lifetime ("warm"), several times each, and prints
the medians with the machine's load average. Target: under a second per page. Not a test.
Then the same with the runs grouped into length sweeps, Compare drawing the sweep figures.

Then the Playground on a model of realistic size (the "Copies of 20 symbols" preset, mGRU, hidden
256): its first open in a fresh process, with and without torch already imported (the app
imports it in the background once a first page is drawn), and each of its views. Server side
only: bench/bench_browser_draw.py prints what the browser adds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402 - after the sys.path insert above

from seqcopy.config import RunConfig  # noqa: E402 - after the sys.path insert above
from seqcopy.core import checkpoint  # noqa: E402 - after the sys.path insert above
from seqcopy.core.cells import CELL_NAMES  # noqa: E402 - after the sys.path insert above
from seqcopy.runs.store import (  # noqa: E402 - after the sys.path insert above
    Store,
    checkpoints_t,
    epochs_t,
    lengths_t,
    positions_t,
    runs_t,
)

PAGES = ["views/launch.py", "views/runs.py", "views/compare.py", "views/playground.py"]


def fill(url: str, runs: int, epochs: int) -> list[int]:
    """``runs`` runs of five cells × many seeds with ``epochs`` epochs each, in a few transactions."""
    store = Store(url)
    now = time.time() - runs * epochs
    run_rows, epoch_rows, position_rows, length_rows = [], [], [], []
    for index in range(runs):
        run_id = index + 1
        cell = CELL_NAMES[index % len(CELL_NAMES)]
        config = RunConfig(cell=cell, seed=index // len(CELL_NAMES), epochs=epochs, hidden_size=16, embedding_size=4,
                           tag=f"sweep{index % 4}")
        status = "completed" if index < runs - 10 else ("running" if index < runs - 5 else "queued")
        done = epochs if status == "completed" else (epochs // 2 if status == "running" else 0)
        start = now + index * epochs
        last = 0.1 + 0.8 * (1 - 1 / (1 + done / 10))
        run_rows.append(dict(
            id=run_id, config=config.to_json(), cell=cell, seed=config.seed, tag=config.tag, status=status,
            created_at=start, started_at=start if done else None,
            finished_at=start + epochs if status == "completed" else None,
            worker_id="bench:1" if done else None, heartbeat_at=time.time() if status == "running" else None,
            lease_seconds=1e9, cancel_requested=False, error=None, epochs_done=done, epochs_total=epochs,
            batch_done=0, batch_total=config.batches_per_epoch, train_loss=1.0, test_loss=1.0, test_acc=0.8,
            test_copy_acc=last, test_seq_acc=last ** 10,
        ))
        for epoch in range(1, done + 1):
            acc = 0.1 + 0.8 * (1 - 1 / (1 + epoch / 10)) + 0.01 * (index % 7)
            epoch_rows.append(dict(
                run_id=run_id, epoch=epoch, wall_time=start + epoch, stage_output_len=10, stage_seq_len=20,
                train_loss=2 - acc, train_acc=acc, train_copy_acc=acc, train_seq_acc=acc ** 10, test_loss=2 - acc,
                test_acc=acc, test_copy_acc=acc, test_seq_acc=acc ** 10, seconds=1.0, samples_per_sec=1e4, lr=1e-3,
            ))
        if status == "completed":
            position_rows += [dict(run_id=run_id, position=p, copy_acc=last - 0.01 * p) for p in range(1, 21)]
            length_rows += [dict(run_id=run_id, seq_len=k, output_len=k // 2, copy_acc=last / f, seq_acc=0.1)
                            for f, k in ((1, 20), (2, 40), (5, 100))]
    blob_config = RunConfig.from_dict(eval_json(run_rows[0]["config"]))
    blob = checkpoint.to_bytes(checkpoint.build_model(blob_config), blob_config)
    with store.engine.begin() as conn:
        conn.execute(insert(runs_t), run_rows)
        for chunk in range(0, len(epoch_rows), 10_000):
            conn.execute(insert(epochs_t), epoch_rows[chunk : chunk + 10_000])
        conn.execute(insert(positions_t), position_rows)
        conn.execute(insert(lengths_t), length_rows)
        conn.execute(insert(checkpoints_t),
                     [dict(run_id=i, data=blob, size=len(blob), epoch=epochs) for i in range(1, 11)])
    store.close()
    return [row["id"] for row in run_rows]


def eval_json(text: str) -> dict:
    import json

    return json.loads(text)


def render(page: str, query: dict | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one server-side run of ``page``. The CPU
    time counts the script's thread and not the waits, so other jobs on a shared machine
    inflate it far less than the wall time."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    if page != PAGES[0]:
        at.run()  # the entry page first: AppTest switches pages from a run
        at.switch_page(page)
    started, cpu = time.perf_counter(), time.process_time()
    at.run()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if at.exception:
        raise SystemExit(f"{page} raised: {at.exception[0].value}")
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5,
                        help="cold and warm renders of each page; medians are printed")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="seqcopy-bench-")
    url = f"sqlite:///{folder}/runs.db"
    # STREAMLIT_LOGGER_LEVEL: AppTest runs in bare mode, and each run warns of it otherwise.
    os.environ.update(SEQCOPY_DB=url, SEQCOPY_WORKER="external", STREAMLIT_LOGGER_LEVEL="error")
    started = time.perf_counter()
    fill(url, args.runs, args.epochs)
    print(f"filled {args.runs} runs × {args.epochs} epochs in {time.perf_counter() - started:.1f} s ({url})")


    views = [
        ("Launch", PAGES[0], None),
        ("Runs, nothing selected", PAGES[1], None),
        # The most recent completed runs, as a shared link names them (?runs=…).
        ("Runs, 20 selected", PAGES[1], {"runs": ",".join(str(i) for i in range(args.runs - 30, args.runs - 10))}),
        ("Runs, 200 selected", PAGES[1], {"runs": ",".join(str(i) for i in range(args.runs - 210, args.runs - 10))}),
        ("Compare (200 most recent)", PAGES[2], None),
        ("Playground", PAGES[3], None),
    ]
    for _, page, query in views:  # imports, the model's first load and the parsed configs: not timed
        render(page, query)
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"medians of {args.repeats} renders, each cold (read caches empty) then warm")
    print(f"slowest page: {time_views(views, args.repeats):.3f} s wall, cold (target < 1 s)")
    time_sweep_pages(url, args.runs, args.repeats)
    playground_timings(url)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def time_views(views: list[tuple[str, str, dict | None]], repeats: int) -> float:
    """Print each view's render time with the read caches cleared, then warm (medians of
    ``repeats``, wall and CPU); return the slowest cold wall time."""
    import streamlit as st

    width = max(len(name) for name, _, _ in views) + 2
    print(f"{'page':{width}} {'cold wall':>10} {'cold CPU':>9} {'warm wall':>10} {'warm CPU':>9}")
    worst = 0.0
    for name, page, query in views:
        colds, warms = [], []
        for _ in range(repeats):  # a shared machine's noise: the median of a few
            st.cache_data.clear()
            colds.append(render(page, query))
            warms.append(render(page, query))
        (cold, cold_cpu), (warm, warm_cpu) = [tuple(statistics.median(t[i] for t in times) for i in (0, 1))
                                              for times in (colds, warms)]
        worst = max(worst, cold)
        print(f"{name:{width}} {cold:9.3f}s {cold_cpu:8.3f}s {warm:9.3f}s {warm_cpu:8.3f}s")
    return worst


PLAYGROUND_VIEWS = ["Step by step", "Which input each output reads", "What if", "Side by side", "State trajectory"]
FIRST_OPEN = """
import json, os, sys, time
started = time.perf_counter()
if sys.argv[1] == "warm":
    import seqcopy.ui.warmup
    seqcopy.ui.warmup.warm_up_in_background().join()
imported = time.perf_counter() - started
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(os.path.join(os.getcwd(), "app.py"), default_timeout=120)
at.switch_page(sys.argv[2])
started = time.perf_counter()
at.run()
print(json.dumps({"seconds": time.perf_counter() - started, "imports": imported,
                  "error": [e.value for e in at.exception]}))
"""


def add_realistic_model(url: str) -> int:
    """One completed mGRU run of the 'Copies of 20 symbols' preset with its checkpoint (random
    weights: the Playground's work does not depend on them), the newest, so the default."""
    from seqcopy.presets import PRESETS

    config = PRESETS["Copies of 20 symbols"].replace(cell="mgru", tag="bench-playground")
    store = Store(url)
    run_id = store.submit(config, status="running", worker_id="bench:1")
    store.finish(run_id, "bench:1", "completed", checkpoint=checkpoint.to_bytes(checkpoint.build_model(config), config))
    store.close()
    return run_id


def playground_timings(url: str) -> None:
    import subprocess

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    add_realistic_model(url)
    st.cache_data.clear()
    print("\nPlayground, mGRU hidden 256, K = N = 20 (a 43-step pass), server side")
    firsts = (
        ("cold", PAGES[3], "first open, fresh process"),
        ("warm", PAGES[3], "first open, torch imported in the background"),
        ("cold", PAGES[1], "reference: Runs' first open, fresh process"),
    )
    for mode, page, what in firsts:
        done = subprocess.run([sys.executable, "-c", FIRST_OPEN, mode, page], cwd=ROOT, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
        result = eval_json(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
        if result is None or result["error"]:
            raise SystemExit(f"{page}'s first open failed: {done.stderr[-500:] or result}")
        extra = f" (after {result['imports']:.2f} s importing in the background)" if mode == "warm" else ""
        print(f"{what:46} {result['seconds']:8.3f} s{extra}")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(PAGES[3])
    at.run()
    print(f"{'view':46} {'first':>8}   {'again':>7}")
    for view in PLAYGROUND_VIEWS:
        at.session_state["play_view"] = view
        started = time.perf_counter()
        at.run()
        first = time.perf_counter() - started
        again = []
        for _ in range(3):
            started = time.perf_counter()
            at.run()
            again.append(time.perf_counter() - started)
        if at.exception:
            raise SystemExit(f"{view} raised: {at.exception[0].value}")
        print(f"{view:46} {first:7.3f}s {statistics.median(again):7.3f}s")


def group_into_sweeps(url: str, runs: int, sweeps: int = 4) -> list[int]:
    """Make the store's runs ``sweeps`` sweeps of consecutive runs, each over four input lengths
    (K = N ∈ 4, 8, 16, 40), as a length study queues them; returns the sweep ids."""
    import json

    from sqlalchemy import bindparam, update

    from seqcopy.runs.store import sweeps_t

    lengths = (4, 8, 16, 40)
    per_sweep = -(-runs // sweeps)
    store = Store(url)
    with store.engine.begin() as conn:
        ids = [conn.execute(insert(sweeps_t).values(
            name=f"length study {index}", created_at=time.time(),
            spec=json.dumps({"axes": ["train_seq_len=4,8,16,40"]}),
            varied=json.dumps(["cell", "seed", "train_seq_len", "train_output_len"]))).inserted_primary_key[0]
            for index in range(sweeps)]
        rows = []
        for run_id, text in conn.execute(runs_t.select().with_only_columns(runs_t.c.id, runs_t.c.config)).all():
            k = lengths[(run_id - 1) // 5 % len(lengths)]  # five cells at each length, then the next length
            config = RunConfig.from_dict(json.loads(text)).replace(train_seq_len=k, train_output_len=k)
            rows.append({"run": run_id, "sweep": ids[(run_id - 1) // per_sweep], "config": config.to_json()})
        conn.execute(update(runs_t).where(runs_t.c.id == bindparam("run"))
                     .values(sweep_id=bindparam("sweep"), config=bindparam("config")), rows)
    store.close()
    return ids


def time_sweep_pages(url: str, runs: int, repeats: int) -> None:
    """Compare with a sweep chosen: its final metric and speed against K, parallel coordinates."""
    sweep_ids = group_into_sweeps(url, runs)
    views = [
        (f"Compare, sweep #{sweep_ids[-1]} ({-(-runs // len(sweep_ids))} runs)", PAGES[2],
         {"sweep": str(sweep_ids[-1])}),
        (f"Compare, sweep #{sweep_ids[0]}", PAGES[2], {"sweep": str(sweep_ids[0])}),
        ("Compare, all runs (200 most recent)", PAGES[2], None),
        ("Runs, sweep column", PAGES[1], None),
    ]
    render(*views[0][1:])  # the figures' first use, not timed
    print(f"\nwith the runs in {len(sweep_ids)} sweeps over K (the sweep figures drawn):")
    print(f"slowest page with sweeps: {time_views(views, repeats):.3f} s wall, cold (target < 1 s)")


if __name__ == "__main__":
    main()
