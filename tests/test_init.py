import pytest
import torch

from seqcopy.config import CELL_NAMES, RunConfig
from seqcopy.core.checkpoint import build_model
from seqcopy.core.init import initialise
from seqcopy.core.model import CopyModel

SMALL = RunConfig(embedding_size=16, hidden_size=64)
RECURRENT = ("weight_hh", "weight_mh", "weight_mg")


def _built(cell: str, init: str, seed: int = 0) -> CopyModel:
    torch.manual_seed(seed)
    return build_model(SMALL.replace(cell=cell, init=init))


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_uniform_is_the_cells_own_initialisation(cell):
    torch.manual_seed(3)
    plain = CopyModel(cell, embedding_size=16, hidden_size=64)
    built = _built(cell, "uniform", seed=3)
    for name, tensor in plain.state_dict().items():
        torch.testing.assert_close(built.state_dict()[name], tensor, rtol=0, atol=0)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_scaled_makes_every_recurrent_block_orthogonal(cell):
    recurrent = _built(cell, "scaled").recurrent.cell
    blocks = 0
    for name in RECURRENT:
        weight = getattr(recurrent, name, None)
        if weight is None:
            continue
        for block in weight.split(64, dim=0):
            torch.testing.assert_close(block @ block.T, torch.eye(64), atol=1e-5, rtol=0)
            blocks += 1
    assert blocks >= 1
    # The uniform scheme's blocks are far from orthogonal, so the assertion above can fail.
    uniform = getattr(_built(cell, "uniform").recurrent.cell, "weight_hh", None)
    if uniform is not None:
        block = uniform[:64]
        assert not torch.allclose(block @ block.T, torch.eye(64), atol=0.1)


@pytest.mark.parametrize("cell, bias_name", [("lstm", "bias_ih"), ("mlstm", "bias")])
def test_scaled_biases_the_forget_gate_to_one(cell, bias_name):
    recurrent = _built(cell, "scaled").recurrent.cell
    forget = slice(64, 128)  # gates are stacked i, f, g, o
    assert torch.all(getattr(recurrent, bias_name)[forget] == 1.0)
    if cell == "lstm":
        assert torch.all(recurrent.bias_hh[forget] == 0.0)
    # The other gates keep their small uniform biases.
    assert getattr(recurrent, bias_name)[:64].abs().max() <= 64**-0.5


@pytest.mark.parametrize("cell", ["mlstm", "mgru"])
def test_scaled_keeps_the_multiplicative_input_factor(cell):
    """Unit-scale W_mx made mLSTM and mGRU learn far more slowly; the scheme leaves it alone."""
    torch.manual_seed(0)
    plain = CopyModel(cell, embedding_size=16, hidden_size=64).recurrent.cell.weight_mx
    torch.testing.assert_close(_built(cell, "scaled").recurrent.cell.weight_mx, plain, rtol=0, atol=0)


def test_scaled_is_deterministic_per_seed():
    first, again, other = _built("mgru", "scaled", 5), _built("mgru", "scaled", 5), _built("mgru", "scaled", 6)
    for name, tensor in first.state_dict().items():
        torch.testing.assert_close(again.state_dict()[name], tensor, rtol=0, atol=0)
    assert not torch.equal(first.recurrent.cell.weight_mh, other.recurrent.cell.weight_mh)


def test_an_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="unknown initialisation"):
        initialise(CopyModel("lstm", hidden_size=8), "xavier")
    assert "init" in RunConfig(init="xavier").validate()


def test_the_flags_and_old_configs_carry_the_new_options():
    from seqcopy.cli.commands import build_parser
    from seqcopy.cli.flags import config_from_args

    args = build_parser().parse_args(["train", "--init", "scaled", "--curriculum-step", "4"])
    config = config_from_args(args)
    assert (config.init, config.curriculum_step) == ("scaled", 4)
    # A config stored before these options existed keeps the old behaviour.
    old = RunConfig.from_dict({key: value for key, value in RunConfig().to_dict().items()
                               if key not in ("init", "curriculum_step")})
    assert (old.init, old.curriculum_step) == ("uniform", 0)
    assert "curriculum_step" in RunConfig(curriculum_step=-1).validate()


def test_a_scaled_checkpoint_round_trips():
    from seqcopy.core.checkpoint import from_bytes, to_bytes

    config = SMALL.replace(cell="mlstm", init="scaled")
    model = _built("mlstm", "scaled")
    loaded, loaded_config = from_bytes(to_bytes(model, config))
    assert loaded_config == config
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)


def _input_form(cell: str, init: str, seed: int = 0) -> CopyModel:
    torch.manual_seed(seed)
    model = CopyModel(cell, embedding_size=16, hidden_size=64, mult_form="input")
    initialise(model, init)
    return model


@pytest.mark.parametrize("cell", ["mlstm", "mgru"])
def test_scaled_input_form_orthogonal_where_square(cell):
    """The plain cell's H×H blocks and the E×E W_m are orthogonal; U_m (E×H) and b_m are left as
    built."""
    scaled, uniform = _input_form(cell, "scaled").recurrent.cell, _input_form(cell, "uniform").recurrent.cell
    for block in scaled.weight_hh.split(64, dim=0):
        torch.testing.assert_close(block @ block.T, torch.eye(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(scaled.weight_im @ scaled.weight_im.T, torch.eye(16), atol=1e-5, rtol=0)
    assert not torch.allclose(uniform.weight_im @ uniform.weight_im.T, torch.eye(16), atol=0.1)
    for name in ("weight_hm", "bias_m", "weight_ih"):
        torch.testing.assert_close(getattr(scaled, name), getattr(uniform, name), rtol=0, atol=0)


def test_scaled_input_form_mlstm_biases_the_forget_gate():
    recurrent = _input_form("mlstm", "scaled").recurrent.cell
    forget = slice(64, 128)
    assert torch.all(recurrent.bias_ih[forget] == 1.0) and torch.all(recurrent.bias_hh[forget] == 0.0)
    assert recurrent.bias_ih[:64].abs().max() <= 64**-0.5
