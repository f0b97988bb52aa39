"""The fast mLSTM/mGRU paths (C++ loops and their Python twin) equal the reference cells."""

import pytest
import torch

from seqcopy import fast
from seqcopy.cells import MGRUCell, MLSTMCell, RecurrentLayer

CELLS = {"mlstm": MLSTMCell, "mgru": MGRUCell}
# (batch, length, input, hidden): B=1 and T=1 included
SIZES = [(1, 1, 3, 4), (3, 1, 5, 6), (1, 6, 4, 5), (4, 7, 6, 9)]


def _as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def _run(cell, x, state, fused, seed=0):
    """Outputs, final state and gradients of a random linear loss w.r.t. x, state and parameters."""
    out, final = RecurrentLayer(cell, fused)(x, state)
    results = (out, *_as_tuple(final))
    generator = torch.Generator().manual_seed(seed)
    weights = [torch.randn(t.shape, generator=generator, dtype=t.dtype) for t in results]
    loss = sum((w * t).sum() for w, t in zip(weights, results))
    inputs = [x, *(_as_tuple(state) if state is not None else ()), *cell.parameters()]
    return list(results), list(torch.autograd.grad(loss, inputs))


@pytest.mark.parametrize("backend", ["cpp", "python", "off"])
@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("with_state", [True, False])
def test_fast_equals_reference(monkeypatch, backend, name, sizes, with_state):
    monkeypatch.setenv("SEQCOPY_FAST", backend)
    batch, length, inputs, hidden = sizes
    torch.manual_seed(sum(sizes))
    cell = CELLS[name](inputs, hidden)
    x = torch.randn(batch, length, inputs, requires_grad=True)
    state = None
    if with_state:
        parts = [torch.randn(batch, hidden, requires_grad=True) for _ in range(1 + cell.has_cell_state)]
        state = tuple(parts) if cell.has_cell_state else parts[0]
    expected, expected_grads = _run(cell, x, state, fused=False)
    got, grads = _run(cell, x, state, fused=True)
    for a, b in zip(expected + expected_grads, got + grads):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


def _function_inputs(name, batch=2, length=3, inputs=3, hidden=4):
    torch.manual_seed(1)
    cell = CELLS[name](inputs, hidden).double()
    x = torch.randn(batch, length, inputs, dtype=torch.double, requires_grad=True)
    state = [torch.randn(batch, hidden, dtype=torch.double, requires_grad=True)
             for _ in range(1 + cell.has_cell_state)]  # fmt: skip
    return (x, *state, *cell.parameters())


@pytest.mark.parametrize("backend", ["cpp", "python"])
@pytest.mark.parametrize("name", CELLS)
def test_gradcheck(backend, name):
    function = fast.MLSTMFunction if name == "mlstm" else fast.MGRUFunction
    kern = fast.kernels(backend)
    assert torch.autograd.gradcheck(lambda *args: function.apply(kern, True, *args), _function_inputs(name))


@pytest.mark.parametrize("backend", ["cpp", "python"])
@pytest.mark.parametrize("name", CELLS)
def test_inference_equals_training_forward(monkeypatch, backend, name):
    monkeypatch.setenv("SEQCOPY_FAST", backend)
    torch.manual_seed(2)
    layer = RecurrentLayer(CELLS[name](5, 7))
    x = torch.randn(3, 6, 5)
    out, state = layer(x)
    with torch.no_grad():
        out_ng, state_ng = layer(x)
    with torch.inference_mode():
        out_im, state_im = layer(x)
    assert out.requires_grad and not out_ng.requires_grad
    expected = [t.detach() for t in (out, *_as_tuple(state))]
    for got in ((out_ng, *_as_tuple(state_ng)), (out_im, *_as_tuple(state_im))):
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_compiled_kernels_build():
    """The C++ extension builds here (the silent fallback would otherwise hide a broken build)."""
    assert fast.compiled_kernels() is not None


def test_unknown_backend_is_rejected(monkeypatch):
    monkeypatch.setenv("SEQCOPY_FAST", "fortran")
    with pytest.raises(ValueError, match="SEQCOPY_FAST"):
        fast.backend()
