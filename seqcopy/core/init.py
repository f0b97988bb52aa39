"""Initialisation schemes for a CopyModel's recurrent cell.

``uniform`` keeps what the cells are built with, torch's U(-1/√H, 1/√H) for every parameter: the
original assignment's behaviour, and the default.

``scaled`` sets the scales that memorising a sequence needs from the first step:

- every H×H block of the weights that act on the state (each gate's slice of ``weight_hh`` and
  ``weight_mg``, and ``weight_mh`` whole) is orthogonal, so h neither shrinks nor blows up when it
  passes through it many times;
- LSTM and mLSTM forget gates (both forms) start biased to 1, so the cell state is kept rather
  than forgotten until the model learns otherwise (Gers et al. 2000; Jozefowicz et al. 2015);
- the input form's W_m (E×E, the one other square matrix) is orthogonal too, so that
  m_t = W_m x_t + … has the size of x_t and x̃_t = m_t ⊙ x_t is not shrunk to a fifth of x_t, as
  it is from U(-1/√H, 1/√H) at E = 16. Its U_m (E×H) and b_m keep their uniform start: U_m is not
  square, and the memory of the input form runs through the plain cell's ``weight_hh``, not m_t.

The multiplicative cells' input factor W_mx x_t keeps its small uniform start: at full strength
m_t flips sign from symbol to symbol and mLSTM and mGRU learn far more slowly (docs/results.md,
"Copies of 20 symbols", has the measurements behind each scheme, and the schemes that were
measured and dropped).

``chrono`` is ``scaled`` with the gate biases that set how long the state is kept drawn as Tallec &
Ollivier (2018, "Can recurrent neural networks warp time?") prescribe for dependencies up to T
steps: the LSTMs' forget-gate biases b_f = log U(1, T - 1) and their input gates' b_i = -b_f; the
GRUs' update-gate biases b_z = log U(1, T - 1) (here z keeps the state: h_t = (1 - z) n + z h).
T is the training sequence's length K + P + N, the longest dependency the task has.

``forget_bias`` is the forget-gate bias of ``scaled`` (1 unless told; Krause et al. 2016 use 3).

``delay_factor`` (Krause's mLSTM and mGRU; 0 leaves it be): through the whole delay every bit of
memory in h flows through m_t = (W_mx x_t) ⊙ (W_mh h_{t-1}) with x_t the embedding of ``$`` or the
blank, so the factor W_mx x_t for those two symbols is the recurrent gain of the delay. At the
uniform start it is about 0.1 per unit. The option moves W_mx, by the least change (in the
Frobenius norm), so that the factor is ``delay_factor`` in every unit for both symbols; the
letters' factors move only as far as their embeddings lean on those two.

docs/results.md ("Multiplicative cells that learn") measures each option on Krause's mLSTM.
"""

from __future__ import annotations

import torch
from torch import nn

from seqcopy.config import FORGET_BIAS, INIT_SCHEMES
from seqcopy.core.cells import Cell, GRUCell, LSTMCell, MGRUCell, MGRUInputCell, MLSTMCell, MLSTMInputCell
from seqcopy.core.model import CopyModel
from seqcopy.vocab import BLANK_INDEX, DELIMITER_INDEX

DELAY_SYMBOLS = (DELIMITER_INDEX, BLANK_INDEX)


def initialise(model: CopyModel, scheme: str, *, forget_bias: float = FORGET_BIAS,
               delay_factor: float = 0.0, span: int = 0) -> None:
    """Re-initialise ``model``'s cell in place (uses torch's global generator: seed it first);
    ``span`` is the T of ``chrono``."""
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown initialisation {scheme!r}: choose one of {', '.join(INIT_SCHEMES)}")
    cell = model.recurrent.cell
    with torch.no_grad():
        if scheme in ("scaled", "chrono"):
            _scaled(cell, forget_bias)
        if scheme == "chrono":
            _chrono(cell, max(span, 3))
        if delay_factor and isinstance(cell, (MLSTMCell, MGRUCell)):
            _set_delay_factor(cell, model.embedding.weight[list(DELAY_SYMBOLS)], delay_factor)


def _scaled(cell: Cell, forget_bias: float) -> None:
    hidden = cell.hidden_size
    for name in ("weight_hh", "weight_mh", "weight_mg"):
        weight = getattr(cell, name, None)
        if weight is not None:
            for block in weight.split(hidden, dim=0):  # one H×H block per gate
                nn.init.orthogonal_(block)
    if isinstance(cell, (MLSTMInputCell, MGRUInputCell)):
        nn.init.orthogonal_(cell.weight_im)
    forget = slice(hidden, 2 * hidden)  # gates are stacked i, f, g, o
    if isinstance(cell, LSTMCell):  # MLSTMInputCell is one
        cell.bias_ih[forget] = forget_bias
        cell.bias_hh[forget] = 0.0
    elif isinstance(cell, MLSTMCell):
        cell.bias[forget] = forget_bias


def _chrono(cell: Cell, span: int) -> None:
    """Tallec & Ollivier's biases for dependencies of up to ``span`` steps."""
    hidden = cell.hidden_size
    keep = torch.log(torch.empty(hidden).uniform_(1.0, span - 1.0))
    second = slice(hidden, 2 * hidden)  # the forget gate (i, f, g, o) and the update gate (r, z, n)
    if isinstance(cell, (LSTMCell, MLSTMCell)):
        biases = (cell.bias_ih, cell.bias_hh) if isinstance(cell, LSTMCell) else (cell.bias,)
        biases[0][second] = keep
        biases[0][:hidden] = -keep  # the input gate opens as little as the forget gate closes
        for extra in biases[1:]:
            extra[:2 * hidden] = 0.0
    elif isinstance(cell, (GRUCell, MGRUCell)):
        extra = cell.bias_hh if isinstance(cell, GRUCell) else cell.bias_mg
        cell.bias_ih[second] = keep
        extra[second] = 0.0


def _set_delay_factor(cell: MLSTMCell | MGRUCell, embedded: torch.Tensor, value: float) -> None:
    """The least change of W_mx (H×E) that makes W_mx e = value·1 for each delay symbol's
    embedding e (the rows of ``embedded``, S×E): W_mx += (value·1 - W_mx Eᵀ) (E Eᵀ)⁻¹ E."""
    target = torch.full((cell.hidden_size, embedded.shape[0]), value)
    residual = target - cell.weight_mx @ embedded.T  # H×S
    cell.weight_mx += residual @ torch.linalg.solve(embedded @ embedded.T, embedded)
