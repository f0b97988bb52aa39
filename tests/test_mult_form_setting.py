"""The multiplicative form as a setting: declared once, on the command line and in the form,
recorded with every run, and shown wherever a run's cell is named."""

from __future__ import annotations

import time

import pytest

from seqcopy.cli.commands import build_parser
from seqcopy.cli.flags import config_from_args
from seqcopy.config import MULT_FORMS, SETTINGS, RunConfig, cell_label
from seqcopy.runs.store import RunInfo
from seqcopy.ui.frames import group_of, runs_frame


def test_the_default_is_krauses_and_a_config_stored_before_the_choice_reads_as_krauses():
    assert RunConfig().mult_form == MULT_FORMS[0] == "krause"
    stored = {k: v for k, v in RunConfig(cell="mgru").to_dict().items() if k != "mult_form"}
    assert RunConfig.from_dict(stored).mult_form == "krause"


def test_the_flag_and_its_validation_come_from_the_declaration():
    parsed = config_from_args(build_parser().parse_args(["submit", "-c", "mlstm", "--mult-form", "input"]))
    assert parsed.mult_form == "input" and SETTINGS["mult_form"].group == "Model"
    assert "unknown multiplicative form" in RunConfig(mult_form="other").validate(check_device=False)["mult_form"]


@pytest.mark.parametrize("cell, form, label", [
    ("mlstm", "krause", "mlstm"), ("mlstm", "input", "mlstm (input form)"), ("mgru", "input", "mgru (input form)"),
    ("lstm", "input", "lstm"),  # the form means nothing to the plain cells
])
def test_the_cell_is_named_with_its_form(cell, form, label):
    config = RunConfig(cell=cell, mult_form=form)
    assert cell_label(config) == label
    run = RunInfo(id=3, config=config, status="queued", tag="", created_at=time.time(), started_at=None,
                  finished_at=None, worker_id=None, claim_token=None, heartbeat_at=None, cancel_requested=False,
                  error=None, epochs_done=0, epochs_total=1, batch_done=0, batch_total=1, latest={})
    assert runs_frame([run])["cell"].tolist() == [label]  # the Runs table
    assert group_of(run, "cell") == label  # Compare's groups: the two forms are never averaged together


@pytest.mark.parametrize("cell, twin", [("mlstm", "lstm"), ("mgru", "gru")])
def test_the_estimates_follow_the_form(cell, twin):
    """The input form costs what its plain twin does on x̃_t, plus the factor m_t = W_m x_t +
    U_m h_{t-1} + b_m: E·(E+H) more multiply-accumulates a step, E·(E+H) + E more parameters,
    and m_t and x̃_t (E each) more saved a step (seqcopy.costs)."""
    from seqcopy.costs import parameter_count, recurrent_macs, saved_values

    plain, form = RunConfig(cell=twin), RunConfig(cell=cell, mult_form="input")
    e, h = form.embedding_size, form.hidden_size
    assert recurrent_macs(cell, e, h, "input") - recurrent_macs(twin, e, h) == e * (e + h)
    assert parameter_count(cell, e, h, "input") - parameter_count(twin, e, h) == e * (e + h) + e
    assert saved_values(cell, e, h, "input") - saved_values(twin, e, h) == 2 * e
    # The run estimates read the same table: 2 FLOPs a MAC, training 3× the forward pass.
    extra = 2 * e * (e + h)
    assert form.estimate_flops_per_epoch() - plain.estimate_flops_per_epoch() == (
        3 * extra * form.train_samples * form.train_length + extra * form.test_samples * form.test_length)
    assert form.estimate_memory_bytes() - plain.estimate_memory_bytes() == (
        16 * (e * (e + h) + e) + 3 * 4 * form.batch_size * form.train_length * 2 * e)
    krause = RunConfig(cell=cell)
    assert krause.estimate_flops_per_epoch() != form.estimate_flops_per_epoch()
