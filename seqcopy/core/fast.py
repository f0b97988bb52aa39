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
loops (same arguments, same results) serves other devices and dtypes, and takes over with one
warning where the extension cannot be built. The environment variable ``SEQCOPY_FAST`` chooses:
``cpp`` (the default), ``python`` (the twin), ``off`` (plain autograd through the steps).
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import Tensor

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
                warnings.warn(f"seqcopy: C++ cell kernels unavailable, using Python: {error}")
                _compiled = False
        return _compiled or None


def _build(load):
    try:
        return load("seqcopy_cells", [str(_SOURCE)], extra_cflags=FLAGS + OPENMP, extra_ldflags=OPENMP)
    except Exception as error:  # noqa: BLE001 - retried without OpenMP; that failing too is reported
        warnings.warn(f"seqcopy: C++ cell kernels built without OpenMP, on one core: {error}")
        return load("seqcopy_cells_serial", [str(_SOURCE)], extra_cflags=FLAGS)


def kernels(name: str | None = None):
    """The time-loop implementation for backend ``name`` (default: ``SEQCOPY_FAST``)."""
    name = name or backend()
    if name == "cpp":
        return compiled_kernels() or PYTHON_KERNELS
    if name == "python":
        return PYTHON_KERNELS
    raise ValueError(f"backend {name!r} has no kernels")


# --- Python twin of csrc/cells.cpp (same arguments, same results) ------------------------------


def _lstm_step(g_t: Tensor, c_prev: Tensor, c: Tensor, tc: Tensor, h: Tensor) -> None:
    """Activates the pre-activations g_t = [i f g o] in place; c = f c' + i g, tc = tanh(c), h = o tc."""
    i, f, g, o = g_t.chunk(4, dim=1)
    g_t[:, : i.shape[1] * 2].sigmoid_()
    g.tanh_()
    o.sigmoid_()
    torch.mul(f, c_prev, out=c).addcmul_(i, g)
    torch.tanh(c, out=tc)
    torch.mul(o, tc, out=h)


def _lstm_step_backward(gates: Tensor, tc: Tensor, c_prev: Tensor, dh: Tensor, dc: Tensor, dz: Tensor):
    """Adds to dc, writes dz = [dz_i dz_f dz_g dz_o], leaves dc' = dc f in dc (dh already summed)."""
    i, f, g, o = gates.chunk(4, dim=1)
    dz_i, dz_f, dz_g, dz_o = dz.chunk(4, dim=1)
    # h = o tanh(c): dc += dh o (1 - tanh²c), dz_o = dh tanh(c) σ'(o)
    dc.add_(dh * o * (1 - tc * tc))
    torch.mul(dh * tc, o * (1 - o), out=dz_o)
    # c = f c' + i g: dz_i = dc g σ'(i), dz_f = dc c' σ'(f), dz_g = dc i (1 - g²)
    torch.mul(dc * g, i * (1 - i), out=dz_i)
    torch.mul(dc * c_prev, f * (1 - f), out=dz_f)
    torch.mul(dc * i, 1 - g * g, out=dz_g)
    dc.mul_(f)


def _gru_output_backward(dh: Tensor, n: Tensor, z: Tensor, h_prev: Tensor, dz_z: Tensor, dz_n: Tensor):
    """From h = (1 - z) n + z h': dz_n = dh (1 - z)(1 - n²), dz_z = dh (h' - n) σ'(z)."""
    torch.mul(dh * (1 - z), 1 - n * n, out=dz_n)
    torch.mul(dh * (h_prev - n), z * (1 - z), out=dz_z)


