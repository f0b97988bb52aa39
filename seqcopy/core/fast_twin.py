"""The Python twin of the C++ time loops (``csrc/cells.cpp``): the same arguments, the same
results, line for line, in torch ops.

It serves the devices and dtypes the compiled loops do not take (CUDA, MPS, half precision), and
takes over with a warning where the extension cannot be built. Like the C++ loops it works on the
input projections computed for the whole sequence at once, fills preallocated buffers in place, and
saves what its backward loop needs; tests hold both equal to the cells' ``step()`` in outputs and
gradients.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import Tensor


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
    dz = rows(dp)[:, hidden:]
    # dx = dp W_x; each weight's gradient is one product over all steps: Σ dz mᵀ, Σ da h'ᵀ, Σ dp xᵀ
    return (dp @ w_x, dh, dc, rows(dp).T @ rows(x), rows(da).T @ rows(hs[:-1]), dz.T @ rows(m), dz.sum(0))


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
    dz = rows(dp)[:, hidden:]
    # r, z read m; n reads s = r ⊙ m: the two parts of W_mg see different inputs.
    dw_mg = torch.cat([dz[:, : 2 * hidden].T @ rows(m), dz[:, 2 * hidden :].T @ rows(s)])
    return (dp @ w_x, dh_prev, rows(dp).T @ rows(x), rows(da).T @ rows(hs[:-1]), dw_mg, dz.sum(0))


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
    dgi, dq = rows(dgi), rows(dq)
    dm = dq[:, gates:]
    dw_hq = dq.T @ rows(hs[:-1])
    dx = torch.addmm(rows(dxd), dm, w_im).view(x.shape)
    return (
        dx,
        dgi.T @ rows(xt), dw_hq[:gates], dgi.sum(0), dq[:, :gates].sum(0),  # W_ih, W_hh, b_ih, b_hh
        dm.T @ rows(x), dw_hq[gates:], dm.sum(0),  # W_m, U_m, b_m
    )


def rows(tensor: Tensor) -> Tensor:
    """(T, B, ·) → (T·B, ·)."""
    return tensor.reshape(-1, tensor.shape[-1])


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
