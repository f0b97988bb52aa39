"""The Slurm array script of docs/scaling.md (docs/slurm/seqcopy-workers.sbatch): it parses
(`bash -n`), the document shows it exactly, and its worker line runs here, as an array task would
(Slurm's variables faked), against a PostgreSQL store: it trains the queue and exits when idle,
recorded in the workers table as that array task."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import TINY as BASE_TINY
from test_worker import REPO

from seqcopy.runs.store import Store

SCRIPT = REPO / "docs" / "slurm" / "seqcopy-workers.sbatch"
TINY = BASE_TINY.replace(epochs=2)
# What an array task's environment holds; PATH without seqcopy, which SEQCOPY_VENV brings.
ARRAY_TASK = {"SLURM_JOB_ID": "1203", "SLURM_ARRAY_JOB_ID": "1200", "SLURM_ARRAY_TASK_ID": "3",
              "SLURM_CPUS_PER_TASK": "1", "PATH": "/usr/bin:/bin", "SEQCOPY_VENV": str(Path(sys.executable).parents[1]),
              "PYTHONPATH": str(REPO)}  # this checkout's seqcopy, whichever one the environment installed


def run_script(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_the_script_parses_and_the_document_shows_it_as_it_is():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    document = (REPO / "docs" / "scaling.md").read_text()
    shown = re.search(r"```bash\n(#!/bin/bash\n.*?)```", document, re.S)
    assert shown and shown.group(1) == SCRIPT.read_text()
    directives = [line for line in SCRIPT.read_text().splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --array=1-8" in directives and any(d.startswith("#SBATCH --signal=B:TERM@") for d in directives)


def test_an_array_task_runs_the_queue_and_exits_when_idle(pg_url):
    store = Store(pg_url)
    ids = store.submit_many([TINY.replace(seed=seed) for seed in (0, 1)])
    done = run_script(ARRAY_TASK | {"SEQCOPY_DB": pg_url, "SEQCOPY_IDLE_EXIT": "1"})
    assert done.returncode == 0, done.stderr
    assert [store.get_run(i).status for i in ids] == ["completed", "completed"]
    (worker,) = store.list_workers()
    assert (worker.origin, worker.threads, worker.state(), worker.runs_done) == ("slurm job 1200_3", 1, "stopped", 2)
    store.close()


def test_a_sqlite_store_is_refused(tmp_path):
    done = run_script(ARRAY_TASK | {"SEQCOPY_DB": f"sqlite:///{tmp_path / 'runs.db'}"})
    assert done.returncode == 2 and "cannot share it" in done.stderr
    assert not (tmp_path / "runs.db").exists()


def test_without_a_store_url_the_task_stops_at_once():
    done = run_script(ARRAY_TASK)
    assert done.returncode != 0 and "set SEQCOPY_DB" in done.stderr


def test_a_time_limit_leaves_the_run_queued_with_its_state_and_the_next_task_finishes_every_run_once(pg_url,
                                                                                                    tmp_path):
    """Slurm's --signal=B:TERM: SIGTERM to the batch shell mid-run. The worker records its epoch and
    state and puts the run back in the queue, the task requeues itself (scontrol, faked here), and
    the next task resumes the run: every run completed exactly once, each epoch once."""
    from test_worker import RESUMABLE, wait_for

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "scontrol").write_text(f"#!/bin/bash\necho \"$@\" >> {tmp_path / 'scontrol.log'}\n")
    (fake / "scontrol").chmod(0o755)
    env = ARRAY_TASK | {"SEQCOPY_DB": pg_url, "SEQCOPY_IDLE_EXIT": "1", "PATH": f"{fake}:/usr/bin:/bin"}
    store = Store(pg_url)
    ids = store.submit_many([RESUMABLE.replace(epochs=6), TINY])
    task = subprocess.Popen(["bash", str(SCRIPT)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: store.get_run(ids[0]).epochs_done >= 1, 120, "a first epoch")
        task.send_signal(subprocess.signal.SIGTERM)  # the batch shell only, as B: does
        _, err = task.communicate(timeout=120)
    finally:
        if task.poll() is None:
            task.kill()
    assert task.returncode == 0, err
    run = store.get_run(ids[0])
    assert run.status == "queued" and run.error.startswith("preempted at epoch ")
    assert store.resume_state(ids[0])[0] == run.epochs_done
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "1200_3"]

    done = run_script(env | {"SLURM_ARRAY_TASK_ID": "4"})  # the next task
    assert done.returncode == 0, done.stderr
    assert [store.get_run(i).status for i in ids] == ["completed", "completed"]
    assert [row["epoch"] for row in store.epochs([ids[0]])] == list(range(1, 7))
    store.close()