def _mlstm_forward(p: Tensor, h0: Tensor, c0: Tensor, w_mh_t: Tensor, w_mg_t: Tensor, save: bool):
    steps, batch, hidden = p.shape[0], p.shape[1], h0.shape[1]
    kept = steps if save else 1
    hs = p.new_empty(steps + 1, batch, hidden)
    cs = p.new_empty(steps + 1 if save else 2, batch, hidden)
    a, m, tc = (p.new_empty(kept, batch, hidden) for _ in range(3))
    gates = p.new_empty(kept, batch, 4 * hidden)
    hs[0] = h0
    cs[0] = c0
    for t in range(steps):
        k = t if save else 0
        torch.mm(hs[t], w_mh_t, out=a[k])
        torch.mul(p[t, :, :hidden], a[k], out=m[k])
        torch.addmm(p[t, :, hidden:], m[k], w_mg_t, out=gates[k])
        _lstm_step(gates[k], cs[t if save else t & 1], cs[t + 1 if save else (t + 1) & 1], tc[k], hs[t + 1])
    return hs, cs[steps if save else steps & 1], cs, a, m, gates, tc


def _mlstm_backward(grad_out, grad_hn, grad_cn, x, p, hs, cs, a, m, gates, tc, w_mh, w_mg, w_x):
    steps, hidden = p.shape[0], hs.shape[2]
    dp, da = torch.empty_like(p), torch.empty_like(a)
    dh, dc = grad_hn.clone(), grad_cn.clone()
    for t in range(steps - 1, -1, -1):
        dh.add_(grad_out[t])
        _lstm_step_backward(gates[t], tc[t], cs[t], dh, dc, dp[t, :, hidden:])
        # z = ... + W_m m: dm = dz W_m;  m = x_m ⊙ a: dx_m = dm a, da = dm x_m
        dm = dp[t, :, hidden:] @ w_mg
        torch.mul(dm, a[t], out=dp[t, :, :hidden])
        torch.mul(dm, p[t, :, :hidden], out=da[t])
        dh = da[t] @ w_mh
    dz = _rows(dp)[:, hidden:]
    # dx = dp W_x; each weight's gradient is one product over all steps: Σ dz mᵀ, Σ da h'ᵀ, Σ dp xᵀ
    return (dp @ w_x, dh, dc, _rows(dp).T @ _rows(x), _rows(da).T @ _rows(hs[:-1]), dz.T @ _rows(m), dz.sum(0))


def _mgru_forward(p: Tensor, h0: Tensor, w_mh_t: Tensor, w_mg_t: Tensor, save: bool):
    steps, batch, hidden = p.shape[0], p.shape[1], h0.shape[1]
    kept = steps if save else 1
    hs = p.new_empty(steps + 1, batch, hidden)
    a, m, s, n = (p.new_empty(kept, batch, hidden) for _ in range(4))
    rz = p.new_empty(kept, batch, 2 * hidden)
    hs[0] = h0
    w_rz_t, w_n_t = w_mg_t[:, : 2 * hidden], w_mg_t[:, 2 * hidden :]
    for t in range(steps):
        k = t if save else 0
        p_t, h_prev = p[t], hs[t]
        torch.mm(h_prev, w_mh_t, out=a[k])
        torch.mul(p_t[:, :hidden], a[k], out=m[k])
        torch.addmm(p_t[:, hidden : 3 * hidden], m[k], w_rz_t, out=rz[k]).sigmoid_()
        torch.mul(rz[k, :, :hidden], m[k], out=s[k])
        torch.addmm(p_t[:, 3 * hidden :], s[k], w_n_t, out=n[k]).tanh_()
        torch.lerp(n[k], h_prev, rz[k, :, hidden:], out=hs[t + 1])
    return hs, a, m, rz, s, n


