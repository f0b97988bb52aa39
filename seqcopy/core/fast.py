"""Fast sequence paths for the multiplicative cells (mLSTM, mGRU), in both forms.

The reference cells in :mod:`seqcopy.core.cells` recompute every input projection at every step and
leave the backward to autograd, one graph node per small op. Here each cell and form is one
:class:`torch.autograd.Function`:

* forward: what reads only x_t (Krause: W_mx x_t and the gates' input parts; input form:
  W_m x_t + b_m) is one matrix product over the whole sequence, then a time loop does what
  depends on the previous state;
* backward: a time loop running backwards through the steps, which also sums every weight's
  gradient as it goes.

The time loops run in a small C++ extension (``csrc/cells.cpp``) for CPU float and double
tensors, built on first use and cached in torch's extensions directory (``TORCH_EXTENSIONS_DIR``
moves it). It splits the batch into one block of rows per thread, multiplies with oneDNN's
small-matrix kernel where torch carries it, and does each step's gate maths in one vectorised
pass; ``bench/RESULTS.md`` has the measurements behind each choice. A Python twin of the same
loops (:mod:`seqcopy.core.fast_twin`: same arguments, same results) serves other devices and
dtypes, and takes over with one warning where the extension cannot be built. The environment
variable ``SEQCOPY_FAST`` chooses: ``cpp`` (the default), ``python`` (the twin), ``off`` (no fast
path: the layer steps the reference cell, plain autograd through its ``step()``).
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import warnings
from pathlib import Path

import torch
from torch import Tensor

from seqcopy.core.fast_twin import PYTHON_KERNELS

BACKENDS = ("cpp", "python", "off")
_SOURCE = Path(__file__).parent / "csrc" / "cells.cpp"
# No trapping maths: a compare that may raise a floating-point flag is otherwise kept as a branch,
# and a loop with branches is not vectorised (torch builds itself with the same two flags).
FLAGS = ["-O3", "-fno-trapping-math", "-fno-math-errno"]
# at::parallel_for is a header template: built without OpenMP the extension gets its serial branch
# and runs the loops on one core at any thread count. A compiler without OpenMP builds that one.
OPENMP = ["-fopenmp"]
_lock = threading.Lock()
_compiled = None  # the built extension, False once a build failed


def backend() -> str:
    """The backend that ``SEQCOPY_FAST`` asks for."""
    name = os.environ.get("SEQCOPY_FAST", "cpp").strip().lower() or "cpp"
    if name not in BACKENDS:
        raise ValueError(f"SEQCOPY_FAST={name!r}: choose one of {', '.join(BACKENDS)}")
    return name


def compiled_kernels():
    """The C++ time loops, built on first call (torch's file baton guards concurrent builds), or
    None where no compiler is available or the build fails."""
    global _compiled
    with _lock:
        if _compiled is None:
            try:
                from torch.utils.cpp_extension import load

                # torch builds with ninja; pip installs it next to this interpreter, which is not
                # on PATH unless the virtualenv is activated.
                here = os.path.dirname(sys.executable)
                if here not in os.environ.get("PATH", "").split(os.pathsep):
                    os.environ["PATH"] = here + os.pathsep + os.environ.get("PATH", "")
                _compiled = _build(load)
            except Exception as error:  # noqa: BLE001 - any build failure means: fall back
                warnings.warn(f"seqcopy: C++ cell kernels unavailable, using Python: {error}", stacklevel=2)
                _compiled = False
        return _compiled or None


def _build(load):
    # One build folder per checkout: torch keys its cache by name, and two checkouts (two clones, a
    # venv's copy) sharing a name would rebuild the extension each time the other one loaded it.
    name = f"seqcopy_cells_{hashlib.sha1(str(_SOURCE.resolve()).encode()).hexdigest()[:8]}"
    try:
        return load(name, [str(_SOURCE)], extra_cflags=FLAGS + OPENMP, extra_ldflags=OPENMP)
    except Exception as error:  # noqa: BLE001 - retried without OpenMP; that failing too is reported
        warnings.warn(f"seqcopy: C++ cell kernels built without OpenMP, on one core: {error}", stacklevel=2)
        return load(f"{name}_serial", [str(_SOURCE)], extra_cflags=FLAGS)


def kernels(name: str | None = None):
    """The time-loop implementation for backend ``name`` (default: ``SEQCOPY_FAST``)."""
    name = name or backend()
    if name == "cpp":
        return compiled_kernels() or PYTHON_KERNELS
    if name == "python":
        return PYTHON_KERNELS
    raise ValueError(f"backend {name!r} has no kernels")


# --- The autograd Functions -----------------------------------------------------------------


def _project(x: Tensor, weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """(B, T, E) inputs → time-major rows (T·B, E) and their projection (T, B, ·), one product."""
    batch, steps, size = x.shape
    rows = x.transpose(0, 1).reshape(steps * batch, size).contiguous()
    return rows, torch.addmm(bias, rows, weight.T).view(steps, batch, -1)


def _time_major(grad: Tensor | None, like: Tensor) -> Tensor:
    """Incoming (B, T, H) output gradient as contiguous (T, B, H); zeros where there is none."""
    if grad is None:
        return like.new_zeros(like.shape[1], like.shape[0], like.shape[2])
    return grad.transpose(0, 1).contiguous()


def _state_grad(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad


def _t(weight: Tensor) -> Tensor:
    """Wᵀ, contiguous: the loops' forward products take their weights transposed."""
    return weight.t().contiguous()


def _batch_major(ctx, dx: Tensor) -> Tensor | None:
    """The input gradient (T, B, E) as (B, T, E), where x needs one."""
    return dx.transpose(0, 1) if ctx.needs_input_grad[2] else None


class MLSTMFunction(torch.autograd.Function):
    """mLSTM (Krause) over a (B, T, E) sequence: (x, h0, c0, parameters) → outputs (B, T, H), h_T, c_T."""

    @staticmethod
    def forward(ctx, kern, save, x, h0, c0, w_mx, w_mh, w_ih, w_mg, bias):
        hidden = w_mh.shape[0]
        w_x = torch.cat([w_mx, w_ih])
        rows, p = _project(x, w_x, torch.cat([bias.new_zeros(hidden), bias]))
        hs, c_n, cs, a, m, gates, tc = kern.mlstm_forward(p, h0, c0, _t(w_mh), _t(w_mg), save)
        if save:
            ctx.kern = kern
            ctx.save_for_backward(rows.view(p.shape[0], p.shape[1], -1), p, hs, cs, a, m, gates, tc, w_x, w_mh, w_mg)
        return hs[1:].transpose(0, 1), hs[-1].clone(), c_n.clone()

    @staticmethod
    def backward(ctx, grad_out, grad_hn, grad_cn):
        xs, p, hs, cs, a, m, gates, tc, w_x, w_mh, w_mg = ctx.saved_tensors
        hidden = w_mh.shape[0]
        dx, dh0, dc0, dw_x, dw_mh, dw_mg, db = ctx.kern.mlstm_backward(
            _time_major(grad_out, hs[1:].transpose(0, 1)), _state_grad(grad_hn, hs[0]),
            _state_grad(grad_cn, hs[0]), xs, p, hs, cs, a, m, gates, tc, w_mh, w_mg, w_x,
        )
        return (None, None, _batch_major(ctx, dx), dh0, dc0, dw_x[:hidden], dw_mh, dw_x[hidden:], dw_mg, db)


class MGRUFunction(torch.autograd.Function):
    """mGRU (Krause) over a (B, T, E) sequence: (x, h0, parameters) → outputs (B, T, H), h_T."""

    @staticmethod
    def forward(ctx, kern, save, x, h0, w_mx, w_mh, w_ih, b_ih, w_mg, b_mg):
        hidden = w_mh.shape[0]
        w_x = torch.cat([w_mx, w_ih])
        # Both biases add to the same pre-activations, so they join the input projection.
        rows, p = _project(x, w_x, torch.cat([b_ih.new_zeros(hidden), b_ih + b_mg]))
        hs, a, m, rz, s, n = kern.mgru_forward(p, h0, _t(w_mh), _t(w_mg), save)
        if save:
            ctx.kern = kern
            ctx.save_for_backward(rows.view(p.shape[0], p.shape[1], -1), p, hs, a, m, rz, s, n, w_x, w_mh, w_mg)
        return hs[1:].transpose(0, 1), hs[-1].clone()

    @staticmethod
    def backward(ctx, grad_out, grad_hn):
        xs, p, hs, a, m, rz, s, n, w_x, w_mh, w_mg = ctx.saved_tensors
        hidden = w_mh.shape[0]
        dx, dh0, dw_x, dw_mh, dw_mg, db = ctx.kern.mgru_backward(
            _time_major(grad_out, hs[1:].transpose(0, 1)), _state_grad(grad_hn, hs[0]),
            xs, p, hs, a, m, rz, s, n, w_mh, w_mg, w_x,
        )
        return (None, None, _batch_major(ctx, dx), dh0, dw_x[:hidden], dw_mh, dw_x[hidden:], db, dw_mg, db)


class MLSTMInputFunction(torch.autograd.Function):
    """mLSTM (input form) over (B, T, E): (x, h0, c0, parameters) → outputs (B, T, H), h_T, c_T."""

    @staticmethod
    def forward(ctx, kern, save, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_im, w_hm, b_m):
        rows, pm = _project(x, w_im, b_m)
        xs = rows.view(pm.shape)
        w_hq = torch.cat([w_hh, w_hm])  # both read h_{t-1}: one product per step
        hs, c_n, cs, m, xt, gates, tc = kern.mlstm_input_forward(xs, pm, h0, c0, _t(w_hq), _t(w_ih), b_ih + b_hh, save)
        if save:
            ctx.kern = kern
            ctx.save_for_backward(xs, hs, cs, m, xt, gates, tc, w_hq, w_ih, w_im)
        return hs[1:].transpose(0, 1), hs[-1].clone(), c_n.clone()

    @staticmethod
    def backward(ctx, grad_out, grad_hn, grad_cn):
        xs, hs, cs, m, xt, gates, tc, w_hq, w_ih, w_im = ctx.saved_tensors
        dx, dh0, dc0, dw_ih, dw_hh, db, dw_im, dw_hm, db_m = ctx.kern.mlstm_input_backward(
            _time_major(grad_out, hs[1:].transpose(0, 1)), _state_grad(grad_hn, hs[0]),
            _state_grad(grad_cn, hs[0]), xs, hs, cs, m, xt, gates, tc, w_hq, w_ih, w_im,
        )
        return (None, None, _batch_major(ctx, dx), dh0, dc0, dw_ih, dw_hh, db, db, dw_im, dw_hm, db_m)


class MGRUInputFunction(torch.autograd.Function):
    """mGRU (input form) over (B, T, E): (x, h0, parameters) → outputs (B, T, H), h_T."""

    @staticmethod
    def forward(ctx, kern, save, x, h0, w_ih, w_hh, b_ih, b_hh, w_im, w_hm, b_m):
        rows, pm = _project(x, w_im, b_m)
        xs = rows.view(pm.shape)
        w_hq = torch.cat([w_hh, w_hm])
        hs, m, xt, rzn, hn = kern.mgru_input_forward(xs, pm, h0, _t(w_hq), _t(w_ih), b_ih, b_hh, save)
        if save:
            ctx.kern = kern
            ctx.save_for_backward(xs, hs, m, xt, rzn, hn, w_hq, w_ih, w_im)
        return hs[1:].transpose(0, 1), hs[-1].clone()

    @staticmethod
    def backward(ctx, grad_out, grad_hn):
        xs, hs, m, xt, rzn, hn, w_hq, w_ih, w_im = ctx.saved_tensors
        dx, dh0, *grads = ctx.kern.mgru_input_backward(
            _time_major(grad_out, hs[1:].transpose(0, 1)), _state_grad(grad_hn, hs[0]),
            xs, hs, m, xt, rzn, hn, w_hq, w_ih, w_im,
        )
        return (None, None, _batch_major(ctx, dx), dh0, *grads)


def _needs_graph(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _kernels_for(name: str, x: Tensor):
    """The compiled loops take CPU float and double tensors; the Python twin takes anything."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return kernels(name)
    return PYTHON_KERNELS


def mlstm_sequence(x: Tensor, state: tuple[Tensor, Tensor], cell) -> tuple[Tensor, tuple[Tensor, Tensor]] | None:
    """Run an :class:`~seqcopy.core.cells.MLSTMCell` over (B, T, E) inputs; same result as its steps.
    None with ``SEQCOPY_FAST=off``: the layer then steps the reference cell."""
    name = backend()
    if name == "off":
        return None  # the layer steps the reference cell
    h, c = state
    params = (cell.weight_mx, cell.weight_mh, cell.weight_ih, cell.weight_mg, cell.bias)
    save = _needs_graph(x, h, c, *params)
    out, h, c = MLSTMFunction.apply(_kernels_for(name, x), save, x, h, c, *params)
    return out, (h, c)


def mgru_sequence(x: Tensor, h: Tensor, cell) -> tuple[Tensor, Tensor] | None:
    """Run an :class:`~seqcopy.core.cells.MGRUCell` over (B, T, E) inputs; same result as its steps.
    None with ``SEQCOPY_FAST=off``."""
    name = backend()
    if name == "off":
        return None  # the layer steps the reference cell
    params = (cell.weight_mx, cell.weight_mh, cell.weight_ih, cell.bias_ih, cell.weight_mg, cell.bias_mg)
    save = _needs_graph(x, h, *params)
    return MGRUFunction.apply(_kernels_for(name, x), save, x, h, *params)


def _input_form_parameters(cell) -> tuple[Tensor, ...]:
    return (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh, cell.weight_im, cell.weight_hm, cell.bias_m)


def mlstm_input_sequence(x: Tensor, state: tuple[Tensor, Tensor], cell):
    """Run an :class:`~seqcopy.core.cells.MLSTMInputCell` over (B, T, E) inputs; None with
    ``SEQCOPY_FAST=off`` (the layer then steps the reference cell: nothing here can be hoisted
    out of its loop but W_m x_t)."""
    name = backend()
    if name == "off":
        return None
    h, c = state
    params = _input_form_parameters(cell)
    out, h, c = MLSTMInputFunction.apply(_kernels_for(name, x), _needs_graph(x, h, c, *params), x, h, c, *params)
    return out, (h, c)


def mgru_input_sequence(x: Tensor, h: Tensor, cell):
    """Run an :class:`~seqcopy.core.cells.MGRUInputCell` over (B, T, E) inputs; None with
    ``SEQCOPY_FAST=off``."""
    name = backend()
    if name == "off":
        return None
    params = _input_form_parameters(cell)
    return MGRUInputFunction.apply(_kernels_for(name, x), _needs_graph(x, h, *params), x, h, *params)
