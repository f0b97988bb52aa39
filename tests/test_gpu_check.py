"""bench/gpu_check.sh, the GPU readiness check, in its dry mode on the CPU: every step runs and
passes (training every cell and form, a bit-for-bit resume, the timing table); a bad flag is one
line and exit 2. On a CUDA machine the same script runs the steps on the GPU."""

from __future__ import annotations

import subprocess
import sys

from test_worker import ENV, REPO

SCRIPT = REPO / "bench" / "gpu_check.sh"


def test_the_dry_run_passes_every_step_and_prints_the_table():
    done = subprocess.run(["bash", str(SCRIPT), "--cpu-only"], cwd=REPO, env=ENV | {"PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == "gpu_check: all steps passed"
    assert sum(line.startswith("  train ") and line.endswith(" ok") for line in lines) == 7  # 5 cells, 2 with 2 forms
    assert any("(bit for bit) ok" in line for line in lines)
    assert {line.split(" | ")[0] for line in lines if line.startswith("| ") and " s |" in line} == {
        "| rnn", "| lstm", "| gru", "| mlstm", "| mgru"}


def test_a_bad_flag_is_one_line_and_exit_2():
    done = subprocess.run(["bash", str(SCRIPT), "--bogus"], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and done.stderr.strip().startswith("usage:")