def _mgru_backward(grad_out, grad_hn, x, p, hs, a, m, rz, s, n, w_mh, w_mg, w_x):
    steps, hidden = p.shape[0], hs.shape[2]
    dp, da = torch.empty_like(p), torch.empty_like(a)
    dh_prev = grad_hn.clone()
    w_rz, w_n = w_mg[: 2 * hidden], w_mg[2 * hidden :]
    for t in range(steps - 1, -1, -1):
        r, z = rz[t].chunk(2, dim=1)
        dz_rz, dz_n = dp[t, :, hidden : 3 * hidden], dp[t, :, 3 * hidden :]
        dh = dh_prev + grad_out[t]
        _gru_output_backward(dh, n[t], z, hs[t], dz_rz[:, hidden:], dz_n)
        # z_n = ... + W_n s with s = r ⊙ m: ds = dz_n W_n, dz_r = ds m σ'(r), dm = ds r
        ds = dz_n @ w_n
        torch.mul(ds * m[t], r * (1 - r), out=dz_rz[:, :hidden])
        dm = torch.addmm(ds * r, dz_rz, w_rz)
        # m = x_m ⊙ a, a = W_mh h': dx_m = dm a, da = dm x_m, dh' = dh z + da W_mh
        torch.mul(dm, a[t], out=dp[t, :, :hidden])
        torch.mul(dm, p[t, :, :hidden], out=da[t])
        dh_prev = torch.addmm(dh * z, da[t], w_mh)
    dz = _rows(dp)[:, hidden:]
    # r, z read m; n reads s = r ⊙ m: the two parts of W_mg see different inputs.
    dw_mg = torch.cat([dz[:, : 2 * hidden].T @ _rows(m), dz[:, 2 * hidden :].T @ _rows(s)])
    return (dp @ w_x, dh_prev, _rows(dp).T @ _rows(x), _rows(da).T @ _rows(hs[:-1]), dw_mg, dz.sum(0))


def _input_factor(q_m: Tensor, pm_t: Tensor, x_t: Tensor, m: Tensor, xt: Tensor) -> None:
    """m = U_m h' + W_m x + b_m, x̃ = m ⊙ x."""
    torch.add(q_m, pm_t, out=m)
    torch.mul(m, x_t, out=xt)


def _mlstm_input_forward(x, pm, h0, c0, w_hq_t, w_ih_t, bias, save):
    steps, batch, size = x.shape
    hidden = h0.shape[1]
    kept = steps if save else 1
    hs = x.new_empty(steps + 1, batch, hidden)
    cs = x.new_empty(steps + 1 if save else 2, batch, hidden)
    m, xt = (x.new_empty(kept, batch, size) for _ in range(2))
    gates, tc = x.new_empty(kept, batch, 4 * hidden), x.new_empty(kept, batch, hidden)
    hs[0] = h0
    cs[0] = c0
    for t in range(steps):
        k = t if save else 0
        q = hs[t] @ w_hq_t  # [W_hh h | U_m h]
        _input_factor(q[:, 4 * hidden :], pm[t], x[t], m[k], xt[k])
        torch.addmm(q[:, : 4 * hidden] + bias, xt[k], w_ih_t, out=gates[k])
        _lstm_step(gates[k], cs[t if save else t & 1], cs[t + 1 if save else (t + 1) & 1], tc[k], hs[t + 1])
    return hs, cs[steps if save else steps & 1], cs, m, xt, gates, tc


def _mlstm_input_backward(grad_out, grad_hn, grad_cn, x, hs, cs, m, xt, gates, tc, w_hq, w_ih, w_im):
    steps, batch, size = x.shape
    hidden = hs.shape[2]
    dq, dxd = x.new_empty(steps, batch, 4 * hidden + size), torch.empty_like(x)
    dh, dc = grad_hn.clone(), grad_cn.clone()
    for t in range(steps - 1, -1, -1):
        dh.add_(grad_out[t])
        _lstm_step_backward(gates[t], tc[t], cs[t], dh, dc, dq[t, :, : 4 * hidden])
        dxt = dq[t, :, : 4 * hidden] @ w_ih
        torch.mul(dxt, x[t], out=dq[t, :, 4 * hidden :])  # dm = dx̃ x
        torch.mul(dxt, m[t], out=dxd[t])
        dh = dq[t] @ w_hq
    dx, *grads = _input_form_gradients(4 * hidden, dq[:, :, : 4 * hidden], dq, dxd, x, xt, hs, w_im)
    dw_ih, dw_hh, db, _, dw_im, dw_hm, db_m = grads  # b_ih and b_hh share their gradient
    return dx, dh, dc, dw_ih, dw_hh, db, dw_im, dw_hm, db_m


