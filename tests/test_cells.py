"""The cells: state shapes, reference = fused, the plain cells = torch's own modules, and the input
form's reference cells = a hand computation of their equations."""

import math

import pytest
import torch
from torch import nn

from seqcopy.core.cells import (
    CELL_NAMES,
    MULT_FORMS,
    GRUCell,
    LSTMCell,
    MGRUCell,
    MGRUInputCell,
    MLSTMCell,
    MLSTMInputCell,
    RecurrentLayer,
    RNNCell,
    make_cell,
)

TORCH_TWIN = {"rnn": (RNNCell, nn.RNN), "lstm": (LSTMCell, nn.LSTM), "gru": (GRUCell, nn.GRU)}


@pytest.mark.parametrize("form", MULT_FORMS)
@pytest.mark.parametrize("name", CELL_NAMES)
def test_state_shapes(name, form):
    layer = RecurrentLayer(make_cell(name, 5, 7, form))
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
    with pytest.raises(ValueError, match="unknown multiplicative form"):
        make_cell("mlstm", 3, 3, "outer")


def test_the_form_picks_the_multiplicative_cells_only():
    expected = {("mlstm", "krause"): MLSTMCell, ("mlstm", "input"): MLSTMInputCell,
                ("mgru", "krause"): MGRUCell, ("mgru", "input"): MGRUInputCell,
                ("lstm", "input"): LSTMCell, ("gru", "input"): GRUCell, ("rnn", "input"): RNNCell}
    for (name, form), cell_class in expected.items():
        assert type(make_cell(name, 3, 4, form)) is cell_class
    assert type(make_cell("mlstm", 3, 4)) is MLSTMCell  # Krause's form is the default


