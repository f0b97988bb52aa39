"""Seed-style reference cells: the obvious per-gate code a tutorial would write.

Every gate has its own input and recurrent matrix (``W_i x + U_i h`` one product at a time), and a
Python loop runs over time with autograd through every op. mLSTM and mGRU come in both forms. The
benchmark measures our paths against these, so nothing in seqcopy should ever be slower.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

GATES = {"rnn": "h", "lstm": "ifgo", "gru": "rzn", "mlstm": "ifgo", "mgru": "rzn"}


PLAIN_TWIN = {"mlstm": "lstm", "mgru": "gru"}


class SeedCell(nn.Module):
    def __init__(self, cell: str, input_size: int, hidden_size: int, mult_form: str = "krause"):
        super().__init__()
        self.input_form = mult_form == "input" and cell in PLAIN_TWIN
        # The input form scales x_t, then runs the plain twin's gates on x̃_t.
        self.cell = PLAIN_TWIN[cell] if self.input_form else cell
        self.x = nn.ModuleDict({g: nn.Linear(input_size, hidden_size) for g in GATES[cell]})
        self.h = nn.ModuleDict({g: nn.Linear(hidden_size, hidden_size) for g in GATES[cell]})
        if self.input_form:  # m = W_m x + U_m h + b_m
            self.mx = nn.Linear(input_size, input_size)
            self.mh = nn.Linear(hidden_size, input_size, bias=False)
        elif cell in PLAIN_TWIN:  # m = (W_mx x) ⊙ (W_mh h)
            self.mx = nn.Linear(input_size, hidden_size, bias=False)
            self.mh = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        X, U = self.x, self.h
        if self.input_form:
            x = (self.mx(x) + self.mh(h)) * x
        if self.cell == "rnn":
            return torch.tanh(X["h"](x) + U["h"](h)), c
        if self.cell in ("lstm", "mlstm"):
            s = self.mx(x) * self.mh(h) if self.cell == "mlstm" else h
            i = torch.sigmoid(X["i"](x) + U["i"](s))
            f = torch.sigmoid(X["f"](x) + U["f"](s))
            g = torch.tanh(X["g"](x) + U["g"](s))
            o = torch.sigmoid(X["o"](x) + U["o"](s))
            c = f * c + i * g
            return o * torch.tanh(c), c
        if self.cell == "gru":
            r = torch.sigmoid(X["r"](x) + U["r"](h))
            z = torch.sigmoid(X["z"](x) + U["z"](h))
            n = torch.tanh(X["n"](x) + r * U["n"](h))
            return (1 - z) * n + z * h, c
        m = self.mx(x) * self.mh(h)  # mgru
        r = torch.sigmoid(X["r"](x) + U["r"](m))
        z = torch.sigmoid(X["z"](x) + U["z"](m))
        n = torch.tanh(X["n"](x) + U["n"](r * m))
        return (1 - z) * n + z * h, c


class SeedModel(nn.Module):
    """Embedding → SeedCell looped over time → Linear, the same shape as seqcopy's CopyModel."""

    def __init__(self, cell: str, vocab_size: int, embedding_size: int, hidden_size: int, mult_form: str = "krause"):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.cell = SeedCell(cell, embedding_size, hidden_size, mult_form)
        self.decoder = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        embedded = self.embedding(x)
        h = embedded.new_zeros(x.shape[0], self.hidden_size)
        c = torch.zeros_like(h)
        outputs = []
        for x_t in embedded.unbind(1):
            h, c = self.cell(x_t, h, c)
            outputs.append(h)
        return self.decoder(torch.stack(outputs, dim=1)), None
