import pytest
import torch

from seqcopy.core.cells import CELL_NAMES
from seqcopy.core.model import CopyModel
from seqcopy.core.train import run_in_chunks


@pytest.mark.parametrize("name", CELL_NAMES)
def test_logits_shape(name):
    model = CopyModel(name, embedding_size=4, hidden_size=8)
    logits, _ = model(torch.randint(0, 11, (3, 7)))
    assert logits.shape == (3, 7, 11)


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("chunk", [1, 5, 23])
def test_chunks_with_carried_state_equal_one_pass(name, chunk):
    torch.manual_seed(0)
    model = CopyModel(name, embedding_size=4, hidden_size=8).eval()
    x = torch.randint(0, 11, (3, 23))
    with torch.no_grad():
        whole, _ = model(x)
        pieces = run_in_chunks(model, x, chunk)
    torch.testing.assert_close(pieces, whole, atol=1e-5, rtol=1e-5)


def test_dropping_the_state_changes_the_result():
    """Carrying the state is what makes chunks equal one pass (the test above can fail)."""
    torch.manual_seed(0)
    model = CopyModel("lstm", embedding_size=4, hidden_size=8).eval()
    x = torch.randint(0, 11, (2, 10))
    with torch.no_grad():
        whole, _ = model(x)
        restarted = torch.cat([model(piece)[0] for piece in x.split(5, dim=1)], dim=1)
    assert not torch.allclose(restarted, whole, atol=1e-4)
