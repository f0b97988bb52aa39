"""The cells: state shapes, reference = fused, and the plain cells = torch's own modules."""

import pytest
import torch
from torch import nn

from seqcopy.cells import CELL_NAMES, GRUCell, LSTMCell, RecurrentLayer, RNNCell, make_cell

TORCH_TWIN = {"rnn": (RNNCell, nn.RNN), "lstm": (LSTMCell, nn.LSTM), "gru": (GRUCell, nn.GRU)}


@pytest.mark.parametrize("name", CELL_NAMES)
def test_state_shapes(name):
    layer = RecurrentLayer(make_cell(name, 5, 7))
    out, state = layer(torch.randn(3, 4, 5))
    assert out.shape == (3, 4, 7)
    if name in ("lstm", "mlstm"):
        h, c = state
        assert h.shape == c.shape == (3, 7)
    else:
        assert isinstance(state, torch.Tensor) and state.shape == (3, 7)
    # the emitted output at the last step is the hidden state
    h = state[0] if isinstance(state, tuple) else state
    torch.testing.assert_close(out[:, -1], h)


def test_unknown_cell():
    with pytest.raises(ValueError, match="unknown cell"):
        make_cell("transformer", 3, 3)


def _copy_into_torch(cell, module):
    with torch.no_grad():
        module.weight_ih_l0.copy_(cell.weight_ih)
        module.weight_hh_l0.copy_(cell.weight_hh)
        module.bias_ih_l0.copy_(cell.bias_ih)
        module.bias_hh_l0.copy_(cell.bias_hh)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("fused", [False, True])
def test_plain_cells_equal_torch_modules(name, fused):
    """Outputs, final state and every gradient agree with torch.nn.RNN/LSTM/GRU to 1e-5."""
    torch.manual_seed(1)
    cell_class, torch_class = TORCH_TWIN[name]
    cell = cell_class(6, 9)
    module = torch_class(6, 9, batch_first=True)
    _copy_into_torch(cell, module)
    x = torch.randn(4, 13, 6, requires_grad=True)
    x_twin = x.detach().clone().requires_grad_(True)
    h0 = torch.randn(4, 9)
    c0 = torch.randn(4, 9)
    state = (h0, c0) if name == "lstm" else h0
    twin_state = (h0.unsqueeze(0), c0.unsqueeze(0)) if name == "lstm" else h0.unsqueeze(0)

    out, final = RecurrentLayer(cell, fused=fused)(x, state)
    twin_out, twin_final = module(x_twin, twin_state)
    torch.testing.assert_close(out, twin_out, atol=1e-5, rtol=1e-5)
    if name == "lstm":
        torch.testing.assert_close(final[0], twin_final[0][0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(final[1], twin_final[1][0], atol=1e-5, rtol=1e-5)
    else:
        torch.testing.assert_close(final, twin_final[0], atol=1e-5, rtol=1e-5)

    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (twin_out * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_twin.grad, atol=1e-5, rtol=1e-5)
    for mine, theirs in [("weight_ih", "weight_ih_l0"), ("weight_hh", "weight_hh_l0"), ("bias_ih", "bias_ih_l0"), ("bias_hh", "bias_hh_l0")]:
        torch.testing.assert_close(getattr(cell, mine).grad, getattr(module, theirs).grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_fused_path_equals_reference_steps(name):
    torch.manual_seed(2)
    cell = make_cell(name, 4, 6)
    x = torch.randn(2, 9, 4, requires_grad=True)
    ref_out, ref_state = RecurrentLayer(cell, fused=False)(x)
    grads_ref = torch.autograd.grad(ref_out.pow(2).sum(), [x, *cell.parameters()])
    out, state = RecurrentLayer(cell, fused=True)(x)
    grads = torch.autograd.grad(out.pow(2).sum(), [x, *cell.parameters()])
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_every_cell_documents_its_equations():
    for name in CELL_NAMES:
        doc = type(make_cell(name, 2, 2)).__doc__
        assert "h_t" in doc and "=" in doc
