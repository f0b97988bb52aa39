"""A hand-built vanilla RNN that copies perfectly: a shift register, for the Playground's tests.

With one-hot embeddings, the hidden state is S = K + P + 1 slots of nine units (one per letter).
Slot 0 holds the letter read now (+0.96 on its unit, -0.96 on the others, -0.96 everywhere for
``$`` and the blank); each step every slot passes its content to the next. The symbol read at
step t therefore sits in slot s - t at step s, and the copy of letter j, due at step K + P + j,
sits in slot K + P: the decoder reads that slot and writes its letter, or a blank when the slot
is still empty (zeros) or holds no letter. ``offset`` makes the decoder read a slot nearer the
input, so the model writes the letter ``offset`` places later: a model that never copies right.
"""

from __future__ import annotations

import torch

from seqcopy.config import RunConfig
from seqcopy.core.model import CopyModel
from seqcopy.vocab import BLANK_INDEX, NUM_SYMBOLS, VOCAB_SIZE

GAIN = 2.0  # tanh(2 · 0.96) ≈ 0.96: the register holds its values without saturating the gradient


def shift_register(letters: int, padding: int, offset: int = 0) -> tuple[CopyModel, RunConfig]:
    slots = letters + padding + 1
    hidden = NUM_SYMBOLS * slots
    config = RunConfig(cell="rnn", train_seq_len=letters, train_output_len=letters, test_seq_len=letters,
                       test_output_len=letters, padding=padding, hidden_size=hidden, embedding_size=VOCAB_SIZE)
    model = CopyModel("rnn", embedding_size=VOCAB_SIZE, hidden_size=hidden)
    cell = model.recurrent.cell
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.embedding.weight.copy_(torch.eye(VOCAB_SIZE))
        for letter in range(NUM_SYMBOLS):
            cell.weight_ih[letter, letter] = 2 * GAIN
            cell.bias_ih[letter] = -GAIN
            for slot in range(1, slots):
                cell.weight_hh[slot * NUM_SYMBOLS + letter, (slot - 1) * NUM_SYMBOLS + letter] = GAIN
        read = letters + padding - offset
        for letter in range(NUM_SYMBOLS):
            model.decoder.weight[letter, read * NUM_SYMBOLS + letter] = 5.0
        model.decoder.bias[BLANK_INDEX] = 0.5
        model.decoder.bias[NUM_SYMBOLS] = -10.0  # never the delimiter
    return model.eval(), config
