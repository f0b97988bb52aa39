"""CopyModel: Embedding → recurrent layer → Linear over the vocabulary.

The caller carries the state, as in pytorch/examples' word_language_model: ``forward(x, state)``
returns the logits and the state after the last step, so a long sequence can be fed in chunks.
"""

from __future__ import annotations

from torch import Tensor, nn

from seqcopy.core.cells import RecurrentLayer, State, make_cell
from seqcopy.vocab import VOCAB_SIZE


class CopyModel(nn.Module):
    def __init__(
        self,
        cell: str,
        vocab_size: int = VOCAB_SIZE,
        embedding_size: int = 16,
        hidden_size: int = 128,
        fused: bool = True,
        mult_form: str = "krause",
        norm_m: bool = False,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        cell_module = make_cell(cell, embedding_size, hidden_size, mult_form, norm_m)
        self.recurrent = RecurrentLayer(cell_module, fused=fused)
        self.decoder = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """(B, T) token indices → (B, T, vocab) logits and the state after step T."""
        outputs, state = self.recurrent(self.embedding(x), state)
        return self.decoder(outputs), state


def detach_state(state: State) -> State:
    """Cut the graph between chunks (truncated back-propagation)."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()