def test_krause_cells_keep_their_parameter_names_and_shapes():
    """Checkpoints saved before the input form existed load into the same parameters."""
    shapes = {name: tuple(p.shape) for name, p in make_cell("mlstm", 3, 4).named_parameters()}
    assert shapes == {"weight_mx": (4, 3), "weight_mh": (4, 4), "weight_ih": (16, 3), "weight_mg": (16, 4),
                      "bias": (16,)}
    shapes = {name: tuple(p.shape) for name, p in make_cell("mgru", 3, 4).named_parameters()}
    assert shapes == {"weight_mx": (4, 3), "weight_mh": (4, 4), "weight_ih": (12, 3), "bias_ih": (12,),
                      "weight_mg": (12, 4), "bias_mg": (12,)}


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
    for mine, theirs in [("weight_ih", "weight_ih_l0"), ("weight_hh", "weight_hh_l0"), ("bias_ih", "bias_ih_l0"),
                         ("bias_hh", "bias_hh_l0")]:
        torch.testing.assert_close(getattr(cell, mine).grad, getattr(module, theirs).grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("form", MULT_FORMS)
@pytest.mark.parametrize("name", CELL_NAMES)
def test_fused_path_equals_reference_steps(name, form):
    torch.manual_seed(2)
    cell = make_cell(name, 4, 6, form)
    x = torch.randn(2, 9, 4, requires_grad=True)
    ref_out, ref_state = RecurrentLayer(cell, fused=False)(x)
    grads_ref = torch.autograd.grad(ref_out.pow(2).sum(), [x, *cell.parameters()])
    out, state = RecurrentLayer(cell, fused=True)(x)
    grads = torch.autograd.grad(out.pow(2).sum(), [x, *cell.parameters()])
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_every_cell_documents_its_equations():
    for name in CELL_NAMES:
        for form in MULT_FORMS:
            doc = type(make_cell(name, 2, 2, form)).__doc__
            assert "h_t" in doc and "=" in doc
    for cell_class in (MLSTMInputCell, MGRUInputCell):
        assert "x̃_t = m_t ⊙ x_t" in cell_class.__doc__


# --- The input form against its equations, computed by hand on tiny weights -------------------


def _fill(cell):
    """Give every parameter small distinct values; return them as nested lists."""
    values = {}
    with torch.no_grad():
        for index, (name, parameter) in enumerate(cell.named_parameters()):
            flat = [((7 * k + 3 * index) % 11 - 5) / 10 for k in range(parameter.numel())]
            parameter.copy_(torch.tensor(flat).view(parameter.shape))
            values[name] = parameter.tolist()
    return values


def _affine(weight, vector, bias=None):
    """weight · vector (+ bias), one scalar at a time."""
    return [sum(w * v for w, v in zip(row, vector, strict=True)) + (bias[k] if bias else 0.0)
            for k, row in enumerate(weight)]


def _sigmoid(v):
    return 1 / (1 + math.exp(-v))


def _scaled_input(p, x, h):
    """m = W_m x + U_m h + b_m, x̃ = m ⊙ x."""
    m = [a + b for a, b in zip(_affine(p["weight_im"], x, p["bias_m"]), _affine(p["weight_hm"], h), strict=True)]
    return [mk * xk for mk, xk in zip(m, x, strict=True)]


def _by_hand_mlstm_input(p, x, h, c, hidden):
    xt = _scaled_input(p, x, h)
    z = [a + b for a, b in zip(_affine(p["weight_ih"], xt, p["bias_ih"]), _affine(p["weight_hh"], h, p["bias_hh"]),
                               strict=True)]
    i = [_sigmoid(v) for v in z[:hidden]]
    f = [_sigmoid(v) for v in z[hidden : 2 * hidden]]
    g = [math.tanh(v) for v in z[2 * hidden : 3 * hidden]]
    o = [_sigmoid(v) for v in z[3 * hidden :]]
    c_new = [f[k] * c[k] + i[k] * g[k] for k in range(hidden)]
    return [o[k] * math.tanh(c_new[k]) for k in range(hidden)], c_new


def _by_hand_mgru_input(p, x, h, hidden):
    xt = _scaled_input(p, x, h)
    gi, gh = _affine(p["weight_ih"], xt, p["bias_ih"]), _affine(p["weight_hh"], h, p["bias_hh"])
    r = [_sigmoid(gi[k] + gh[k]) for k in range(hidden)]
    z = [_sigmoid(gi[hidden + k] + gh[hidden + k]) for k in range(hidden)]
    n = [math.tanh(gi[2 * hidden + k] + r[k] * gh[2 * hidden + k]) for k in range(hidden)]
    return [(1 - z[k]) * n[k] + z[k] * h[k] for k in range(hidden)]


def test_mlstm_input_form_step_equals_its_equations_by_hand():
    cell = MLSTMInputCell(2, 3).double()
    p = _fill(cell)
    x, h, c = [0.7, -1.2], [0.3, -0.5, 0.9], [-0.4, 0.8, 0.1]
    h_new, c_new = cell(torch.tensor([x], dtype=torch.double),
                        (torch.tensor([h], dtype=torch.double), torch.tensor([c], dtype=torch.double)))
    expected_h, expected_c = _by_hand_mlstm_input(p, x, h, c, 3)
    torch.testing.assert_close(h_new[0], torch.tensor(expected_h, dtype=torch.double), atol=1e-12, rtol=0)
    torch.testing.assert_close(c_new[0], torch.tensor(expected_c, dtype=torch.double), atol=1e-12, rtol=0)
    # Without the factor (x̃ = x) the step would differ: the hand computation is not vacuous.
    plain, _ = LSTMCell.step(cell, torch.tensor([x], dtype=torch.double),
                             (torch.tensor([h], dtype=torch.double), torch.tensor([c], dtype=torch.double)))[0]
    assert (plain[0] - h_new[0]).abs().max() > 1e-3


def test_mgru_input_form_step_equals_its_equations_by_hand():
    cell = MGRUInputCell(2, 3).double()
    p = _fill(cell)
    x, h = [0.7, -1.2], [0.3, -0.5, 0.9]
    h_new = cell(torch.tensor([x], dtype=torch.double), torch.tensor([h], dtype=torch.double))
    expected = _by_hand_mgru_input(p, x, h, 3)
    torch.testing.assert_close(h_new[0], torch.tensor(expected, dtype=torch.double), atol=1e-12, rtol=0)
    plain = GRUCell.step(cell, torch.tensor([x], dtype=torch.double), torch.tensor([h], dtype=torch.double))[0]
    assert (plain[0] - h_new[0]).abs().max() > 1e-3
