"""Fast sequence paths for the multiplicative cells (mLSTM, mGRU).

The reference cells in :mod:`seqcopy.cells` recompute every input projection at every step and
leave the backward to autograd, one graph node per small op. Here each cell is one
:class:`torch.autograd.Function`:

* forward: the input projections of the whole sequence are one matrix product, then a time loop
  does only what depends on the previous state (the recurrent products and the gates);
* backward: a time loop running backwards writes the gradient of every pre-activation into a
  (T, B, ·) buffer, after which each weight gradient is one large product over all time steps.

The two time loops run in a small C++ extension (``csrc/cells.cpp``, ATen ops, so any device),
built on first use and cached in torch's extensions directory. Where it cannot be built, a Python
twin of the same loops takes over (with one warning). The environment variable ``SEQCOPY_FAST``
chooses: ``cpp`` (the default), ``python`` (the twin), ``off`` (plain autograd through the steps).
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
                _compiled = load("seqcopy_cells", [str(_SOURCE)], extra_cflags=["-O3"])
            except Exception as error:  # noqa: BLE001 - any build failure means: fall back
                warnings.warn(f"seqcopy: C++ cell kernels unavailable, using Python: {error}")
                _compiled = False
        return _compiled or None


def kernels(name: str | None = None):
    """The time-loop implementation for backend ``name`` (default: ``SEQCOPY_FAST``)."""
    name = name or backend()
    if name == "cpp":
        return compiled_kernels() or PYTHON_KERNELS
    if name == "python":
        return PYTHON_KERNELS
    raise ValueError(f"backend {name!r} has no kernels")


# --- Python twin of csrc/cells.cpp (same buffers, same ops, same order) -------------------------


def _mlstm_forward(p: Tensor, h0: Tensor, c0: Tensor, w_mh: Tensor, w_mg: Tensor, save: bool):
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
        p_t, h_prev, c_prev = p[t], hs[t], cs[t if save else t & 1]
        c, g_t = cs[t + 1 if save else (t + 1) & 1], gates[k]
        torch.mm(h_prev, w_mh.T, out=a[k])
        torch.mul(p_t[:, :hidden], a[k], out=m[k])
        torch.addmm(p_t[:, hidden:], m[k], w_mg.T, out=g_t)
        i, f, g, o = g_t.chunk(4, dim=1)
        g_t[:, : 2 * hidden].sigmoid_()
        g.tanh_()
        o.sigmoid_()
        torch.mul(f, c_prev, out=c).addcmul_(i, g)
        torch.tanh(c, out=tc[k])
        torch.mul(o, tc[k], out=hs[t + 1])
    return hs, cs[steps if save else steps & 1], cs, a, m, gates, tc


def _mlstm_backward(grad_out, grad_hn, grad_cn, p, hs, cs, a, gates, tc, w_mh, w_mg):
    steps, hidden = p.shape[0], hs.shape[2]
    dp, da = torch.empty_like(p), torch.empty_like(a)
    dh, dc = grad_hn.clone(), grad_cn.clone()
    tmp, dm = torch.empty_like(dh), torch.empty_like(dh)
    for t in range(steps - 1, -1, -1):
        i, f, g, o = gates[t].chunk(4, dim=1)
        dz = dp[t, :, hidden:]
        dz_i, dz_f, dz_g, dz_o = dz.chunk(4, dim=1)
        dh.add_(grad_out[t])
        # h = o tanh(c): dc += dh o (1 - tanh²c), dz_o = dh tanh(c) σ'(o)
        dc.add_(torch.mul(dh, o, out=tmp).mul_(1 - tc[t] * tc[t]))
        torch.mul(torch.mul(dh, tc[t], out=tmp), o * (1 - o), out=dz_o)
        # c = f c' + i g: dz_i = dc g σ'(i), dz_f = dc c' σ'(f), dz_g = dc i (1 - g²)
        torch.mul(torch.mul(dc, g, out=tmp), i * (1 - i), out=dz_i)
        torch.mul(torch.mul(dc, cs[t], out=tmp), f * (1 - f), out=dz_f)
        torch.mul(torch.mul(dc, i, out=tmp), 1 - g * g, out=dz_g)
        dc.mul_(f)
        # z = ... + W_m m: dm = dz W_m;  m = x_m ⊙ a: dx_m = dm a, da = dm x_m
        torch.mm(dz, w_mg, out=dm)
        torch.mul(dm, a[t], out=dp[t, :, :hidden])
        torch.mul(dm, p[t, :, :hidden], out=da[t])
        torch.mm(da[t], w_mh, out=dh)
    return dp, da, dh, dc


def _mgru_forward(p: Tensor, h0: Tensor, w_mh: Tensor, w_mg: Tensor, save: bool):
    steps, batch, hidden = p.shape[0], p.shape[1], h0.shape[1]
    kept = steps if save else 1
    hs = p.new_empty(steps + 1, batch, hidden)
    a, m, s, n = (p.new_empty(kept, batch, hidden) for _ in range(4))
    rz = p.new_empty(kept, batch, 2 * hidden)
    hs[0] = h0
    w_rz, w_n = w_mg[: 2 * hidden], w_mg[2 * hidden :]
    for t in range(steps):
        k = t if save else 0
        p_t, h_prev = p[t], hs[t]
        torch.mm(h_prev, w_mh.T, out=a[k])
        torch.mul(p_t[:, :hidden], a[k], out=m[k])
        torch.addmm(p_t[:, hidden : 3 * hidden], m[k], w_rz.T, out=rz[k]).sigmoid_()
        torch.mul(rz[k, :, :hidden], m[k], out=s[k])
        torch.addmm(p_t[:, 3 * hidden :], s[k], w_n.T, out=n[k]).tanh_()
        torch.lerp(n[k], h_prev, rz[k, :, hidden:], out=hs[t + 1])
    return hs, a, m, rz, s, n


def _mgru_backward(grad_out, grad_hn, p, hs, a, m, rz, n, w_mh, w_mg):
    steps, hidden = p.shape[0], hs.shape[2]
    dp, da = torch.empty_like(p), torch.empty_like(a)
    dh, dh_prev = torch.empty_like(grad_hn), grad_hn.clone()
    tmp, ds, dm = torch.empty_like(dh), torch.empty_like(dh), torch.empty_like(dh)
    w_rz, w_n = w_mg[: 2 * hidden], w_mg[2 * hidden :]
    for t in range(steps - 1, -1, -1):
        r, z = rz[t].chunk(2, dim=1)
        dz_rz, dz_n = dp[t, :, hidden : 3 * hidden], dp[t, :, 3 * hidden :]
        torch.add(dh_prev, grad_out[t], out=dh)
        # h = (1 - z) n + z h': dz_n = dh (1 - z)(1 - n²), dz_z = dh (h' - n) σ'(z)
        torch.mul(torch.addcmul(dh, dh, z, value=-1, out=tmp), 1 - n[t] * n[t], out=dz_n)
        torch.mul(torch.sub(hs[t], n[t], out=tmp).mul_(dh), z * (1 - z), out=dz_rz[:, hidden:])
        # z_n = ... + W_n s with s = r ⊙ m: ds = dz_n W_n, dz_r = ds m σ'(r), dm = ds r
        torch.mm(dz_n, w_n, out=ds)
        torch.mul(torch.mul(ds, m[t], out=tmp), r * (1 - r), out=dz_rz[:, :hidden])
        torch.mul(ds, r, out=dm).addmm_(dz_rz, w_rz)
        # m = x_m ⊙ a, a = W_mh h': dx_m = dm a, da = dm x_m, dh' = dh z + da W_mh
        torch.mul(dm, a[t], out=dp[t, :, :hidden])
        torch.mul(dm, p[t, :, :hidden], out=da[t])
        torch.mul(dh, z, out=dh_prev).addmm_(da[t], w_mh)
    return dp, da, dh_prev


PYTHON_KERNELS = SimpleNamespace(
    mlstm_forward=_mlstm_forward,
    mlstm_backward=_mlstm_backward,
    mgru_forward=_mgru_forward,
    mgru_backward=_mgru_backward,
)


# --- The autograd Functions -----------------------------------------------------------------


def _project(x: Tensor, weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """(B, T, E) inputs → time-major rows (T·B, E) and their projection (T, B, ·), one product."""
    batch, steps, size = x.shape
    rows = x.transpose(0, 1).reshape(steps * batch, size)
    return rows, torch.addmm(bias, rows, weight.T).view(steps, batch, -1)


def _time_major(grad: Tensor | None, like: Tensor) -> Tensor:
    """Incoming (B, T, H) output gradient as contiguous (T, B, H); zeros where there is none."""
    if grad is None:
        return like.new_zeros(like.shape[1], like.shape[0], like.shape[2])
    return grad.transpose(0, 1).contiguous()


def _input_gradients(ctx, dp: Tensor, rows: Tensor, w_x: Tensor, batch: int):
    """dx and dW_x from dp, the gradient of the projections: dx = dp W_x, dW_x = dpᵀ x."""
    steps = dp.shape[0]
    flat = dp.view(-1, dp.shape[2])
    dx = None
    if ctx.needs_input_grad[2]:
        dx = (flat @ w_x).view(steps, batch, -1).transpose(0, 1)
    return dx, flat, flat.T @ rows


class MLSTMFunction(torch.autograd.Function):
    """mLSTM over a (B, T, E) sequence: (x, h0, c0, parameters) → outputs (B, T, H), h_T, c_T."""

    @staticmethod
    def forward(ctx, kern, save, x, h0, c0, w_mx, w_mh, w_ih, w_mg, bias):
        hidden = w_mh.shape[0]
        w_x = torch.cat([w_mx, w_ih])
        rows, p = _project(x, w_x, torch.cat([bias.new_zeros(hidden), bias]))
        hs, c_n, cs, a, m, gates, tc = kern.mlstm_forward(p, h0, c0, w_mh, w_mg, save)
        if save:
            ctx.kern = kern
            ctx.save_for_backward(rows, p, hs, cs, a, m, gates, tc, w_x, w_mh, w_mg)
        return hs[1:].transpose(0, 1), hs[-1].clone(), c_n.clone()

    @staticmethod
    def backward(ctx, grad_out, grad_hn, grad_cn):
        rows, p, hs, cs, a, m, gates, tc, w_x, w_mh, w_mg = ctx.saved_tensors
        hidden, batch = w_mh.shape[0], hs.shape[1]
        grad_hn = torch.zeros_like(hs[0]) if grad_hn is None else grad_hn
        grad_cn = torch.zeros_like(hs[0]) if grad_cn is None else grad_cn
        dp, da, dh0, dc0 = ctx.kern.mlstm_backward(
            _time_major(grad_out, hs[1:].transpose(0, 1)), grad_hn, grad_cn,
            p, hs, cs, a, gates, tc, w_mh, w_mg,
        )  # fmt: skip
        dx, flat, dw_x = _input_gradients(ctx, dp, rows, w_x, batch)
        dz = flat[:, hidden:]  # the gates' pre-activations, (T·B, 4H)
        dw_mh = da.view(-1, hidden).T @ hs[:-1].reshape(-1, hidden)  # da = W_mh h': dW = Σ da h'ᵀ
        dw_mg = dz.T @ m.view(-1, hidden)  # z = W_m m + ...: dW_m = Σ dz mᵀ
        return (None, None, dx, dh0, dc0, dw_x[:hidden], dw_mh, dw_x[hidden:], dw_mg, dz.sum(0))


class MGRUFunction(torch.autograd.Function):
    """mGRU over a (B, T, E) sequence: (x, h0, parameters) → outputs (B, T, H), h_T."""

    @staticmethod
    def forward(ctx, kern, save, x, h0, w_mx, w_mh, w_ih, b_ih, w_mg, b_mg):
        hidden = w_mh.shape[0]
        w_x = torch.cat([w_mx, w_ih])
        # Both biases add to the same pre-activations, so they join the input projection.
        rows, p = _project(x, w_x, torch.cat([b_ih.new_zeros(hidden), b_ih + b_mg]))
        hs, a, m, rz, s, n = kern.mgru_forward(p, h0, w_mh, w_mg, save)
        if save:
            ctx.kern = kern
            ctx.save_for_backward(rows, p, hs, a, m, rz, s, n, w_x, w_mh, w_mg)
        return hs[1:].transpose(0, 1), hs[-1].clone()

    @staticmethod
    def backward(ctx, grad_out, grad_hn):
        rows, p, hs, a, m, rz, s, n, w_x, w_mh, w_mg = ctx.saved_tensors
        hidden, batch = w_mh.shape[0], hs.shape[1]
        grad_hn = torch.zeros_like(hs[0]) if grad_hn is None else grad_hn
        dp, da, dh0 = ctx.kern.mgru_backward(
            _time_major(grad_out, hs[1:].transpose(0, 1)), grad_hn, p, hs, a, m, rz, n, w_mh, w_mg
        )
        dx, flat, dw_x = _input_gradients(ctx, dp, rows, w_x, batch)
        dz = flat[:, hidden:]  # pre-activations of r, z, n, (T·B, 3H)
        dw_mh = da.view(-1, hidden).T @ hs[:-1].reshape(-1, hidden)
        # r, z read m; n reads s = r ⊙ m: the two halves of W_mg see different inputs.
        dw_mg = torch.cat([dz[:, : 2 * hidden].T @ m.view(-1, hidden),
                           dz[:, 2 * hidden :].T @ s.view(-1, hidden)])  # fmt: skip
        db = dz.sum(0)
        return (None, None, dx, dh0, dw_x[:hidden], dw_mh, dw_x[hidden:], db, dw_mg, db)


def _needs_graph(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def mlstm_sequence(x: Tensor, state: tuple[Tensor, Tensor], cell) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Run an :class:`~seqcopy.cells.MLSTMCell` over (B, T, E) inputs; same result as its steps."""
    name = backend()
    if name == "off":
        return _mlstm_autograd(x, state, cell)
    h, c = state
    params = (cell.weight_mx, cell.weight_mh, cell.weight_ih, cell.weight_mg, cell.bias)
    save = _needs_graph(x, h, c, *params)
    out, h, c = MLSTMFunction.apply(kernels(name), save, x, h, c, *params)
    return out, (h, c)


def mgru_sequence(x: Tensor, h: Tensor, cell) -> tuple[Tensor, Tensor]:
    """Run an :class:`~seqcopy.cells.MGRUCell` over (B, T, E) inputs; same result as its steps."""
    name = backend()
    if name == "off":
        return _mgru_autograd(x, h, cell)
    params = (cell.weight_mx, cell.weight_mh, cell.weight_ih, cell.bias_ih, cell.weight_mg, cell.bias_mg)
    save = _needs_graph(x, h, *params)
    return MGRUFunction.apply(kernels(name), save, x, h, *params)


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
