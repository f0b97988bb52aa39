"""The five recurrent cells, one class each, with their equations.

The two multiplicative cells come in the two forms that are published (``mult_form``):
``krause``, Krause et al. 2016's, where m_t = (W_mx x_t) ⊙ (W_mh h_{t-1}) stands in for h_{t-1}
inside the gates (:class:`MLSTMCell`, :class:`MGRUCell`), and ``input``, the form some course
versions of the copy assignment give, where m_t = W_m x_t + U_m h_{t-1} + b_m scales the input and
the plain LSTM or GRU runs on x̃_t = m_t ⊙ x_t (:class:`MLSTMInputCell`, :class:`MGRUInputCell`).

Each cell computes one time step in its ``step(x_t, state) -> (state, parts)``, written out gate by
gate so the code reads like the equations in its docstring: these are the reference implementations,
and the only place the equations are written (besides the C++ loops of :mod:`seqcopy.core.fast`,
tested equal to them). ``parts`` names what the step computed (the gates, m_t, c_t, h_t): the
Playground traces it. ``forward``, written once in :class:`Cell`, runs the step and keeps the state.
:class:`RecurrentLayer` runs a cell over a (B, T, E) sequence. By default it takes the cell's fused
path: torch's own kernels for RNN, LSTM and GRU (cuDNN on a GPU) using the very same parameters,
and the fast sequence kernels of :mod:`seqcopy.core.fast` for mLSTM and mGRU. Tests hold the two paths
equal, so either may serve and a checkpoint loads into both.

Notation: σ is the logistic sigmoid, ⊙ the element-wise product, E the embedding size, H the
hidden size. Parameters are initialised as torch does, U(-1/√H, 1/√H).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqcopy.config import CELL_NAMES, MULT_CELLS, MULT_FORMS  # the names live with the config, free of torch

State = Tensor | tuple[Tensor, Tensor]
Parts = dict[str, Tensor]  # what one step computed, by name: h, c, m and the activated gates


class Cell(nn.Module):
    """Common parts: parameter creation, the initial state and the layer-facing API."""

    has_cell_state = False  # LSTMs carry (h, c); the others carry h alone
    fused_by_torch = False  # whether fused_forward is torch's own kernel (else seqcopy.core.fast's)

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size

    def _parameter(self, *shape: int) -> nn.Parameter:
        bound = 1.0 / math.sqrt(self.hidden_size)
        return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

    def initial_state(self, batch: int, device=None, dtype=None) -> State:
        zeros = torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)
        return (zeros, zeros.clone()) if self.has_cell_state else zeros

    @staticmethod
    def output_of(state: State) -> Tensor:
        """The hidden state h that the layer emits, whatever the state holds."""
        return state[0] if isinstance(state, tuple) else state

    def step(self, x_t: Tensor, state: State) -> tuple[State, Parts]:
        """One time step: the new state, and every quantity computed on the way, by name."""
        raise NotImplementedError(f"{type(self).__name__} has no step()")

    def forward(self, x_t: Tensor, state: State) -> State:
        return self.step(x_t, state)[0]

    def fused_forward(self, x: Tensor, state: State) -> tuple[Tensor, State] | None:
        """The whole (B, T, E) sequence at once, or None where the cell has no fused path."""
        return None


def _fused_flags(training: bool) -> dict:
    """The flags of torch's fused loops (torch.rnn_tanh, torch.lstm, torch.gru) for these cells: one
    layer, one direction, with biases, no dropout, batches as (B, T, ·)."""
    return dict(has_biases=True, num_layers=1, dropout=0.0, train=training, bidirectional=False, batch_first=True)


class RNNCell(Cell):
    """Vanilla (Elman) RNN.

        h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    """

    fused_by_torch = True

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.weight_ih = self._parameter(hidden_size, input_size)
        self.weight_hh = self._parameter(hidden_size, hidden_size)
        self.bias_ih = self._parameter(hidden_size)
        self.bias_hh = self._parameter(hidden_size)

    def step(self, x_t: Tensor, h: Tensor) -> tuple[Tensor, Parts]:
        h = torch.tanh(x_t @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh)
        return h, {"h": h}

    def fused_forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        params = [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]
        out, h_n = torch.rnn_tanh(x, h.unsqueeze(0), params, **_fused_flags(self.training))
        return out, h_n.squeeze(0)


def lstm_update(gates: Tensor, c: Tensor) -> tuple[tuple[Tensor, Tensor], Parts]:
    """The LSTM family's update from its stacked (i, f, g, o) pre-activations, shared by LSTMCell,
    MLSTMCell and the input form: c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g), h_t = σ(o) ⊙ tanh(c_t)."""
    i, f, g, o = gates.chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    return (h, c), {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h}


class LSTMCell(Cell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with a forget gate), torch's layout.

        i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)        input gate
        f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)        forget gate
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)     candidate
        o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)        output gate
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        h_t = o_t ⊙ tanh(c_t)

    The four gates are stacked in the order i, f, g, o in ``weight_ih`` (4H, E) and ``weight_hh``
    (4H, H), exactly as ``torch.nn.LSTM`` stores them.
    """

    has_cell_state = True
    fused_by_torch = True

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.weight_ih = self._parameter(4 * hidden_size, input_size)
        self.weight_hh = self._parameter(4 * hidden_size, hidden_size)
        self.bias_ih = self._parameter(4 * hidden_size)
        self.bias_hh = self._parameter(4 * hidden_size)

    def step(self, x_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[tuple[Tensor, Tensor], Parts]:
        h, c = state
        gates = x_t @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh
        return lstm_update(gates, c)

    def fused_forward(self, x: Tensor, state: tuple[Tensor, Tensor]):
        h, c = state
        params = [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]
        out, h_n, c_n = torch.lstm(x, (h.unsqueeze(0), c.unsqueeze(0)), params, **_fused_flags(self.training))
        return out, (h_n.squeeze(0), c_n.squeeze(0))


class GRUCell(Cell):
    """Gated recurrent unit (Cho et al. 2014), torch's formulation.

        r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)                reset gate
        z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)                update gate
        n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))     candidate
        h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    Gates stacked r, z, n in ``weight_ih`` (3H, E) and ``weight_hh`` (3H, H), as in ``torch.nn.GRU``.
    """

    fused_by_torch = True

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self.weight_ih = self._parameter(3 * hidden_size, input_size)
        self.weight_hh = self._parameter(3 * hidden_size, hidden_size)
        self.bias_ih = self._parameter(3 * hidden_size)
        self.bias_hh = self._parameter(3 * hidden_size)

    def step(self, x_t: Tensor, h: Tensor) -> tuple[Tensor, Parts]:
        x_r, x_z, x_n = (x_t @ self.weight_ih.T + self.bias_ih).chunk(3, dim=1)
        h_r, h_z, h_n = (h @ self.weight_hh.T + self.bias_hh).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        return h, {"r": r, "z": z, "n": n, "h": h}

    def fused_forward(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        params = [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]
        out, h_n = torch.gru(x, h.unsqueeze(0), params, **_fused_flags(self.training))
        return out, h_n.squeeze(0)


class _KrauseFactor:
    """Krause et al.'s factor, shared by mLSTM and mGRU: m_t = (W_mx x_t) ⊙ (W_mh h_{t-1}), and
    with ``norm_m`` layer-normalised over its H units (m_t ← g ⊙ (m_t - mean) / std + b, g and b
    learnt), which keeps its size fixed whatever the size of W_mx x_t for the symbol read."""

    def _add_factor(self, norm_m: bool) -> None:
        self.weight_mx = self._parameter(self.hidden_size, self.input_size)
        self.weight_mh = self._parameter(self.hidden_size, self.hidden_size)
        # Only with the option, so that checkpoints without it keep their keys.
        self.norm_m = nn.LayerNorm(self.hidden_size) if norm_m else None

    def factor(self, x_t: Tensor, h: Tensor) -> Tensor:
        m = (x_t @ self.weight_mx.T) * (h @ self.weight_mh.T)
        return m if self.norm_m is None else self.norm_m(m)


class MLSTMCell(_KrauseFactor, Cell):
    """Multiplicative LSTM (Krause et al. 2016, "Multiplicative LSTM for sequence modelling").

    An intermediate state m_t, the product of an input-dependent and a state-dependent factor,
    takes the place of h_{t-1} in every gate, so each input symbol chooses its own recurrent
    transition:

        m_t = (W_mx x_t) ⊙ (W_mh h_{t-1})
        i_t = σ(W_ix x_t + W_im m_t + b_i)
        f_t = σ(W_fx x_t + W_fm m_t + b_f)
        g_t = tanh(W_gx x_t + W_gm m_t + b_g)
        o_t = σ(W_ox x_t + W_om m_t + b_o)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        h_t = o_t ⊙ tanh(c_t)

    Parameters: ``weight_mx`` (H, E), ``weight_mh`` (H, H), and the gates stacked i, f, g, o in
    ``weight_ih`` (4H, E), ``weight_mg`` (4H, H) and ``bias`` (4H). With ``norm_m``, m_t is
    layer-normalised before the gates read it (:class:`_KrauseFactor`).
    """

    has_cell_state = True

    def __init__(self, input_size: int, hidden_size: int, norm_m: bool = False):
        super().__init__(input_size, hidden_size)
        self._add_factor(norm_m)
        self.weight_ih = self._parameter(4 * hidden_size, input_size)
        self.weight_mg = self._parameter(4 * hidden_size, hidden_size)
        self.bias = self._parameter(4 * hidden_size)

    def step(self, x_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[tuple[Tensor, Tensor], Parts]:
        h, c = state
        m = self.factor(x_t, h)
        state, parts = lstm_update(x_t @ self.weight_ih.T + m @ self.weight_mg.T + self.bias, c)
        return state, {"m": m, **parts}

    def fused_forward(self, x: Tensor, state: tuple[Tensor, Tensor]):
        from seqcopy.core.fast import mlstm_sequence

        if self.norm_m is not None:
            return None  # the fast loop has no normalisation: the reference path runs
        return mlstm_sequence(x, state, self)


class MGRUCell(_KrauseFactor, Cell):
    """Multiplicative GRU: the mLSTM's idea applied to the GRU.

    m_t replaces h_{t-1} inside the gates and the candidate; the reset gate scales m_t before its
    recurrent product; the update still interpolates with h_{t-1}:

        m_t = (W_mx x_t) ⊙ (W_mh h_{t-1})
        r_t = σ(W_rx x_t + b_rx + W_rm m_t + b_rm)
        z_t = σ(W_zx x_t + b_zx + W_zm m_t + b_zm)
        n_t = tanh(W_nx x_t + b_nx + W_nm (r_t ⊙ m_t) + b_nm)
        h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    Parameters: ``weight_mx`` (H, E), ``weight_mh`` (H, H), and the gates stacked r, z, n in
    ``weight_ih`` (3H, E), ``bias_ih`` (3H), ``weight_mg`` (3H, H) and ``bias_mg`` (3H). With
    ``norm_m``, m_t is layer-normalised before the gates read it (:class:`_KrauseFactor`).
    """

    def __init__(self, input_size: int, hidden_size: int, norm_m: bool = False):
        super().__init__(input_size, hidden_size)
        self._add_factor(norm_m)
        self.weight_ih = self._parameter(3 * hidden_size, input_size)
        self.bias_ih = self._parameter(3 * hidden_size)
        self.weight_mg = self._parameter(3 * hidden_size, hidden_size)
        self.bias_mg = self._parameter(3 * hidden_size)

    def step(self, x_t: Tensor, h: Tensor) -> tuple[Tensor, Parts]:
        hidden = self.hidden_size
        m = self.factor(x_t, h)
        x_r, x_z, x_n = (x_t @ self.weight_ih.T + self.bias_ih).chunk(3, dim=1)
        w_rz, w_n = self.weight_mg[: 2 * hidden], self.weight_mg[2 * hidden :]
        b_rz, b_n = self.bias_mg[: 2 * hidden], self.bias_mg[2 * hidden :]
        m_r, m_z = (m @ w_rz.T + b_rz).chunk(2, dim=1)
        r = torch.sigmoid(x_r + m_r)
        z = torch.sigmoid(x_z + m_z)
        n = torch.tanh(x_n + (r * m) @ w_n.T + b_n)
        h = (1 - z) * n + z * h
        return h, {"m": m, "r": r, "z": z, "n": n, "h": h}

    def fused_forward(self, x: Tensor, h: Tensor):
        from seqcopy.core.fast import mgru_sequence

        if self.norm_m is not None:
            return None  # the fast loop has no normalisation: the reference path runs
        return mgru_sequence(x, h, self)


class _InputForm:
    """The input form's factor, shared by its mLSTM and mGRU: parameters and m_t, x̃_t."""

    fused_by_torch = False  # its fused path is seqcopy.core.fast's, though it subclasses a plain cell

    def _add_input_factor(self) -> None:
        size = self.input_size
        self.weight_im = self._parameter(size, size)
        self.weight_hm = self._parameter(size, self.hidden_size)
        self.bias_m = self._parameter(size)

    def input_factor(self, x_t: Tensor, h: Tensor) -> Tensor:
        """m_t = W_m x_t + U_m h_{t-1} + b_m, of the input's size E (x̃_t = m_t ⊙ x_t)."""
        return x_t @ self.weight_im.T + h @ self.weight_hm.T + self.bias_m


class MLSTMInputCell(_InputForm, LSTMCell):
    """Multiplicative LSTM, input form: the state scales the input, then a plain LSTM reads it.

        m_t = W_m x_t + U_m h_{t-1} + b_m                      (size E, like x_t)
        x̃_t = m_t ⊙ x_t
        i_t = σ(W_ii x̃_t + b_ii + W_hi h_{t-1} + b_hi)
        f_t = σ(W_if x̃_t + b_if + W_hf h_{t-1} + b_hf)
        g_t = tanh(W_ig x̃_t + b_ig + W_hg h_{t-1} + b_hg)
        o_t = σ(W_io x̃_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        h_t = o_t ⊙ tanh(c_t)

    Parameters: the LSTM's own (``weight_ih`` (4H, E), ``weight_hh`` (4H, H), ``bias_ih``,
    ``bias_hh``, gates stacked i, f, g, o as in :class:`LSTMCell`), and ``weight_im`` (E, E) = W_m,
    ``weight_hm`` (E, H) = U_m, ``bias_m`` (E) = b_m.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self._add_input_factor()

    def step(self, x_t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[tuple[Tensor, Tensor], Parts]:
        m = self.input_factor(x_t, state[0])
        state, parts = super().step(m * x_t, state)  # the LSTM's step on x̃_t
        return state, {"m": m, **parts}

    def fused_forward(self, x: Tensor, state: tuple[Tensor, Tensor]):
        from seqcopy.core.fast import mlstm_input_sequence

        return mlstm_input_sequence(x, state, self)


class MGRUInputCell(_InputForm, GRUCell):
    """Multiplicative GRU, input form: the state scales the input, then a plain GRU reads it.

        m_t = W_m x_t + U_m h_{t-1} + b_m                      (size E, like x_t)
        x̃_t = m_t ⊙ x_t
        r_t = σ(W_ir x̃_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = σ(W_iz x̃_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x̃_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    Parameters: the GRU's own (gates stacked r, z, n as in :class:`GRUCell`), and ``weight_im``
    (E, E) = W_m, ``weight_hm`` (E, H) = U_m, ``bias_m`` (E) = b_m.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__(input_size, hidden_size)
        self._add_input_factor()

    def step(self, x_t: Tensor, h: Tensor) -> tuple[Tensor, Parts]:
        m = self.input_factor(x_t, h)
        h, parts = super().step(m * x_t, h)  # the GRU's step on x̃_t
        return h, {"m": m, **parts}

    def fused_forward(self, x: Tensor, h: Tensor):
        from seqcopy.core.fast import mgru_input_sequence

        return mgru_input_sequence(x, h, self)


CELLS: dict[str, type[Cell]] = {
    "rnn": RNNCell,
    "lstm": LSTMCell,
    "gru": GRUCell,
    "mlstm": MLSTMCell,
    "mgru": MGRUCell,
}
INPUT_FORM_CELLS: dict[str, type[Cell]] = {"mlstm": MLSTMInputCell, "mgru": MGRUInputCell}


def make_cell(name: str, input_size: int, hidden_size: int, mult_form: str = "krause", norm_m: bool = False) -> Cell:
    """The cell ``name``; ``mult_form`` picks the form of mLSTM and mGRU and leaves the others be,
    as ``norm_m`` (layer-normalised m_t, Krause's form only) does."""
    if mult_form not in MULT_FORMS:
        raise ValueError(f"unknown multiplicative form {mult_form!r}: choose one of {', '.join(MULT_FORMS)}")
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}: choose one of {', '.join(CELL_NAMES)}")
    if mult_form == "input" and name in INPUT_FORM_CELLS:
        return INPUT_FORM_CELLS[name](input_size, hidden_size)
    if norm_m and name in MULT_CELLS:
        return CELLS[name](input_size, hidden_size, norm_m=True)
    return CELLS[name](input_size, hidden_size)


class RecurrentLayer(nn.Module):
    """Runs a cell over a batch-first sequence: (B, T, E), state → (B, T, H), new state.

    ``fused=False`` forces the reference path: one Python step per time step, looping over
    ``x.unbind(1)`` (slicing inside the loop would make every slice's backward allocate the
    gradient of the whole sequence).
    """

    def __init__(self, cell: Cell, fused: bool = True):
        super().__init__()
        self.cell = cell
        self.fused = fused

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.cell.initial_state(x.shape[0], x.device, x.dtype)
        if self.fused:
            result = self.cell.fused_forward(x, state)
            if result is not None:
                return result
        outputs = []
        for x_t in x.unbind(1):
            state = self.cell(x_t, state)
            outputs.append(self.cell.output_of(state))
        return torch.stack(outputs, dim=1), state
