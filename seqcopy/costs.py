"""What one time step of each cell costs: the matrix products it multiplies and the activations
training keeps for the backward pass. The one table behind the run estimates (``RunConfig``,
the Launch page) and the benchmark's GFLOP/s, so the two never disagree.

Every cell's products come in pairs, an input product (H×E weights on x_t) and a recurrent one
(H×H weights on h_{t-1} or m_t), so a cell's cost per step and sequence is
``PRODUCTS[cell] · (E·H + H·H)`` multiply-accumulates:

- RNN 1: W_ih, W_hh;
- LSTM 4 and GRU 3: one pair per gate and candidate;
- mLSTM 5: W_mx and W_mh make m_t, then four gates read x_t and m_t;
- mGRU 4: W_mx and W_mh make m_t, then r, z and the candidate read x_t and m_t.
"""

from __future__ import annotations

from .vocab import VOCAB_SIZE

EVAL_BATCH = 250  # sequences per evaluation batch: bounds memory on long test sequences

PRODUCTS = {"rnn": 1, "lstm": 4, "gru": 3, "mlstm": 5, "mgru": 4}

# H-sized vectors kept per step and sequence for the backward pass (gates, states, products).
SAVED_VECTORS = {"rnn": 4, "lstm": 7, "gru": 6, "mlstm": 9, "mgru": 8}


def recurrent_macs(cell: str, embedding: int, hidden: int) -> int:
    """Multiply-accumulates of the cell's products in one step of one sequence."""
    return PRODUCTS[cell] * (embedding * hidden + hidden * hidden)


def step_macs(cell: str, embedding: int, hidden: int) -> int:
    """One step of one sequence through the whole model: the cell and the decoder."""
    return recurrent_macs(cell, embedding, hidden) + hidden * VOCAB_SIZE


def parameter_count(cell: str, embedding: int, hidden: int) -> int:
    """Weights of a CopyModel: embedding, the cell's matrices (biases bounded by 2 per gate row),
    the decoder."""
    biases = 2 * PRODUCTS[cell] * hidden
    return VOCAB_SIZE * embedding + recurrent_macs(cell, embedding, hidden) + biases + VOCAB_SIZE * (hidden + 1)
