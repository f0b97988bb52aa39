"""Fork… on the Runs page: the Launch form's state filled with a run's settings, and the run to
start from (the Launch page reads ``launch_fork_from`` and queues the runs with that lineage)."""

from __future__ import annotations

from seqcopy.runs.store import RunInfo
from seqcopy.ui.launch_form import SWEEP_ROWS, FormTies, form_values

FORK_KEY = "launch_fork_from"  # the run id the Launch form's runs start from


def fork_form(run: RunInfo) -> dict:
    """Session-state entries that fill the Launch form with ``run``'s settings (one cell, one
    seed, no sweep, the preset '(custom)') and mark the runs it queues as forks of it."""
    values = {f"launch_{name}": value for name, value in form_values(run.config).items()}
    ties = FormTies()
    for index in range(SWEEP_ROWS):  # no sweep: the user adds one
        values |= {f"launch_sweep_field_{index}": None, f"launch_sweep_values_{index}": ""}
    values |= {"launch_tie_n": ties.n_to_k, "launch_tie_test": ties.test_to_train, "launch_tie_factor": ties.factor}
    return {
        **values, "launch_preset": "(custom)", "launch_cells": [run.config.cell],
        "launch_seeds": str(run.config.seed), "launch_sweep_name": "", FORK_KEY: run.id,
    }