def _mgru_input_forward(x, pm, h0, w_hq_t, w_ih_t, b_ih, b_hh, save):
    steps, batch, size = x.shape
    hidden = h0.shape[1]
    kept = steps if save else 1
    hs = x.new_empty(steps + 1, batch, hidden)
    m, xt = (x.new_empty(kept, batch, size) for _ in range(2))
    rzn, hn = x.new_empty(kept, batch, 3 * hidden), x.new_empty(kept, batch, hidden)
    hs[0] = h0
    for t in range(steps):
        k = t if save else 0
        q = hs[t] @ w_hq_t
        _input_factor(q[:, 3 * hidden :], pm[t], x[t], m[k], xt[k])
        gi = torch.addmm(b_ih, xt[k], w_ih_t)
        gh = q[:, : 3 * hidden] + b_hh
        rz = torch.sigmoid(gi[:, : 2 * hidden] + gh[:, : 2 * hidden], out=rzn[k, :, : 2 * hidden])
        hn[k] = gh[:, 2 * hidden :]
        n = torch.tanh(gi[:, 2 * hidden :] + rz[:, :hidden] * hn[k], out=rzn[k, :, 2 * hidden :])
        torch.lerp(n, hs[t], rz[:, hidden:], out=hs[t + 1])
    return hs, m, xt, rzn, hn


def _mgru_input_backward(grad_out, grad_hn, x, hs, m, xt, rzn, hn, w_hq, w_ih, w_im):
    steps, batch, size = x.shape
    hidden = hs.shape[2]
    dgi, dq = x.new_empty(steps, batch, 3 * hidden), x.new_empty(steps, batch, 3 * hidden + size)
    dxd, dh_prev = torch.empty_like(x), grad_hn.clone()
    for t in range(steps - 1, -1, -1):
        r, z, n = rzn[t].chunk(3, dim=1)
        dz_r, dz_z, dz_n = dgi[t].chunk(3, dim=1)
        dh = dh_prev + grad_out[t]
        _gru_output_backward(dh, n, z, hs[t], dz_z, dz_n)
        torch.mul(dz_n * hn[t], r * (1 - r), out=dz_r)  # n = tanh(... + r hn): dz_r = dz_n hn σ'(r)
        dq[t, :, : 2 * hidden] = dgi[t, :, : 2 * hidden]
        torch.mul(dz_n, r, out=dq[t, :, 2 * hidden : 3 * hidden])  # hn's gradient
        dxt = dgi[t] @ w_ih
        torch.mul(dxt, x[t], out=dq[t, :, 3 * hidden :])
        torch.mul(dxt, m[t], out=dxd[t])
        dh_prev = torch.addmm(dh * z, dq[t], w_hq)
    dx, *grads = _input_form_gradients(3 * hidden, dgi, dq, dxd, x, xt, hs, w_im)
    return (dx, dh_prev, *grads)


def _input_form_gradients(gates: int, dgi, dq, dxd, x, xt, hs, w_im):
    """dx and the weight gradients of an input-form cell, one product each over all steps.

    dgi (T, B, G) is the gradient of W_ih x̃ + b_ih; dq (T, B, G+E) that of [W_hh h' + b_hh | m]
    (m = U_m h' + W_m x + b_m); dxd = dx̃ ⊙ m. dW_ih = Σ dgi x̃ᵀ, [dW_hh; dU_m] = Σ dq h'ᵀ,
    dW_m = Σ dm xᵀ, and dx = dm W_m + dxd.
    """
    dgi, dq = _rows(dgi), _rows(dq)
    dm = dq[:, gates:]
    dw_hq = dq.T @ _rows(hs[:-1])
    dx = torch.addmm(_rows(dxd), dm, w_im).view(x.shape)
    return (
        dx,
        dgi.T @ _rows(xt), dw_hq[:gates], dgi.sum(0), dq[:, :gates].sum(0),  # W_ih, W_hh, b_ih, b_hh
        dm.T @ _rows(x), dw_hq[gates:], dm.sum(0),  # W_m, U_m, b_m
    )  # fmt: skip


