"""The fast mLSTM/mGRU paths (C++ loops and their Python twin), in both forms, equal the
reference cells in outputs and every gradient."""

import pytest
import torch

from seqcopy.core import fast
from seqcopy.core.cells import MGRUCell, MGRUInputCell, MLSTMCell, MLSTMInputCell, RecurrentLayer

CELLS = {("mlstm", "krause"): MLSTMCell, ("mgru", "krause"): MGRUCell,
         ("mlstm", "input"): MLSTMInputCell, ("mgru", "input"): MGRUInputCell}
FUNCTIONS = {MLSTMCell: fast.MLSTMFunction, MGRUCell: fast.MGRUFunction,
             MLSTMInputCell: fast.MLSTMInputFunction, MGRUInputCell: fast.MGRUInputFunction}
# (batch, length, input, hidden): B=1 and T=1 included; input > hidden too
SIZES = [(1, 1, 3, 4), (3, 1, 5, 6), (1, 6, 4, 5), (4, 7, 6, 9), (2, 3, 7, 3)]


def _as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def _run(cell, x, state, fused, seed=0):
    """Outputs, final state and gradients of a random linear loss w.r.t. x, state and parameters."""
    out, final = RecurrentLayer(cell, fused)(x, state)
    results = (out, *_as_tuple(final))
    generator = torch.Generator().manual_seed(seed)
    weights = [torch.randn(t.shape, generator=generator, dtype=t.dtype) for t in results]
    loss = sum((w * t).sum() for w, t in zip(weights, results, strict=True))
    inputs = [x, *(_as_tuple(state) if state is not None else ()), *cell.parameters()]
    return list(results), list(torch.autograd.grad(loss, inputs))


def _inputs(cell_class, batch, length, inputs, hidden, with_state=True, dtype=torch.float32):
    cell = cell_class(inputs, hidden).to(dtype)
    x = torch.randn(batch, length, inputs, dtype=dtype, requires_grad=True)
    if not with_state:
        return cell, x, None
    parts = [torch.randn(batch, hidden, dtype=dtype, requires_grad=True) for _ in range(1 + cell.has_cell_state)]
    return cell, x, tuple(parts) if cell.has_cell_state else parts[0]


@pytest.mark.parametrize("backend", ["cpp", "python", "off"])
@pytest.mark.parametrize("cell_class", CELLS.values())
@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("with_state", [True, False])
def test_fast_equals_reference(monkeypatch, backend, cell_class, sizes, with_state):
    monkeypatch.setenv("SEQCOPY_FAST", backend)
    torch.manual_seed(sum(sizes))
    cell, x, state = _inputs(cell_class, *sizes, with_state)
    expected, expected_grads = _run(cell, x, state, fused=False)
    got, grads = _run(cell, x, state, fused=True)
    assert len(grads) == len(expected_grads) == (
        1 + len(_as_tuple(state) if state is not None else ()) + len(list(cell.parameters())))
    for a, b in zip(expected + expected_grads, got + grads, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell_class", CELLS.values())
def test_threads_split_the_batch_and_agree(cell_class):
    """With 2 threads the C++ loops give each thread a block of rows (9 rows: blocks of 5 and 4);
    the result equals the reference, and the one-thread run, to float precision."""
    torch.manual_seed(3)
    cell, x, state = _inputs(cell_class, 9, 5, 4, 6)
    expected, expected_grads = _run(cell, x, state, fused=False)
    before = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(_run(cell, x, state, fused=True))
    finally:
        torch.set_num_threads(before)
    for got, grads in runs:
        for a, b in zip(expected + expected_grads, got + grads, strict=True):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    for a, b in zip(runs[0][0] + runs[0][1], runs[1][0] + runs[1][1], strict=True):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-6)


def _function_inputs(cell_class, batch=2, length=3, inputs=3, hidden=4):
    torch.manual_seed(1)
    cell, x, state = _inputs(cell_class, batch, length, inputs, hidden, dtype=torch.double)
    return (x, *_as_tuple(state), *cell.parameters())


@pytest.mark.parametrize("backend", ["cpp", "python"])
@pytest.mark.parametrize("cell_class", CELLS.values())
def test_gradcheck(backend, cell_class):
    function, kern = FUNCTIONS[cell_class], fast.kernels(backend)
    assert torch.autograd.gradcheck(lambda *args: function.apply(kern, True, *args), _function_inputs(cell_class))


@pytest.mark.parametrize("backend", ["cpp", "python"])
@pytest.mark.parametrize("cell_class", CELLS.values())
def test_inference_equals_training_forward(monkeypatch, backend, cell_class):
    monkeypatch.setenv("SEQCOPY_FAST", backend)
    torch.manual_seed(2)
    layer = RecurrentLayer(cell_class(5, 7))
    x = torch.randn(3, 6, 5)
    out, state = layer(x)
    with torch.no_grad():
        out_ng, state_ng = layer(x)
    with torch.inference_mode():
        out_im, state_im = layer(x)
    assert out.requires_grad and not out_ng.requires_grad
    expected = [t.detach() for t in (out, *_as_tuple(state))]
    for got in ((out_ng, *_as_tuple(state_ng)), (out_im, *_as_tuple(state_im))):
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_compiled_kernels_build():
    """The C++ extension builds here (the silent fallback would otherwise hide a broken build)."""
    assert fast.compiled_kernels() is not None


def test_other_dtypes_take_the_python_twin():
    """The compiled loops take CPU float and double; anything else runs the twin, to the same result."""
    kern = fast.kernels("cpp")
    assert fast._kernels_for("cpp", torch.zeros(1, 1, 1)) is kern
    assert fast._kernels_for("cpp", torch.zeros(1, 1, 1, dtype=torch.float64)) is kern
    assert fast._kernels_for("cpp", torch.zeros(1, 1, 1, dtype=torch.bfloat16)) is fast.PYTHON_KERNELS
    torch.manual_seed(4)
    cell = MLSTMInputCell(3, 4)
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        expected, _ = RecurrentLayer(cell, fused=False)(x)
        got, _ = RecurrentLayer(cell.to(torch.bfloat16))(x.to(torch.bfloat16))
    torch.testing.assert_close(got.float(), expected, atol=0.05, rtol=0.05)


def test_unknown_backend_is_rejected(monkeypatch):
    monkeypatch.setenv("SEQCOPY_FAST", "fortran")
    with pytest.raises(ValueError, match="SEQCOPY_FAST"):
        fast.backend()


@pytest.mark.parametrize("products", ["brgemm", "blas", "aten"])
@pytest.mark.parametrize("cell_class", CELLS.values())
def test_every_products_library_gives_the_reference(monkeypatch, products, cell_class):
    """oneDNN's brgemm, MKL's sgemm and at::mm each serve where the one before them cannot."""
    monkeypatch.setenv("SEQCOPY_FAST", "cpp")
    kern = fast.compiled_kernels()
    try:
        kern.use_products(products)
    except RuntimeError as error:
        pytest.skip(str(error))
    try:
        torch.manual_seed(5)
        cell, x, state = _inputs(cell_class, 9, 4, 5, 6)
        expected, expected_grads = _run(cell, x, state, fused=False)
        before = torch.get_num_threads()
        torch.set_num_threads(2)
        try:
            got, grads = _run(cell, x, state, fused=True)
        finally:
            torch.set_num_threads(before)
    finally:
        kern.use_products("auto")
    for a, b in zip(expected + expected_grads, got + grads, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError, match="products"):
        kern.use_products("cublas")
