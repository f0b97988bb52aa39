"""Fast sequence paths for the multiplicative cells (mLSTM, mGRU).

The reference cells in :mod:`seqcopy.cells` recompute every input projection at every step.
Here the input projections of the whole sequence are one matrix product before the loop, and
each step does only the products that depend on the previous state.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mlstm_sequence(x: Tensor, state: tuple[Tensor, Tensor], cell) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Run an :class:`~seqcopy.cells.MLSTMCell` over (B, T, E) inputs; same result as its steps."""
    h, c = state
    hidden = cell.hidden_size
    # One product for all time steps: the m factor and the gates' input part side by side.
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


def mgru_sequence(x: Tensor, h: Tensor, cell) -> tuple[Tensor, Tensor]:
    """Run an :class:`~seqcopy.cells.MGRUCell` over (B, T, E) inputs; same result as its steps."""
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
