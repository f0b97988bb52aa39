"""The options for multiplicative cells that learn: --forget-bias, --init chrono, --delay-factor,
--norm-m and --lr-schedule linear (seqcopy.core.init, seqcopy.core.cells, seqcopy.core.train)."""

import math

import pytest
import torch
from conftest import TINY

from seqcopy.config import RunConfig
from seqcopy.core.checkpoint import build_model, from_bytes, to_bytes
from seqcopy.core.model import CopyModel
from seqcopy.core.train import _learning_rate, train
from seqcopy.vocab import BLANK_INDEX, DELIMITER_INDEX

H = 32
SMALL = RunConfig(embedding_size=8, hidden_size=H, train_seq_len=10, train_output_len=10, padding=3)


def _cell(config: RunConfig, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(config).recurrent.cell


@pytest.mark.parametrize("cell", ["lstm", "mlstm"])
def test_forget_bias_sets_the_forget_gates_under_scaled(cell):
    built = _cell(SMALL.replace(cell=cell, init="scaled", forget_bias=3.0))
    total = built.bias_ih + built.bias_hh if cell == "lstm" else built.bias
    assert torch.equal(total[H:2 * H], torch.full((H,), 3.0))
    # The other gates keep their uniform start, so the assertion above is about the forget gate.
    assert total[:H].abs().max() < 1.0


@pytest.mark.parametrize("cell,mult_form", [("lstm", "krause"), ("mlstm", "krause"), ("mlstm", "input")])
def test_chrono_draws_forget_biases_in_log_1_to_T_and_closes_the_input_gate(cell, mult_form):
    config = SMALL.replace(cell=cell, init="chrono", mult_form=mult_form)
    built = _cell(config)
    total = built.bias_ih + built.bias_hh if hasattr(built, "bias_ih") else built.bias
    forget, inputs = total[H:2 * H], total[:H]
    span = config.train_length  # 23
    assert forget.min() >= 0.0 and forget.max() <= math.log(span - 1) + 1e-6
    assert forget.std() > 0.3  # drawn, not one value
    torch.testing.assert_close(inputs, -forget)
    # Orthogonal recurrent blocks, as under scaled.
    weight = getattr(built, "weight_hh", None)
    weight = built.weight_mh if weight is None else weight[:H]
    torch.testing.assert_close(weight @ weight.T, torch.eye(H), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell,mult_form", [("gru", "krause"), ("mgru", "krause"), ("mgru", "input")])
def test_chrono_opens_the_grus_update_gates(cell, mult_form):
    config = SMALL.replace(cell=cell, init="chrono", mult_form=mult_form)
    built = _cell(config)
    extra = built.bias_hh if hasattr(built, "bias_hh") else built.bias_mg
    update = built.bias_ih[H:2 * H] + extra[H:2 * H]
    assert update.min() >= 0.0 and update.max() <= math.log(config.train_length - 1) + 1e-6
    assert update.mean() > 1.0  # z starts mostly open: the state is kept (h = (1 - z) n + z h)


def test_chrono_follows_the_seed():
    config = SMALL.replace(cell="gru", init="chrono")
    assert torch.equal(_cell(config, 4).bias_ih, _cell(config, 4).bias_ih)
    assert not torch.equal(_cell(config, 4).bias_ih, _cell(config, 5).bias_ih)


@pytest.mark.parametrize("cell", ["mlstm", "mgru"])
@pytest.mark.parametrize("value", [0.5, 1.0])
def test_delay_factor_sets_the_factor_of_the_delay_symbols(cell, value):
    torch.manual_seed(0)
    model = build_model(SMALL.replace(cell=cell, init="scaled", delay_factor=value))
    factors = model.embedding.weight @ model.recurrent.cell.weight_mx.T  # (vocab, H)
    for symbol in (DELIMITER_INDEX, BLANK_INDEX):
        torch.testing.assert_close(factors[symbol], torch.full((H,), value), atol=1e-4, rtol=0)
    # Without the option the factor is small and varies by unit.
    torch.manual_seed(0)
    plain = build_model(SMALL.replace(cell=cell, init="scaled"))
    plain_factors = plain.embedding.weight @ plain.recurrent.cell.weight_mx.T
    assert plain_factors[BLANK_INDEX].abs().mean() < 0.5 * value


def test_delay_factor_leaves_the_other_cells_and_the_input_form_alone():
    for cell, mult_form in (("lstm", "krause"), ("mlstm", "input")):
        torch.manual_seed(0)
        with_option = build_model(SMALL.replace(cell=cell, mult_form=mult_form, delay_factor=2.0))
        torch.manual_seed(0)
        without = build_model(SMALL.replace(cell=cell, mult_form=mult_form))
        for name, tensor in without.state_dict().items():
            assert torch.equal(with_option.state_dict()[name], tensor), name


@pytest.mark.parametrize("cell", ["mlstm", "mgru"])
def test_norm_m_normalises_the_factor_and_runs_the_reference_path(cell):
    torch.manual_seed(0)
    model = CopyModel(cell, embedding_size=8, hidden_size=H, norm_m=True)
    recurrent = model.recurrent.cell
    x_t, h = torch.randn(5, 8), torch.randn(5, H)
    raw = (x_t @ recurrent.weight_mx.T) * (h @ recurrent.weight_mh.T)
    expected = (raw - raw.mean(1, keepdim=True)) / torch.sqrt(raw.var(1, unbiased=False, keepdim=True) + 1e-5)
    torch.testing.assert_close(recurrent.factor(x_t, h), expected, atol=1e-5, rtol=0)
    state = recurrent.initial_state(5)
    assert recurrent.fused_forward(torch.randn(5, 4, 8), state) is None
    logits, _ = model(torch.randint(0, 11, (5, 6)))
    assert logits.shape == (5, 6, 11) and torch.isfinite(logits).all()
    # Its gain and shift are parameters, learnt and saved.
    assert {"recurrent.cell.norm_m.weight", "recurrent.cell.norm_m.bias"} <= set(model.state_dict())


def test_a_norm_m_checkpoint_round_trips_and_an_old_one_has_no_norm():
    config = SMALL.replace(cell="mlstm", norm_m=True)
    torch.manual_seed(0)
    model = build_model(config)
    loaded, loaded_config = from_bytes(to_bytes(model, config))
    assert loaded_config.norm_m and loaded.recurrent.cell.norm_m is not None
    old = RunConfig.from_dict({k: v for k, v in SMALL.replace(cell="mlstm").to_dict().items()
                               if k not in ("norm_m", "forget_bias", "delay_factor")})
    assert (old.norm_m, old.forget_bias, old.delay_factor) == (False, 1.0, 0.0)
    assert build_model(old).recurrent.cell.norm_m is None


def test_the_playground_traces_a_norm_m_cell_as_it_runs():
    from seqcopy.ui.inside import trace_model

    torch.manual_seed(0)
    model = CopyModel("mgru", embedding_size=8, hidden_size=H, norm_m=True)
    inputs = torch.randint(0, 11, (1, 7))
    logits, parts = trace_model(model, inputs)  # checks its own steps against the cell
    torch.testing.assert_close(logits, model(inputs)[0], atol=1e-5, rtol=0)
    assert parts["m"].shape[-1] == H


def test_linear_schedule_decays_to_zero_after_the_warm_up():
    config = RunConfig(lr=0.01, lr_schedule="linear", epochs=10, warmup_epochs=2)
    rates = [_learning_rate(config, step, 100, 10) for step in range(100)]
    assert rates[0] == pytest.approx(0.0005) and rates[19] == pytest.approx(0.01)
    assert rates[20] == pytest.approx(0.01) and rates[60] == pytest.approx(0.005)
    assert all(a >= b for a, b in zip(rates[20:], rates[21:], strict=False)) and rates[-1] < 0.0003


@pytest.mark.parametrize("changes", [
    {"cell": "mlstm", "init": "chrono", "delay_factor": 1.0, "lr_schedule": "linear"},
    {"cell": "mlstm", "norm_m": True, "init": "scaled", "forget_bias": 3.0},
])
def test_training_with_the_options_is_deterministic(changes):
    config = TINY.replace(**changes)
    first, again = train(config), train(config)
    assert [e.test_loss for e in first.epochs] == [e.test_loss for e in again.epochs]
    assert math.isfinite(first.epochs[-1].train_loss)


def test_bad_values_are_refused_in_one_line_each():
    errors = RunConfig(forget_bias=float("nan"), delay_factor=-1.0, init="xavier", lr_schedule="step").validate()
    assert set(errors) >= {"forget_bias", "delay_factor", "init", "lr_schedule"}
    assert all("\n" not in message for message in errors.values())


def test_a_forget_bias_without_scaled_init_is_refused():
    for init in ("uniform", "chrono"):
        assert "--init scaled" in RunConfig(init=init, forget_bias=3.0).validate()["forget_bias"]
    assert "forget_bias" not in RunConfig(init="scaled", forget_bias=3.0).validate()
    assert "forget_bias" not in RunConfig(init="chrono").validate()  # the default says nothing
