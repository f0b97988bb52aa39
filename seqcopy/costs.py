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

That is Krause's form (``mult_form="krause"``). The input form multiplies what its plain twin
does, on x̃_t instead of x_t, plus the factor m_t = W_m x_t + U_m h_{t-1} + b_m: E·E + E·H more
(W_m is E×E, U_m is E×H), and E more biases.
"""

from __future__ import annotations

from seqcopy.vocab import VOCAB_SIZE

EVAL_BATCH = 250  # sequences per evaluation batch: bounds memory on long test sequences

PRODUCTS = {"rnn": 1, "lstm": 4, "gru": 3, "mlstm": 5, "mgru": 4}
PLAIN_TWIN = {"mlstm": "lstm", "mgru": "gru"}  # what the input form runs on x̃_t

# H-sized vectors kept per step and sequence for the backward pass (gates, states, products).
SAVED_VECTORS = {"rnn": 4, "lstm": 7, "gru": 6, "mlstm": 9, "mgru": 8}


def _input_form(cell: str, mult_form: str) -> bool:
    return mult_form == "input" and cell in PLAIN_TWIN


def recurrent_macs(cell: str, embedding: int, hidden: int, mult_form: str = "krause") -> int:
    """Multiply-accumulates of the cell's products in one step of one sequence."""
    if _input_form(cell, mult_form):
        return recurrent_macs(PLAIN_TWIN[cell], embedding, hidden) + embedding * (embedding + hidden)
    return PRODUCTS[cell] * (embedding * hidden + hidden * hidden)


def step_macs(cell: str, embedding: int, hidden: int, mult_form: str = "krause") -> int:
    """One step of one sequence through the whole model: the cell and the decoder."""
    return recurrent_macs(cell, embedding, hidden, mult_form) + hidden * VOCAB_SIZE


def saved_values(cell: str, embedding: int, hidden: int, mult_form: str = "krause") -> int:
    """Numbers kept per step and sequence for the backward pass; the input form keeps its plain
    twin's and m_t and x̃_t (E each)."""
    if _input_form(cell, mult_form):
        return SAVED_VECTORS[PLAIN_TWIN[cell]] * hidden + 2 * embedding
    return SAVED_VECTORS[cell] * hidden


def parameter_count(cell: str, embedding: int, hidden: int, mult_form: str = "krause") -> int:
    """Weights of a CopyModel: embedding, the cell's matrices (biases bounded by 2 per gate row,
    plus b_m in the input form), the decoder."""
    gates = PRODUCTS[PLAIN_TWIN[cell] if _input_form(cell, mult_form) else cell]
    biases = 2 * gates * hidden + (embedding if _input_form(cell, mult_form) else 0)
    matrices = recurrent_macs(cell, embedding, hidden, mult_form)
    return VOCAB_SIZE * embedding + matrices + biases + VOCAB_SIZE * (hidden + 1)
