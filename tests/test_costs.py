"""The cost table counts the products each cell really multiplies: its parameters' matrices."""

import pytest

from seqcopy.config import CELL_NAMES
from seqcopy.core.model import CopyModel
from seqcopy.costs import parameter_count, recurrent_macs


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_recurrent_products_are_the_cells_weight_matrices(cell):
    embedding, hidden = 5, 7
    model = CopyModel(cell, embedding_size=embedding, hidden_size=hidden)
    matrices = sum(p.numel() for p in model.recurrent.cell.parameters() if p.dim() == 2)
    # one multiply-accumulate per weight per step: the products are exactly the weight matrices
    assert recurrent_macs(cell, embedding, hidden) == matrices
    everything = sum(p.numel() for p in model.parameters())
    assert everything <= parameter_count(cell, embedding, hidden) <= everything + 2 * 5 * hidden