PYTHON_KERNELS = SimpleNamespace(
    mlstm_forward=_mlstm_forward,
    mlstm_backward=_mlstm_backward,
    mgru_forward=_mgru_forward,
    mgru_backward=_mgru_backward,
    mlstm_input_forward=_mlstm_input_forward,
    mlstm_input_backward=_mlstm_input_backward,
    mgru_input_forward=_mgru_input_forward,
    mgru_input_backward=_mgru_input_backward,
    products=lambda: "torch ops",
)


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


def _rows(tensor: Tensor) -> Tensor:
    """(T, B, ·) → (T·B, ·)."""
    return tensor.reshape(-1, tensor.shape[-1])


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
        )  # fmt: skip
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
        )  # fmt: skip
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
        )  # fmt: skip
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
        )  # fmt: skip
        return (None, None, _batch_major(ctx, dx), dh0, *grads)


def _needs_graph(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _kernels_for(name: str, x: Tensor):
    """The compiled loops take CPU float and double tensors; the Python twin takes anything."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return kernels(name)
    return PYTHON_KERNELS


def mlstm_sequence(x: Tensor, state: tuple[Tensor, Tensor], cell) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Run an :class:`~seqcopy.core.cells.MLSTMCell` over (B, T, E) inputs; same result as its steps."""
    name = backend()
    if name == "off":
        return _mlstm_autograd(x, state, cell)
    h, c = state
    params = (cell.weight_mx, cell.weight_mh, cell.weight_ih, cell.weight_mg, cell.bias)
    save = _needs_graph(x, h, c, *params)
    out, h, c = MLSTMFunction.apply(_kernels_for(name, x), save, x, h, c, *params)
    return out, (h, c)


def mgru_sequence(x: Tensor, h: Tensor, cell) -> tuple[Tensor, Tensor]:
    """Run an :class:`~seqcopy.core.cells.MGRUCell` over (B, T, E) inputs; same result as its steps."""
    name = backend()
    if name == "off":
        return _mgru_autograd(x, h, cell)
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


# --- SEQCOPY_FAST=off: plain autograd through every step --------------------------------------


def _mlstm_autograd(x: Tensor, state: tuple[Tensor, Tensor], cell):
    h, c = state
    hidden = cell.hidden_size
    projected = x @ torch.cat([cell.weight_mx, cell.weight_ih]).T
    projected = projected + torch.cat([cell.bias.new_zeros(hidden), cell.bias])
    outputs = []
    for p_t in projected.unbind(1):
        x_m, x_g = p_t[:, :hidden], p_t[:, hidden:]
        m = x_m * (h @ cell.weight_mh.T)
        gates = x_g + m @ cell.weight_mg.T
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs, dim=1), (h, c)


def _mgru_autograd(x: Tensor, h: Tensor, cell):
    hidden = cell.hidden_size
    projected = x @ torch.cat([cell.weight_mx, cell.weight_ih]).T
    projected = projected + torch.cat([cell.bias_ih.new_zeros(hidden), cell.bias_ih])
    w_rz, w_n = cell.weight_mg[: 2 * hidden], cell.weight_mg[2 * hidden :]
    b_rz, b_n = cell.bias_mg[: 2 * hidden], cell.bias_mg[2 * hidden :]
    outputs = []
    for p_t in projected.unbind(1):
        x_m, x_r, x_z, x_n = p_t.split(hidden, dim=1)
        m = x_m * (h @ cell.weight_mh.T)
        m_r, m_z = torch.addmm(b_rz, m, w_rz.T).chunk(2, dim=1)
        r = torch.sigmoid(x_r + m_r)
        z = torch.sigmoid(x_z + m_z)
        n = torch.tanh(x_n + torch.addmm(b_n, r * m, w_n.T))
        h = (1 - z) * n + z * h
        outputs.append(h)
    return torch.stack(outputs, dim=1), h
